/* Job plan: roles, task groups, key ranges and the chunk table. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "keyspace.h"
#include "nn.h"
#include "plan.h"
#include "status.h"

static struct ldn_task_config tasks[5];

static struct ldn_config cfg_with(int n_tasks, int servers)
{
    memset(tasks, 0, sizeof tasks);
    for (int t = 0; t < n_tasks; t++)
        snprintf(tasks[t].name, sizeof tasks[t].name, "t%d", t);
    struct ldn_config c = {
        .servers = servers, .tasks = tasks, .n_tasks = n_tasks, .batch_size = 10, .epochs = 1};
    return c;
}

static void test_one_group_per_task(void)
{
    struct ldn_config c = cfg_with(3, 2);
    int64_t n[3] = {4000, 1000, 1000};
    char err[256];
    /* 1 + 2 servers + 6 workers: every task one worker, the 3 spare by rows -> 4/1/1 */
    struct ldn_plan *p = ldn_plan_new(&c, n, 9, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->n_groups, 3);
    CU_ASSERT_EQUAL(p->groups[0].n_ranks, 4);
    CU_ASSERT_EQUAL(p->groups[1].n_ranks, 1);
    CU_ASSERT_EQUAL(p->groups[2].n_ranks, 1);
    CU_ASSERT_EQUAL(p->groups[0].ranks[0], 3);
    CU_ASSERT_EQUAL(p->groups[2].ranks[0], 8);
    CU_ASSERT_EQUAL(ldn_plan_role(p, 0), LDN_ROLE_COORD);
    CU_ASSERT_EQUAL(ldn_plan_role(p, 2), LDN_ROLE_SERVER);
    CU_ASSERT_EQUAL(ldn_plan_role(p, 3), LDN_ROLE_WORKER);
    CU_ASSERT_EQUAL(p->group_of_rank[7], 1);
    /* steps per epoch: max over groups of ceil(N / (batch * ranks)) = max(100, 100, 100) */
    CU_ASSERT_EQUAL(ldn_plan_steps_per_epoch(p, &c, n), 100);
    ldn_plan_destroy(&p);
    CU_ASSERT_PTR_NULL(p);
}

static void test_group_participation(void)
{
    struct ldn_config c = cfg_with(3, 1);
    c.sampling_alpha = 0.75;
    c.seed = 9;
    int64_t n[3] = {4000, 1000, 1000};
    char err[256];
    struct ldn_plan *p = ldn_plan_new(&c, n, 5, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_DOUBLE_EQUAL(ldn_plan_group_prob(p, &c, n, 0), 1.0, 1e-12);
    double q = pow(1000.0 / 4000.0, 0.75);
    CU_ASSERT_DOUBLE_EQUAL(ldn_plan_group_prob(p, &c, n, 1), q, 1e-12);
    int trains = 0, steps = 20000;
    for (int s = 0; s < steps; s++) {
        CU_ASSERT(ldn_plan_group_trains(1.0, c.seed, 0, s));
        trains += ldn_plan_group_trains(q, c.seed, 1, s);
        /* the same (seed, group, step) always draws the same */
        CU_ASSERT_EQUAL(ldn_plan_group_trains(q, c.seed, 1, s),
                        ldn_plan_group_trains(q, c.seed, 1, s));
    }
    CU_ASSERT(fabs((double)trains / steps - q) < 5 * sqrt(q * (1 - q) / steps));
    ldn_plan_destroy(&p);
}

static void test_fewer_workers_than_tasks(void)
{
    struct ldn_config c = cfg_with(5, 1);
    int64_t n[5] = {100, 500, 300, 200, 400};
    char err[256];
    struct ldn_plan *p = ldn_plan_new(&c, n, 4, err, sizeof err); /* 2 workers */
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p->n_groups, 2);
    int64_t load[2] = {0, 0};
    int hosted = 0;
    for (int g = 0; g < 2; g++) {
        CU_ASSERT_EQUAL(p->groups[g].n_ranks, 1);
        for (int i = 0; i < p->groups[g].n_tasks; i++) {
            load[g] += n[p->groups[g].tasks[i]];
            hosted++;
        }
    }
    CU_ASSERT_EQUAL(hosted, 5);
    CU_ASSERT(llabs(load[0] - load[1]) <= 100); /* LPT: 500+200+... vs 400+300+100 */
    ldn_plan_destroy(&p);
}

