/* Losses: values against hand computations and finite-difference gradients. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cu_main.h"
#include "loss.h"
#include "rng.h"
#include "status.h"

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

/* --- distillation: unlabelled rows, the report, annealing, ensembles --- */

/* Labels with two unlabelled rows (-1: no label for this head). */
static const int32_t y_part[B] = {0, -1, 4, -1};

/* Row i of softmax(l / t), in double. */
static void softmax_d(const float *l, int n, double t, double *p)
{
    double mx = l[0], sum = 0.0;
    for (int j = 1; j < n; j++)
        mx = fmax(mx, l[j]);
    for (int j = 0; j < n; j++)
        sum += p[j] = exp((l[j] - mx) / t);
    for (int j = 0; j < n; j++)
        p[j] /= sum;
}

/* KL(pt || softmax(l / t)) of one row, in double. */
static double kl_row(const float *l, const float *pt, int n, double t)
{
    double ps[16], kl = 0.0;
    softmax_d(l, n, t, ps);
    for (int j = 0; j < n; j++)
        if (pt[j] > 0.0f)
            kl += pt[j] * log(pt[j] / ps[j]);
    return kl;
}

struct fd_case {
    float t, alpha, scale;
    const int32_t *labels;
};

/* Worst error of ldn_loss_distill's gradient against central differences of its loss, as
 * |num - g| / max(|num|, |g|) where either |num - g| > 1e-4 (else 0). Teacher at the same T. */
static double distill_fd(const struct fd_case *c)
{
    setup();
    float tz[B * C];
    for (int i = 0; i < B * C; i++)
        tz[i] = 0.7f * z[(i + 7) % (B * C)] - 0.3f * (float)(i % C);
    ldn_softmax(tz, teacher, B, C, c->t);
    float g[B * C];
    ldn_loss_distill(z, teacher, c->labels, B, C, c->t, c->alpha, c->scale, g, NULL);
    double worst = 0.0;
    for (int i = 0; i < B * C; i++) {
        float keep = z[i], zp = keep + 1e-2f, zm = keep - 1e-2f;
        z[i] = zp;
        double lp = ldn_loss_distill(z, teacher, c->labels, B, C, c->t, c->alpha, 1.0f, NULL, NULL);
        z[i] = zm;
        double lm = ldn_loss_distill(z, teacher, c->labels, B, C, c->t, c->alpha, 1.0f, NULL, NULL);
        z[i] = keep;
        double num = c->scale * (lp - lm) / ((double)zp - (double)zm), err = fabs(num - g[i]);
        if (err > 1e-4)
            worst = fmax(worst, err / fmax(fabs(num), fabs(g[i])));
    }
    return worst;
}

static void test_distill_gradient_t_alpha(void)
{
    /* A linearly annealed round [100, 300) at step 150: distillation weight 0.75. */
    float annealed = (float)ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 150, 100, 300);
    CU_ASSERT_DOUBLE_EQUAL(annealed, 0.75, 1e-7);
    const float ts[] = {2.0f, 4.0f}, alphas[] = {0.3f, 1.0f, annealed};
    const int32_t *labels[] = {y, y_part};
    for (size_t a = 0; a < LDN_ARRAY_LEN(alphas); a++)
        for (size_t t = 0; t < LDN_ARRAY_LEN(ts); t++)
            for (size_t l = 0; l < LDN_ARRAY_LEN(labels); l++) {
                struct fd_case c = {ts[t], alphas[a], l ? 0.5f : 1.0f, labels[l]};
                double worst = distill_fd(&c);
                CU_ASSERT(worst < 1e-3);
                if (worst >= 1e-3)
                    printf("\n  T=%g alpha=%g labels %zu: worst %g", c.t, c.alpha, l, worst);
            }
}

static void test_distill_t1_alpha0_is_xent(void)
{
    setup();
    float gx[B * C], gd[B * C];
    int64_t cx = -1, cd = -2;
    double lx = ldn_loss_xent(z, y, B, C, 1.5f, gx, &cx);
    double ld = ldn_loss_distill(z, teacher, y, B, C, 1.0f, 0.0f, 1.5f, gd, &cd);
    CU_ASSERT(lx == ld);
    CU_ASSERT(memcmp(gx, gd, sizeof gx) == 0);
    CU_ASSERT_EQUAL(cx, cd);
}

