/* The export file (common/ckpt/exportfile.h) written and read back through ldn_ckmodel_load:
 * every number format, a layer with an all-zero row (scale 0) and a layer with no weight
 * left at all, the weights within the documented bounds, the forward pass of the compressed
 * model equal to the dense model holding the same weights, and refusals of damaged files. */
#define _POSIX_C_SOURCE 200809L
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckmodel.h"
#include "cu_main.h"
#include "exportfile.h"
#include "model.h"
#include "qsparse.h"
#include "rng.h"
#include "status.h"

#define FEATURES 20
static const char YAML[] = "run:\n  seed: 4\ndata:\n  dir: /nonexistent\nmodel:\n"
                           "  trunk: [30, 12]\n  activation: relu\ntasks:\n  a: {}\n"
                           "  b:\n    head: [6]\n";
static const int CLASSES[2] = {3, 5};

static char dir[64];

static struct ldn_model *make(struct ldn_config **cfg)
{
    char err[LDN_ERRLEN];
    *cfg = ldn_config_parse(YAML, strlen(YAML), "t.yaml", 0, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(*cfg);
    struct ldn_model *m = ldn_model_new(*cfg, FEATURES, CLASSES, 64, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct ldn_layer *l0 = &m->trunk->layers[0], *l1 = &m->trunk->layers[1];
    struct ldn_rng r;
    ldn_rng_init(&r, 1, 2);
    for (int j = 0; j < l0->out_dim; j++) /* trunk layer 0: 85% zeros, row 2 all zero */
        for (int i = 0; i < l0->in_dim; i++) {
            float *w = &l0->tensors[0].data[j * l0->row_len + i];
            *w = j == 2 || ldn_rng_uniform(&r) < 0.85 ? 0.0f : *w;
        }
    for (int j = 0; j < l1->out_dim; j++) /* trunk layer 1: no weight left, biases kept */
        for (int i = 0; i <= l1->in_dim; i++)
            l1->tensors[0].data[j * l1->row_len + i] = i < l1->in_dim ? 0.0f : 0.25f * (float)j;
    return m;
}

static void export_to(const char *path, int quant, struct ldn_model *m, struct ldn_config *cfg)
{
    struct ldn_export_meta meta = {quant, 0.0, 7, 1.5, "src.h5"};
    struct ldn_export_report rep;
    char err[LDN_ERRLEN];
    int rc = ldn_export_write(path, m, cfg, &meta, &rep, err, sizeof err);
    if (rc)
        fprintf(stderr, "\n  export: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(rep.n, 5);
    CU_ASSERT(rep.file_bytes > 0);
    CU_ASSERT_EQUAL(rep.dense_f32_bytes,
                    4 * (m->trunk->n_params + m->heads[0]->n_params + m->heads[1]->n_params));
    CU_ASSERT_EQUAL(rep.layers[1].stored, 0);
    CU_ASSERT_NOT_EQUAL(rep.layers[1].index, LDN_QS_DENSE);
    ldn_export_report_free(&rep);
}

static void test_round_trip(void)
{
    struct ldn_config *cfg;
    struct ldn_model *m = make(&cfg);
    float *x = malloc(sizeof *x * 64 * FEATURES);
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 3);
    for (int i = 0; i < 64 * FEATURES; i++)
        x[i] = (float)ldn_rng_normal(&r);
    for (int quant = LDN_EXPORT_NONE; quant <= LDN_EXPORT_INT8; quant++) {
        char path[128], err[LDN_ERRLEN];
        snprintf(path, sizeof path, "%s/x%d.h5", dir, quant);
        export_to(path, quant, m, cfg);
        CU_ASSERT(ldn_export_is(path));
        struct ldn_ckmodel L;
        int rc = ldn_ckmodel_load(path, 64, &L, err, sizeof err);
        if (rc)
            fprintf(stderr, "\n  load: %s\n", err);
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(L.x);
        CU_ASSERT_EQUAL(L.ck.step, 7);
        CU_ASSERT_EQUAL(L.ck.features, FEATURES);
        CU_ASSERT_EQUAL(L.classes[1], 5);
        CU_ASSERT_EQUAL(L.x->quant, quant);
        CU_ASSERT(L.x->qm->trunk.layers[0].w.sparse); /* 15% dense: the CSR kernel */
        CU_ASSERT_EQUAL(L.x->qm->trunk.layers[1].w.nnz, 0);
        /* the weights read back, against the originals, within the format's bound */
        const struct ldn_nn *a = m->trunk, *b = L.model->trunk;
        double worst = 0;
        for (int k = 0; k < a->n_layers; k++) {
            const struct ldn_layer *la = &a->layers[k], *lb = &b->layers[k];
            for (int j = 0; j < la->out_dim; j++) {
                float amax = 0;
                for (int i = 0; i < la->in_dim; i++)
                    amax = fmaxf(amax, fabsf(la->tensors[0].data[j * la->row_len + i]));
                for (int i = 0; i <= la->in_dim; i++) {
                    float w0 = la->tensors[0].data[j * la->row_len + i];
                    float w1 = lb->tensors[0].data[j * lb->row_len + i];
                    float bound = i == la->in_dim            ? 0.0f /* bias: exact */
                                  : quant == LDN_EXPORT_INT8 ? amax / 127 / 2 * 1.0001f
                                  : quant == LDN_EXPORT_FP16 ? fabsf(w0) / 2048 + 6e-8f
                                                             : 0.0f;
                    CU_ASSERT(fabsf(w1 - w0) <= bound);
                    if (w0 == 0.0f)
                        CU_ASSERT_EQUAL(w1, 0.0f);
                }
            }
        }
        /* the compressed model's logits equal the dense model's with the same weights */
        for (int t = 0; t < 2; t++) {
            const float *zq = ldn_ckmodel_forward(&L, t, x, 64);
            float *copy = malloc(sizeof *copy * 64 * (size_t)CLASSES[t]);
            memcpy(copy, zq, sizeof *copy * 64 * (size_t)CLASSES[t]);
            const float *zd = ldn_model_forward(L.model, t, x, 64);
            for (int i = 0; i < 64 * CLASSES[t]; i++)
                worst = fmax(worst, fabs(copy[i] - zd[i]));
            free(copy);
        }
        CU_ASSERT(worst < 1e-4);
        ldn_ckmodel_free(&L);
    }
    free(x);
    ldn_model_destroy(&m);
    ldn_config_destroy(&cfg);
}

/* Open path, change it with fn, close. */
static void modify(const char *path, void (*fn)(hid_t))
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    fn(f);
    H5Fclose(f);
}

static void drop_bias(hid_t f)
{
    H5Ldelete(f, "/heads/b/1/bias", H5P_DEFAULT);
}

static void bad_index(hid_t f)
{
    hid_t g = H5Gopen2(f, "/trunk/0", H5P_DEFAULT);
    H5Adelete(g, "index");
    hid_t sp = H5Screate(H5S_SCALAR), t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, 5);
    hid_t a = H5Acreate2(g, "index", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, t, "rle8");
    H5Aclose(a);
    H5Tclose(t);
    H5Sclose(sp);
    H5Gclose(g);
}

