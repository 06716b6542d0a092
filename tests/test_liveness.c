/* Liveness: names of ranks, silence tracking, the record of lost workers, the timeout. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "job.h"
#include "liveness.h"
#include "plan.h"

static struct ldn_task_config tasks[2];

static void test_names(void)
{
    memset(tasks, 0, sizeof tasks);
    snprintf(tasks[0].name, sizeof tasks[0].name, "shoes");
    snprintf(tasks[1].name, sizeof tasks[1].name, "bags");
    struct ldn_config c = {
        .servers = 1, .tasks = tasks, .n_tasks = 2, .batch_size = 10, .epochs = 1};
    int64_t n[2] = {1000, 1000};
    char err[256], buf[256];
    /* 1 + 1 server + 3 workers: shoes on ranks 2..3, bags on 4 */
    struct ldn_plan *p = ldn_plan_new(&c, n, 5, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    char hosts[5][LDN_JOB_HOST_MAX] = {"h0", "h1", "h2", "h3", "node-7"};
    struct ldn_job job = {.cfg = &c, .plan = p, .rank = 0, .world = 5, .hosts = hosts};
    CU_ASSERT_STRING_EQUAL(ldn_liveness_name(&job, 0, buf, sizeof buf),
                           "the coordinator (rank 0, host h0)");
    CU_ASSERT_STRING_EQUAL(ldn_liveness_name(&job, 1, buf, sizeof buf), "server rank 1 (host h1)");
    int g = p->group_of_rank[4];
    char want[128];
    snprintf(want, sizeof want, "worker rank 4 (group %d: task %s; host node-7)", g,
             tasks[p->groups[g].tasks[0]].name);
    CU_ASSERT_STRING_EQUAL(ldn_liveness_name(&job, 4, buf, sizeof buf), want);
    CU_ASSERT_STRING_EQUAL(ldn_liveness_name(&job, 9, buf, sizeof buf), "rank 9");
    job.hosts = NULL; /* before the hosts are known */
    CU_ASSERT(strstr(ldn_liveness_name(&job, 2, buf, sizeof buf), "host ?)") != NULL);
    ldn_plan_destroy(&p);
}

static void test_silence(void)
{
    ldn_liveness_reset_lost();
    struct ldn_liveness *l = ldn_liveness_new(6, 3.0, 100.0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(ldn_liveness_expired(l, 1, 6, 103.0), -1); /* exactly the timeout: alive */
    for (int r = 0; r < 6; r++)
        if (r != 4)
            ldn_liveness_seen(l, r, 102.0);
    CU_ASSERT_DOUBLE_EQUAL(ldn_liveness_silent(l, 4, 104.5), 4.5, 1e-12);
    CU_ASSERT_EQUAL(ldn_liveness_expired(l, 1, 6, 103.5), 4);
    CU_ASSERT_EQUAL(ldn_liveness_expired(l, 1, 4, 103.5), -1); /* outside the range asked */
    /* a lost rank is not expired again */
    CU_ASSERT_EQUAL(ldn_liveness_note_lost(4), 1);
    CU_ASSERT_EQUAL(ldn_liveness_note_lost(4), 0);
    CU_ASSERT_EQUAL(ldn_liveness_expired(l, 1, 6, 103.5), -1);
    CU_ASSERT_EQUAL(ldn_liveness_expired(l, 1, 6, 105.5), 1);
    ldn_liveness_seen(l, 99, 1.0); /* out of range: ignored */
    ldn_liveness_destroy(&l);
    CU_ASSERT_PTR_NULL(l);
    ldn_liveness_destroy(&l);
}

static void test_lost_record(void)
{
    ldn_liveness_reset_lost();
    char buf[64];
    CU_ASSERT_EQUAL(ldn_liveness_lost_count(), 0);
    CU_ASSERT_STRING_EQUAL(ldn_liveness_lost_list(buf, sizeof buf), "");
    ldn_liveness_note_lost(7);
    ldn_liveness_note_lost(3);
    CU_ASSERT_EQUAL(ldn_liveness_note_lost(-1), 0);
    CU_ASSERT_EQUAL(ldn_liveness_lost_count(), 2);
    CU_ASSERT(ldn_liveness_is_lost(3) && ldn_liveness_is_lost(7) && !ldn_liveness_is_lost(5));
    CU_ASSERT_STRING_EQUAL(ldn_liveness_lost_list(buf, sizeof buf), "3, 7");
    ldn_liveness_reset_lost();
    CU_ASSERT_EQUAL(ldn_liveness_lost_count(), 0);
}

static void test_timeout_and_recovery(void)
{
    struct ldn_config c = {.timeout_s = 60, .liveness_s = 10};
    CU_ASSERT_DOUBLE_EQUAL(ldn_liveness_timeout(&c), 10.0, 0);
    c.timeout_s = 5;
    CU_ASSERT_DOUBLE_EQUAL(ldn_liveness_timeout(&c), 5.0, 0); /* capped by ps.timeout */
    unsetenv("OMPI_MCA_orte_enable_recovery");
    CU_ASSERT_FALSE(ldn_liveness_recovery_on());
    setenv("OMPI_MCA_orte_enable_recovery", "1", 1);
    CU_ASSERT_TRUE(ldn_liveness_recovery_on());
    setenv("OMPI_MCA_orte_enable_recovery", "0", 1);
    CU_ASSERT_FALSE(ldn_liveness_recovery_on());
    unsetenv("OMPI_MCA_orte_enable_recovery");
}

static const struct ldn_cu_test TESTS[] = {{"names", test_names},
                                           {"silence", test_silence},
                                           {"lost record", test_lost_record},
                                           {"timeout and recovery", test_timeout_and_recovery},
                                           {NULL, NULL}};

LDN_CU_MAIN("liveness", TESTS)
