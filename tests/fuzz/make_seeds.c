/* Writes the seed corpora of the fuzz targets (docs/fuzzing.md) into OUT/<target>/: encoded
 * wire headers of every op, codec payloads of every kind and quantisation, IDX files (plain
 * and gzip), a synthetic task file and a checkpoint of a small model. Config seeds are the
 * repository's configs (tests/fuzz/run.sh copies them). Usage: make_seeds OUT_DIR */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "ckpt.h"
#include "codec.h"
#include "config.h"
#include "data.h"
#include "idx.h"
#include "model.h"
#include "rng.h"
#include "status.h"
#include "wire.h"

static const char *g_out;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", g_out, target);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", g_out, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "make_seeds: cannot write %s\n", path);
        exit(1);
    }
}

static void copy_file(const char *target, const char *name, const char *from)
{
    FILE *f = fopen(from, "rb");
    if (!f) {
        fprintf(stderr, "make_seeds: cannot read %s\n", from);
        exit(1);
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    put(target, name, buf, n);
}

static void wire_seeds(void)
{
    char buf[LDN_WIRE_HDR_MAX], name[32];
    for (int op = 1; op < LDN_OP_COUNT_; op++) {
        struct ldn_wire_msg m;
        ldn_wire_msg_init(&m, (enum ldn_wire_op)op, 3);
        m.nframes = 1;
        m.lens[0] = 64;
        if (op == LDN_OP_PUSH) {
            m.push.step = 5;
            m.push.hi = 16;
            m.push.codec = 1;
            m.push.ncdesc = LDN_CODEC_DESC_WORDS;
            m.push.cdesc[0] = 0x0201;
        }
        if (op == LDN_OP_PLAN) {
            m.plan.n_trunk = 2;
            m.plan.trunk[0] = 32;
            m.plan.trunk[1] = 16;
        }
        int n = ldn_wire_encode(&m, buf, sizeof buf);
        if (n > 0) {
            snprintf(name, sizeof name, "op-%02d", op);
            put("wire", name, buf, (size_t)n);
        }
    }
}

static void codec_seeds(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(1);
    static float grad[300], residual[300];
    static uint8_t out[40 + 8192];
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 1);
    for (int i = 0; i < 300; i++)
        grad[i] = (float)(ldn_rng_uniform(&r) - 0.5);
    const int kinds[] = {LDN_CODEC_DENSE, LDN_CODEC_TOPK, LDN_CODEC_RANDOMK, LDN_CODEC_THRESHOLD};
    for (int k = 0; k < 4; k++)
        for (int q = LDN_QUANT_FP32; q <= LDN_QUANT_QSGD; q++) {
            struct ldn_codec_desc d = {.kind = (enum ldn_codec_kind)kinds[k],
                                       .quant = (enum ldn_codec_quant)q,
                                       .ratio_ppm = kinds[k] == LDN_CODEC_DENSE ? 0 : 100000,
                                       .chunk = 64,
                                       .levels = 4,
                                       .seed = 42};
            char err[LDN_ERRLEN];
            if (ldn_codec_desc_check(&d, err, sizeof err) != 0)
                continue;
            uint64_t w[LDN_CODEC_DESC_WORDS], words[5];
            ldn_codec_desc_pack(&d, w);
            words[0] = w[0];
            words[1] = w[1];
            words[2] = w[2];
            words[3] = 300 - 1; /* n */
            words[4] = 9;       /* step */
            for (int i = 0; i < 5; i++)
                for (int b = 0; b < 8; b++)
                    out[8 * i + b] = (uint8_t)(words[i] >> (8 * b));
            size_t len = 0;
            memset(residual, 0, sizeof residual);
            if (ldn_codec_compress(ctx, &d, 9, grad, residual, 300, out + 40, sizeof out - 40, &len,
                                   NULL, NULL, err, sizeof err) != 0)
                continue;
            char name[32];
            snprintf(name, sizeof name, "k%d-q%d", kinds[k], q);
            put("codec", name, out, 40 + len);
        }
    ldn_codec_ctx_destroy(&ctx);
}

/* An IDX file of unsigned bytes: magic 0 0 8 ndims, big-endian dims, data; the first byte
 * is the fuzz target's choice of dimensions (ndims - 1). */
static void idx_seeds(const char *tmpdir)
{
    uint8_t f[1 + 4 + 12 + 18];
    size_t n = 0;
    f[n++] = 2; /* 3 dimensions */
    f[n++] = 0, f[n++] = 0, f[n++] = LDN_IDX_UBYTE, f[n++] = 3;
    const int dims[3] = {2, 3, 3};
    for (int i = 0; i < 3; i++)
        f[n++] = 0, f[n++] = 0, f[n++] = 0, f[n++] = (uint8_t)dims[i];
    for (int i = 0; i < 18; i++)
        f[n++] = (uint8_t)(i * 13);
    put("idx", "images-plain", f, n);
    uint8_t l[1 + 8 + 5] = {0, 0, 0, LDN_IDX_UBYTE, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5};
    put("idx", "labels-plain", l, sizeof l);
    char gz[1024];
    snprintf(gz, sizeof gz, "%s/l.gz", tmpdir);
    gzFile g = gzopen(gz, "wb");
    gzwrite(g, l + 1, sizeof l - 1);
    gzclose(g);
    FILE *in = fopen(gz, "rb");
    uint8_t buf[256];
    buf[0] = 0;
    size_t m = fread(buf + 1, 1, sizeof buf - 1, in);
    fclose(in);
    put("idx", "labels-gzip", buf, m + 1);
}

