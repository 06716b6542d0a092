/* The global step schedule and per-task batch order. */
#include "schedule.h"

#include <math.h>
#include <stdlib.h>

#include "status.h"

int ldn_schedule_init(struct ldn_schedule *s, const struct ldn_config *cfg, const int64_t *n_train,
                      char *err, size_t errlen)
{
    s->n_tasks = cfg->n_tasks;
    s->sampling = cfg->sampling;
    s->seed = cfg->seed;
    s->cum = malloc(sizeof(double) * (size_t)cfg->n_tasks);
    if (!s->cum)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "schedule: out of memory");
    double total = 0.0;
    int64_t steps = 0;
    s->n_active = 0;
    for (int t = 0; t < cfg->n_tasks; t++) {
        if (n_train[t] > 0) {
            total += pow((double)n_train[t], cfg->sampling_alpha);
            s->n_active++;
        }
        s->cum[t] = total;
        steps += (n_train[t] + cfg->batch_size - 1) / cfg->batch_size;
    }
    if (s->n_active == 0)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "schedule: no task has training rows");
    for (int t = 0; t < cfg->n_tasks; t++)
        s->cum[t] /= total;
    s->cum[cfg->n_tasks - 1] = 1.0;
    s->steps_per_epoch = cfg->steps_per_epoch > 0 ? cfg->steps_per_epoch : steps;
    s->total_steps = s->steps_per_epoch * cfg->epochs;
    return LDN_OK;
}

void ldn_schedule_deinit(struct ldn_schedule *s)
{
    free(s->cum);
    s->cum = NULL;
}

int ldn_schedule_task(const struct ldn_schedule *s, int64_t step)
{
    if (s->sampling == LDN_SAMPLE_ROUND_ROBIN) {
        int64_t k = step % s->n_active; /* the k-th task with rows */
        for (int t = 0; t < s->n_tasks; t++)
            if ((t == 0 ? s->cum[0] > 0 : s->cum[t] > s->cum[t - 1]) && k-- == 0)
                return t;
    }
    /* One independent draw per step: a stream per step keeps it a pure function of step. */
    struct ldn_rng r;
    ldn_rng_init(&r, s->seed, ((uint64_t)LDN_STREAM_SCHEDULE << 40) + (uint64_t)step);
    double u = ldn_rng_uniform(&r);
    int lo = 0, hi = s->n_tasks - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (u < s->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

int ldn_batcher_init(struct ldn_batcher *b, int64_t n, uint64_t seed, uint64_t stream)
{
    b->n = n;
    b->pos = 0;
    b->passes = 0;
    b->perm = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!b->perm)
        return LDN_ERR_NOMEM;
    for (int64_t i = 0; i < n; i++)
        b->perm[i] = i;
    ldn_rng_init(&b->rng, seed, stream);
    ldn_rng_shuffle(&b->rng, b->perm, n);
    return LDN_OK;
}

void ldn_batcher_deinit(struct ldn_batcher *b)
{
    free(b->perm);
    b->perm = NULL;
}

int ldn_batcher_next(struct ldn_batcher *b, int size, int64_t *idx)
{
    int64_t k = size < b->n ? size : b->n;
    if (b->pos + k > b->n) {
        ldn_rng_shuffle(&b->rng, b->perm, b->n);
        b->pos = 0;
        b->passes++;
    }
    for (int64_t i = 0; i < k; i++)
        idx[i] = b->perm[b->pos + i];
    b->pos += k;
    return (int)k;
}
