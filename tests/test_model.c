/* Tests for common/nn/model: the multi-task model (one trunk, a head per task), built from a
 * parsed config: seeding, shapes, gradients against finite differences, the split training
 * entry points, evaluation and the loss weight. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cu_main.h"
#include "loss.h"
#include "model.h"
#include "rng.h"
#include "status.h"

#define FEATURES 7
#define MAX_BATCH 4
#define ROWS 10

/* Trunk 7 -> 6 -> 5 (tanh); task "a": one output layer to 3 classes, task "b": a hidden
 * layer of 4, then 2 classes. data.dir is required by the schema but nothing is read. */
static const char YAML[] = "run:\n"
                           "  seed: %llu\n"
                           "data:\n"
                           "  dir: /nonexistent\n"
                           "model:\n"
                           "  trunk: [6, 5]\n"
                           "  activation: tanh\n"
                           "tasks:\n"
                           "  a:\n"
                           "    weight: 1\n"
                           "  b:\n"
                           "    weight: 0.5\n"
                           "    head: [4]\n";

static const int CLASSES[2] = {3, 2};

static struct ldn_config *make_cfg(unsigned long long seed)
{
    char yaml[sizeof YAML + 32], err[LDN_ERRLEN];
    snprintf(yaml, sizeof yaml, YAML, seed);
    struct ldn_config *cfg =
        ldn_config_parse(yaml, strlen(yaml), "t.yaml", 0, NULL, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "\n  config: %s\n", err);
    return cfg;
}

static struct ldn_model *make_model(unsigned long long seed)
{
    struct ldn_config *cfg = make_cfg(seed);
    if (!cfg)
        return NULL;
    char err[LDN_ERRLEN];
    struct ldn_model *m = ldn_model_new(cfg, FEATURES, CLASSES, MAX_BATCH, err, sizeof err);
    if (!m)
        fprintf(stderr, "\n  model: %s\n", err);
    ldn_config_destroy(&cfg);
    return m;
}

/* ROWS random rows of FEATURES inputs and labels valid for every task (< 2). */
static void make_data(float *x, int32_t *y, uint64_t seed)
{
    struct ldn_rng r;
    ldn_rng_init(&r, seed, 3);
    for (int i = 0; i < ROWS * FEATURES; i++)
        x[i] = (float)ldn_rng_normal(&r);
    for (int i = 0; i < ROWS; i++)
        y[i] = (int32_t)ldn_rng_below(&r, 2);
}

static int same_params(const struct ldn_nn *a, const struct ldn_nn *b)
{
    return a->n_params == b->n_params &&
           memcmp(a->params, b->params, sizeof(float) * (size_t)a->n_params) == 0;
}

static int all_zero(const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (v[i] != 0.0f)
            return 0;
    return 1;
}

static float *copy_of(const float *v, int64_t n)
{
    float *c = malloc(sizeof(float) * (size_t)n);
    if (c)
        memcpy(c, v, sizeof(float) * (size_t)n);
    return c;
}

/* The same seed builds bit-identical trunk and heads; another seed different ones; the two
 * heads draw from their own streams. */