static void test_distill_unlabelled_rows(void)
{
    setup();
    const float t = 3.0f, a = 0.4f, scale = 2.0f;
    float gall[B * C], gpart[B * C];
    int64_t ok_all = -1, ok_part = -1;
    ldn_loss_distill(z, teacher, y, B, C, t, a, scale, gall, &ok_all);
    double loss = ldn_loss_distill(z, teacher, y_part, B, C, t, a, scale, gpart, &ok_part);
    /* By hand: labelled rows carry both terms, unlabelled rows alpha T^2 KL; mean over B. */
    double expect = 0.0;
    int64_t ok = 0;
    for (int i = 0; i < B; i++) {
        const float *zi = z + i * C;
        double ps[C];
        expect += a * t * t * kl_row(zi, teacher + i * C, C, t);
        if (y_part[i] < 0) {
            /* Only the KL gradient: scale alpha T (softmax(z/T) - p_teacher) / B. */
            softmax_d(zi, C, t, ps);
            for (int j = 0; j < C; j++)
                CU_ASSERT_DOUBLE_EQUAL(gpart[i * C + j],
                                       scale * a * t * (ps[j] - teacher[i * C + j]) / B, 1e-6);
            continue;
        }
        softmax_d(zi, C, 1.0, ps);
        expect += (1.0 - a) * -log(ps[y_part[i]]);
        int top = 0;
        for (int j = 1; j < C; j++)
            top = zi[j] > zi[top] ? j : top;
        ok += top == y_part[i];
        /* A labelled row's gradient does not depend on the other rows' labels. */
        CU_ASSERT(memcmp(gall + i * C, gpart + i * C, C * sizeof(float)) == 0);
    }
    CU_ASSERT_DOUBLE_EQUAL(loss, expect / B, 1e-6);
    CU_ASSERT_EQUAL(ok_part, ok);
    /* With alpha = 1 the labels do not matter. */
    CU_ASSERT(ldn_loss_distill(z, teacher, y_part, B, C, t, 1.0f, 1.0f, NULL, NULL) ==
              ldn_loss_distill(z, teacher, y, B, C, t, 1.0f, 1.0f, NULL, NULL));
}

static void test_distill_correct_labelled_only(void)
{
    /* Three rows whose argmax is class 0; labels 0, -1, 0: two correct, not three. */
    float l[6] = {2, 0, 3, 1, 1, 0}, pt[6] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    int32_t lab[3] = {0, -1, 0};
    int64_t ok = -1;
    ldn_loss_distill(l, pt, lab, 3, 2, 2.0f, 0.5f, 1.0f, NULL, &ok);
    CU_ASSERT_EQUAL(ok, 2);
    lab[0] = 1;
    ldn_loss_distill(l, pt, lab, 3, 2, 2.0f, 0.5f, 1.0f, NULL, &ok);
    CU_ASSERT_EQUAL(ok, 1);
}

static void test_distill_report(void)
{
    setup();
    const float t = 2.0f, a = 0.3f;
    struct ldn_distill_report r = {-1.0, -1, -1};
    float g0[B * C], g1[B * C];
    int64_t c0, c1;
    double l0 = ldn_loss_distill(z, teacher, y_part, B, C, t, a, 1.0f, g0, &c0);
    double l1 = ldn_loss_distill_ex(z, teacher, y_part, B, C, t, a, 1.0f, g1, &c1, &r);
    /* The report changes nothing else. */
    CU_ASSERT(l0 == l1);
    CU_ASSERT(memcmp(g0, g1, sizeof g0) == 0);
    CU_ASSERT_EQUAL(c0, c1);
    double kl = 0.0;
    for (int i = 0; i < B; i++)
        kl += t * t * kl_row(z + i * C, teacher + i * C, C, t);
    CU_ASSERT_DOUBLE_EQUAL(r.kl, kl / B, 1e-6);
    CU_ASSERT(r.kl > 0.01);
    CU_ASSERT_EQUAL(r.labelled, 2);

    /* Hand-made: student top-1 per row 2, 0, 1, 1; teacher top-1 2, 0, 0, 1: three agree. */
    float s[4 * 3] = {0, 1, 5, 3, -1, 2, 0, 4, 1, -2, 7, 0};
    float p[4 * 3] = {0.1f, 0.2f, 0.7f, 0.6f, 0.3f, 0.1f, 0.5f, 0.4f, 0.1f, 0.2f, 0.5f, 0.3f};
    /* Labels unlike the teacher on rows 0, 2, 3: agreement is with the teacher, not a label. */
    int32_t lab[4] = {0, -1, 1, 0};
    ldn_loss_distill_ex(s, p, lab, 4, 3, 4.0f, 0.5f, 1.0f, NULL, NULL, &r);
    CU_ASSERT_EQUAL(r.agree, 3);
    CU_ASSERT_EQUAL(r.labelled, 3);
    /* The teacher equal to the student's softened probabilities: KL 0, all agree. */
    ldn_softmax(s, p, 4, 3, 4.0f);
    ldn_loss_distill_ex(s, p, lab, 4, 3, 4.0f, 0.5f, 1.0f, NULL, NULL, &r);
    CU_ASSERT_DOUBLE_EQUAL(r.kl, 0.0, 1e-6);
    CU_ASSERT_EQUAL(r.agree, 4);
}

