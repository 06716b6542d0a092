/* The servers' consistency rule: what a bsp step waits for (a live set), sat-out clocks,
 * ssp's staleness bound, and what taking a worker out changes. */
#include <stdint.h>
#include <string.h>

#include "consistency.h"
#include "cu_main.h"

static const int RANKS[] = {3, 4, 5};

static struct ldn_cons *make(enum ldn_consistency mode, int staleness)
{
    struct ldn_cons *c = ldn_cons_new(mode, staleness, 3, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static void test_bsp_step_waits_for_every_worker(void)
{
    struct ldn_cons *c = make(LDN_BSP, 0);
    CU_ASSERT_FALSE(ldn_cons_step_open(c, NULL));
    CU_ASSERT_EQUAL(ldn_cons_push(c, 0, 0, 1.0), 0);
    double since = 0;
    CU_ASSERT_TRUE(ldn_cons_step_open(c, &since));
    CU_ASSERT_EQUAL(since, 1.0);
    CU_ASSERT_TRUE(ldn_cons_has(c, 0, 0));
    CU_ASSERT_FALSE(ldn_cons_has(c, 0, 1));
    CU_ASSERT_EQUAL(ldn_cons_push(c, 0, 1, 2.0), LDN_CONS_CLOCKED); /* w0's whole push */
    CU_ASSERT_EQUAL(c->clock[0], 1);
    CU_ASSERT_EQUAL(ldn_cons_expected(c, 0), 0); /* bsp: the open step, still */
    CU_ASSERT_EQUAL(ldn_cons_push(c, 1, 0, 3.0), 0);
    char missing[64];
    ldn_cons_missing(c, RANKS, missing, sizeof missing);
    CU_ASSERT_STRING_EQUAL(missing, "4, 5");
    CU_ASSERT_EQUAL(ldn_cons_push(c, 2, 0, 4.0), LDN_CONS_READY);
    CU_ASSERT_TRUE(ldn_cons_ready(c, 0));
    CU_ASSERT_FALSE(ldn_cons_ready(c, 1));
    CU_ASSERT_EQUAL(ldn_cons_applied(c, 0), 0);
    CU_ASSERT_FALSE(ldn_cons_ready(c, 0));
    CU_ASSERT_EQUAL(ldn_cons_push(c, 1, 1, 5.0), LDN_CONS_CLOCKED);
    CU_ASSERT_EQUAL(ldn_cons_push(c, 2, 1, 6.0), LDN_CONS_CLOCKED | LDN_CONS_READY);
    CU_ASSERT_TRUE(ldn_cons_in_step(c, 2));
    CU_ASSERT_EQUAL(ldn_cons_applied(c, 1), 1); /* the step is complete */
    CU_ASSERT_EQUAL(c->step, 1);
    CU_ASSERT_FALSE(ldn_cons_step_open(c, NULL));
    CU_ASSERT_FALSE(ldn_cons_has(c, 0, 0));
    CU_ASSERT_FALSE(ldn_cons_in_step(c, 2));
    CU_ASSERT_TRUE(ldn_cons_settled(c, 1));
    CU_ASSERT_FALSE(ldn_cons_settled(c, 2));
    ldn_cons_destroy(&c);
    CU_ASSERT_PTR_NULL(c);
}

/* A group that sat the step out: its clock counts for every chunk, its gradient for none. */
static void test_bsp_clock(void)
{
    struct ldn_cons *c = make(LDN_BSP, 0);
    CU_ASSERT_TRUE(ldn_cons_clock_ok(c, 1, 0));
    CU_ASSERT_FALSE(ldn_cons_clock_ok(c, 1, 1)); /* not the open step */
    ldn_cons_push(c, 0, 0, 0);
    CU_ASSERT_FALSE(ldn_cons_clock_ok(c, 0, 0)); /* w0 already pushed a chunk of it */
    ldn_cons_push(c, 0, 1, 0);
    ldn_cons_clock(c, 1, 0);
    CU_ASSERT_FALSE(ldn_cons_clock_ok(c, 1, 0)); /* once */
    CU_ASSERT_FALSE(ldn_cons_in_step(c, 1));
    CU_ASSERT_TRUE(ldn_cons_in_step(c, 0));
    CU_ASSERT_FALSE(ldn_cons_ready(c, 0));
    ldn_cons_clock(c, 2, 0);
    CU_ASSERT_TRUE(ldn_cons_ready(c, 0));
    CU_ASSERT_TRUE(ldn_cons_ready(c, 1));
    ldn_cons_applied(c, 0);
    CU_ASSERT_EQUAL(ldn_cons_applied(c, 1), 1);
    for (int w = 0; w < 3; w++)
        CU_ASSERT_EQUAL(c->clock[w], 1);
    ldn_cons_destroy(&c);
}

/* Taking a worker out: the step no longer waits for it, and its pushes do not count. */
static void test_live_set(void)
{
    struct ldn_cons *c = make(LDN_BSP, 0);
    ldn_cons_push(c, 0, 0, 0);
    ldn_cons_push(c, 1, 0, 0);
    ldn_cons_push(c, 1, 1, 0);
    ldn_cons_push(c, 2, 1, 0);
    CU_ASSERT_FALSE(ldn_cons_ready(c, 0));
    CU_ASSERT_EQUAL(ldn_cons_remove(c, 2), 1);
    CU_ASSERT_EQUAL(ldn_cons_remove(c, 2), 0);
    CU_ASSERT_EQUAL(c->n_live, 2);
    CU_ASSERT_TRUE(ldn_cons_ready(c, 0));  /* w0 and w1 are in */
    CU_ASSERT_FALSE(ldn_cons_ready(c, 1)); /* w0's chunk 1 is not; w2's does not count */
    CU_ASSERT_FALSE(ldn_cons_in_step(c, 2));
    char missing[64];
    ldn_cons_missing(c, RANKS, missing, sizeof missing);
    CU_ASSERT_STRING_EQUAL(missing, "3");
    CU_ASSERT_EQUAL(ldn_cons_push(c, 0, 1, 0), LDN_CONS_CLOCKED | LDN_CONS_READY);
    ldn_cons_applied(c, 0);
    CU_ASSERT_EQUAL(ldn_cons_applied(c, 1), 1);
    CU_ASSERT_EQUAL(ldn_cons_min_clock(c), 1); /* w2 (clock 0) is out */
    ldn_cons_destroy(&c);
}

static void test_ssp_staleness(void)
{
    struct ldn_cons *c = make(LDN_SSP, 1);
    for (int k = 0; k < 2; k++) { /* w0 two clocks ahead of the others */
        ldn_cons_push(c, 0, k, 0);
        CU_ASSERT_EQUAL(ldn_cons_expected(c, 0), k == 0 ? 0 : 1);
    }
    CU_ASSERT_EQUAL(ldn_cons_expected(c, 0), 1);
    CU_ASSERT_FALSE(ldn_cons_has(c, 0, 0)); /* ssp: got is per clock */
    ldn_cons_push(c, 0, 0, 0);
    CU_ASSERT_EQUAL(ldn_cons_push(c, 0, 1, 0), LDN_CONS_CLOCKED);
    CU_ASSERT_EQUAL(c->clock[0], 2);
    CU_ASSERT_FALSE(ldn_cons_ready(c, 0));        /* never under ssp: pushes apply on arrival */
    CU_ASSERT_TRUE(ldn_cons_may_serve(c, 0, 1));  /* slowest 0 >= 1 - 1 */
    CU_ASSERT_FALSE(ldn_cons_may_serve(c, 0, 2)); /* slowest 0 < 2 - 1 */
    CU_ASSERT_FALSE(ldn_cons_may_serve(c, 1, 1)); /* w1's own push is not in */
    CU_ASSERT_FALSE(ldn_cons_settled(c, 1));
    ldn_cons_remove(c, 1);
    ldn_cons_remove(c, 2);
    CU_ASSERT_TRUE(ldn_cons_may_serve(c, 0, 2)); /* the slowest live worker is w0 itself */
    CU_ASSERT_TRUE(ldn_cons_settled(c, 2));
    ldn_cons_destroy(&c);
    c = make(LDN_ASYNC, 0);
    ldn_cons_push(c, 0, 0, 0);
    ldn_cons_push(c, 0, 1, 0);
    CU_ASSERT_TRUE(ldn_cons_may_serve(c, 0, 1)); /* no bound */
    ldn_cons_start_at(c, 9);
    CU_ASSERT_EQUAL(ldn_cons_min_clock(c), 9);
    CU_ASSERT_EQUAL(ldn_cons_expected(c, 2), 9);
    ldn_cons_destroy(&c);
}

static const struct ldn_cu_test TESTS[] = {
    {"bsp step waits for every worker", test_bsp_step_waits_for_every_worker},
    {"bsp clock", test_bsp_clock},
    {"live set", test_live_set},
    {"ssp staleness", test_ssp_staleness},
    {NULL, NULL},
};

LDN_CU_MAIN("consistency", TESTS)