static void task_seeds(const char *tmpdir)
{
    struct ldn_synth_opts o;
    ldn_synth_opts_default(&o);
    o.tasks = 1;
    o.features = 6;
    o.rank = 2;
    o.classes = 3;
    o.n_train = 12;
    o.n_test = 5;
    char dir[1024], err[LDN_ERRLEN], path[1100];
    snprintf(dir, sizeof dir, "%s/task", tmpdir);
    if (ldn_data_build_synth(dir, &o, err, sizeof err) != 0) {
        fprintf(stderr, "make_seeds: %s\n", err);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/task000.h5", dir);
    copy_file("taskfile", "synth-task000.h5", path);
}

static void ckpt_seeds(const char *tmpdir)
{
    static const char yaml[] = "run: {dir: /nonexistent}\n"
                               "data: {dir: /nonexistent}\n"
                               "model: {trunk: [6]}\n"
                               "tasks: {a: {}, b: {head: [3]}}\n"
                               "train: {batch_size: 4, optimizer: adam}\n";
    char err[LDN_ERRLEN], dir[1024], path[1200];
    struct ldn_config *cfg =
        ldn_config_parse(yaml, strlen(yaml), "seed.yaml", 0, NULL, err, sizeof err);
    const int classes[2] = {3, 2};
    struct ldn_model *m = cfg ? ldn_model_new(cfg, 5, classes, 4, err, sizeof err) : NULL;
    if (!m) {
        fprintf(stderr, "make_seeds: %s\n", err);
        exit(1);
    }
    struct ldn_ckpt_items it = {0};
    int64_t t = 3, updates[1] = {3};
    const char *names[2] = {"/heads/a", "/heads/b"};
    int rc = ldn_ckpt_add_net(&it, m->trunk, "/trunk", m->trunk->params, 0, m->trunk->n_params);
    for (int h = 0; h < 2; h++)
        rc |= ldn_ckpt_add_net(&it, m->heads[h], names[h], m->heads[h]->params, 0,
                               m->heads[h]->n_params);
    rc |= ldn_ckpt_add(&it, "/optimizer/t/heads/a", LDN_CKPT_I64, 1, 1, 1, &t);
    rc |= ldn_ckpt_add(&it, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, 1, 1, updates);
    struct ldn_ckpt_meta meta = {.step = 3,
                                 .steps_per_epoch = 3,
                                 .total_steps = 9,
                                 .n_servers = 1,
                                 .n_workers = 1,
                                 .features = 5,
                                 .seed = 1,
                                 .config = cfg->resolved_yaml,
                                 .metrics = ""};
    snprintf(dir, sizeof dir, "%s/ckpt", tmpdir);
    if (rc || ldn_ckpt_write(MPI_COMM_NULL, dir, &meta, &it, 1, path, sizeof path, err,
                             sizeof err) != 0) {
        fprintf(stderr, "make_seeds: checkpoint: %s\n", rc ? "items" : err);
        exit(1);
    }
    copy_file("ckpt", "small-model.h5", path);
    ldn_ckpt_items_free(&it);
    ldn_model_destroy(&m);
    ldn_config_destroy(&cfg);
}

/* The structured HDF5 targets read their input as choices (fuzz_h5.h): runs of one byte value
 * pick plausible values throughout (2, 6, 10: a well-formed file; 3, 5: other types and
 * shapes), a counting sequence mixes them. */
static void choice_seeds(const char *target)
{
    static const unsigned vals[] = {2, 6, 10, 3, 5, 9};
    uint8_t buf[600];
    char name[32];
    for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
        memset(buf, (int)vals[v], sizeof buf);
        snprintf(name, sizeof name, "choices-%u", vals[v]);
        put(target, name, buf, sizeof buf);
    }
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 7 + 2);
    put(target, "choices-mixed", buf, sizeof buf);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds OUT_DIR\n");
        return 2;
    }
    g_out = argv[1];
    mkdir(g_out, 0755);
    char tmpdir[] = "/tmp/ldn-seeds-XXXXXX";
    if (!mkdtemp(tmpdir))
        return 1;
    wire_seeds();
    codec_seeds();
    idx_seeds(tmpdir);
    task_seeds(tmpdir);
    ckpt_seeds(tmpdir);
    choice_seeds("taskfile");
    choice_seeds("ckpt");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : 1;
}
