/* Task weighting and gradient combination (common/nn/mtl_weight.c, common/job/weighting.c,
 * the train.task_weighting / ps.task_gradients keys): DWA weights and uncertainty loss and
 * gradients on hand-computed losses, the DWA epoch tracker, and the PCGrad projection
 * (orthogonal after projecting a conflicting pair, untouched otherwise). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "cu_main.h"
#include "mtl_weight.h"
#include "phases.h"
#include "rng.h"
#include "status.h"
#include "weighting.h"

/* r = (1/0.5, 0.5/0.5) = (2, 1), T = 2: w = 2 softmax(1, 0.5) = (2e/(e+e^.5), 2e^.5/(e+e^.5)). */
static void dwa_hand(void)
{
    const double l1[2] = {1.0, 0.5}, l2[2] = {0.5, 0.5};
    double w[2];
    CU_ASSERT_EQUAL(ldn_mtl_dwa(l1, l2, 2, 2.0, w), 0);
    const double e1 = exp(1.0), eh = exp(0.5);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 2 * e1 / (e1 + eh), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w[1], 2 * eh / (e1 + eh), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 1.244918662, 1e-8); /* by hand: 2 * 2.71828 / 4.36700 */
    CU_ASSERT_DOUBLE_EQUAL(w[0] + w[1], 2.0, 1e-12);
    /* three tasks, equal ratios: every weight 1; T -> large: weights -> 1 as well */
    const double a[3] = {0.3, 0.6, 0.9}, b[3] = {0.6, 1.2, 1.8};
    double w3[3];
    CU_ASSERT_EQUAL(ldn_mtl_dwa(a, b, 3, 2.0, w3), 0);
    for (int t = 0; t < 3; t++)
        CU_ASSERT_DOUBLE_EQUAL(w3[t], 1.0, 1e-12);
    /* a task whose loss fell less (ratio 1 against 0.5, 0.5) gets more weight; T = 1 */
    const double c1[3] = {1.0, 0.5, 0.5}, c2[3] = {1.0, 1.0, 1.0};
    CU_ASSERT_EQUAL(ldn_mtl_dwa(c1, c2, 3, 1.0, w3), 0);
    CU_ASSERT_DOUBLE_EQUAL(w3[0], 3 * e1 / (e1 + 2 * eh), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w3[1], 3 * eh / (e1 + 2 * eh), 1e-12);
    /* huge ratios do not overflow: exp(5e5) is out of range, the shifted one is not */
    const double k1[2] = {1e3, 1.0}, k2[2] = {1e-3, 1.0};
    CU_ASSERT_EQUAL(ldn_mtl_dwa(k1, k2, 2, 2.0, w), 0);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w[1], 0.0, 1e-12);
    const double h1[2] = {1e300, 1.0}, h2[2] = {1e-300, 1.0};
    CU_ASSERT_EQUAL(ldn_mtl_dwa(h1, h2, 2, 2.0, w), 0);
    CU_ASSERT_DOUBLE_EQUAL(w[0], 2.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(w[1], 0.0, 1e-12);
}

static void dwa_bad_input(void)
{
    const double ok[2] = {1, 1}, zero[2] = {1, 0}, nan_[2] = {1, NAN};
    double w[2] = {5, 5};
    CU_ASSERT_EQUAL(ldn_mtl_dwa(ok, zero, 2, 2.0, w), -1);
    CU_ASSERT_EQUAL(w[0], 1.0);
    CU_ASSERT_EQUAL(w[1], 1.0);
    CU_ASSERT_EQUAL(ldn_mtl_dwa(nan_, ok, 2, 2.0, w), -1);
    CU_ASSERT_EQUAL(ldn_mtl_dwa(ok, ok, 2, 0.0, w), -1);
}

/* The tracker: weights 1 through the first two epochs, then from the mean losses; the sums do
 * not depend on the order of the reports. */
