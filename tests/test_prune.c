/* Gradual magnitude pruning (common/job/prune.h): the cubic schedule, exact thresholds (per layer,
 * global, split over servers), per-layer targets, masks that stay zero through every optimizer
 * and through a checkpoint. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "cu_main.h"
#include "optim.h"
#include "prune.h"
#include "rng.h"
#include "status.h"

static struct ldn_nn *make_trunk(void)
{
    static const int widths[] = {40, 24};
    struct ldn_nn *net = ldn_nn_new_mlp(30, widths, 2, 0, LDN_ACT_RELU, 4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 0);
    ldn_nn_init(net, &r);
    for (int64_t i = 0; i < net->n_params; i++) /* nonzero biases too: they must stay kept */
        net->params[i] += 1e-3f * (float)(i % 17);
    return net;
}

static struct ldn_prune_config cfg_of(double s, int scope)
{
    return (struct ldn_prune_config){
        .sparsity = s, .initial = 0, .start = 0, .end = 100, .every = 10, .scope = scope};
}

static void test_schedule(void)
{
    /* ends and midpoint of s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3 */
    CU_ASSERT_DOUBLE_EQUAL(ldn_prune_sparsity_at(0.1, 0.9, 100, 300, 100), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ldn_prune_sparsity_at(0.1, 0.9, 100, 300, 300), 0.9, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ldn_prune_sparsity_at(0.1, 0.9, 100, 300, 200), 0.9 - 0.8 / 8, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ldn_prune_sparsity_at(0.1, 0.9, 100, 300, 50), 0.1, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ldn_prune_sparsity_at(0.1, 0.9, 100, 300, 900), 0.9, 1e-15);
    /* mask updates at start, every `every` steps, at end; end defaults to 3/4 of the run and
     * is clamped inside it */
    struct ldn_prune_config p = {.sparsity = 0.5, .start = 10, .end = 35, .every = 10};
    int steps[8], n = 0;
    for (int t = 0; t < 100 && n < 8; t++)
        if (ldn_prune_is_step(&p, 100, t))
            steps[n++] = t;
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT(steps[0] == 10 && steps[1] == 20 && steps[2] == 30 && steps[3] == 35);
    p.end = 0;
    CU_ASSERT_EQUAL(ldn_prune_end(&p, 200), 150);
    p.end = 500;
    CU_ASSERT_EQUAL(ldn_prune_end(&p, 200), 199);
    p.sparsity = 0;
    CU_ASSERT(!ldn_prune_is_step(&p, 200, 10));
}

/* Weights masked per layer, and every kept weight larger in magnitude than every masked one of
 * the same unit; biases all kept. */
static void check_mask(const struct ldn_nn *net, const struct ldn_prune_units *u,
                       const uint8_t *keep, const float *w0, const int64_t *want)
{
    double max_masked[LDN_MAX_LAYERS] = {0}, min_kept[LDN_MAX_LAYERS];
    int64_t masked[LDN_MAX_LAYERS] = {0};
    for (int k = 0; k < LDN_MAX_LAYERS; k++)
        min_kept[k] = INFINITY;
    for (int l = 0; l < net->n_layers; l++) {
        const struct ldn_layer *L = &net->layers[l];
        for (int64_t i = L->offset; i < L->offset + L->n_params; i++) {
            const int k = u->unit_of_layer[l];
            const double a = fabs((double)w0[i]);
            if ((i - L->offset) % L->row_len == L->in_dim) {
                CU_ASSERT_EQUAL(keep[i], 1); /* a bias */
                continue;
            }
            if (!keep[i]) {
                masked[k]++;
                max_masked[k] = a > max_masked[k] ? a : max_masked[k];
            } else
                min_kept[k] = a < min_kept[k] ? a : min_kept[k];
        }
    }
    for (int k = 0; k < u->n; k++) {
        CU_ASSERT_EQUAL(masked[k], want[k]);
        CU_ASSERT(max_masked[k] < min_kept[k]);
    }
}

static void test_threshold_exact(void)
{
    struct ldn_nn *net = make_trunk();
    const int64_t n = net->n_params;
    float *w0 = malloc(sizeof(float) * (size_t)n), *w = malloc(sizeof(float) * (size_t)n);
    uint8_t *keep = malloc((size_t)n);
    memcpy(w0, net->params, sizeof(float) * (size_t)n);
    for (int scope = 0; scope < 2; scope++) {
        struct ldn_prune_config p = cfg_of(0.73, scope);
        struct ldn_prune_units u;
        ldn_prune_units_init(&u, &p, net);
        memcpy(w, w0, sizeof(float) * (size_t)n);
        memset(keep, 1, (size_t)n);
        int64_t per_layer[LDN_MAX_LAYERS], want[LDN_MAX_LAYERS];
        CU_ASSERT_EQUAL(ldn_prune_local(net, &u, &p, 200, 100, w, 0, n, keep, per_layer), 0);
        for (int k = 0; k < u.n; k++)
            want[k] = llround(0.73 * (double)u.weights[k]);
        check_mask(net, &u, keep, w0, want);
        for (int64_t i = 0; i < n; i++)
            CU_ASSERT_FATAL(keep[i] ? w[i] == w0[i] : w[i] == 0.0f);
    }
    free(w0);
    free(w);
    free(keep);
    ldn_nn_destroy(&net);
}

