/* Optimizers and learning-rate schedules against hand-computed values. */
#include <math.h>
#include <string.h>

#include "cu_main.h"
#include "optim.h"

static struct ldn_optim_config sgd(double lr, double mu, int nesterov, double wd)
{
    return (struct ldn_optim_config){
        .kind = LDN_OPTIM_SGD, .lr = lr, .momentum = mu, .nesterov = nesterov, .weight_decay = wd};
}

static void test_sgd_plain(void)
{
    struct ldn_optim_config c = sgd(0.1, 0.0, 0, 0.0);
    struct ldn_optim *o = ldn_optim_new(&c, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, 1.0f};
    ldn_optim_step(o, p, g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p[0], 0.95, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(p[1], -2.1, 1e-7);
    ldn_optim_destroy(&o);
    CU_ASSERT_PTR_NULL(o);
}

static void test_sgd_momentum_wd(void)
{
    /* mu 0.9, wd 0.01, lr 0.1, g = 1 each step, p0 = 1:
     * step1: g' = 1 + 0.01*1 = 1.01; b = 1.01; p = 1 - 0.101 = 0.899
     * step2: g' = 1 + 0.00899 = 1.00899; b = 0.909 + 1.00899 = 1.91799; p = 0.899 - 0.191799 */
    struct ldn_optim_config c = sgd(0.1, 0.9, 0, 0.01);
    struct ldn_optim *o = ldn_optim_new(&c, 1);
    float p = 1.0f, g = 1.0f;
    ldn_optim_step(o, &p, &g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p, 0.899, 1e-6);
    ldn_optim_step(o, &p, &g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p, 0.899 - 0.191799, 1e-6);
    ldn_optim_destroy(&o);
}

static void test_sgd_nesterov(void)
{
    /* mu 0.5, lr 1, g = 1: step1 b = 1, update g + mu*b = 1.5 -> p = -1.5;
     * step2 b = 1.5, update 1 + 0.75 = 1.75 -> p = -3.25 */
    struct ldn_optim_config c = sgd(1.0, 0.5, 1, 0.0);
    struct ldn_optim *o = ldn_optim_new(&c, 1);
    float p = 0.0f, g = 1.0f;
    ldn_optim_step(o, &p, &g, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(p, -1.5, 1e-7);
    ldn_optim_step(o, &p, &g, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(p, -3.25, 1e-7);
    ldn_optim_destroy(&o);
}

static void test_adam(void)
{
    /* First Adam step moves every parameter by lr * sign(g) (bias-corrected m/sqrt(v) = +-1). */
    struct ldn_optim_config c = {
        .kind = LDN_OPTIM_ADAM, .lr = 0.01, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    struct ldn_optim *o = ldn_optim_new(&c, 2);
    float p[2] = {0.0f, 0.0f}, g[2] = {3.0f, -0.2f};
    ldn_optim_step(o, p, g, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(p[0], -0.01, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p[1], 0.01, 1e-6);
    /* Second step with g2: m = 0.9*0.1*g1 + 0.1*g2 ... computed in double here. */
    float g2[2] = {1.0f, 1.0f};
    ldn_optim_step(o, p, g2, 0.01);
    for (int i = 0; i < 2; i++) {
        double g1 = i == 0 ? 3.0 : -0.2;
        double m = 0.9 * (0.1 * g1) + 0.1 * 1.0, v = 0.999 * (0.001 * g1 * g1) + 0.001 * 1.0;
        double mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999);
        double expect = (i == 0 ? -0.01 : 0.01) - 0.01 * mh / (sqrt(vh) + 1e-8);
        CU_ASSERT_DOUBLE_EQUAL(p[i], expect, 1e-6);
    }
    ldn_optim_destroy(&o);
}

static void test_adamw_decoupled(void)
{
    /* Zero gradient: Adam with L2 moves by lr*sign(wd*p); AdamW only shrinks p by lr*wd*p. */
    struct ldn_optim_config c = {.kind = LDN_OPTIM_ADAMW,
                                 .lr = 0.1,
                                 .beta1 = 0.9,
                                 .beta2 = 0.999,
                                 .eps = 1e-8,
                                 .weight_decay = 0.5};
    struct ldn_optim *o = ldn_optim_new(&c, 1);
    float p = 2.0f, g = 0.0f;
    ldn_optim_step(o, &p, &g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p, 2.0 - 0.1 * 0.5 * 2.0, 1e-6);
    ldn_optim_destroy(&o);
    c.kind = LDN_OPTIM_ADAM;
    o = ldn_optim_new(&c, 1);
    p = 2.0f;
    ldn_optim_step(o, &p, &g, 0.1);
    CU_ASSERT_DOUBLE_EQUAL(p, 2.0 - 0.1, 1e-6);
    ldn_optim_destroy(&o);
}

static void test_lr_schedules(void)
{
    struct ldn_lr_config c = {.kind = LDN_LR_CONSTANT};
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 500, 1000, 100), 0.1, 1e-12);
    c.warmup_steps = 10;
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 0, 1000, 100), 0.01, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 4, 1000, 100), 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 10, 1000, 100), 0.1, 1e-12);
    c = (struct ldn_lr_config){.kind = LDN_LR_STEP, .step_epochs = 2, .gamma = 0.5};
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 199, 1000, 100), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 200, 1000, 100), 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 450, 1000, 100), 0.025, 1e-12);
    c = (struct ldn_lr_config){.kind = LDN_LR_COSINE, .warmup_steps = 100, .min_lr = 0.001};
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 100, 1100, 100), 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 600, 1100, 100), 0.001 + 0.5 * 0.099, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(ldn_lr_at(&c, 0.1, 1100, 1100, 100), 0.001, 1e-12);
}

/* Updating disjoint key ranges one at a time equals one update of the whole vector. */
static void test_update_by_ranges(void)
{
    for (int kind = 0; kind < 3; kind++) {
        struct ldn_optim_config c = {.kind = (enum ldn_optim_kind)kind,
                                     .lr = 0.1,
                                     .momentum = 0.9,
                                     .beta1 = 0.9,
                                     .beta2 = 0.99,
                                     .eps = 1e-8,
                                     .weight_decay = 0.01};
        struct ldn_optim *a = ldn_optim_new(&c, 10), *b = ldn_optim_new(&c, 10);
        float pa[10], pb[10], g[10];
        for (int i = 0; i < 10; i++) {
            pa[i] = pb[i] = 0.1f * (float)i;
            g[i] = 0.3f - 0.05f * (float)i;
        }
        for (int t = 1; t <= 3; t++) {
            ldn_optim_step(a, pa, g, 0.1);
            ldn_optim_update(b, pb, g, 6, 10, t, 0.1);
            ldn_optim_update(b, pb, g, 0, 6, t, 0.1);
        }
        CU_ASSERT(memcmp(pa, pb, sizeof pa) == 0);
        ldn_optim_destroy(&a);
        ldn_optim_destroy(&b);
    }
}

static const struct ldn_cu_test TESTS[] = {{"update by key ranges", test_update_by_ranges},
                                           {"sgd plain", test_sgd_plain},
                                           {"sgd momentum + weight decay", test_sgd_momentum_wd},
                                           {"sgd nesterov", test_sgd_nesterov},
                                           {"adam", test_adam},
                                           {"adamw decoupled decay", test_adamw_decoupled},
                                           {"lr schedules", test_lr_schedules},
                                           {NULL, NULL}};

LDN_CU_MAIN("optim", TESTS)
