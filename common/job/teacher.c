/* A distillation round's teacher: soft targets computed where the data is. */
#include "teacher.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckmodel.h"
#include "clock.h"
#include "log.h"
#include "loss.h"
#include "status.h"

#define TEACHER_BATCH 1024 /* rows per forward pass of a member */

void ldn_teacher_deinit(struct ldn_teacher *T)
{
    for (int m = 0; T->members_loaded && m < T->n_members; m++)
        ldn_ckmodel_free(&T->members_loaded[m]);
    free(T->members_loaded);
    free(T->head);
    for (int t = 0; T->soft && t < T->n_tasks * T->n_tasks; t++)
        free(T->soft[t]);
    for (int t = 0; T->member_acc && t < T->n_tasks; t++)
        free(T->member_acc[t]);
    free(T->soft);
    free(T->member_acc);
    free(T->ensemble_acc);
    free(T->test_rows);
    free(T->classes);
    memset(T, 0, sizeof *T);
}

/* The head of member L for task `name` with `classes` classes, or -1 with err naming the round
 * and the member. */
static int member_head(const struct ldn_ckmodel *L, const char *round, const char *member,
                       const char *name, int classes, int features, char *err, size_t errlen)
{
    if (L->ck.features != features)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "rounds.%s.teacher: member '%s' (%s) takes %d input features, the "
                        "round's data has %d",
                        round, member, L->ck.path, L->ck.features, features);
    int h = ldn_config_task_index(L->cfg, name);
    if (h < 0)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "rounds.%s.teacher: member '%s' (%s) has no head for task '%s'", round,
                        member, L->ck.path, name);
    if (L->classes[h] != classes)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "rounds.%s.teacher: member '%s' (%s): head '%s' has %d classes, the "
                        "task's data %d",
                        round, member, L->ck.path, name, L->classes[h], classes);
    return h;
}

/* Member m of M: its softmax(z / temp) of head h over the n rows of x into the ensemble's mean
 * acc [n, classes] (ldn_ensemble_add_softened), batched; returns the rows whose argmax equals y
 * (y may be NULL). */
static int64_t add_probs(struct ldn_ckmodel *L, int h, const float *x, const int32_t *y, int64_t n,
                         int classes, float temp, int m, int M, float *acc,
                         const struct ldn_teacher_data *d)
{
    const int f = L->model->features, mb = L->model->trunk->max_batch;
    int64_t right = 0;
    for (int64_t off = 0; off < n; off += mb) {
        int b = (int)(n - off < mb ? n - off : mb);
        const float *z = ldn_model_forward(L->model, h, x + off * f, b);
        ldn_ensemble_add_softened(acc + off * classes, z, m, M, b, classes, temp);
        for (int i = 0; y && i < b; i++)
            right += ldn_argmax(z + (int64_t)i * classes, classes) == y[off + i];
        if (d->tick)
            d->tick(d->tick_ud);
    }
    return right;
}

/* Fraction of rows whose argmax of p [n, classes] equals y. */
static double accuracy(const float *p, const int32_t *y, int64_t n, int classes)
{
    int64_t right = 0;
    for (int64_t i = 0; i < n; i++)
        right += ldn_argmax(p + i * classes, classes) == y[i];
    return n ? (double)right / (double)n : NAN;
}

static int alloc_teacher(struct ldn_teacher *T, int n_tasks, int n_members)
{
    T->n_tasks = n_tasks;
    T->n_members = n_members;
    T->classes = calloc((size_t)n_tasks, sizeof *T->classes);
    T->soft = calloc((size_t)n_tasks * (size_t)n_tasks, sizeof *T->soft);
    T->member_acc = calloc((size_t)n_tasks, sizeof *T->member_acc);
    T->ensemble_acc = calloc((size_t)n_tasks, sizeof *T->ensemble_acc);
    T->test_rows = calloc((size_t)n_tasks, sizeof *T->test_rows);
    if (!T->classes || !T->soft || !T->member_acc || !T->ensemble_acc || !T->test_rows)
        return LDN_ERR_NOMEM;
    for (int t = 0; t < n_tasks; t++)
        if (!(T->member_acc[t] = calloc((size_t)n_members, sizeof(double))))
            return LDN_ERR_NOMEM;
    return 0;
}

/* One member's contribution: its soft targets on every task's training rows, its probabilities
 * on the test rows (into test_p[t]) and its test accuracy. */