static void test_rank_count_errors(void)
{
    struct ldn_config c = cfg_with(2, 2);
    int64_t n[2] = {10, 10};
    char err[256] = "";
    CU_ASSERT_PTR_NULL(ldn_plan_new(&c, n, 3, err, sizeof err));
    CU_ASSERT(strstr(err, "3 ranks are too few") != NULL);
    tasks[0].workers = 3;
    CU_ASSERT_PTR_NULL(ldn_plan_new(&c, n, 5, err, sizeof err));
    CU_ASSERT(strstr(err, "workers settings need 3 (+1") != NULL);
    tasks[1].workers = 1;
    CU_ASSERT_PTR_NULL(ldn_plan_new(&c, n, 8, err, sizeof err)); /* 5 workers, 4 wanted */
    CU_ASSERT(strstr(err, "add up to 4") != NULL);
}

static void test_partition_and_chunks(void)
{
    int widths[] = {100, 50};
    struct ldn_nn *trunk = ldn_nn_new_mlp(30, widths, 2, 0, LDN_ACT_RELU, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(trunk);
    for (int S = 1; S <= 5; S++) {
        struct ldn_range r[5];
        double imb = -1;
        char err[256];
        CU_ASSERT_EQUAL_FATAL(ldn_keyspace_partition(trunk, S, r, &imb, err, sizeof err), 0);
        CU_ASSERT_EQUAL(r[0].lo, 0);
        CU_ASSERT_EQUAL(r[S - 1].hi, trunk->n_params);
        for (int s = 0; s < S; s++) {
            CU_ASSERT(r[s].hi > r[s].lo);
            if (s > 0)
                CU_ASSERT_EQUAL(r[s].lo, r[s - 1].hi);
            /* every cut is a row boundary of some layer */
            int on_row = 0;
            for (int l = 0; l < trunk->n_layers; l++) {
                const struct ldn_layer *ly = &trunk->layers[l];
                int64_t rel = r[s].lo - ly->offset;
                on_row |= rel >= 0 && rel <= ly->n_params && rel % ly->row_len == 0;
            }
            CU_ASSERT(on_row);
        }
        CU_ASSERT(imb >= 0 && imb < 0.15); /* rows of 31 or 101 keys: near even */
        struct ldn_chunk *ch = NULL;
        int n = ldn_keyspace_chunks(trunk, r, S, 2048, &ch, err, sizeof err);
        CU_ASSERT_FATAL(n > 0);
        int64_t next = 0;
        for (int k = 0; k < n; k++) { /* tile the key space, inside one server and one layer */
            CU_ASSERT_EQUAL(ch[k].lo, next);
            next = ch[k].hi;
            CU_ASSERT(ch[k].lo >= r[ch[k].server].lo && ch[k].hi <= r[ch[k].server].hi);
            const struct ldn_layer *ly = &trunk->layers[ch[k].layer];
            CU_ASSERT_EQUAL(ch[k].lo, ly->offset + (int64_t)ch[k].row_lo * ly->row_len);
            CU_ASSERT_EQUAL(ch[k].hi, ly->offset + (int64_t)ch[k].row_hi * ly->row_len);
            CU_ASSERT(ch[k].hi - ch[k].lo <= 2048 / 4 + ly->row_len);
            CU_ASSERT_EQUAL(ldn_keyspace_find_chunk(ch, n, ch[k].lo), k);
        }
        CU_ASSERT_EQUAL(next, trunk->n_params);
        CU_ASSERT_EQUAL(ldn_keyspace_find_chunk(ch, n, 1), -1);
        free(ch);
    }
    struct ldn_range r[200];
    double imb;
    char err[256] = "";
    CU_ASSERT_EQUAL(ldn_keyspace_partition(trunk, 151, r, &imb, err, sizeof err), LDN_ERR_CONFIG);
    CU_ASSERT(strstr(err, "150 rows") != NULL);
    ldn_nn_destroy(&trunk);
}

static const struct ldn_cu_test TESTS[] = {
    {"one group per task", test_one_group_per_task},
    {"fewer workers than tasks", test_fewer_workers_than_tasks},
    {"group participation", test_group_participation},
    {"rank count errors", test_rank_count_errors},
    {"partition and chunks", test_partition_and_chunks},
    {NULL, NULL}};

LDN_CU_MAIN("plan", TESTS)