static void drop_task(hid_t f)
{
    H5Ldelete(f, "/heads/a", H5P_DEFAULT);
}

static void expect_refused(const char *name, void (*fn)(hid_t), const char *words)
{
    struct ldn_config *cfg;
    struct ldn_model *m = make(&cfg);
    char path[128], err[LDN_ERRLEN];
    snprintf(path, sizeof path, "%s/%s.h5", dir, name);
    export_to(path, LDN_EXPORT_INT8, m, cfg);
    modify(path, fn);
    struct ldn_ckmodel L;
    CU_ASSERT_EQUAL(ldn_ckmodel_load(path, 16, &L, err, sizeof err), LDN_ERR_FORMAT);
    if (!strstr(err, words))
        fprintf(stderr, "\n  message: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, words));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    CU_ASSERT_PTR_NULL(L.x);
    ldn_model_destroy(&m);
    ldn_config_destroy(&cfg);
}

static void test_refusals(void)
{
    H5E_auto2_t fn;
    void *ud;
    H5Eget_auto2(H5E_DEFAULT, &fn, &ud);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    expect_refused("nobias", drop_bias, "/heads/b/1/bias is missing");
    expect_refused("index", bad_index, "attribute index is 'rle8'");
    expect_refused("notask", drop_task, "/heads/a has no layers");
    H5Eset_auto2(H5E_DEFAULT, fn, ud);
    /* an unwritable place: one line from the OS, nothing left behind */
    struct ldn_config *cfg;
    struct ldn_model *m = make(&cfg);
    struct ldn_export_meta meta = {LDN_EXPORT_INT8, 0, 0, 0, ""};
    struct ldn_export_report rep;
    char path[128], err[LDN_ERRLEN];
    snprintf(path, sizeof path, "%s/none/x.h5", dir);
    CU_ASSERT_EQUAL(ldn_export_write(path, m, cfg, &meta, &rep, err, sizeof err), LDN_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file or directory"));
    CU_ASSERT_PTR_NULL(rep.layers);
    ldn_model_destroy(&m);
    ldn_config_destroy(&cfg);
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static const struct ldn_cu_test TESTS[] = {
    {"write and read every format, bounds, forward equals dense", test_round_trip},
    {"damaged files and unwritable places are refused", test_refusals},
    {NULL, NULL}};

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ldn_exportfile_XXXXXX");
    if (!mkdtemp(dir))
        return 2;
    int rc = ldn_cu_run("exportfile", TESTS);
    cleanup();
    return rc;
}