static int add_member(struct ldn_teacher *T, int m, const char *round, const char *member,
                      const char *path, const struct ldn_config *cfg, float temp,
                      const struct ldn_teacher_data *d, float **test_p, double *flops, char *err,
                      size_t errlen)
{
    struct ldn_ckmodel L;
    const double t_load = ldn_clock_now();
    int rc = ldn_ckmodel_load(path, TEACHER_BATCH, &L, err, errlen);
    T->load_seconds += ldn_clock_now() - t_load;
    if (rc) {
        char why[LDN_ERRLEN];
        snprintf(why, sizeof why, "%s", err);
        return ldn_fail(err, errlen, rc, "rounds.%s.teacher: member '%s': %s", round, member, why);
    }
    int64_t per_row = L.model->trunk->n_params;
    const int n = cfg->n_tasks;
    int *h = T->head + m * n;
    for (int u = 0; u < n && rc == 0; u++)
        if ((h[u] = member_head(&L, round, member, cfg->tasks[u].name, T->classes[u], d->features,
                                err, errlen)) < 0)
            rc = h[u];
    for (int t = 0; t < n && rc == 0; t++) { /* rows of task t, head u */
        struct ldn_dataset *train = d->train[t], *test = d->test[t];
        for (int u = 0; T->cached && u < n; u++) {
            if (!T->soft[t * n + u])
                continue;
            const double t0 = ldn_clock_now();
            add_probs(&L, h[u], train->x, NULL, train->n, T->classes[u], temp, m, T->n_members,
                      T->soft[t * n + u], d);
            T->seconds += ldn_clock_now() - t0;
            *flops += 2.0 * (double)(per_row + L.model->heads[h[u]]->n_params) * (double)train->n;
        }
        if (!test_p[t])
            continue;
        int64_t right = add_probs(&L, h[t], test->x, test->y, test->n, T->classes[t], 1.0f, m,
                                  T->n_members, test_p[t], d);
        T->member_acc[t][m] = test->n ? (double)right / (double)test->n : NAN;
    }
    if (rc == 0 && !T->cached)
        T->members_loaded[m] = L; /* kept: per-batch targets */
    else
        ldn_ckmodel_free(&L);
    return rc;
}

/* Whether rows of task t train head u here: the rows are here, the head is wanted, and u is t
 * or the teacher has inputs: all. */
static int wanted(const struct ldn_teacher *T, const struct ldn_teacher_data *d, int t, int u)
{
    return d->train[t] && (!d->heads || d->heads[u]) && (t == u || T->all);
}

/* Whether the soft targets of every task fit in cache_mb; if not, what per-batch targets need. */
static int plan_cache(struct ldn_teacher *T, const struct ldn_teacher_data *d,
                      const struct ldn_teacher_config *tc)
{
    const int n = T->n_tasks;
    double bytes = 0;
    T->all = tc->inputs == LDN_TEACHER_ALL;
    for (int t = 0; t < n; t++)
        for (int u = 0; u < n; u++)
            bytes += wanted(T, d, t, u) ? 4.0 * (double)d->train[t]->n * d->classes[u] : 0;
    T->cached = bytes <= tc->cache_mb * 1048576.0;
    T->temperature = (float)tc->temperature;
    T->head = calloc((size_t)T->n_members * (size_t)n, sizeof *T->head);
    for (int t = 0; T->cached && t < n; t++)
        for (int u = 0; u < n; u++)
            if (wanted(T, d, t, u) &&
                !(T->soft[t * n + u] =
                      calloc((size_t)d->train[t]->n * (size_t)d->classes[u], sizeof(float))))
                return LDN_ERR_NOMEM;
    if (T->cached)
        return T->head ? 0 : LDN_ERR_NOMEM;
    T->members_loaded = calloc((size_t)T->n_members, sizeof *T->members_loaded);
    for (int m = 0; T->members_loaded && m < T->n_members; m++)
        ldn_ckmodel_init(&T->members_loaded[m]);
    return T->members_loaded && T->head ? 0 : LDN_ERR_NOMEM;
}