static void test_seed(void)
{
    struct ldn_model *a = make_model(5), *b = make_model(5), *c = make_model(6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(same_params(a->trunk, b->trunk));
    for (int t = 0; t < 2; t++) {
        CU_ASSERT(same_params(a->heads[t], b->heads[t]));
        CU_ASSERT(!same_params(a->heads[t], c->heads[t]));
    }
    CU_ASSERT(!same_params(a->trunk, c->trunk));
    CU_ASSERT(!all_zero(a->trunk->params, a->trunk->n_params));
    /* Head a's single layer and head b's first layer both read the trunk's 5 outputs: equal
     * seeds and streams would give them the same first weights. */
    CU_ASSERT(memcmp(a->heads[0]->params, a->heads[1]->params, sizeof(float) * 5) != 0);
    ldn_model_destroy(&a);
    ldn_model_destroy(&b);
    ldn_model_destroy(&c);
    CU_ASSERT_PTR_NULL(a);
    ldn_model_destroy(&a); /* NULL is fine */
    ldn_model_destroy(NULL);
}

static void check_layer(const struct ldn_layer *l, int in, int out)
{
    CU_ASSERT_EQUAL(l->in_dim, in);
    CU_ASSERT_EQUAL(l->out_dim, out);
    CU_ASSERT_EQUAL(l->n_params, (int64_t)(in + 1) * out);
}

/* Layer shapes and parameter counts follow features, model.trunk, tasks.*.head and the
 * classes given to ldn_model_new. */
static void test_shapes(void)
{
    struct ldn_model *m = make_model(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT_EQUAL(m->features, FEATURES);
    CU_ASSERT_EQUAL(m->n_heads, 2);
    CU_ASSERT_EQUAL(m->classes[0], 3);
    CU_ASSERT_EQUAL(m->classes[1], 2);

    CU_ASSERT_EQUAL_FATAL(m->trunk->n_layers, 2);
    check_layer(&m->trunk->layers[0], FEATURES, 6);
    check_layer(&m->trunk->layers[1], 6, 5);
    CU_ASSERT_EQUAL(m->trunk->in_dim, FEATURES);
    CU_ASSERT_EQUAL(m->trunk->out_dim, 5);
    CU_ASSERT_EQUAL(m->trunk->n_params, (FEATURES + 1) * 6 + (6 + 1) * 5);
    CU_ASSERT_EQUAL(m->trunk->max_batch, MAX_BATCH);

    CU_ASSERT_EQUAL_FATAL(m->heads[0]->n_layers, 1);
    check_layer(&m->heads[0]->layers[0], 5, 3);
    CU_ASSERT_EQUAL(m->heads[0]->n_params, 6 * 3);

    CU_ASSERT_EQUAL_FATAL(m->heads[1]->n_layers, 2);
    check_layer(&m->heads[1]->layers[0], 5, 4);
    check_layer(&m->heads[1]->layers[1], 4, 2);
    CU_ASSERT_EQUAL(m->heads[1]->n_params, 6 * 4 + 5 * 2);
    CU_ASSERT_EQUAL(m->heads[1]->out_dim, 2);

    /* Layers tile the flat vector in order, weight then bias: the key space. */
    for (int l = 1; l < m->trunk->n_layers; l++)
        CU_ASSERT_EQUAL(m->trunk->layers[l].offset,
                        m->trunk->layers[l - 1].offset + m->trunk->layers[l - 1].n_params);
    ldn_model_destroy(&m);
}

/* Gradients of ldn_model_train_batch (trunk and head t, loss weight w) against central
 * differences of w * its returned loss on rows idx: worst relative error with a floor of
 * 1e-2 on the denominator. Also checks that the other head's gradients are untouched and
 * that a second identical call writes the same gradients (no accumulation). */
static double fd_check(struct ldn_model *m, int t, float w, double *gmax)
{
    float x[ROWS * FEATURES];
    int32_t y[ROWS];
    make_data(x, y, 21);
    const int64_t idx[MAX_BATCH] = {7, 0, 3, 3}; /* out of order, one row twice */
    const int n = MAX_BATCH;
    struct ldn_batch_buf buf;
    CU_ASSERT_EQUAL_FATAL(ldn_batch_buf_init(&buf, MAX_BATCH, FEATURES, 3), LDN_OK);
    struct ldn_nn *other = m->heads[1 - t];
    memset(other->grads, 0x7f, sizeof(float) * (size_t)other->n_params);
    int64_t ok = -1;
    double loss = ldn_model_train_batch(m, t, x, y, idx, n, w, &buf, &ok);
    CU_ASSERT(loss > 0.0 && isfinite(loss));
    CU_ASSERT(ok >= 0 && ok <= n);
    float keep_other = other->grads[0];
    struct ldn_nn *nets[2] = {m->trunk, m->heads[t]};
    float *g[2];
    for (int k = 0; k < 2; k++) {
        g[k] = copy_of(nets[k]->grads, nets[k]->n_params);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g[k]);
    }
    /* again: the same gradients, bit for bit */
    ldn_model_train_batch(m, t, x, y, idx, n, w, &buf, &ok);
    for (int k = 0; k < 2; k++)
        CU_ASSERT(memcmp(g[k], nets[k]->grads, sizeof(float) * (size_t)nets[k]->n_params) == 0);

    double worst = 0.0;
    *gmax = 0.0;
    const float h = 5e-3f;
    for (int k = 0; k < 2; k++) {
        for (int64_t i = 0; i < nets[k]->n_params; i++) {
            float keep = nets[k]->params[i];
            nets[k]->params[i] = keep + h;
            double lp = ldn_model_train_batch(m, t, x, y, idx, n, w, &buf, &ok);
            nets[k]->params[i] = keep - h;
            double lm = ldn_model_train_batch(m, t, x, y, idx, n, w, &buf, &ok);
            nets[k]->params[i] = keep;
            /* the step actually taken in float */
            double step = (double)(keep + h) - (double)(keep - h);
            double num = w * (lp - lm) / step;
            double den = fmax(fmax(fabs(num), fabs(g[k][i])), 1e-2);
            worst = fmax(worst, fabs(num - g[k][i]) / den);
            *gmax = fmax(*gmax, fabs(g[k][i]));
        }
        free(g[k]);
    }
    CU_ASSERT_EQUAL(other->grads[0], keep_other);
    ldn_batch_buf_deinit(&buf);
    return worst;
}

static void test_gradients(void)
{
    struct ldn_model *m = make_model(9);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (int t = 0; t < 2; t++) {
        float w = t == 0 ? 1.0f : 0.5f;
        double gmax = 0.0, worst = fd_check(m, t, w, &gmax);
        /* tanh and float32 activations: with h = 5e-3 the truncation error (~h^2) and the
         * float rounding noise (~1e-7 / h) measure ~3e-4 here; a wrong layer or a missing
         * weight factor gives errors of order 1. */
        if (worst >= 2e-3)
            fprintf(stderr, "\n  task %d: worst relative error %.3g\n", t, worst);
        CU_ASSERT(worst < 2e-3);
        CU_ASSERT(gmax > 1e-2); /* the check compared something */
    }
    ldn_model_destroy(&m);
}

/* ldn_model_train_batch is forward_rows then loss_backward: same logits, loss, count and
 * gradients, bit for bit; forward_rows gathers rows idx and their labels. */
static void test_train_batch_is_split(void)
{
    struct ldn_model *a = make_model(4), *b = make_model(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    float x[ROWS * FEATURES];
    int32_t y[ROWS];
    make_data(x, y, 8);
    const int64_t idx[3] = {9, 2, 5};
    struct ldn_batch_buf ba, bb;
    CU_ASSERT_EQUAL_FATAL(ldn_batch_buf_init(&ba, MAX_BATCH, FEATURES, 3), LDN_OK);
    CU_ASSERT_EQUAL_FATAL(ldn_batch_buf_init(&bb, MAX_BATCH, FEATURES, 3), LDN_OK);
    for (int t = 0; t < 2; t++) {
        int64_t ca = -1, cb = -2;
        double la = ldn_model_train_batch(a, t, x, y, idx, 3, 0.75f, &ba, &ca);
        const float *z = ldn_model_forward_rows(b, t, x, y, idx, 3, &bb);
        for (int i = 0; i < 3; i++) {
            CU_ASSERT(
                memcmp(bb.x + i * FEATURES, x + idx[i] * FEATURES, sizeof(float) * FEATURES) == 0);
            CU_ASSERT_EQUAL(bb.y[i], y[idx[i]]);
        }
        int64_t cz = 0;
        double lz = ldn_loss_xent(z, bb.y, 3, CLASSES[t], 1.0f, NULL, &cz);
        double lb = ldn_model_loss_backward(b, t, z, 3, 0.75f, &bb, &cb);
        CU_ASSERT_EQUAL(la, lb);
        CU_ASSERT_EQUAL(lz, lb); /* the returned loss is not scaled by the weight */
        CU_ASSERT_EQUAL(ca, cb);
        CU_ASSERT_EQUAL(cz, cb);
        CU_ASSERT(memcmp(a->trunk->grads, b->trunk->grads,
                         sizeof(float) * (size_t)a->trunk->n_params) == 0);
        CU_ASSERT(memcmp(a->heads[t]->grads, b->heads[t]->grads,
                         sizeof(float) * (size_t)a->heads[t]->n_params) == 0);
    }
    ldn_batch_buf_deinit(&ba);
    ldn_batch_buf_deinit(&bb);
    ldn_batch_buf_deinit(&bb); /* twice is harmless */
    CU_ASSERT_PTR_NULL(bb.x);
    ldn_model_destroy(&a);
    ldn_model_destroy(&b);
}

/* ldn_model_evaluate over ROWS = 10 rows with a max batch of 4 (chunks 4, 4, 2) equals a
 * row-by-row computation: mean of -log softmax(z)[y] and the fraction of rows whose argmax
 * is y. */
static void test_evaluate(void)
{
    struct ldn_model *m = make_model(13);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    float x[ROWS * FEATURES];
    int32_t y[ROWS];
    make_data(x, y, 17);
    for (int t = 0; t < 2; t++) {
        double want_loss = 0.0;
        int right = 0;
        for (int i = 0; i < ROWS; i++) {
            const float *z = ldn_model_forward(m, t, x + i * FEATURES, 1);
            int best = 0;
            double mx = z[0], s = 0.0;
            for (int c = 1; c < CLASSES[t]; c++) {
                mx = fmax(mx, z[c]);
                if (z[c] > z[best])
                    best = c;
            }
            for (int c = 0; c < CLASSES[t]; c++)
                s += exp(z[c] - mx);
            want_loss += log(s) + mx - z[y[i]];
            right += best == y[i];
        }
        want_loss /= ROWS;
        double loss = -1, acc = -1;
        ldn_model_evaluate(m, t, x, y, ROWS, &loss, &acc);
        CU_ASSERT_DOUBLE_EQUAL(loss, want_loss, 1e-5 * want_loss);
        CU_ASSERT_DOUBLE_EQUAL(acc, right / (double)ROWS, 1e-12);
        /* the last, partial chunk counts: a run on the first 8 rows gives other numbers */
        double loss8 = -1, acc8 = -1;
        ldn_model_evaluate(m, t, x, y, 8, &loss8, &acc8);
        CU_ASSERT(loss8 != loss);
        ldn_model_evaluate(m, t, x, y, 0, &loss, &acc);
        CU_ASSERT_EQUAL(loss, 0.0);
        CU_ASSERT_EQUAL(acc, 0.0);
    }
    /* Labels set to the model's own predictions: accuracy 1. */
    int32_t pred[ROWS];
    for (int i = 0; i < ROWS; i++) {
        const float *z = ldn_model_forward(m, 0, x + i * FEATURES, 1);
        pred[i] = 0;
        for (int c = 1; c < 3; c++)
            if (z[c] > z[pred[i]])
                pred[i] = c;
    }
    double loss = -1, acc = -1;
    ldn_model_evaluate(m, 0, x, pred, ROWS, &loss, &acc);
    CU_ASSERT_EQUAL(acc, 1.0);
    ldn_model_destroy(&m);
}

/* A loss weight of 0 gives all-zero gradients (overwriting an earlier batch's), while the
 * loss and the count are still reported. */
static void test_zero_weight(void)
{
    struct ldn_model *m = make_model(2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    float x[ROWS * FEATURES];
    int32_t y[ROWS];
    make_data(x, y, 5);
    const int64_t idx[MAX_BATCH] = {0, 1, 2, 3};
    struct ldn_batch_buf buf;
    CU_ASSERT_EQUAL_FATAL(ldn_batch_buf_init(&buf, MAX_BATCH, FEATURES, 3), LDN_OK);
    for (int t = 0; t < 2; t++) {
        int64_t ok1 = -1, ok0 = -1;
        double l1 = ldn_model_train_batch(m, t, x, y, idx, MAX_BATCH, 1.0f, &buf, &ok1);
        CU_ASSERT(!all_zero(m->trunk->grads, m->trunk->n_params));
        CU_ASSERT(!all_zero(m->heads[t]->grads, m->heads[t]->n_params));
        double l0 = ldn_model_train_batch(m, t, x, y, idx, MAX_BATCH, 0.0f, &buf, &ok0);
        CU_ASSERT(all_zero(m->trunk->grads, m->trunk->n_params));
        CU_ASSERT(all_zero(m->heads[t]->grads, m->heads[t]->n_params));
        CU_ASSERT_EQUAL(l0, l1);
        CU_ASSERT(l0 > 0.0);
        CU_ASSERT_EQUAL(ok0, ok1);
    }
    ldn_batch_buf_deinit(&buf);
    ldn_model_destroy(&m);
}

/* A trunk or head too large to build (widths within the config's bounds, the product not) is
 * refused before anything is allocated, naming the field. */
static void test_size_bound(void)
{
    struct ldn_config *cfg = make_cfg(1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    char err[LDN_ERRLEN] = "";
    int wide[2] = {1000000, 1000000}, ok[2] = {8, 4};
    CU_ASSERT_EQUAL(ldn_model_check_size(cfg, ok, 2, FEATURES, CLASSES, MAX_BATCH, err, sizeof err),
                    0);
    CU_ASSERT_PTR_NULL(
        ldn_model_new_trunk(cfg, wide, 2, FEATURES, CLASSES, MAX_BATCH, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "model.trunk [1000000, 1000000]"));
    int big[2] = {3000, 1000000}; /* features * 3000 fits, 3000 * 1e6 does not */
    CU_ASSERT_EQUAL(
        ldn_model_check_size(cfg, big, 2, FEATURES, CLASSES, MAX_BATCH, err, sizeof err),
        LDN_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "model.trunk [3000, 1000000] on"));
    int classes[2] = {3, 1000000}, wide_out[1] = {4000}; /* head b: [4] -> 1e6 classes fits */
    CU_ASSERT_EQUAL(ldn_model_check_size(cfg, wide_out, 1, FEATURES, classes, 1, err, sizeof err),
                    0);
    cfg->tasks[1].head[0] = 1000000; /* now 4000 x 1e6 + 1e6 x 1e6 */
    CU_ASSERT_EQUAL(ldn_model_check_size(cfg, wide_out, 1, FEATURES, classes, 1, err, sizeof err),
                    LDN_ERR_CONFIG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "tasks.b.head [1000000]"));
    ldn_config_destroy(&cfg);
}

static const struct ldn_cu_test TESTS[] = {
    {"too large a trunk or head is refused before allocation", test_size_bound},
    {"same seed same weights, other seed other weights", test_seed},
    {"shapes and parameter counts follow the config", test_shapes},
    {"train_batch gradients match finite differences", test_gradients},
    {"train_batch is forward_rows + loss_backward", test_train_batch_is_split},
    {"evaluate equals a row-by-row computation", test_evaluate},
    {"loss weight 0 gives zero gradients", test_zero_weight},
    {NULL, NULL}};

LDN_CU_MAIN("model", TESTS)