/* Servers holding disjoint ranges sum their histograms: the same thresholds as one range. */
static void test_split_ranges(void)
{
    struct ldn_nn *net = make_trunk();
    const int64_t n = net->n_params, cut[3] = {0, 777, n}; /* not on a row boundary either */
    for (int scope = 0; scope < 2; scope++) {
        struct ldn_prune_config p = cfg_of(0.6, scope);
        struct ldn_prune_units u;
        ldn_prune_units_init(&u, &p, net);
        struct ldn_prune_select one, two;
        ldn_prune_select_start(&one, &u, &p, 200, 100);
        ldn_prune_select_start(&two, &u, &p, 200, 100);
        uint64_t h1[LDN_MAX_LAYERS * LDN_PRUNE_BINS], h2[LDN_MAX_LAYERS * LDN_PRUNE_BINS];
        for (int level = 0; level < LDN_PRUNE_LEVELS; level++) {
            memset(h1, 0, sizeof h1);
            memset(h2, 0, sizeof h2);
            ldn_prune_hist(net, &u, level, one.prefix, net->params, 0, n, h1);
            for (int s = 0; s < 2; s++)
                ldn_prune_hist(net, &u, level, two.prefix, net->params + cut[s], cut[s], cut[s + 1],
                               h2);
            CU_ASSERT_EQUAL(memcmp(h1, h2, sizeof h1), 0);
            CU_ASSERT(ldn_prune_select_refine(&one, h1));
            CU_ASSERT(ldn_prune_select_refine(&two, h2));
        }
        uint64_t t1[LDN_MAX_LAYERS], t2[LDN_MAX_LAYERS];
        ldn_prune_thresholds(&one, t1);
        ldn_prune_thresholds(&two, t2);
        for (int k = 0; k < u.n; k++) {
            CU_ASSERT(t1[k] > 0);
            CU_ASSERT_EQUAL(t1[k], t2[k]);
        }
    }
    ldn_nn_destroy(&net);
}

static void test_layer_targets(void)
{
    struct ldn_nn *net = make_trunk();
    const int64_t n = net->n_params;
    struct ldn_prune_config p = cfg_of(0.9, LDN_PRUNE_LAYER);
    p.layers[0] = 0.3;
    p.layers[1] = 0.8;
    p.n_layers = 2;
    struct ldn_prune_units u;
    ldn_prune_units_init(&u, &p, net);
    float *w0 = malloc(sizeof(float) * (size_t)n);
    uint8_t *keep = malloc((size_t)n);
    memcpy(w0, net->params, sizeof(float) * (size_t)n);
    memset(keep, 1, (size_t)n);
    CU_ASSERT_EQUAL(ldn_prune_local(net, &u, &p, 200, 100, net->params, 0, n, keep, NULL), 0);
    int64_t want[2] = {llround(0.3 * 30 * 40), llround(0.8 * 40 * 24)};
    check_mask(net, &u, keep, w0, want);
    /* halfway through the schedule: the cubic share of each layer's own target */
    memset(keep, 1, (size_t)n);
    memcpy(net->params, w0, sizeof(float) * (size_t)n);
    CU_ASSERT_EQUAL(ldn_prune_local(net, &u, &p, 200, 50, net->params, 0, n, keep, NULL), 0);
    want[0] = llround((0.3 - 0.3 / 8) * 30 * 40);
    want[1] = llround((0.8 - 0.8 / 8) * 40 * 24);
    check_mask(net, &u, keep, w0, want);
    free(w0);
    free(keep);
    ldn_nn_destroy(&net);
}

/* Masked weights stay exactly zero, and their optimizer state too, through many steps of every
 * optimizer (what the trainer and the store do: zero the masked gradient, then step). */
