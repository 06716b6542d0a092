/* Task files: the loader (shards, validation), the Fashion-MNIST builder (on small synthetic
 * IDX files, and on the real data when installed) and the synthetic generator. */
#define _XOPEN_SOURCE 700

#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "cu_main.h"
#include "data.h"
#include "data_priv.h"
#include "status.h"

#define PIX 784
#define REAL_FMNIST "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------ temp dir helpers */

static char g_tmp[64];

static void tmp_setup(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ldn_test_data.XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(g_tmp) != NULL);
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void tmp_cleanup(void)
{
    nftw(g_tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* g_tmp/rel in a static rotating buffer (enough for one assertion's worth of paths). */
static const char *tp(const char *rel)
{
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", g_tmp, rel);
    return b;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int count_entries(const char *dir)
{
    int n = 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls -A '%s' 2>/dev/null | wc -l", dir);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    *len = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    return b;
}

static void write_all(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_FATAL(f != NULL);
    CU_ASSERT(fwrite(data, 1, len, f) == len);
    fclose(f);
}

static int same_bytes(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    unsigned char *x = read_all(a, &la), *y = read_all(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* ------------------------------------------------------------------ small synthetic IDX */

#define N_TRAIN 200
#define N_TEST 50

static unsigned char g_img[2][N_TRAIN * PIX], g_lab[2][N_TRAIN];

/* Deterministic, distinct images and labels covering every class. */
static void make_pixels(void)
{
    uint32_t s = 12345;
    for (int split = 0; split < 2; split++) {
        int n = split ? N_TEST : N_TRAIN;
        for (int i = 0; i < n; i++) {
            unsigned char *im = g_img[split] + i * PIX;
            for (int p = 0; p < PIX; p++) {
                s = s * 1664525u + 1013904223u;
                im[p] = (unsigned char)(s >> 24);
            }
            im[0] = (unsigned char)split;
            im[1] = (unsigned char)(i & 0xff);
            im[2] = (unsigned char)(i >> 8);
            g_lab[split][i] = (unsigned char)((i * 7 + i / 13) % 10);
        }
    }
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Write an IDX .gz: magic, ndims sizes, then len bytes of data. */
static void write_idx_gz(const char *path, uint32_t magic, const uint32_t *dims, int ndims,
                         const unsigned char *data, size_t len)
{
    unsigned char hdr[20];
    put32(hdr, magic);
    for (int i = 0; i < ndims; i++)
        put32(hdr + 4 + 4 * i, dims[i]);
    gzFile gz = gzopen(path, "wb6");
    CU_ASSERT_FATAL(gz != NULL);
    CU_ASSERT(gzwrite(gz, hdr, (unsigned)(4 + 4 * ndims)) == 4 + 4 * ndims);
    if (len)
        CU_ASSERT(gzwrite(gz, data, (unsigned)len) == (int)len);
    CU_ASSERT(gzclose(gz) == Z_OK);
}

static void write_images(const char *name, int split, uint32_t magic, uint32_t n_hdr,
                         uint32_t n_data)
{
    uint32_t dims[3] = {n_hdr, 28, 28};
    write_idx_gz(tp(name), magic, dims, 3, g_img[split], (size_t)n_data * PIX);
}

static void write_labels(const char *name, int split, uint32_t n)
{
    uint32_t dims[1] = {n};
    write_idx_gz(tp(name), 0x00000801, dims, 1, g_lab[split], n);
}

/* A valid source in g_tmp/src. */
static void make_src(void)
{
    make_pixels();
    CU_ASSERT_FATAL(mkdir(tp("src"), 0777) == 0);
    write_images("src/train-images-idx3-ubyte.gz", 0, 0x00000803, N_TRAIN, N_TRAIN);
    write_labels("src/train-labels-idx1-ubyte.gz", 0, N_TRAIN);
    write_images("src/t10k-images-idx3-ubyte.gz", 1, 0x00000803, N_TEST, N_TEST);
    write_labels("src/t10k-labels-idx1-ubyte.gz", 1, N_TEST);
}

/* Read an int32 dataset fully (NULL on failure); *n gets its length. */
static int32_t *read_i32(const char *path, const char *name, int64_t *n)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dim = 0;
    if (sp >= 0)
        H5Sget_simple_extent_dims(sp, &dim, NULL);
    int32_t *v = malloc(dim ? dim * sizeof *v : 1);
    if (d < 0 || H5Dread(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        free(v);
        v = NULL;
    }
    *n = (int64_t)dim;
    if (sp >= 0)
        H5Sclose(sp);
    if (d >= 0)
        H5Dclose(d);
    H5Fclose(f);
    return v;
}

/* ------------------------------------------------------------------ fmnist builder */

static const int GROUP_OF[10] = {0, 1, 0, 1, 0, 2, 0, 2, 3, 2};

static int map_label(int task, int c)
{
    return task == 0 ? c : task == 1 ? GROUP_OF[c] : c % 2;
}

static void test_fmnist_build_small(void)
{
    static const char *const names[3] = {"category", "group", "parity"};
    static const int classes[3] = {10, 4, 2};
    static const int64_t sizes[3] = {N_TRAIN * 4 / 6, N_TRAIN / 6,
                                     N_TRAIN - N_TRAIN * 4 / 6 - N_TRAIN / 6};
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    make_src();
    int rc = ldn_data_build_fmnist(tp("src"), tp("out/nested"), 7, err, sizeof err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(count_entries(tp("out/nested")), 3); /* no temporaries left behind */

    int seen[N_TRAIN] = {0};
    for (int t = 0; t < 3; t++) {
        char rel[64], task[64];
        snprintf(rel, sizeof rel, "out/nested/%s.h5", names[t]);
        const char *path = tp(rel);
        int nc = 0, feat = 0;
        int64_t ntr = 0, nte = 0;
        CU_ASSERT_EQUAL_FATAL(
            ldn_dataset_probe(path, task, sizeof task, &nc, &feat, &ntr, &nte, err, sizeof err), 0);
        CU_ASSERT_STRING_EQUAL(task, names[t]);
        CU_ASSERT_EQUAL(nc, classes[t]);
        CU_ASSERT_EQUAL(feat, PIX);
        CU_ASSERT_EQUAL(ntr, sizes[t]);
        CU_ASSERT_EQUAL(nte, N_TEST);

        struct ldn_dataset *tr = ldn_dataset_load(path, "train", 0, 1, err, sizeof err);
        struct ldn_dataset *te = ldn_dataset_load(path, "test", 0, 1, err, sizeof err);
        int64_t ns = 0, nts = 0;
        int32_t *src = read_i32(path, "train/source_index", &ns);
        int32_t *tsrc = read_i32(path, "test/source_index", &nts);
        CU_ASSERT_FATAL(tr && te && src && tsrc);
        CU_ASSERT_EQUAL(ns, sizes[t]);
        CU_ASSERT_EQUAL(tr->n, sizes[t]);
        CU_ASSERT_EQUAL(tr->num_classes, classes[t]);
        int label_ok = 1, pix_ok = 1;
        for (int64_t i = 0; i < tr->n; i++) {
            int s = src[i];
            CU_ASSERT_FATAL(s >= 0 && s < N_TRAIN);
            seen[s]++;
            label_ok &= tr->y[i] == map_label(t, g_lab[0][s]);
            for (int p = 0; p < PIX; p++)
                pix_ok &= (int)(tr->x[i * PIX + p] * 255.0f + 0.5f) == g_img[0][s * PIX + p];
        }
        CU_ASSERT(label_ok);
        CU_ASSERT(pix_ok);
        label_ok = 1;
        for (int64_t i = 0; i < te->n; i++)
            label_ok &= tsrc[i] == i && te->y[i] == map_label(t, g_lab[1][i]) &&
                        (int)(te->x[i * PIX + 2] * 255.0f + 0.5f) == g_img[1][i * PIX + 2];
        CU_ASSERT(label_ok);
        free(src);
        free(tsrc);
        ldn_dataset_destroy(&tr);
        ldn_dataset_destroy(&te);
        CU_ASSERT_PTR_NULL(tr);
    }
    /* Training images are disjoint across the tasks and together use every image once. */
    int once = 1;
    for (int i = 0; i < N_TRAIN; i++)
        once &= seen[i] == 1;
    CU_ASSERT(once);

    /* A known image: the first Bag (class 8) is group 3 (bags) and parity 0 (even). */
    CU_ASSERT_EQUAL(map_label(1, 8), 3);
    CU_ASSERT_EQUAL(map_label(2, 8), 0);
    CU_ASSERT_EQUAL(map_label(1, 3), 1); /* Dress -> bottoms-and-dresses */
    CU_ASSERT_EQUAL(map_label(1, 9), 2); /* Ankle boot -> footwear */

    /* Same seed: byte-identical files; another seed: another split. */
    CU_ASSERT_EQUAL(ldn_data_build_fmnist(tp("src"), tp("again"), 7, err, sizeof err), 0);
    CU_ASSERT(same_bytes(tp("out/nested/group.h5"), tp("again/group.h5")));
    CU_ASSERT_EQUAL(ldn_data_build_fmnist(tp("src"), tp("other"), 8, err, sizeof err), 0);
    CU_ASSERT(!same_bytes(tp("out/nested/group.h5"), tp("other/group.h5")));
    tmp_cleanup();
}

/* Build from a broken source: must fail with a message containing want1 and want2, leave a
 * pre-existing out/category.h5 byte-identical and create nothing else. */
static void expect_fmnist_fails(const char *want1, const char *want2)
{
    char err[LDN_ERRLEN] = "";
    CU_ASSERT_FATAL(mkdir(tp("out"), 0777) == 0);
    write_all(tp("out/category.h5"), "precious old data", 17);
    int rc = ldn_data_build_fmnist(tp("src"), tp("out"), 1, err, sizeof err);
    CU_ASSERT(rc < 0);
    if (!strstr(err, want1) || !strstr(err, want2) || getenv("LDN_TEST_SHOW_ERRORS"))
        fprintf(stderr, "\n  error: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want1));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want2));
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    size_t len = 0;
    unsigned char *b = read_all(tp("out/category.h5"), &len);
    CU_ASSERT(b && len == 17 && memcmp(b, "precious old data", 17) == 0);
    free(b);
    CU_ASSERT_EQUAL(count_entries(tp("out")), 1);
}

static void test_fmnist_truncated_images(void)
{
    tmp_setup();
    make_src();
    write_images("src/train-images-idx3-ubyte.gz", 0, 0x00000803, N_TRAIN, N_TRAIN - 50);
    expect_fmnist_fails("train-images-idx3-ubyte.gz: truncated", "got 117600");
    tmp_cleanup();
}

static void test_fmnist_truncated_gzip(void)
{
    tmp_setup();
    make_src();
    size_t len = 0;
    unsigned char *b = read_all(tp("src/t10k-images-idx3-ubyte.gz"), &len);
    CU_ASSERT_FATAL(b != NULL);
    write_all(tp("src/t10k-images-idx3-ubyte.gz"), b, len / 2); /* cut the .gz itself */
    free(b);
    expect_fmnist_fails("t10k-images-idx3-ubyte.gz", "truncated");
    tmp_cleanup();
}

static void test_fmnist_trailing_data(void)
{
    tmp_setup();
    make_src();
    uint32_t dims[1] = {N_TEST};
    unsigned char lab[N_TEST + 3] = {0};
    memcpy(lab, g_lab[1], N_TEST);
    write_idx_gz(tp("src/t10k-labels-idx1-ubyte.gz"), 0x00000801, dims, 1, lab, N_TEST + 3);
    expect_fmnist_fails("t10k-labels-idx1-ubyte.gz", "trailing data");
    tmp_cleanup();
}

static void test_fmnist_bad_magic(void)
{
    tmp_setup();
    make_src();
    write_images("src/train-images-idx3-ubyte.gz", 0, 0x00000804, N_TRAIN, N_TRAIN);
    expect_fmnist_fails("train-images-idx3-ubyte.gz", "magic 0x00000804");
    tmp_cleanup();
}

static void test_fmnist_label_count_mismatch(void)
{
    tmp_setup();
    make_src();
    write_labels("src/train-labels-idx1-ubyte.gz", 0, N_TRAIN - 1);
    expect_fmnist_fails("200 images", "199 labels");
    tmp_cleanup();
}

static void test_fmnist_label_value(void)
{
    tmp_setup();
    make_src();
    g_lab[1][17] = 10;
    write_labels("src/t10k-labels-idx1-ubyte.gz", 1, N_TEST);
    expect_fmnist_fails("t10k-labels-idx1-ubyte.gz", "label 10 at index 17");
    tmp_cleanup();
}

static void test_fmnist_corrupt_gzip(void)
{
    tmp_setup();
    make_src();
    size_t len = 0;
    unsigned char *b = read_all(tp("src/train-images-idx3-ubyte.gz"), &len);
    CU_ASSERT_FATAL(b != NULL && len > 1000);
    b[len / 2] ^= 0x5a;
    write_all(tp("src/train-images-idx3-ubyte.gz"), b, len);
    free(b);
    expect_fmnist_fails("train-images-idx3-ubyte.gz", "gzip");
    tmp_cleanup();
}

static void test_fmnist_missing_source(void)
{
    tmp_setup();
    make_src();
    CU_ASSERT_FATAL(unlink(tp("src/t10k-labels-idx1-ubyte.gz")) == 0);
    expect_fmnist_fails("t10k-labels-idx1-ubyte.gz: cannot open", "No such file");
    tmp_cleanup();
}

/* The second rename fails (a directory is in the way): the first file is put back. */
static void test_fmnist_rename_failure_rolls_back(void)
{
    tmp_setup();
    make_src();
    CU_ASSERT_FATAL(mkdir(tp("out"), 0777) == 0);
    CU_ASSERT_FATAL(mkdir(tp("out/group.h5"), 0777) == 0);
    write_all(tp("out/group.h5/keep"), "x", 1);
    write_all(tp("out/category.h5"), "precious old data", 17);
    char err[LDN_ERRLEN] = "";
    CU_ASSERT(ldn_data_build_fmnist(tp("src"), tp("out"), 1, err, sizeof err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot rename"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "group.h5"));
    size_t len = 0;
    unsigned char *b = read_all(tp("out/category.h5"), &len);
    CU_ASSERT(b && len == 17 && memcmp(b, "precious old data", 17) == 0);
    free(b);
    CU_ASSERT_EQUAL(count_entries(tp("out")), 2); /* no parity.h5, temporaries or backups */
    tmp_cleanup();
}

static void test_fmnist_real(void)
{
    if (!exists(REAL_FMNIST "/train-images-idx3-ubyte.gz")) {
        fprintf(stderr, "(skipped: " REAL_FMNIST " not installed) ");
        return;
    }
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = ldn_data_build_fmnist(REAL_FMNIST, tp("fm"), 1, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    fprintf(stderr, "(%.2f s) ", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    static const char *const files[3] = {"fm/category.h5", "fm/group.h5", "fm/parity.h5"};
    static const int64_t ntr[3] = {40000, 10000, 10000};
    for (int t = 0; t < 3; t++) {
        int64_t a = 0, b = 0;
        CU_ASSERT_EQUAL(
            ldn_dataset_probe(tp(files[t]), NULL, 0, NULL, NULL, &a, &b, err, sizeof err), 0);
        CU_ASSERT_EQUAL(a, ntr[t]);
        CU_ASSERT_EQUAL(b, 10000);
    }
    /* Shard 3 of 4 of the category task: rows 30000..39999, every label a class id. */
    struct ldn_dataset *ds = ldn_dataset_load(tp(files[0]), "train", 3, 4, err, sizeof err);
    CU_ASSERT_FATAL(ds != NULL);
    CU_ASSERT_EQUAL(ds->first, 30000);
    CU_ASSERT_EQUAL(ds->n, 10000);
    int counts[10] = {0};
    float mx = 0;
    for (int64_t i = 0; i < ds->n; i++)
        counts[ds->y[i]]++;
    for (int64_t i = 0; i < ds->n * PIX; i++)
        mx = ds->x[i] > mx ? ds->x[i] : mx;
    CU_ASSERT(mx > 0.99f && mx <= 1.0f);
    for (int c = 0; c < 10; c++)
        CU_ASSERT(counts[c] > 800 && counts[c] < 1200); /* ~1000 each: a random split */
    ldn_dataset_destroy(&ds);
    tmp_cleanup();
}

/* ------------------------------------------------------------------ loader */

static void test_load_shards_cover_split(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    make_src();
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_fmnist(tp("src"), tp("out"), 3, err, sizeof err), 0);
    const char *path = tp("out/category.h5");
    struct ldn_dataset *full = ldn_dataset_load(path, "train", 0, 1, err, sizeof err);
    CU_ASSERT_FATAL(full != NULL);
    CU_ASSERT_EQUAL(full->n, 133);
    CU_ASSERT_EQUAL(full->n_total, 133);
    int64_t next = 0;
    for (int s = 0; s < 4; s++) {
        struct ldn_dataset *d = ldn_dataset_load(path, "train", s, 4, err, sizeof err);
        CU_ASSERT_FATAL(d != NULL);
        CU_ASSERT_EQUAL(d->first, next);
        CU_ASSERT_EQUAL(d->first, (int64_t)s * 133 / 4);
        CU_ASSERT_EQUAL(d->n_total, 133);
        CU_ASSERT_STRING_EQUAL(d->task, "category");
        CU_ASSERT(memcmp(d->x, full->x + next * PIX, (size_t)d->n * PIX * sizeof(float)) == 0);
        CU_ASSERT(memcmp(d->y, full->y + next, (size_t)d->n * sizeof(int32_t)) == 0);
        next += d->n;
        ldn_dataset_destroy(&d);
    }
    CU_ASSERT_EQUAL(next, 133);
    ldn_dataset_destroy(&full);
    ldn_dataset_destroy(&full); /* destroy of NULL is a no-op */

    /* Bad arguments. */
    CU_ASSERT_PTR_NULL(ldn_dataset_load(path, "valid", 0, 1, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"train\" or \"test\""));
    CU_ASSERT_PTR_NULL(ldn_dataset_load(path, "train", 4, 4, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "shard 4 of 4"));
    CU_ASSERT_PTR_NULL(ldn_dataset_load(path, "test", 0, 0, err, sizeof err));
    CU_ASSERT_PTR_NULL(ldn_dataset_load(path, "test", 40, 200, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty"));
    tmp_cleanup();
}

/* Write a small float32 task file through the library's writer (which does not validate). */
static void write_small_task(const char *path, int num_classes, int bad_row, int32_t bad_label)
{
    float x[10 * 3];
    int32_t y[10];
    for (int i = 0; i < 30; i++)
        x[i] = (float)i;
    for (int i = 0; i < 10; i++)
        y[i] = i == bad_row ? bad_label : i % num_classes;
    struct ldn__task_out t = {
        "small", "test", "a,b", num_classes, 3, 0.5, {10, x, 1, y, NULL}, {10, x, 1, y, NULL}};
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL(ldn__data_write_task(path, &t, err, sizeof err), 0);
}

static void expect_load_fails(const char *path, const char *want)
{
    char err[LDN_ERRLEN] = "";
    struct ldn_dataset *d = ldn_dataset_load(path, "train", 0, 1, err, sizeof err);
    CU_ASSERT_PTR_NULL(d);
    ldn_dataset_destroy(&d);
    if (!strstr(err, want) || !strstr(err, path) || getenv("LDN_TEST_SHOW_ERRORS"))
        fprintf(stderr, "\n  error: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
    if (!strstr(want, "label")) { /* probe reads no labels; everything else it checks */
        char e2[LDN_ERRLEN] = "";
        CU_ASSERT(ldn_dataset_probe(path, NULL, 0, NULL, NULL, NULL, NULL, e2, sizeof e2) < 0);
    }
}

static void test_load_float_and_bad_label(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    write_small_task(tp("ok.h5"), 2, -1, 0);
    struct ldn_dataset *d = ldn_dataset_load(tp("ok.h5"), "test", 1, 2, err, sizeof err);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_EQUAL(d->first, 5);
    CU_ASSERT_EQUAL(d->features, 3);
    CU_ASSERT_EQUAL(d->x[0], 7.5f); /* row 5, column 0 = 15, times x_scale 0.5 */
    CU_ASSERT_EQUAL(d->y[0], 1);
    ldn_dataset_destroy(&d);

    write_small_task(tp("bad.h5"), 10, 5, 12);
    expect_load_fails(tp("bad.h5"), "/train/y: label 12 at row 5 is outside [0, 10)");
    write_small_task(tp("neg.h5"), 10, 0, -1);
    expect_load_fails(tp("neg.h5"), "label -1 at row 0");
    /* finite values that overflow once scaled, and a num_classes beyond any real task */
    float x[30];
    int32_t y[10];
    for (int i = 0; i < 30; i++)
        x[i] = (float)i;
    for (int i = 0; i < 10; i++)
        y[i] = i % 2;
    struct ldn__task_out t = {
        "small", "test", "a,b", 2, 3, 1e38, {10, x, 1, y, NULL}, {10, x, 1, y, NULL}};
    CU_ASSERT_EQUAL(ldn__data_write_task(tp("big.h5"), &t, err, sizeof err), 0);
    struct ldn_dataset *b = ldn_dataset_load(tp("big.h5"), "train", 0, 1, err, sizeof err);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "/train/x: non-finite value at row 1 column 1 (after x_scale"));
    ldn_dataset_destroy(&b);
    t.x_scale = 0.5;
    t.num_classes = 2000000000;
    CU_ASSERT_EQUAL(ldn__data_write_task(tp("classes.h5"), &t, err, sizeof err), 0);
    expect_load_fails(tp("classes.h5"), "num_classes must be in [2, 1000000], got 2000000000");
    tmp_cleanup();
}

/* data.max_memory_mb: splits count against the bound while they are loaded; the load that
 * would pass it fails naming the file, the split, the bytes and the key, and allocates nothing;
 * a file whose chunked datasets claim 2^36 rows (a few KiB on disk) is refused by the automatic
 * bound before anything is allocated. */
static void test_load_memory_bound(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    write_small_task(tp("s.h5"), 2, -1, 0); /* 10 rows x 3 features: 160 bytes a split */
    ldn_data_set_max_memory(400);
    CU_ASSERT_EQUAL(ldn_data_max_memory(), 400);
    struct ldn_dataset *a = ldn_dataset_load(tp("s.h5"), "train", 0, 1, err, sizeof err);
    struct ldn_dataset *b = ldn_dataset_load(tp("s.h5"), "test", 0, 1, err, sizeof err);
    CU_ASSERT_FATAL(a && b);
    CU_ASSERT_EQUAL(ldn_data_memory_held(), 320);
    struct ldn_dataset *c = ldn_dataset_load(tp("s.h5"), "train", 0, 1, err, sizeof err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, tp("s.h5")));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/train: shard 0 of 1 needs 0.0 MiB (10 rows x 3 features"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "above data.max_memory_mb"));
    CU_ASSERT_EQUAL(ldn_data_memory_held(), 320);
    ldn_dataset_destroy(&a);
    CU_ASSERT_EQUAL(ldn_data_memory_held(), 160);
    c = ldn_dataset_load(tp("s.h5"), "train", 0, 1, err, sizeof err); /* fits again */
    CU_ASSERT_PTR_NOT_NULL(c);
    ldn_dataset_destroy(&b);
    ldn_dataset_destroy(&c);
    CU_ASSERT_EQUAL(ldn_data_memory_held(), 0);

    ldn_data_set_max_memory(0); /* automatic: half the physical memory */
    CU_ASSERT(ldn_data_max_memory() > (1 << 20));
    write_small_task(tp("bomb.h5"), 2, -1, 0);
    hid_t f = H5Fopen(tp("bomb.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    H5Ldelete(f, "train/x", H5P_DEFAULT);
    H5Ldelete(f, "train/y", H5P_DEFAULT);
    hsize_t dx[2] = {(hsize_t)1 << 36, 3}, cx[2] = {1024, 3}, dy = (hsize_t)1 << 36, cy = 1024;
    hid_t sx = H5Screate_simple(2, dx, NULL), sy = H5Screate_simple(1, &dy, NULL);
    hid_t px = H5Pcreate(H5P_DATASET_CREATE), py = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(px, 2, cx);
    H5Pset_chunk(py, 1, &cy);
    hid_t d = H5Dcreate2(f, "train/x", H5T_IEEE_F32LE, sx, H5P_DEFAULT, px, H5P_DEFAULT);
    CU_ASSERT(d >= 0);
    H5Dclose(d);
    d = H5Dcreate2(f, "train/y", H5T_STD_I32LE, sy, H5P_DEFAULT, py, H5P_DEFAULT);
    CU_ASSERT(d >= 0);
    H5Dclose(d);
    H5Pclose(px);
    H5Pclose(py);
    H5Sclose(sx);
    H5Sclose(sy);
    H5Fclose(f);
    struct ldn_dataset *bomb = ldn_dataset_load(tp("bomb.h5"), "train", 0, 1, err, sizeof err);
    CU_ASSERT_PTR_NULL(bomb);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "shard 0 of 1 needs 1048576.0 MiB (68719476736 rows x 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "above data.max_memory_mb"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(automatic: half of this host's"));
    CU_ASSERT_EQUAL(ldn_data_memory_held(), 0);
    tmp_cleanup();
}

static void test_load_bad_files(void)
{
    tmp_setup();
    /* Missing file, a directory, random bytes. */
    expect_load_fails(tp("nope.h5"), "cannot open: No such file or directory");
    expect_load_fails(g_tmp, "cannot open");
    unsigned char junk[4096];
    uint32_t s = 99;
    for (size_t i = 0; i < sizeof junk; i++) {
        s = s * 1664525u + 1013904223u;
        junk[i] = (unsigned char)(s >> 24);
    }
    write_all(tp("junk.h5"), junk, sizeof junk);
    expect_load_fails(tp("junk.h5"), "cannot open as HDF5");
    write_all(tp("empty.h5"), junk, 0);
    expect_load_fails(tp("empty.h5"), "cannot open as HDF5");

    /* An HDF5 file that is not a ladon task file. */
    hid_t f = H5Fcreate(tp("other.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    hsize_t dim = 4;
    hid_t sp = H5Screate_simple(1, &dim, NULL);
    hid_t d = H5Dcreate2(f, "data", H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    expect_load_fails(tp("other.h5"), "not a ladon task file (format attribute missing)");

    /* Wrong format value / version / shapes: edit a valid file. */
    write_small_task(tp("v2.h5"), 2, -1, 0);
    f = H5Fopen(tp("v2.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    int two = 2;
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &two);
    H5Aclose(a);
    H5Fclose(f);
    expect_load_fails(tp("v2.h5"), "format_version 2 is not supported");

    write_small_task(tp("feat.h5"), 2, -1, 0);
    f = H5Fopen(tp("feat.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    int four = 4;
    a = H5Aopen(f, "features", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &four);
    H5Aclose(a);
    H5Fclose(f);
    expect_load_fails(tp("feat.h5"), "/train/x: has 3 columns but the features attribute is 4");

    write_small_task(tp("noy.h5"), 2, -1, 0);
    f = H5Fopen(tp("noy.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(f, "train/y", H5P_DEFAULT);
    H5Fclose(f);
    expect_load_fails(tp("noy.h5"), "/train/y: dataset missing");

#if !H5_VERSION_GE(1, 12, 0) /* object addresses are tokens from 1.12 on */
    /* A damaged group (the version byte of /train's object header): not "missing" but a
     * lookup that fails, with HDF5's reason. */
    write_small_task(tp("hdr.h5"), 2, -1, 0);
    f = H5Fopen(tp("hdr.h5"), H5F_ACC_RDONLY, H5P_DEFAULT);
    H5O_info_t oi;
    CU_ASSERT_FATAL(H5Oget_info_by_name(f, "train", &oi, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    FILE *fp = fopen(tp("hdr.h5"), "r+b");
    CU_ASSERT_FATAL(fp != NULL);
    int byte = (fseek(fp, (long)oi.addr, SEEK_SET), fgetc(fp));
    fseek(fp, (long)oi.addr, SEEK_SET);
    fputc(byte ^ 0x40, fp);
    fclose(fp);
    expect_load_fails(tp("hdr.h5"), "/train/x: cannot look it up (damaged file?)");
#endif

    write_small_task(tp("cls.h5"), 2, -1, 0);
    f = H5Fopen(tp("cls.h5"), H5F_ACC_RDWR, H5P_DEFAULT);
    int one = 1;
    a = H5Aopen(f, "num_classes", H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT, &one);
    H5Aclose(a);
    H5Fclose(f);
    expect_load_fails(tp("cls.h5"), "num_classes must be in [2, 1000000], got 1");
    tmp_cleanup();
}

/* A file written the way h5py would: variable-length UTF-8 strings, int64 and float32
 * attributes, float32 x. The loader accepts it. */
static void vlen_attr(hid_t f, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, &value);
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

static void num_attr(hid_t f, const char *name, hid_t filetype, hid_t memtype, const void *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, memtype, v);
    H5Aclose(a);
    H5Sclose(sp);
}

static void test_load_foreign_writer(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    hid_t f = H5Fcreate(tp("h5py.h5"), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    vlen_attr(f, "format", "ladon-task");
    vlen_attr(f, "task", "h\xc3\xa9ron"); /* UTF-8 */
    const int64_t version = 1, classes = 3, features = 2;
    const float scale = 2.0f;
    num_attr(f, "format_version", H5T_STD_I64LE, H5T_NATIVE_INT64, &version);
    num_attr(f, "num_classes", H5T_STD_I64LE, H5T_NATIVE_INT64, &classes);
    num_attr(f, "features", H5T_STD_I64LE, H5T_NATIVE_INT64, &features);
    num_attr(f, "x_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &scale);
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const int32_t y[3] = {2, 0, 1};
    for (int s = 0; s < 2; s++) {
        hid_t g = H5Gcreate2(f, s ? "test" : "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        hsize_t dx[2] = {3, 2}, dy = 3;
        hid_t sx = H5Screate_simple(2, dx, NULL), sy = H5Screate_simple(1, &dy, NULL);
        hid_t d = H5Dcreate2(g, "x", H5T_IEEE_F32LE, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
        H5Dclose(d);
        d = H5Dcreate2(g, "y", H5T_STD_I32LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y);
        H5Dclose(d);
        H5Sclose(sx);
        H5Sclose(sy);
        H5Gclose(g);
    }
    H5Fclose(f);
    struct ldn_dataset *d = ldn_dataset_load(tp("h5py.h5"), "test", 0, 1, err, sizeof err);
    if (!d)
        fprintf(stderr, "\n  %s\n", err);
    CU_ASSERT_FATAL(d != NULL);
    CU_ASSERT_STRING_EQUAL(d->task, "h\xc3\xa9ron");
    CU_ASSERT_EQUAL(d->num_classes, 3);
    CU_ASSERT_EQUAL(d->n, 3);
    CU_ASSERT_EQUAL(d->x[5], 12.0f);
    CU_ASSERT_EQUAL(d->y[0], 2);
    ldn_dataset_destroy(&d);
    tmp_cleanup();
}

/* ------------------------------------------------------------------ synthetic tasks */

static void load_both(const char *path, struct ldn_dataset **tr, struct ldn_dataset **te)
{
    char err[LDN_ERRLEN] = "";
    *tr = ldn_dataset_load(path, "train", 0, 1, err, sizeof err);
    *te = ldn_dataset_load(path, "test", 0, 1, err, sizeof err);
    if (!*tr || !*te)
        fprintf(stderr, "\n  %s\n", err);
}

static void test_synth_build_and_balance(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct ldn_synth_opts o;
    ldn_synth_opts_default(&o);
    CU_ASSERT_EQUAL(o.tasks, 8);
    CU_ASSERT_EQUAL(o.features, 64);
    CU_ASSERT_EQUAL(o.rank, 8);
    CU_ASSERT_EQUAL(o.classes, 4);
    CU_ASSERT_EQUAL(o.n_train, 2000);
    CU_ASSERT_EQUAL(o.n_test, 1000);
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("syn"), &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(count_entries(tp("syn")), 8);
    for (int t = 0; t < o.tasks; t++) {
        char rel[64], want[16];
        snprintf(rel, sizeof rel, "syn/task%03d.h5", t);
        snprintf(want, sizeof want, "task%03d", t);
        struct ldn_dataset *tr, *te;
        load_both(tp(rel), &tr, &te);
        CU_ASSERT_FATAL(tr && te);
        CU_ASSERT_STRING_EQUAL(tr->task, want);
        CU_ASSERT_EQUAL(tr->n, 2000);
        CU_ASSERT_EQUAL(te->n, 1000);
        CU_ASSERT_EQUAL(tr->features, 64);
        CU_ASSERT_EQUAL(tr->num_classes, 4);
        int counts[4] = {0};
        double mean = 0, var = 0;
        for (int64_t i = 0; i < tr->n; i++)
            counts[tr->y[i]]++;
        for (int64_t i = 0; i < tr->n * 64; i++) {
            mean += tr->x[i];
            var += (double)tr->x[i] * tr->x[i];
        }
        mean /= (double)(tr->n * 64);
        var = var / (double)(tr->n * 64) - mean * mean;
        CU_ASSERT(fabs(mean) < 0.02 && fabs(var - 1.0) < 0.05); /* x ~ N(0, 1) */
        for (int c = 0; c < 4; c++) {
            if (counts[c] < 100)
                fprintf(stderr, "\n  task %d class %d: %d of 2000\n", t, c, counts[c]);
            CU_ASSERT(counts[c] >= 100); /* >= 5% */
        }
        ldn_dataset_destroy(&tr);
        ldn_dataset_destroy(&te);
    }
    tmp_cleanup();
}

static void test_synth_deterministic_and_relatedness(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct ldn_synth_opts o;
    ldn_synth_opts_default(&o);
    o.tasks = 3;
    o.n_train = 300;
    o.n_test = 100;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("a"), &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("b"), &o, err, sizeof err), 0);
    CU_ASSERT_EQUAL(count_entries(tp("a")), 3);
    for (int t = 0; t < 3; t++) {
        char ra[32], rb[32];
        snprintf(ra, sizeof ra, "a/task%03d.h5", t);
        snprintf(rb, sizeof rb, "b/task%03d.h5", t);
        CU_ASSERT(same_bytes(tp(ra), tp(rb)));
    }
    /* Task k does not depend on the task count. */
    o.tasks = 2;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("c"), &o, err, sizeof err), 0);
    CU_ASSERT(same_bytes(tp("a/task001.h5"), tp("c/task001.h5")));
    /* Another seed changes the data. */
    o.seed = 2;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("d"), &o, err, sizeof err), 0);
    CU_ASSERT(!same_bytes(tp("a/task001.h5"), tp("d/task001.h5")));

    /* relatedness 1 vs 0: same inputs (same streams), different labels. */
    o.seed = 1;
    o.relatedness = 1.0;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("r1"), &o, err, sizeof err), 0);
    o.relatedness = 0.0;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("r0"), &o, err, sizeof err), 0);
    struct ldn_dataset *a, *ae, *b, *be;
    load_both(tp("r1/task001.h5"), &a, &ae);
    load_both(tp("r0/task001.h5"), &b, &be);
    CU_ASSERT_FATAL(a && ae && b && be);
    int diff = 0;
    for (int64_t i = 0; i < a->n; i++)
        diff += a->y[i] != b->y[i];
    CU_ASSERT(diff > a->n / 10);
    CU_ASSERT(memcmp(a->x, b->x, (size_t)a->n * 64 * sizeof(float)) == 0);
    ldn_dataset_destroy(&a);
    ldn_dataset_destroy(&ae);
    ldn_dataset_destroy(&b);
    ldn_dataset_destroy(&be);
    tmp_cleanup();
}

static void test_synth_invalid_opts(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct ldn_synth_opts o, d;
    ldn_synth_opts_default(&d);
#define CASE(field, value, want)                                                                   \
    do {                                                                                           \
        o = d;                                                                                     \
        o.field = value;                                                                           \
        err[0] = '\0';                                                                             \
        CU_ASSERT_EQUAL(ldn_data_build_synth(tp("inv"), &o, err, sizeof err), LDN_ERR_ARG);        \
        if (!strstr(err, want) || getenv("LDN_TEST_SHOW_ERRORS"))                                  \
            fprintf(stderr, "\n  error: %s\n", err);                                               \
        CU_ASSERT_PTR_NOT_NULL(strstr(err, want));                                                 \
    } while (0)
    CASE(tasks, 0, "tasks must be in 1..");
    CASE(features, 0, "features must be in 1..");
    CASE(rank, 0, "rank must be in 1..features (64), got 0");
    CASE(rank, 65, "rank must be in 1..features (64), got 65");
    CASE(classes, 1, "classes must be in 2..");
    CASE(relatedness, 1.5, "relatedness must be in [0, 1], got 1.5");
    CASE(relatedness, -0.1, "relatedness must be in [0, 1]");
    CASE(relatedness, NAN, "relatedness must be in [0, 1]");
    CASE(n_train, 0, "n_train must be in 1..");
    CASE(n_test, -5, "n_test must be in 1..");
    CASE(noise, -1, "noise must be");
#undef CASE
    CU_ASSERT(!exists(tp("inv"))); /* nothing created */
    tmp_cleanup();
}

/* Share of b's test rows whose label (flipped when flip, 2 classes) is what a 1-nearest-
 * neighbour rule over a's training rows predicts: high when a and b label by the same
 * function, about 1/2 for unrelated ones. */
static double nn_agreement(const struct ldn_dataset *a, const struct ldn_dataset *b, int flip)
{
    const int f = a->features;
    int64_t agree = 0;
    for (int64_t i = 0; i < b->n; i++) {
        double best = INFINITY;
        int32_t pred = 0;
        for (int64_t j = 0; j < a->n; j++) {
            double d = 0;
            for (int k = 0; k < f; k++) {
                double e = (double)b->x[i * f + k] - a->x[j * f + k];
                d += e * e;
            }
            if (d < best)
                best = d, pred = a->y[j];
        }
        agree += pred == (flip ? 1 - b->y[i] : b->y[i]);
    }
    return (double)agree / (double)b->n;
}

/* --clusters and --conflict: with relatedness 1 and no noise, tasks of a cluster label by the
 * same function, tasks of different clusters by unrelated ones, and the conflicting pair's
 * second task by the first's function flipped (2 classes); the options are checked. */
static void test_synth_clusters_and_conflict(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct ldn_synth_opts o;
    ldn_synth_opts_default(&o);
    o.tasks = 5; /* task000-001 cluster 0, task002 cluster 1, task003/task004 the pair */
    o.clusters = 2;
    o.conflict = 1;
    o.features = 4;
    o.rank = 2;
    o.classes = 2;
    o.relatedness = 1.0;
    o.noise = 0;
    o.n_train = 2000;
    o.n_test = 300;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("cl"), &o, err, sizeof err), 0);
    struct ldn_dataset *tr[5], *te[5];
    for (int t = 0; t < 5; t++) {
        char rel[32];
        snprintf(rel, sizeof rel, "cl/task%03d.h5", t);
        load_both(tp(rel), &tr[t], &te[t]);
        CU_ASSERT_FATAL(tr[t] && te[t]);
    }
    double same = nn_agreement(tr[0], te[1], 0), other = nn_agreement(tr[0], te[2], 0);
    double pair = nn_agreement(tr[3], te[4], 1), unflipped = nn_agreement(tr[3], te[4], 0);
    if (!(same > 0.85 && other < 0.75 && other > 0.25 && pair > 0.85 && unflipped < 0.15) ||
        getenv("LDN_TEST_SHOW_ERRORS"))
        fprintf(stderr, "\n  1-NN agreement: cluster %.3f, other cluster %.3f, pair %.3f/%.3f\n",
                same, other, pair, unflipped);
    CU_ASSERT(same > 0.85);                     /* one function within a cluster */
    CU_ASSERT(other < 0.75 && other > 0.25);    /* unrelated across clusters */
    CU_ASSERT(pair > 0.85 && unflipped < 0.15); /* the pair: the opposite labels */
    for (int t = 0; t < 5; t++) {
        ldn_dataset_destroy(&tr[t]);
        ldn_dataset_destroy(&te[t]);
    }
    /* without clusters nor a pair, the files are the ones of before (stream 0, no new draw) */
    struct ldn_synth_opts d;
    ldn_synth_opts_default(&d);
    d.tasks = 2;
    d.n_train = 50;
    d.n_test = 20;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("p0"), &d, err, sizeof err), 0);
    d.tasks = 3; /* a pair at task001/task002 leaves task000 as it was */
    d.conflict = 1;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("p1"), &d, err, sizeof err), 0);
    CU_ASSERT(same_bytes(tp("p0/task000.h5"), tp("p1/task000.h5")));
    CU_ASSERT(!same_bytes(tp("p0/task001.h5"), tp("p1/task001.h5"))); /* its description */
    /* bad combinations */
    d.tasks = 1;
    CU_ASSERT_EQUAL(ldn_data_build_synth(tp("bad"), &d, err, sizeof err), LDN_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "a conflicting pair needs at least 2 tasks, got 1"));
    d.tasks = 4;
    d.clusters = 3;
    CU_ASSERT_EQUAL(ldn_data_build_synth(tp("bad"), &d, err, sizeof err), LDN_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "3 clusters need at least 5 tasks (with the conflicting pair), got 4"));
    d.clusters = -1;
    CU_ASSERT_EQUAL(ldn_data_build_synth(tp("bad"), &d, err, sizeof err), LDN_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "clusters must be in 0.."));
    CU_ASSERT(!exists(tp("bad")));
    tmp_cleanup();
}

static void test_synth_many_tasks(void)
{
    char err[LDN_ERRLEN] = "";
    tmp_setup();
    struct ldn_synth_opts o;
    ldn_synth_opts_default(&o);
    o.tasks = 64;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("m"), &o, err, sizeof err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "(%.2f s) ", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
    CU_ASSERT_EQUAL(count_entries(tp("m")), 64);
    int64_t ntr = 0, nte = 0;
    CU_ASSERT_EQUAL(
        ldn_dataset_probe(tp("m/task063.h5"), NULL, 0, NULL, NULL, &ntr, &nte, err, sizeof err), 0);
    CU_ASSERT_EQUAL(ntr, 2000);
    CU_ASSERT_EQUAL(nte, 1000);

    /* 1001 tiny tasks: names get a fourth digit. */
    o.tasks = 1001;
    o.features = 2;
    o.rank = 1;
    o.classes = 2;
    o.n_train = 2;
    o.n_test = 1;
    CU_ASSERT_EQUAL_FATAL(ldn_data_build_synth(tp("k"), &o, err, sizeof err), 0);
    CU_ASSERT(exists(tp("k/task0000.h5")));
    CU_ASSERT(exists(tp("k/task1000.h5")));
    CU_ASSERT_EQUAL(count_entries(tp("k")), 1001);
    tmp_cleanup();
}

static const struct ldn_cu_test TESTS[] = {
    {"synth clusters and conflict", test_synth_clusters_and_conflict},
    {"fmnist_build_small", test_fmnist_build_small},
    {"fmnist_truncated_images", test_fmnist_truncated_images},
    {"fmnist_truncated_gzip", test_fmnist_truncated_gzip},
    {"fmnist_trailing_data", test_fmnist_trailing_data},
    {"fmnist_bad_magic", test_fmnist_bad_magic},
    {"fmnist_label_count_mismatch", test_fmnist_label_count_mismatch},
    {"fmnist_label_value", test_fmnist_label_value},
    {"fmnist_corrupt_gzip", test_fmnist_corrupt_gzip},
    {"fmnist_missing_source", test_fmnist_missing_source},
    {"fmnist_rename_failure_rolls_back", test_fmnist_rename_failure_rolls_back},
    {"fmnist_real", test_fmnist_real},
    {"load_shards_cover_split", test_load_shards_cover_split},
    {"load_float_and_bad_label", test_load_float_and_bad_label},
    {"load_memory_bound", test_load_memory_bound},
    {"load_bad_files", test_load_bad_files},
    {"load_foreign_writer", test_load_foreign_writer},
    {"synth_build_and_balance", test_synth_build_and_balance},
    {"synth_deterministic_and_relatedness", test_synth_deterministic_and_relatedness},
    {"synth_invalid_opts", test_synth_invalid_opts},
    {"synth_many_tasks", test_synth_many_tasks},
    {NULL, NULL},
};

LDN_CU_MAIN("data", TESTS)
