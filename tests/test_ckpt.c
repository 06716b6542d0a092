/* Checkpoint files without MPI (the serial path of the same writer): round trip of strided
 * network rows and whole datasets, latest and keep_last, every kind of damage refused with a
 * message naming it; and the watchdog ending a process that waits too long. */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckmodel.h"
#include "ckpt.h"
#include "cu_main.h"
#include "h5util.h"
#include "nn.h"
#include "rng.h"
#include "status.h"
#include "watchdog.h"

static char g_dir[256];
static char g_err[LDN_ERRLEN];

static struct ldn_nn *make_net(void)
{
    int widths[2] = {40, 7};
    struct ldn_nn *net = ldn_nn_new_mlp(13, widths, 2, 0, LDN_ACT_RELU, 1);
    struct ldn_rng r;
    ldn_rng_init(&r, 5, 1);
    ldn_nn_init(net, &r);
    for (int64_t i = 0; i < net->n_params; i++)
        net->params[i] += (float)ldn_rng_uniform(&r);
    return net;
}

/* Write a checkpoint of `step` with the net's rows [lo, hi) and a u64 dataset. */
static int write_one(struct ldn_nn *net, int64_t step, int keep, char *path, size_t len)
{
    static uint64_t state[4] = {1, 2, 3, UINT64_MAX};
    struct ldn_ckpt_items it = {0};
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_add_net(&it, net, "/trunk", net->params, 0, net->n_params), 0);
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_add(&it, "/workers/3/rng", LDN_CKPT_U64, 1, 4, 1, state), 0);
    struct ldn_ckpt_meta m = {.step = step,
                              .steps_per_epoch = 10,
                              .total_steps = 50,
                              .n_servers = 1,
                              .n_workers = 1,
                              .features = 13,
                              .seed = UINT64_MAX - 1,
                              .config = "model: {trunk: [40, 7]}\n",
                              .metrics = ""};
    int rc = ldn_ckpt_write(MPI_COMM_NULL, g_dir, &m, &it, keep, path, len, g_err, sizeof g_err);
    ldn_ckpt_items_free(&it);
    return rc;
}