static void test_distill_annealing(void)
{
    /* none: alpha at every step, inside the round or not. */
    const int64_t steps[] = {-5, 100, 150, 299, 300, 1000};
    for (size_t i = 0; i < LDN_ARRAY_LEN(steps); i++)
        CU_ASSERT(ldn_distill_alpha_at(LDN_ANNEAL_NONE, 0.3, steps[i], 100, 300) == 0.3);
    /* linear over [100, 300): all teacher at the start, all label at the end. */
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 100, 100, 300), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 200, 100, 300), 0.5, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 250, 100, 300), 0.25,
                           1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 299, 100, 300), 0.005,
                           1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 300, 100, 300), 0.0, 1e-12);
    /* Clamped outside the round. */
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 0, 100, 300), 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 400, 100, 300), 0.0, 1e-12);
    /* A round of one step. */
    CU_ASSERT_DOUBLE_EQUAL(ldn_distill_alpha_at(LDN_ANNEAL_LINEAR, 0.3, 7, 7, 8), 1.0, 1e-12);
}

static void test_ensemble_mean(void)
{
    float a[4] = {0.1f, 0.9f, 0.5f, 0.5f}, b[4] = {0.3f, 0.7f, 0.2f, 0.8f};
    float c[4] = {0.8f, 0.2f, 0.8f, 0.2f}, out[4];
    const float *two[] = {a, b}, *three[] = {a, b, c};
    ldn_ensemble_mean(two, 2, 2, 2, out);
    const double e2[4] = {0.2, 0.8, 0.35, 0.65};
    for (int k = 0; k < 4; k++)
        CU_ASSERT_DOUBLE_EQUAL(out[k], e2[k], 1e-6);
    /* Three members, out aliasing the first. */
    const double e3[4] = {0.4, 0.6, 0.5, 0.5};
    ldn_ensemble_mean(three, 3, 2, 2, a);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_DOUBLE_EQUAL(a[k], e3[k], 1e-6);
    /* One member: itself. */
    const float *one[] = {b};
    ldn_ensemble_mean(one, 1, 2, 2, out);
    CU_ASSERT(memcmp(out, b, sizeof out) == 0);
}

static void test_ensemble_softened(void)
{
    enum { M = 3 };
    struct ldn_rng r;
    ldn_rng_init(&r, 5, 1);
    float logits[M][B * C], probs[M][B * C], acc[B * C], mean[B * C];
    for (int m = 0; m < M; m++)
        for (int k = 0; k < B * C; k++)
            logits[m][k] = (float)(3.0 * ldn_rng_normal(&r));
    const float t = 2.5f;
    for (int m = 0; m < M; m++) {
        ldn_softmax(logits[m], probs[m], B, C, t);
        ldn_ensemble_add_softened(acc, logits[m], m, M, B, C, t);
    }
    const float *members[M] = {probs[0], probs[1], probs[2]};
    ldn_ensemble_mean(members, M, B, C, mean);
    CU_ASSERT(memcmp(acc, mean, sizeof acc) == 0);
    /* And against the softened mean computed here, in double. */
    for (int i = 0; i < B; i++) {
        double rowsum = 0.0, p[C], e[C] = {0};
        for (int m = 0; m < M; m++) {
            softmax_d(logits[m] + i * C, C, t, p);
            for (int j = 0; j < C; j++)
                e[j] += p[j] / M;
        }
        for (int j = 0; j < C; j++) {
            CU_ASSERT_DOUBLE_EQUAL(acc[i * C + j], e[j], 1e-6);
            rowsum += acc[i * C + j];
        }
        CU_ASSERT_DOUBLE_EQUAL(rowsum, 1.0, 1e-6);
    }
    /* One member: its softened probabilities. */
    ldn_ensemble_add_softened(acc, logits[1], 0, 1, B, C, t);
    CU_ASSERT(memcmp(acc, probs[1], sizeof acc) == 0);
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
    {"distill gradient at T 2, 4, alpha 0.3, 1, annealed, unlabelled rows",
     test_distill_gradient_t_alpha},
    {"distill T=1 alpha=0 is xent", test_distill_t1_alpha0_is_xent},
    {"distill unlabelled rows", test_distill_unlabelled_rows},
    {"distill correct counts labelled rows", test_distill_correct_labelled_only},
    {"distill report", test_distill_report},
    {"distill annealing", test_distill_annealing},
    {"ensemble mean", test_ensemble_mean},
    {"ensemble softened accumulator", test_ensemble_softened},
    {NULL, NULL}};

LDN_CU_MAIN("loss", TESTS)
