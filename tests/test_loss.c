/* Losses: values against hand computations and finite-difference gradients. */
#include <math.h>
#include <string.h>

#include "cu_main.h"
#include "loss.h"
#include "rng.h"

#define B 4
#define C 5

static float z[B * C], teacher[B * C], target[B * C];
static int32_t y[B] = {0, 3, 4, 1};

static void setup(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 21, 0);
    float tz[B * C];
    for (int i = 0; i < B * C; i++) {
        z[i] = (float)(2.0 * ldn_rng_normal(&r));
        tz[i] = (float)(2.0 * ldn_rng_normal(&r));
        target[i] = (float)ldn_rng_normal(&r);
    }
    ldn_softmax(tz, teacher, B, C, 2.0f);
}

enum which { XENT, MSE, DISTILL };

static double eval_loss(enum which w, const float *logits, float *grad, float scale)
{
    switch (w) {
    case XENT: return ldn_loss_xent(logits, y, B, C, scale, grad, NULL);
    case MSE: return ldn_loss_mse(logits, target, B, C, scale, grad);
    case DISTILL: return ldn_loss_distill(logits, teacher, y, B, C, 2.0f, 0.7f, scale, grad, NULL);
    }
    return NAN;
}

/* Worst relative error between the analytic gradient (with scale s) and s * d(loss)/dz. */
static double check(enum which w, float scale)
{
    setup();
    float g[B * C];
    eval_loss(w, z, g, scale);
    double worst = 0.0;
    for (int i = 0; i < B * C; i++) {
        float keep = z[i], h = 1e-2f;
        z[i] = keep + h;
        double lp = eval_loss(w, z, NULL, 1.0f);
        z[i] = keep - h;
        double lm = eval_loss(w, z, NULL, 1.0f);
        z[i] = keep;
        double num = scale * (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(num - g[i]) / fmax(fmax(fabs(num), fabs(g[i])), 1e-3));
    }
    return worst;
}

static void test_xent_gradient(void)
{
    CU_ASSERT(check(XENT, 1.0f) < 2e-3);
}
static void test_xent_weighted_gradient(void)
{
    CU_ASSERT(check(XENT, 2.5f) < 2e-3);
}
static void test_mse_gradient(void)
{
    CU_ASSERT(check(MSE, 1.0f) < 2e-3);
}
static void test_distill_gradient(void)
{
    CU_ASSERT(check(DISTILL, 1.0f) < 2e-3);
}
static void test_distill_weighted_gradient(void)
{
    CU_ASSERT(check(DISTILL, 0.5f) < 2e-3);
}

static void test_xent_values(void)
{
    /* logits (0, ln 3) with label 1: p = (1/4, 3/4), loss = -ln(3/4). */
    float l[4] = {0.0f, logf(3.0f), 5.0f, 0.0f};
    int32_t lab[2] = {1, 1};
    int64_t ok = -1;
    float g[4];
    double loss = ldn_loss_xent(l, lab, 2, 2, 1.0f, g, &ok);
    double expect = (-log(0.75) + (-log(1.0 / (1.0 + exp(5.0))))) / 2.0;
    CU_ASSERT_DOUBLE_EQUAL(loss, expect, 1e-6);
    CU_ASSERT_EQUAL(ok, 1);
    CU_ASSERT_DOUBLE_EQUAL(g[0], 0.25 / 2, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(g[1], -0.25 / 2, 1e-6);
    /* Large logits stay finite. */
    float big[2] = {1000.0f, -1000.0f};
    int32_t l0 = 1;
    CU_ASSERT(isfinite(ldn_loss_xent(big, &l0, 1, 2, 1.0f, g, NULL)));
    CU_ASSERT_DOUBLE_EQUAL(ldn_loss_xent(big, &l0, 1, 2, 1.0f, g, NULL), 2000.0, 1e-3);
}

static void test_mse_values(void)
{
    float p[3] = {1, 2, 3}, t[3] = {1, 0, 0};
    CU_ASSERT_DOUBLE_EQUAL(ldn_loss_mse(p, t, 1, 3, 1.0f, NULL), (0 + 4 + 9) / 3.0, 1e-9);
}

static void test_distill_values(void)
{
    setup();
    /* alpha = 0: plain cross-entropy. */
    double ce = ldn_loss_xent(z, y, B, C, 1.0f, NULL, NULL);
    CU_ASSERT_DOUBLE_EQUAL(ldn_loss_distill(z, teacher, y, B, C, 2.0f, 0.0f, 1.0f, NULL, NULL), ce,
                           1e-9);
    /* Teacher equal to the student's own softened probabilities: KL = 0. */
    float ps[B * C];
    ldn_softmax(z, ps, B, C, 3.0f);
    CU_ASSERT_DOUBLE_EQUAL(ldn_loss_distill(z, ps, y, B, C, 3.0f, 1.0f, 1.0f, NULL, NULL), 0.0,
                           1e-5);
    /* Hand-computed KL * T^2 for one row of two classes. */
    float zz[2] = {1.0f, 0.0f}, pt[2] = {0.5f, 0.5f};
    int32_t lab = 0;
    double T = 2.0, a = 1.0 / (1.0 + exp(-0.5)); /* p_s at T=2 */
    double kl = 0.5 * log(0.5 / a) + 0.5 * log(0.5 / (1 - a));
    CU_ASSERT_DOUBLE_EQUAL(ldn_loss_distill(zz, pt, &lab, 1, 2, 2.0f, 1.0f, 1.0f, NULL, NULL),
                           T * T * kl, 1e-6);
}

static void test_softmax_temperature(void)
{
    float l[3] = {1, 2, 3}, p[3];
    ldn_softmax(l, p, 1, 3, 1e6f);
    for (int j = 0; j < 3; j++)
        CU_ASSERT_DOUBLE_EQUAL(p[j], 1.0 / 3, 1e-5);
    ldn_softmax(l, p, 1, 3, 1.0f);
    CU_ASSERT_DOUBLE_EQUAL(p[0] + p[1] + p[2], 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[2] / p[1], exp(1.0), 1e-4);
}

static const struct ldn_cu_test TESTS[] = {
    {"xent gradient", test_xent_gradient},
    {"xent weighted gradient", test_xent_weighted_gradient},
    {"mse gradient", test_mse_gradient},
    {"distill gradient", test_distill_gradient},
    {"distill weighted gradient", test_distill_weighted_gradient},
    {"xent values", test_xent_values},
    {"mse values", test_mse_values},
    {"distill values", test_distill_values},
    {"softmax temperature", test_softmax_temperature},
    {NULL, NULL}};

LDN_CU_MAIN("loss", TESTS)