static void test_round_trip(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ldn-test-ckpt-%d", (int)getpid());
    struct ldn_nn *net = make_net();
    char path[1200];
    for (int s = 1; s <= 4; s++)
        CU_ASSERT_EQUAL_FATAL(write_one(net, s * 5, 2, path, sizeof path), 0);
    char p[1200], latest[1200];
    CU_ASSERT_EQUAL(ldn_ckpt_resolve("latest", g_dir, latest, sizeof latest, g_err, sizeof g_err),
                    0);
    CU_ASSERT_STRING_EQUAL(latest, path);
    CU_ASSERT_EQUAL(ldn_ckpt_resolve(g_dir, "/nonexistent", p, sizeof p, g_err, sizeof g_err), 0);
    CU_ASSERT_STRING_EQUAL(p, path);
    char run[64] = "/tmp/ldn-test-run-XXXXXX", sub[128]; /* a run directory: its checkpoints */
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(run));
    snprintf(sub, sizeof sub, "%s/checkpoints", run);
    CU_ASSERT_EQUAL(ldn_ckpt_resolve(run, "/nonexistent", p, sizeof p, g_err, sizeof g_err),
                    LDN_ERR_IO); /* neither latest nor checkpoints/ */
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "latest"));
    CU_ASSERT_EQUAL_FATAL(symlink(g_dir, sub), 0);
    CU_ASSERT_EQUAL(ldn_ckpt_resolve(run, "/nonexistent", p, sizeof p, g_err, sizeof g_err), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(p, "/checkpoints/step-0000000020.h5"));
    unlink(sub);
    rmdir(run);
    snprintf(p, sizeof p, "%s/step-0000000010.h5", g_dir);
    CU_ASSERT(access(p, F_OK) != 0); /* keep_last 2: 15 and 20 remain */
    snprintf(p, sizeof p, "%s/step-0000000015.h5", g_dir);
    CU_ASSERT(access(p, F_OK) == 0);

    struct ldn_ckpt ck;
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_open(path, &ck, g_err, sizeof g_err), 0);
    CU_ASSERT_EQUAL(ck.step, 20);
    CU_ASSERT_EQUAL(ck.seed, UINT64_MAX - 1);
    CU_ASSERT_EQUAL(ck.features, 13);
    CU_ASSERT_STRING_EQUAL(ck.config, "model: {trunk: [40, 7]}\n");
    float *back = calloc((size_t)net->n_params, sizeof *back);
    CU_ASSERT_EQUAL(
        ldn_ckpt_read_net(&ck, net, "/trunk", back, 0, net->n_params, g_err, sizeof g_err), 0);
    CU_ASSERT(memcmp(back, net->params, sizeof *back * (size_t)net->n_params) == 0);
    /* rows of the second layer only, as a server holding that range reads them */
    const struct ldn_layer *l1 = &net->layers[1];
    memset(back, 0, sizeof *back * (size_t)net->n_params);
    int64_t lo = l1->offset + 2 * l1->row_len, hi = l1->offset + 5 * l1->row_len;
    CU_ASSERT_EQUAL(ldn_ckpt_read_net(&ck, net, "/trunk", back, lo, hi, g_err, sizeof g_err), 0);
    CU_ASSERT(memcmp(back, net->params + lo, sizeof *back * (size_t)(hi - lo)) == 0);
    /* the weight dataset is [out, in] without the bias column */
    int nd;
    int64_t dims[2];
    CU_ASSERT_EQUAL(ldn_ckpt_shape(&ck, "/trunk/1/weight", &nd, dims, g_err, sizeof g_err), 0);
    CU_ASSERT(nd == 2 && dims[0] == 7 && dims[1] == 40);
    uint64_t st[4], d4[2] = {4, 1};
    CU_ASSERT_EQUAL(ldn_ckpt_read(&ck, "/workers/3/rng", LDN_CKPT_U64, 1, (const int64_t *)d4, 0, 4,
                                  st, 1, g_err, sizeof g_err),
                    0);
    CU_ASSERT(st[3] == UINT64_MAX && st[0] == 1);
    /* wrong type, wrong shape, missing */
    CU_ASSERT_EQUAL(ldn_ckpt_read(&ck, "/workers/3/rng", LDN_CKPT_I64, 1, (const int64_t *)d4, 0, 4,
                                  st, 1, g_err, sizeof g_err),
                    LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "/workers/3/rng is not int64"));
    int64_t d5[2] = {5, 1};
    CU_ASSERT_EQUAL(
        ldn_ckpt_read(&ck, "/workers/3/rng", LDN_CKPT_U64, 1, d5, 0, 4, st, 1, g_err, sizeof g_err),
        LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "has shape [4], expected [5]"));
    CU_ASSERT_EQUAL(ldn_ckpt_read(&ck, "/workers/9/rng", LDN_CKPT_U64, 1, (const int64_t *)d4, 0, 4,
                                  st, 1, g_err, sizeof g_err),
                    LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "dataset /workers/9/rng is missing"));
    CU_ASSERT_FALSE(ldn_ckpt_has(&ck, "/trunk/1"));
    CU_ASSERT_TRUE(ldn_ckpt_has(&ck, "/trunk/1/bias"));
    ldn_ckpt_close(&ck);
    free(back);
    ldn_nn_destroy(&net);
}

static void copy_file(const char *from, const char *to, long keep_bytes)
{
    FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
    CU_ASSERT_FATAL(a && b);
    char buf[4096];
    long total = 0;
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, a)) > 0) {
        if (keep_bytes >= 0 && total + (long)n > keep_bytes)
            n = (size_t)(keep_bytes - total);
        fwrite(buf, 1, n, b);
        total += (long)n;
        if (keep_bytes >= 0 && total >= keep_bytes)
            break;
    }
    fclose(a);
    fclose(b);
}

