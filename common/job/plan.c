/* The job plan: roles, task groups, key ranges. */
#include "plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "status.h"

/* Workers the tasks ask for by name (tasks.*.workers), and in *n_auto the tasks without a
 * setting. */
static int explicit_workers(const struct ldn_config *cfg, int *n_auto)
{
    int sum = 0, autos = 0;
    for (int t = 0; t < cfg->n_tasks; t++) {
        sum += cfg->tasks[t].workers;
        autos += cfg->tasks[t].workers == 0;
    }
    if (n_auto)
        *n_auto = autos;
    return sum;
}

int ldn_plan_min_world(const struct ldn_config *cfg)
{
    int n = explicit_workers(cfg, NULL);
    return 1 + cfg->servers + (n > 0 ? n : 1);
}

void ldn_plan_destroy(struct ldn_plan **pp)
{
    if (!pp || !*pp)
        return;
    struct ldn_plan *p = *pp;
    if (p->groups)
        for (int g = 0; g < p->n_groups; g++) {
            free(p->groups[g].tasks);
            free(p->groups[g].ranks);
        }
    free(p->groups);
    free(p->group_of_rank);
    free(p->group_of_task);
    free(p);
    *pp = NULL;
}

/* Automatic worker counts: the `spare` workers go to the tasks without a setting in
 * proportion to their rows (largest remainder), at least one each. */
static void auto_counts(const struct ldn_config *cfg, const int64_t *n_train, int spare, int *cnt)
{
    double rows = 0;
    int n_auto = 0;
    for (int t = 0; t < cfg->n_tasks; t++)
        if (cfg->tasks[t].workers == 0) {
            rows += (double)n_train[t];
            n_auto++;
        }
    if (n_auto == 0)
        return;
    double *rem = calloc((size_t)(unsigned)cfg->n_tasks, sizeof *rem);
    int sum = 0;
    for (int t = 0; t < cfg->n_tasks; t++) {
        if (cfg->tasks[t].workers != 0)
            continue;
        double exact = rows > 0 ? spare * (double)n_train[t] / rows : 1.0;
        cnt[t] = exact < 1.0 ? 1 : (int)floor(exact);
        if (rem)
            rem[t] = exact - floor(exact);
        sum += cnt[t];
    }
    while (sum > spare) { /* the minimum of one pushed us over: take from the largest */
        int big = -1;
        for (int t = 0; t < cfg->n_tasks; t++)
            if (cfg->tasks[t].workers == 0 && cnt[t] > 1 && (big < 0 || cnt[t] > cnt[big]))
                big = t;
        if (big < 0)
            break;
        cnt[big]--;
        sum--;
    }
    while (sum < spare) { /* largest remainder, lowest index on ties */
        int best = -1;
        for (int t = 0; t < cfg->n_tasks; t++)
            if (cfg->tasks[t].workers == 0 && (best < 0 || (rem && rem[t] > rem[best])))
                best = t;
        cnt[best]++;
        if (rem)
            rem[best] = -1.0;
        sum++;
    }
    free(rem);
}

/* Enough worker ranks for the config? 0, or LDN_ERR_CONFIG with the ranks to run with. */
static int check_world(const struct ldn_config *cfg, int world, char *err, size_t errlen)
{
    int S = cfg->servers, W = world - 1 - S, n_auto = 0;
    int explicit = explicit_workers(cfg, &n_auto);
    if (W < 1)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "%d ranks are too few: ladon needs 1 coordinator + %d servers (ps.servers) "
                        "+ at least 1 worker = %d ranks (launch/ladon-run counts them from the "
                        "config)",
                        world, S, ldn_plan_min_world(cfg));
    if (explicit > 0 && W < explicit + n_auto)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "%d worker ranks, but the tasks' workers settings need %d (+%d for tasks "
                        "without a setting); run with %d ranks or lower tasks.*.workers",
                        W, explicit, n_auto, 1 + S + explicit + n_auto);
    return 0;
}

/* At least as many workers as tasks: one group per task, its worker count from the config or
 * auto_counts, ranks handed out in task order. LDN_ERR_NOMEM (err untouched), or
 * LDN_ERR_CONFIG when explicit counts leave workers idle. */
static int groups_per_task(struct ldn_plan *p, const struct ldn_config *cfg, const int64_t *n_train,
                           char *err, size_t errlen)
{
    const int S = p->n_servers, T = cfg->n_tasks, W = p->n_workers;
    int *cnt = calloc((size_t)T, sizeof *cnt);
    p->groups = calloc((size_t)T, sizeof *p->groups);
    if (!cnt || !p->groups) {
        free(cnt);
        return LDN_ERR_NOMEM;
    }
    p->n_groups = T;
    for (int t = 0; t < T; t++)
        cnt[t] = cfg->tasks[t].workers;
    auto_counts(cfg, n_train, W - explicit_workers(cfg, NULL), cnt);
    int next = 1 + S;
    for (int t = 0; t < T; t++) {
        struct ldn_group *g = &p->groups[t];
        g->n_tasks = 1;
        g->n_ranks = cnt[t];
        g->tasks = malloc(sizeof(int));
        g->ranks = malloc(sizeof(int) * (size_t)cnt[t]);
        if (!g->tasks || !g->ranks) {
            free(cnt);
            return LDN_ERR_NOMEM;
        }
        g->tasks[0] = t;
        p->group_of_task[t] = t;
        for (int k = 0; k < cnt[t]; k++) {
            g->ranks[k] = next;
            p->group_of_rank[next++] = t;
        }
    }
    free(cnt);
    /* Workers left over when every task has an explicit count stay idle: refuse. */
    if (next != p->world)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "%d worker ranks but tasks.*.workers add up to %d; run with %d ranks", W,
                        next - 1 - S, next);
    return 0;
}