float *ldn_teacher_rows(struct ldn_teacher *T, int t, int u, const int64_t *idx, const float *x,
                        int b, float *out)
{
    const int c = T->classes[u];
    if (T->cached) {
        const float *soft = T->soft[t * T->n_tasks + u];
        for (int i = 0; i < b; i++)
            memcpy(out + (int64_t)i * c, soft + idx[i] * c, sizeof(float) * (size_t)c);
        return out;
    }
    for (int m = 0; m < T->n_members; m++) {
        struct ldn_model *mm = T->members_loaded[m].model;
        const int h = T->head[m * T->n_tasks + u], mb = mm->trunk->max_batch;
        for (int off = 0; off < b; off += mb) {
            const int n = b - off < mb ? b - off : mb;
            const float *z = ldn_model_forward(mm, h, x + (int64_t)off * mm->features, n);
            ldn_ensemble_add_softened(out + (int64_t)off * c, z, m, T->n_members, n, c,
                                      T->temperature);
        }
    }
    return out;
}

int ldn_teacher_build(struct ldn_teacher *T, const struct ldn_config *cfg, const char *round,
                      const struct ldn_teacher_config *tc, const char *const *members,
                      const struct ldn_teacher_data *d, char *err, size_t errlen)
{
    memset(T, 0, sizeof *T);
    const int n = cfg->n_tasks;
    float **test_p = calloc((size_t)n, sizeof *test_p);
    int rc = alloc_teacher(T, n, tc->n_members);
    for (int t = 0; rc == 0 && t < n; t++)
        T->classes[t] = d->classes[t];
    if (rc == 0)
        rc = plan_cache(T, d, tc);
    for (int t = 0; rc == 0 && t < n; t++) {
        T->ensemble_acc[t] = NAN;
        for (int m = 0; m < tc->n_members; m++)
            T->member_acc[t][m] = NAN;
        if (!test_p)
            rc = LDN_ERR_NOMEM;
        else if (d->test[t] && (!d->heads || d->heads[t]) &&
                 !(test_p[t] = calloc((size_t)(d->test[t]->n * T->classes[t]), sizeof(float))))
            rc = LDN_ERR_NOMEM;
    }
    if (rc)
        rc = ldn_fail(err, errlen, rc, "rounds.%s.teacher: out of memory for the soft targets",
                      round);
    double flops = 0;
    for (int m = 0; rc == 0 && m < tc->n_members; m++)
        rc = add_member(T, m, round, tc->members[m], members[m], cfg, (float)tc->temperature, d,
                        test_p, &flops, err, errlen);
    T->gflops = T->seconds > 0 ? 1e-9 * flops / T->seconds : 0;
    for (int t = 0; rc == 0 && t < n; t++)
        if (test_p[t]) {
            T->ensemble_acc[t] = accuracy(test_p[t], d->test[t]->y, d->test[t]->n, T->classes[t]);
            T->test_rows[t] = d->test[t]->n;
        }
    for (int t = 0; test_p && t < n; t++)
        free(test_p[t]);
    free(test_p);
    if (rc)
        ldn_teacher_deinit(T);
    return rc;
}

void ldn_teacher_log_targets(const struct ldn_teacher *T, const char *round,
                             const struct ldn_teacher_config *tc)
{
    if (T->cached)
        LDN_INFO("round %s: soft targets of %d member(s) at T = %g in %.2f s (%.1f GFLOP/s), "
                 "members loaded in %.2f s",
                 round, T->n_members, tc->temperature, T->seconds, T->gflops, T->load_seconds);
    else
        LDN_INFO("round %s: soft targets of %d member(s) at T = %g computed per batch (they do not "
                 "fit in teacher.cache_mb = %g MiB), members loaded in %.2f s",
                 round, T->n_members, tc->temperature, tc->cache_mb, T->load_seconds);
}

void ldn_teacher_log_accuracy(const struct ldn_teacher *T, const struct ldn_config *cfg,
                              const char *round, const struct ldn_teacher_config *tc)
{
    for (int t = 0; t < T->n_tasks; t++) {
        if (!T->test_rows[t])
            continue;
        char buf[1024];
        int off = snprintf(buf, sizeof buf, "round %s: teacher on %s: ensemble %.2f%% (", round,
                           cfg->tasks[t].name, 100.0 * T->ensemble_acc[t]);
        for (int m = 0; m < T->n_members && off < (int)sizeof buf - 96; m++)
            off += snprintf(buf + off, sizeof buf - (size_t)off, "%s%s %.2f%%", m ? ", " : "",
                            tc->members[m], 100.0 * T->member_acc[t][m]);
        LDN_INFO("%s) over %lld test rows", buf, (long long)T->test_rows[t]);
    }
}