static void test_damage(void)
{
    char latest[1200], bad[1300];
    CU_ASSERT_EQUAL_FATAL(
        ldn_ckpt_resolve("latest", g_dir, latest, sizeof latest, g_err, sizeof g_err), 0);
    struct ldn_ckpt ck;
    /* truncated */
    snprintf(bad, sizeof bad, "%s/trunc.bin", g_dir);
    copy_file(latest, bad, 3000);
    CU_ASSERT_EQUAL(ldn_ckpt_open(bad, &ck, g_err, sizeof g_err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "cannot open as HDF5"));
    /* a flipped bit inside the first chunk of /trunk/0/weight */
    snprintf(bad, sizeof bad, "%s/flip.bin", g_dir);
    copy_file(latest, bad, -1);
    haddr_t addr = 0;
    {
        hid_t f = H5Fopen(bad, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5Dopen2(f, "/trunk/0/weight", 0);
        hsize_t off[2];
        unsigned mask;
        hsize_t size;
        hid_t sp = H5Dget_space(d);
        CU_ASSERT_FATAL(H5Dget_chunk_info(d, sp, 0, off, &mask, &addr, &size) >= 0);
        H5Sclose(sp);
        H5Dclose(d);
        H5Fclose(f);
    }
    FILE *fp = fopen(bad, "r+b");
    fseek(fp, (long)addr + 17, SEEK_SET);
    int c = fgetc(fp);
    fseek(fp, (long)addr + 17, SEEK_SET);
    fputc(c ^ 0x04, fp);
    fclose(fp);
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_open(bad, &ck, g_err, sizeof g_err), 0);
    int widths[2] = {40, 7};
    struct ldn_nn *net = ldn_nn_new_mlp(13, widths, 2, 0, LDN_ACT_RELU, 1);
    CU_ASSERT_EQUAL(
        ldn_ckpt_read_net(&ck, net, "/trunk", net->params, 0, net->n_params, g_err, sizeof g_err),
        LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "/trunk/0/weight: checksum mismatch (Fletcher-32)"));
    ldn_ckpt_close(&ck);
    ldn_nn_destroy(&net);
    /* another format version */
    snprintf(bad, sizeof bad, "%s/v2.bin", g_dir);
    copy_file(latest, bad, -1);
    {
        hid_t f = H5Fopen(bad, H5F_ACC_RDWR, H5P_DEFAULT), a = H5Aopen(f, "format_version", 0);
        int v = 2;
        CU_ASSERT(H5Awrite(a, H5T_NATIVE_INT, &v) >= 0);
        H5Aclose(a);
        H5Fclose(f);
    }
    CU_ASSERT_EQUAL(ldn_ckpt_open(bad, &ck, g_err, sizeof g_err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "format_version 2, this ladon reads version 1"));
    /* not a checkpoint at all */
    snprintf(bad, sizeof bad, "%s/text.bin", g_dir);
    fp = fopen(bad, "w");
    fputs("hello\n", fp);
    fclose(fp);
    CU_ASSERT_EQUAL(ldn_ckpt_open(bad, &ck, g_err, sizeof g_err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "file signature not found"));
    CU_ASSERT_EQUAL(ldn_ckpt_open("/nonexistent/x.h5", &ck, g_err, sizeof g_err), LDN_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "No such file"));
    /* a latest pointer naming something else */
    char lp[1300];
    snprintf(lp, sizeof lp, "%s/latest", g_dir);
    fp = fopen(lp, "w");
    fputs("../../etc/passwd\n", fp);
    fclose(fp);
    CU_ASSERT_EQUAL(ldn_ckpt_resolve("latest", g_dir, latest, sizeof latest, g_err, sizeof g_err),
                    LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(g_err, "does not name a checkpoint file"));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static void test_watchdog(void)
{
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        ldn_watchdog_arm("nothing in particular", 0.2);
        sleep(5);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 3);
    /* disarmed in time: no exit */
    CU_ASSERT_EQUAL(ldn_watchdog_arm("a short wait", 0.3), 0);
    struct timespec a = {0, 100000000}, b = {0, 400000000};
    nanosleep(&a, NULL);
    ldn_watchdog_disarm();
    nanosleep(&b, NULL);
    CU_PASS("still running");
}

/* ladon's Fletcher-32 (the parallel writer checksums chunks itself) against the checksum
 * HDF5's filter stores: chunks of 1..4099 one-byte elements (odd lengths included) with
 * random contents and with all bytes 0xff (the largest sums), read back raw. */