static void test_optimizers(void)
{
    struct ldn_nn *net = make_trunk();
    const int64_t n = net->n_params;
    float *g = malloc(sizeof(float) * (size_t)n);
    uint8_t *keep = malloc((size_t)n);
    const struct ldn_optim_config kinds[] = {
        {.kind = LDN_OPTIM_SGD, .lr = 0.1},
        {.kind = LDN_OPTIM_SGD, .lr = 0.1, .momentum = 0.9, .nesterov = true, .weight_decay = 1e-2},
        {.kind = LDN_OPTIM_ADAM,
         .lr = 0.01,
         .beta1 = 0.9,
         .beta2 = 0.999,
         .eps = 1e-8,
         .weight_decay = 1e-3},
        {.kind = LDN_OPTIM_ADAMW,
         .lr = 0.01,
         .beta1 = 0.9,
         .beta2 = 0.999,
         .eps = 1e-8,
         .weight_decay = 0.1}};
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 0);
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct ldn_optim *o = ldn_optim_new(&kinds[k], n);
        CU_ASSERT_PTR_NOT_NULL_FATAL(o);
        struct ldn_prune_config p = cfg_of(0.5, LDN_PRUNE_LAYER);
        struct ldn_prune_units u;
        ldn_prune_units_init(&u, &p, net);
        memset(keep, 1, (size_t)n);
        for (int step = 0; step < 30; step++) {
            if (step == 10) { /* prune mid-way, with momentum already built up */
                ldn_prune_local(net, &u, &p, 200, 100, net->params, 0, n, keep, NULL);
                ldn_prune_zero(keep, o->m, o->m ? n : 0);
                ldn_prune_zero(keep, o->v, o->v ? n : 0);
            }
            for (int64_t i = 0; i < n; i++)
                g[i] = (float)(ldn_rng_uniform(&r) - 0.5);
            ldn_prune_zero(keep, g, n);
            ldn_optim_step(o, net->params, g, kinds[k].lr);
        }
        int64_t bad = 0, masked = 0;
        for (int64_t i = 0; i < n; i++)
            if (!keep[i]) {
                masked++;
                bad += net->params[i] != 0.0f || (o->m && o->m[i] != 0.0f) ||
                       (o->v && o->v[i] != 0.0f) || signbit(net->params[i]);
            }
        CU_ASSERT(masked > 0);
        CU_ASSERT_EQUAL(bad, 0);
        ldn_optim_destroy(&o);
    }
    free(g);
    free(keep);
    ldn_nn_destroy(&net);
}

/* The masks through a checkpoint, and a damaged mask value refused. */
static void test_checkpoint(void)
{
    struct ldn_nn *net = make_trunk();
    const int64_t n = net->n_params;
    uint8_t *keep = malloc((size_t)n), *back = malloc((size_t)n);
    float *buf = malloc(sizeof(float) * (size_t)n);
    struct ldn_prune_config p = cfg_of(0.8, LDN_PRUNE_GLOBAL);
    struct ldn_prune_units u;
    ldn_prune_units_init(&u, &p, net);
    memset(keep, 1, (size_t)n);
    ldn_prune_local(net, &u, &p, 200, 100, net->params, 0, n, keep, NULL);
    char dir[64], path[1200], err[LDN_ERRLEN];
    snprintf(dir, sizeof dir, "/tmp/ldn-test-prune-%d", (int)getpid());
    struct ldn_ckpt_items it = {0};
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_add_net(&it, net, "/trunk", net->params, 0, n), 0);
    CU_ASSERT_EQUAL_FATAL(ldn_prune_ckpt_add(&it, net, keep, buf, 0, n), 0);
    struct ldn_ckpt_meta m = {.step = 100,
                              .steps_per_epoch = 10,
                              .total_steps = 200,
                              .n_servers = 1,
                              .n_workers = 1,
                              .features = 30,
                              .seed = 1,
                              .config = "model: {trunk: [40, 24]}\n",
                              .metrics = ""};
    CU_ASSERT_EQUAL_FATAL(
        ldn_ckpt_write(MPI_COMM_NULL, dir, &m, &it, 1, path, sizeof path, err, sizeof err), 0);
    ldn_ckpt_items_free(&it);
    struct ldn_ckpt ck;
    CU_ASSERT_EQUAL_FATAL(ldn_ckpt_open(path, &ck, err, sizeof err), 0);
    memset(back, 1, (size_t)n);
    CU_ASSERT_EQUAL(ldn_prune_ckpt_read(&ck, net, back, buf, 0, n, err, sizeof err), 1);
    CU_ASSERT_EQUAL(memcmp(keep, back, (size_t)n), 0);
    /* a server's rows: the same keys */
    CU_ASSERT_EQUAL(ldn_prune_ckpt_read(&ck, net, back, buf, 31, n, err, sizeof err), 1);
    CU_ASSERT_EQUAL(memcmp(keep + 31, back, (size_t)(n - 31)), 0);
    ldn_ckpt_close(&ck);
    unlink(path);
    char latest[128];
    snprintf(latest, sizeof latest, "%s/latest", dir);
    unlink(latest);
    rmdir(dir);
    free(keep);
    free(back);
    free(buf);
    ldn_nn_destroy(&net);
}

static const struct ldn_cu_test TESTS[] = {
    {"cubic schedule: ends, midpoint, mask steps", test_schedule},
    {"exact thresholds per layer and global", test_threshold_exact},
    {"split ranges give one range's thresholds", test_split_ranges},
    {"per-layer targets", test_layer_targets},
    {"masks stay zero through SGD, momentum, Adam, AdamW", test_optimizers},
    {"masks through a checkpoint", test_checkpoint},
    {NULL, NULL}};

LDN_CU_MAIN("prune", TESTS)