static void dwa_tracker(void)
{
    struct ldn_dwa d, e;
    CU_ASSERT_EQUAL_FATAL(ldn_dwa_init(&d, 2, 2.0), 0);
    CU_ASSERT_EQUAL_FATAL(ldn_dwa_init(&e, 2, 2.0), 0);
    /* epoch 1: task 0 mean 0.5 (rows 10 + 30, sums 5 + 15), task 1 mean 0.5 */
    ldn_dwa_add(&d, 0, 5.0, 10);
    ldn_dwa_add(&d, 0, 15.0, 30);
    ldn_dwa_add(&d, 1, 10.0, 20);
    ldn_dwa_add(&e, 1, 10.0, 20);
    ldn_dwa_add(&e, 0, 15.0, 30);
    ldn_dwa_add(&e, 0, 5.0, 10);
    CU_ASSERT_EQUAL(memcmp(d.loss_fx, e.loss_fx, sizeof(int64_t) * 2), 0);
    ldn_dwa_end_epoch(&d);
    CU_ASSERT_EQUAL(d.epochs, 1);
    CU_ASSERT_EQUAL(d.w[0], 1.0);
    CU_ASSERT_EQUAL(d.w[1], 1.0);
    CU_ASSERT_DOUBLE_EQUAL(d.hist[0], 0.5, 1e-7);
    /* epoch 2: task 0 mean 0.5 (no progress), task 1 mean 0.25: task 0 gets the larger weight */
    ldn_dwa_add(&d, 0, 10.0, 20);
    ldn_dwa_add(&d, 1, 5.0, 20);
    ldn_dwa_add(&d, 1, NAN, 5); /* not finite: counts as a zero sum */
    ldn_dwa_end_epoch(&d);
    CU_ASSERT_EQUAL(d.epochs, 2);
    CU_ASSERT_DOUBLE_EQUAL(d.hist[1], 0.2, 1e-7);    /* 5 / 25 */
    const double e1 = exp(0.5), e2 = exp(0.4 / 2.0); /* r = (1, 0.4), T = 2 */
    CU_ASSERT_DOUBLE_EQUAL(d.w[0], 2 * e1 / (e1 + e2), 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(d.w[1], 2 * e2 / (e1 + e2), 1e-6);
    /* epoch 3 without rows of task 1: it keeps its mean (ratio 1) */
    ldn_dwa_add(&d, 0, 2.5, 10);
    ldn_dwa_end_epoch(&d);
    CU_ASSERT_DOUBLE_EQUAL(d.hist[1], 0.2, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(d.hist[3], 0.2, 1e-7);
    const double f0 = exp(0.5 * 0.25 / 0.5), f1 = exp(0.5);
    CU_ASSERT_DOUBLE_EQUAL(d.w[0], 2 * f0 / (f0 + f1), 1e-6);
    ldn_dwa_deinit(&d);
    ldn_dwa_deinit(&e);
}

/* L e^-s + s: at s = 0 the weight is 1 and d/ds = 1 - L; at s = log L, d/ds = 0; the gradient
 * matches a central difference. */
static void uncertainty_hand(void)
{
    double w, g;
    CU_ASSERT_DOUBLE_EQUAL(ldn_mtl_uncertainty(2.0, 0.0, &w, &g), 2.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(w, 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(g, -1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(ldn_mtl_uncertainty(2.0, log(2.0), &w, &g), 1.0 + log(2.0), 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(w, 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(g, 0.0, 1e-15);
    /* L = 0.3, s = -0.7: 0.3 e^0.7 - 0.7 = 0.3 * 2.013753 - 0.7 = -0.0958741 */
    double v = ldn_mtl_uncertainty(0.3, -0.7, &w, &g);
    CU_ASSERT_DOUBLE_EQUAL(v, 0.3 * exp(0.7) - 0.7, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(v, -0.0958741, 1e-6);
    const double h = 1e-6;
    double w2, g2;
    double fd_s = (ldn_mtl_uncertainty(0.3, -0.7 + h, &w2, &g2) -
                   ldn_mtl_uncertainty(0.3, -0.7 - h, &w2, &g2)) /
                  (2 * h);
    double fd_l = (ldn_mtl_uncertainty(0.3 + h, -0.7, &w2, &g2) -
                   ldn_mtl_uncertainty(0.3 - h, -0.7, &w2, &g2)) /
                  (2 * h);
    CU_ASSERT_DOUBLE_EQUAL(g, fd_s, 1e-8);
    CU_ASSERT_DOUBLE_EQUAL(w, fd_l, 1e-8);
    /* gradient descent on s from 0 reaches log L */
    double s = 0;
    for (int i = 0; i < 2000; i++) {
        ldn_mtl_uncertainty(0.3, s, &w, &g);
        s -= 0.05 * g;
    }
    CU_ASSERT_DOUBLE_EQUAL(s, log(0.3), 1e-6);
}

/* Two conflicting 2-d gradients by hand: g1 = (1, 0), g2 = (-1, 1): p1 = g1 + g2 / 2 =
 * (0.5, 0.5), p2 = g2 + g1 = (0, 1), each orthogonal to the other task's gradient. */
static void pcgrad_hand(void)
{
    float a[2] = {1, 0}, b[2] = {-1, 1}, pa[2], pb[2], out[2];
    const float *g[2] = {a, b};
    float *p[2] = {pa, pb};
    int perm[2];
    double norm2[2];
    struct ldn_rng r;
    ldn_rng_init(&r, 1, 0);
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 2, 2, &r, perm, norm2), 2);
    CU_ASSERT_DOUBLE_EQUAL(pa[0], 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(pa[1], 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(pb[0], 0.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(pb[1], 1.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(ldn_mtl_dot(pa, b, 2), 0.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(ldn_mtl_dot(pb, a, 2), 0.0, 1e-7);
    ldn_mtl_sum((const float *const *)p, 2, 2, out);
    CU_ASSERT_DOUBLE_EQUAL(out[0], 0.5, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(out[1], 1.5, 1e-7);
    /* not conflicting (dot 1 > 0): both untouched, bit for bit */
    float c[2] = {1, 1};
    g[1] = c;
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 2, 2, &r, perm, norm2), 0);
    CU_ASSERT_EQUAL(memcmp(pa, a, sizeof a), 0);
    CU_ASSERT_EQUAL(memcmp(pb, c, sizeof c), 0);
    /* a zero gradient is never projected on */
    float z[2] = {0, 0};
    g[1] = z;
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 2, 2, &r, perm, norm2), 0);
    CU_ASSERT_EQUAL(memcmp(pa, a, sizeof a), 0);
}

/* Random layers of 4097 values: a conflicting pair is orthogonal to float tolerance after
 * projection, a non-conflicting pair is left as it was; with three tasks each projected vector
 * no longer conflicts with the last one it was projected off. */
static void pcgrad_random(void)
{
    enum { N = 4097 };
    float *a = malloc(sizeof(float) * N * 6);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    float *b = a + N, *c = a + 2 * N, *pa = a + 3 * N, *pb = a + 4 * N, *pc = a + 5 * N;
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 3);
    for (int i = 0; i < N; i++) {
        a[i] = (float)ldn_rng_normal(&r);
        b[i] = (float)(-0.5 * a[i] + 0.3 * ldn_rng_normal(&r)); /* conflicts with a */
        c[i] = (float)(0.8 * a[i] + 0.3 * ldn_rng_normal(&r));  /* agrees with a */
    }
    CU_ASSERT_TRUE_FATAL(ldn_mtl_dot(a, b, N) < 0);
    CU_ASSERT_TRUE_FATAL(ldn_mtl_dot(a, c, N) > 0);
    const float *g[3] = {a, b, c};
    float *p[3] = {pa, pb, pc};
    int perm[3];
    double norm2[3];
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 2, N, &r, perm, norm2), 2);
    const double na = sqrt(ldn_mtl_dot(a, a, N)), nb = sqrt(ldn_mtl_dot(b, b, N));
    CU_ASSERT_TRUE(fabs(ldn_mtl_dot(pa, b, N)) <= 1e-5 * na * nb);
    CU_ASSERT_TRUE(fabs(ldn_mtl_dot(pb, a, N)) <= 1e-5 * na * nb);
    CU_ASSERT_TRUE(fabs(ldn_mtl_dot(pa, a, N)) > 0.1 * na * na); /* not wiped out */
    g[1] = c;
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 2, N, &r, perm, norm2), 0);
    CU_ASSERT_EQUAL(memcmp(pa, a, sizeof(float) * N), 0);
    CU_ASSERT_EQUAL(memcmp(pb, c, sizeof(float) * N), 0);
    /* three tasks: b conflicts with a and c; a and c agree. b is projected off both (in the
     * drawn order); a and c off b. Each result has a nonnegative dot with the gradient it was
     * projected off last, and the same seed gives the same result. */
    g[1] = b;
    g[2] = c;
    ldn_rng_init(&r, 11, 0);
    int n1 = ldn_mtl_pcgrad(g, p, 3, N, &r, perm, norm2);
    CU_ASSERT_TRUE(n1 >= 4 && n1 <= 6);
    CU_ASSERT_TRUE(ldn_mtl_dot(pa, b, N) >= -1e-5 * na * nb);
    float *copy = malloc(sizeof(float) * N * 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(copy);
    memcpy(copy, pa, sizeof(float) * N);
    memcpy(copy + N, pb, sizeof(float) * N);
    memcpy(copy + 2 * N, pc, sizeof(float) * N);
    ldn_rng_init(&r, 11, 0);
    CU_ASSERT_EQUAL(ldn_mtl_pcgrad(g, p, 3, N, &r, perm, norm2), n1);
    CU_ASSERT_EQUAL(memcmp(copy, pa, sizeof(float) * N), 0);
    CU_ASSERT_EQUAL(memcmp(copy + N, pb, sizeof(float) * N), 0);
    CU_ASSERT_EQUAL(memcmp(copy + 2 * N, pc, sizeof(float) * N), 0);
    free(copy);
    free(a);
}

#define MINIMAL "data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}, b: {}}\n"

static struct ldn_config *parse(const char *yaml, const char *over, char *err)
{
    char *ov[1] = {(char *)over};
    err[0] = '\0';
    return ldn_config_parse(yaml, strlen(yaml), "t.yaml", over ? 1 : 0, ov, err, LDN_ERRLEN);
}

static void config_keys(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *c = parse(MINIMAL, NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->weighting.method, LDN_WEIGHT_STATIC);
    CU_ASSERT_EQUAL(c->weighting.gradients, LDN_GRAD_SUM);
    CU_ASSERT_DOUBLE_EQUAL(c->weighting.dwa_temperature, 2.0, 0);
    ldn_config_destroy(&c);
    c = parse(MINIMAL "train: {task_weighting: dwa, dwa_temperature: 0.5}\n"
                      "ps: {task_gradients: pcgrad}\n",
              NULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->weighting.method, LDN_WEIGHT_DWA);
    CU_ASSERT_EQUAL(c->weighting.gradients, LDN_GRAD_PCGRAD);
    CU_ASSERT_DOUBLE_EQUAL(c->weighting.dwa_temperature, 0.5, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(c->resolved_yaml, "task_weighting: dwa"));
    ldn_config_destroy(&c);
    c = parse(MINIMAL, "train.task_weighting=uncertainty", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->weighting.method, LDN_WEIGHT_UNCERTAINTY);
    ldn_config_destroy(&c);
    /* bad values: one line naming the key, its place and what is allowed */
    c = parse(MINIMAL "train: {task_weighting: gradnorm}\n", NULL, err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:4:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "train.task_weighting"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "static"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "dwa"));
    c = parse(MINIMAL, "train.dwa_temperature=0", err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "train.dwa_temperature"));
    c = parse("data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}}\nps: {task_gradients: pcgrad}\n",
              NULL, err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ps.task_gradients: pcgrad combines"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "t.yaml:4:"));
}

/* Under dwa the phase list ends a training phase at every epoch boundary (the coordinator turns
 * each finished epoch into the next weights), even when evaluations are rarer; static does not. */
static void dwa_phases(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *c = parse(MINIMAL "train: {epochs: 4, eval_every: 2}\n"
                                         "checkpoint: {final: false}\n",
                                 "train.task_weighting=dwa", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    struct ldn_phases ph;
    CU_ASSERT_EQUAL_FATAL(ldn_phases_build(c, 10, 40, 15, &ph, err, sizeof err), 0);
    const int64_t want[][2] = {{15, 20}, {20, 30}, {30, 40}};
    int k = 0;
    for (int i = 0; i < ph.n; i++)
        if (ph.list[i].kind == LDN_PHASE_TRAIN) {
            CU_ASSERT_TRUE_FATAL(k < 3);
            CU_ASSERT_EQUAL(ph.list[i].from, want[k][0]);
            CU_ASSERT_EQUAL(ph.list[i].to, want[k][1]);
            k++;
        }
    CU_ASSERT_EQUAL(k, 3);
    ldn_phases_deinit(&ph);
    c->weighting.method = LDN_WEIGHT_STATIC; /* the same config without dwa: 2 phases */
    CU_ASSERT_EQUAL_FATAL(ldn_phases_build(c, 10, 40, 15, &ph, err, sizeof err), 0);
    k = 0;
    for (int i = 0; i < ph.n; i++)
        k += ph.list[i].kind == LDN_PHASE_TRAIN;
    CU_ASSERT_EQUAL(k, 2);
    ldn_phases_deinit(&ph);
    ldn_config_destroy(&c);
}

static const struct ldn_cu_test TESTS[] = {
    {"dwa_phases", dwa_phases},
    {"dwa_hand", dwa_hand},
    {"dwa_bad_input", dwa_bad_input},
    {"dwa_tracker", dwa_tracker},
    {"uncertainty_hand", uncertainty_hand},
    {"pcgrad_hand", pcgrad_hand},
    {"pcgrad_random", pcgrad_random},
    {"config_keys", config_keys},
    {NULL, NULL},
};

LDN_CU_MAIN("mtl_weight", TESTS)