/* Task t's group for W groups: tasks placed largest first on the group with the fewest rows
 * (LPT) into p->group_of_task. LDN_ERR_NOMEM or 0. */
static int place_tasks(struct ldn_plan *p, int T, const int64_t *n_train)
{
    const int W = p->n_workers;
    int64_t *load = calloc((size_t)W, sizeof *load);
    int *order = malloc(sizeof(int) * (size_t)T);
    if (!load || !order) {
        free(load);
        free(order);
        return LDN_ERR_NOMEM;
    }
    for (int t = 0; t < T; t++)
        order[t] = t;
    for (int i = 1; i < T; i++) /* insertion sort by rows, descending, stable */
        for (int j = i; j > 0 && n_train[order[j]] > n_train[order[j - 1]]; j--) {
            int x = order[j];
            order[j] = order[j - 1];
            order[j - 1] = x;
        }
    for (int i = 0; i < T; i++) {
        int t = order[i], best = 0;
        for (int g = 1; g < W; g++)
            if (load[g] < load[best])
                best = g;
        load[best] += n_train[t];
        p->group_of_task[t] = best;
    }
    free(load);
    free(order);
    return 0;
}

/* Fewer workers than tasks: W groups of one worker each, their tasks from place_tasks listed
 * in task order. LDN_ERR_NOMEM or 0. */
static int groups_per_worker(struct ldn_plan *p, const struct ldn_config *cfg,
                             const int64_t *n_train)
{
    const int S = p->n_servers, T = cfg->n_tasks, W = p->n_workers;
    p->n_groups = W;
    p->groups = calloc((size_t)W, sizeof *p->groups);
    if (!p->groups || place_tasks(p, T, n_train))
        return LDN_ERR_NOMEM;
    for (int g = 0; g < W; g++) {
        struct ldn_group *gr = &p->groups[g];
        gr->n_ranks = 1;
        gr->ranks = malloc(sizeof(int));
        gr->tasks = malloc(sizeof(int) * (size_t)T);
        if (!gr->ranks || !gr->tasks)
            return LDN_ERR_NOMEM;
        gr->ranks[0] = 1 + S + g;
        p->group_of_rank[1 + S + g] = g;
        for (int t = 0; t < T; t++)
            if (p->group_of_task[t] == g)
                gr->tasks[gr->n_tasks++] = t;
    }
    return 0;
}

struct ldn_plan *ldn_plan_new(const struct ldn_config *cfg, const int64_t *n_train, int world,
                              char *err, size_t errlen)
{
    if (check_world(cfg, world, err, errlen))
        return NULL;
    const int S = cfg->servers, T = cfg->n_tasks, W = world - 1 - S;
    struct ldn_plan *p = calloc(1, sizeof *p);
    if (!p)
        goto nomem;
    p->world = world;
    p->n_servers = S;
    p->n_workers = W;
    p->group_of_rank = malloc(sizeof(int) * (size_t)world);
    p->group_of_task = malloc(sizeof(int) * (size_t)T);
    if (!p->group_of_rank || !p->group_of_task)
        goto nomem;
    for (int r = 0; r < world; r++)
        p->group_of_rank[r] = -1;
    int rc =
        W >= T ? groups_per_task(p, cfg, n_train, err, errlen) : groups_per_worker(p, cfg, n_train);
    if (rc == LDN_ERR_NOMEM)
        goto nomem;
    if (rc) {
        ldn_plan_destroy(&p);
        return NULL;
    }
    return p;
nomem:
    ldn_plan_destroy(&p);
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "plan: out of memory");
    return NULL;
}

enum ldn_role ldn_plan_role(const struct ldn_plan *p, int rank)
{
    if (rank == 0)
        return LDN_ROLE_COORD;
    return rank <= p->n_servers ? LDN_ROLE_SERVER : LDN_ROLE_WORKER;
}

int64_t ldn_plan_steps_per_epoch(const struct ldn_plan *p, const struct ldn_config *cfg,
                                 const int64_t *n_train)
{
    if (cfg->steps_per_epoch > 0)
        return cfg->steps_per_epoch;
    int64_t best = 1;
    for (int g = 0; g < p->n_groups; g++) {
        const struct ldn_group *gr = &p->groups[g];
        int64_t per_step = (int64_t)cfg->batch_size * gr->n_ranks, steps = 0;
        for (int i = 0; i < gr->n_tasks; i++)
            steps += (n_train[gr->tasks[i]] + per_step - 1) / per_step;
        if (steps > best)
            best = steps;
    }
    return best;
}

static double group_weight(const struct ldn_plan *p, const struct ldn_config *cfg,
                           const int64_t *n_train, int g)
{
    double w = 0;
    for (int i = 0; i < p->groups[g].n_tasks; i++) {
        int64_t n = n_train[p->groups[g].tasks[i]];
        w += n > 0 ? pow((double)n, cfg->sampling_alpha) : 0.0;
    }
    return w;
}

double ldn_plan_group_prob(const struct ldn_plan *p, const struct ldn_config *cfg,
                           const int64_t *n_train, int g)
{
    double mine = group_weight(p, cfg, n_train, g), top = 0;
    for (int h = 0; h < p->n_groups; h++)
        top = fmax(top, group_weight(p, cfg, n_train, h));
    return mine >= top || top <= 0 ? 1.0 : mine / top;
}

int ldn_plan_group_trains(double prob, uint64_t seed, int g, int64_t step)
{
    if (prob >= 1.0)
        return 1;
    struct ldn_rng r;
    ldn_rng_init(&r, seed, (3ull << 40) + (uint64_t)step * 4096u + (uint64_t)g);
    return ldn_rng_uniform(&r) < prob;
}