static void test_fletcher32(void)
{
    char path[300];
    snprintf(path, sizeof path, "%s/fletcher.h5", g_dir);
    const hsize_t lens[] = {1, 2, 3, 719, 720, 721, 1000, 4099};
    struct ldn_rng r;
    ldn_rng_init(&r, 9, 1);
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        for (int pattern = 0; pattern < 2; pattern++) {
            hsize_t n = lens[k];
            unsigned char *buf = malloc(n + 4), *raw = malloc(n + 4);
            CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
            CU_ASSERT_PTR_NOT_NULL_FATAL(raw);
            for (hsize_t i = 0; i < n; i++)
                buf[i] = pattern ? 0xff : (unsigned char)(ldn_rng_u64(&r) >> 56);
            hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
            hid_t sp = H5Screate_simple(1, &n, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
            CU_ASSERT_FATAL(f >= 0 && sp >= 0 && dcpl >= 0);
            CU_ASSERT_FATAL(H5Pset_chunk(dcpl, 1, &n) >= 0 && H5Pset_fletcher32(dcpl) >= 0);
            hid_t ds = H5Dcreate2(f, "x", H5T_NATIVE_UCHAR, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            CU_ASSERT_FATAL(ds >= 0);
            CU_ASSERT_FATAL(H5Dwrite(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >=
                            0);
            H5Dclose(ds);
            H5Fclose(f);
            f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
            ds = H5Dopen2(f, "x", H5P_DEFAULT);
            hsize_t off = 0, size = 0;
            uint32_t mask = 1;
            CU_ASSERT_FATAL(H5Dget_chunk_storage_size(ds, &off, &size) >= 0);
            CU_ASSERT_EQUAL_FATAL(size, n + 4);
            CU_ASSERT_FATAL(H5Dread_chunk(ds, H5P_DEFAULT, &off, &mask, raw) >= 0);
            CU_ASSERT_EQUAL(mask, 0);
            CU_ASSERT_EQUAL(memcmp(raw, buf, n), 0);
            uint32_t want = (uint32_t)raw[n] | (uint32_t)raw[n + 1] << 8 |
                            (uint32_t)raw[n + 2] << 16 | (uint32_t)raw[n + 3] << 24;
            CU_ASSERT_EQUAL(ldn_h5_fletcher32(buf, n), want);
            H5Dclose(ds);
            H5Fclose(f);
            H5Pclose(dcpl);
            H5Sclose(sp);
            free(buf);
            free(raw);
        }
    unlink(path);
}

/* Values with valid checksums that no run writes: a NaN or infinite weight (written by the
 * writer itself, so every checksum matches), an update count below 0 or above 2^53. Each is
 * refused with the file, the dataset and the element named. */
static void test_content(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ldn-test-ckpt-content-%d", (int)getpid());
    struct ldn_nn *net = make_net(), *back = make_net();
    char path[1200];
    struct ldn_ckpt ck;
    const struct ldn_layer *l1 = &net->layers[1];
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    const char *want[3] = {"/trunk/1/weight[2, 5] is NaN", "/trunk/1/bias[6] is +infinity",
                           "/trunk/0/weight[0, 0] is -infinity"};
    int64_t where[3] = {l1->offset + 2 * l1->row_len + 5, l1->offset + 6 * l1->row_len + l1->in_dim,
                        0};
    for (int k = 0; k < 3; k++) {
        float keep = net->params[where[k]];
        net->params[where[k]] = bad[k];
        CU_ASSERT_EQUAL_FATAL(write_one(net, 10 + k, 5, path, sizeof path), 0);
        net->params[where[k]] = keep;
        CU_ASSERT_EQUAL_FATAL(ldn_ckpt_open(path, &ck, g_err, sizeof g_err), 0);
        g_err[0] = '\0';
        CU_ASSERT_EQUAL(ldn_ckpt_read_net(&ck, back, "/trunk", back->params, 0, back->n_params,
                                          g_err, sizeof g_err),
                        LDN_ERR_FORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(g_err, want[k]));
        CU_ASSERT_PTR_NOT_NULL(strstr(g_err, path));
        if (!strstr(g_err, want[k]))
            fprintf(stderr, "\n  got: %s\n", g_err);
        ldn_ckpt_close(&ck);
    }
    /* update counts */
    const int64_t counts[4][3] = {
        {0, 7, LDN_CKPT_MAX_COUNT}, {3, -1, 4}, {INT64_MIN, 0, 0}, {0, 0, LDN_CKPT_MAX_COUNT + 1}};
    const char *cwant[4] = {NULL, "/optimizer/trunk_updates[1] is -1",
                            "/optimizer/trunk_updates[0] is -9223372036854775808",
                            "/optimizer/trunk_updates[2] is 9007199254740993"};
    for (int k = 0; k < 4; k++) {
        struct ldn_ckpt_items it = {0};
        struct ldn_ckpt_meta m = {.step = 1,
                                  .steps_per_epoch = 1,
                                  .total_steps = 2,
                                  .n_servers = 1,
                                  .features = 1,
                                  .config = "",
                                  .metrics = ""};
        CU_ASSERT_EQUAL_FATAL(
            ldn_ckpt_add(&it, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, 3, 1, counts[k]), 0);
        CU_ASSERT_EQUAL_FATAL(ldn_ckpt_write(MPI_COMM_NULL, g_dir, &m, &it, 5, path, sizeof path,
                                             g_err, sizeof g_err),
                              0);
        ldn_ckpt_items_free(&it);
        CU_ASSERT_EQUAL_FATAL(ldn_ckpt_open(path, &ck, g_err, sizeof g_err), 0);
        int64_t got[3] = {0, 0, 0}, d[2] = {3, 1};
        int rc = ldn_ckpt_read_counts(&ck, "/optimizer/trunk_updates", d, 0, 3, got, g_err,
                                      sizeof g_err);
        if (!cwant[k]) {
            CU_ASSERT_EQUAL(rc, 0);
            CU_ASSERT_EQUAL(got[2], LDN_CKPT_MAX_COUNT);
        } else {
            CU_ASSERT_EQUAL(rc, LDN_ERR_FORMAT);
            CU_ASSERT_PTR_NOT_NULL(strstr(g_err, cwant[k]));
            CU_ASSERT_PTR_NOT_NULL(strstr(g_err, path));
        }
        /* one row of the range, as a server reads its chunks */
        if (k == 1)
            CU_ASSERT_EQUAL(ldn_ckpt_read_counts(&ck, "/optimizer/trunk_updates", d, 2, 1, got,
                                                 g_err, sizeof g_err),
                            0);
        ldn_ckpt_close(&ck);
        unlink(path);
    }
    char latest[1300];
    snprintf(latest, sizeof latest, "%s/latest", g_dir);
    unlink(latest);
    for (int k = 0; k < 3; k++) {
        snprintf(latest, sizeof latest, "%s/step-%010d.h5", g_dir, 10 + k);
        unlink(latest);
    }
    rmdir(g_dir);
    ldn_nn_destroy(&net);
    ldn_nn_destroy(&back);
}

/* Root attributes beyond what their fields hold (found by fuzzing: a features attribute of
 * 3.1e9 was cast to int, undefined behaviour) are refused, naming the attribute. */
static void test_root_bounds(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ldn-test-ckpt-root-%d", (int)getpid());
    struct ldn_nn *net = make_net();
    char path[1200];
    CU_ASSERT_EQUAL_FATAL(write_one(net, 5, 5, path, sizeof path), 0);
    /* lost_workers is optional (only after a loss): at most the workers of the checkpoint */
    const char *names[5] = {"features", "step", "servers", "format_version", "lost_workers"};
    const double vals[5] = {3.14918e9, 1e300, -1, 1e10, 1e9};
    for (int k = 0; k < 5; k++) {
        char copy[1300];
        snprintf(copy, sizeof copy, "%s/attr-%d.h5", g_dir, k);
        char cmd[2700];
        snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, copy);
        CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
        hid_t f = H5Fopen(copy, H5F_ACC_RDWR, H5P_DEFAULT);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(H5Aexists(f, names[k]) == 0 || H5Adelete(f, names[k]) >= 0);
        CU_ASSERT(ldn_h5_write_attr_scalar(f, names[k], H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE,
                                           &vals[k]) == 0);
        H5Fclose(f);
        struct ldn_ckpt ck;
        g_err[0] = '\0';
        CU_ASSERT_EQUAL(ldn_ckpt_open(copy, &ck, g_err, sizeof g_err), LDN_ERR_FORMAT);
        char want[64];
        snprintf(want, sizeof want, "root attribute %s must be in [", names[k]);
        CU_ASSERT_PTR_NOT_NULL(strstr(g_err, want));
        if (!strstr(g_err, want))
            fprintf(stderr, "\n  got: %s\n", g_err);
        unlink(copy);
    }
    unlink(path);
    snprintf(path, sizeof path, "%s/latest", g_dir);
    unlink(path);
    rmdir(g_dir);
    ldn_nn_destroy(&net);
}

/* A stored config that disagrees with the stored weights (a model.trunk of [4000, 4000] over
 * a trunk of [40, 7]) is refused by the model loader before it builds anything, naming the
 * dataset, both shapes and the stored config; the same file with its own config loads. */
static void test_config_mismatch(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/ldn-test-ckpt-mismatch-%d", (int)getpid());
    struct ldn_nn *net = make_net();
    int hw[1] = {3};
    struct ldn_nn *head = ldn_nn_new_mlp(7, hw, 1, 0, LDN_ACT_RELU, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(head);
    const char *configs[2] = {"run: {dir: /nonexistent}\ndata: {dir: /nonexistent}\n"
                              "model: {trunk: [40, 7]}\ntasks: {a: {}}\n",
                              "run: {dir: /nonexistent}\ndata: {dir: /nonexistent}\n"
                              "model: {trunk: [4000, 4000]}\ntasks: {a: {}}\n"};
    for (int k = 0; k < 2; k++) {
        struct ldn_ckpt_items it = {0};
        CU_ASSERT_EQUAL_FATAL(ldn_ckpt_add_net(&it, net, "/trunk", net->params, 0, net->n_params),
                              0);
        CU_ASSERT_EQUAL_FATAL(
            ldn_ckpt_add_net(&it, head, "/heads/a", head->params, 0, head->n_params), 0);
        struct ldn_ckpt_meta m = {.step = 1 + k,
                                  .steps_per_epoch = 10,
                                  .total_steps = 50,
                                  .n_servers = 1,
                                  .n_workers = 1,
                                  .features = 13,
                                  .seed = 1,
                                  .config = configs[k],
                                  .metrics = ""};
        char path[1200];
        CU_ASSERT_EQUAL_FATAL(ldn_ckpt_write(MPI_COMM_NULL, g_dir, &m, &it, 5, path, sizeof path,
                                             g_err, sizeof g_err),
                              0);
        ldn_ckpt_items_free(&it);
        struct ldn_ckmodel L;
        g_err[0] = '\0';
        int rc = ldn_ckmodel_load(path, 1, &L, g_err, sizeof g_err);
        if (k == 0) {
            CU_ASSERT_EQUAL(rc, 0);
            if (rc == 0) {
                CU_ASSERT_EQUAL(L.model->trunk->n_params, net->n_params);
                CU_ASSERT_EQUAL(L.classes[0], 3);
                ldn_ckmodel_free(&L);
            } else {
                fprintf(stderr, "\n  load: %s\n", g_err);
            }
        } else {
            const char *want = "/trunk/0/weight has shape [40, 13], expected [4000, 13] (the "
                               "shape the config stored in it gives)";
            CU_ASSERT_EQUAL(rc, LDN_ERR_FORMAT);
            CU_ASSERT_PTR_NOT_NULL(strstr(g_err, want));
            CU_ASSERT_PTR_NOT_NULL(strstr(g_err, path));
            CU_ASSERT_PTR_NULL(L.model);
            if (!strstr(g_err, want))
                fprintf(stderr, "\n  got: %s\n", g_err);
        }
        unlink(path);
    }
    char p[1300];
    snprintf(p, sizeof p, "%s/latest", g_dir);
    unlink(p);
    rmdir(g_dir);
    ldn_nn_destroy(&head);
    ldn_nn_destroy(&net);
}

static const struct ldn_cu_test TESTS[] = {
    {"Fletcher-32 as HDF5 computes it", test_fletcher32},
    {"content: non-finite values, update counts", test_content},
    {"round trip, latest, keep_last", test_round_trip},
    {"damaged files", test_damage},
    {"watchdog", test_watchdog},
    {"root attributes within their fields' range", test_root_bounds},
    {"a stored config that disagrees with the weights", test_config_mismatch},
    {NULL, NULL}};

LDN_CU_MAIN("ckpt", TESTS)
