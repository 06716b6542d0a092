/* RNG streams, the global task schedule and the batcher. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "rng.h"
#include "schedule.h"

static void test_reproducible_streams(void)
{
    struct ldn_rng a, b, c;
    ldn_rng_init(&a, 42, 3);
    ldn_rng_init(&b, 42, 3);
    ldn_rng_init(&c, 42, 4);
    int same_c = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = ldn_rng_u64(&a);
        CU_ASSERT_EQUAL(x, ldn_rng_u64(&b));
        same_c += x == ldn_rng_u64(&c);
    }
    CU_ASSERT_EQUAL(same_c, 0);
}

static void test_distributions(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 1, 0);
    const int n = 200000;
    double s = 0, s2 = 0, u = 0;
    int64_t counts[7] = {0};
    for (int i = 0; i < n; i++) {
        double x = ldn_rng_normal(&r);
        s += x;
        s2 += x * x;
        double v = ldn_rng_uniform(&r);
        CU_ASSERT(v >= 0.0 && v < 1.0);
        u += v;
        counts[ldn_rng_below(&r, 7)]++;
    }
    /* 5 standard errors */
    CU_ASSERT(fabs(s / n) < 5.0 / sqrt(n));
    CU_ASSERT(fabs(s2 / n - 1.0) < 5.0 * sqrt(2.0 / n));
    CU_ASSERT(fabs(u / n - 0.5) < 5.0 * sqrt(1.0 / 12 / n));
    for (int k = 0; k < 7; k++)
        CU_ASSERT(fabs((double)counts[k] - n / 7.0) < 5.0 * sqrt(n / 7.0));
}

/* fill_u32 is the 64-bit stream cut in halves, low half first; an odd count uses one more. */
static void test_fill_u32(void)
{
    struct ldn_rng a, b;
    ldn_rng_init(&a, 9, 1);
    b = a;
    uint32_t w[7];
    ldn_rng_fill_u32(&a, w, 7);
    for (int i = 0; i < 7; i += 2) {
        uint64_t v = ldn_rng_u64(&b);
        CU_ASSERT_EQUAL(w[i], (uint32_t)v);
        if (i + 1 < 7)
            CU_ASSERT_EQUAL(w[i + 1], (uint32_t)(v >> 32));
    }
    CU_ASSERT_EQUAL(ldn_rng_u64(&a), ldn_rng_u64(&b));
}

static void test_shuffle_is_permutation(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 2, 0);
    int64_t idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    ldn_rng_shuffle(&r, idx, 100);
    int seen[100] = {0}, moved = 0;
    for (int i = 0; i < 100; i++) {
        seen[idx[i]]++;
        moved += idx[i] != i;
    }
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(seen[i], 1);
    CU_ASSERT(moved > 80);
}

static void test_schedule_proportions(void)
{
    struct ldn_task_config tasks[3] = {{.name = "a"}, {.name = "b"}, {.name = "c"}};
    struct ldn_config cfg = {.seed = 7,
                             .tasks = tasks,
                             .n_tasks = 3,
                             .batch_size = 100,
                             .epochs = 2,
                             .sampling = LDN_SAMPLE_POWER,
                             .sampling_alpha = 0.75};
    int64_t n[3] = {40000, 10000, 10000};
    struct ldn_schedule s;
    CU_ASSERT_EQUAL_FATAL(ldn_schedule_init(&s, &cfg, n, NULL, 0), 0);
    CU_ASSERT_EQUAL(s.steps_per_epoch, 600);
    CU_ASSERT_EQUAL(s.total_steps, 1200);
    int64_t counts[3] = {0};
    const int64_t steps = 100000;
    for (int64_t i = 0; i < steps; i++)
        counts[ldn_schedule_task(&s, i)]++;
    double w[3], tot = 0;
    for (int t = 0; t < 3; t++)
        tot += (w[t] = pow((double)n[t], 0.75));
    for (int t = 0; t < 3; t++) {
        double p = w[t] / tot;
        CU_ASSERT(fabs((double)counts[t] / steps - p) < 5.0 * sqrt(p * (1 - p) / steps));
    }
    /* A pure function of (seed, step). */
    CU_ASSERT_EQUAL(ldn_schedule_task(&s, 12345), ldn_schedule_task(&s, 12345));
    ldn_schedule_deinit(&s);
    cfg.sampling = LDN_SAMPLE_ROUND_ROBIN;
    CU_ASSERT_EQUAL_FATAL(ldn_schedule_init(&s, &cfg, n, NULL, 0), 0);
    for (int64_t i = 0; i < 9; i++)
        CU_ASSERT_EQUAL(ldn_schedule_task(&s, i), (int)(i % 3));
    ldn_schedule_deinit(&s);
}

static void test_batcher_covers_each_pass(void)
{
    struct ldn_batcher b;
    CU_ASSERT_EQUAL_FATAL(ldn_batcher_init(&b, 10, 1, 5), 0);
    int64_t idx[10];
    int seen[10] = {0};
    /* Two full batches of 4 then 2 rows left: the third batch starts a new pass. */
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_EQUAL(ldn_batcher_next(&b, 4, idx), 4);
        for (int i = 0; i < 4; i++)
            seen[idx[i]]++;
    }
    for (int i = 0; i < 10; i++)
        CU_ASSERT(seen[i] <= 1);
    CU_ASSERT_EQUAL(b.passes, 0);
    CU_ASSERT_EQUAL(ldn_batcher_next(&b, 4, idx), 4);
    CU_ASSERT_EQUAL(b.passes, 1);
    /* A batch larger than the data gives the whole data. */
    CU_ASSERT_EQUAL(ldn_batcher_next(&b, 50, idx), 10);
    ldn_batcher_deinit(&b);
}

static const struct ldn_cu_test TESTS[] = {
    {"reproducible, independent streams", test_reproducible_streams},
    {"distributions", test_distributions},
    {"fill_u32 halves the 64-bit stream", test_fill_u32},
    {"shuffle is a permutation", test_shuffle_is_permutation},
    {"schedule proportions", test_schedule_proportions},
    {"batcher covers each pass", test_batcher_covers_each_pass},
    {NULL, NULL}};

LDN_CU_MAIN("rng", TESTS)
