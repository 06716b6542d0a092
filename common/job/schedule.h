/* The global step schedule: which task trains at each step, and each task's batch order.
 *
 * Steps are scheduled globally (never "until my shard ends"), so tasks with unequal data
 * sizes never stall a synchronous run. The task of step s is a pure function of the seed
 * and s, so every rank can compute it without communication. */
#ifndef LDN_SCHEDULE_H
#define LDN_SCHEDULE_H

#include <stdint.h>

#include "config.h"
#include "rng.h"

#define LDN_STREAM_SCHEDULE 2u
#define LDN_STREAM_BATCH 0x2000u /* + task index (* 4096 + shard for distributed shards) */

struct ldn_schedule {
    int n_tasks;
    int n_active; /* tasks with training rows */
    enum ldn_sampling sampling;
    double *cum; /* cumulative task probabilities, [n_tasks] */
    uint64_t seed;
    int64_t steps_per_epoch;
    int64_t total_steps;
};

/* Build the schedule for cfg with n_train[t] training rows per task (the whole task, all
 * shards). Tasks with n_train[t] == 0 are never drawn: a task group passes its own tasks'
 * sizes and zeros elsewhere, and with every task present the group's draws equal the
 * global schedule's. Returns 0 or a negative status with err. */
int ldn_schedule_init(struct ldn_schedule *s, const struct ldn_config *cfg, const int64_t *n_train,
                      char *err, size_t errlen);
void ldn_schedule_deinit(struct ldn_schedule *s);
/* Task trained at global step `step`. */
int ldn_schedule_task(const struct ldn_schedule *s, int64_t step);

/* Draws batches from n rows in shuffled order, reshuffling at the end of each pass. */
struct ldn_batcher {
    int64_t n, pos, passes;
    int64_t *perm;
    struct ldn_rng rng;
};

int ldn_batcher_init(struct ldn_batcher *b, int64_t n, uint64_t seed, uint64_t stream);
void ldn_batcher_deinit(struct ldn_batcher *b);
/* Next batch of min(size, n) row indices into idx; returns the count. */
int ldn_batcher_next(struct ldn_batcher *b, int size, int64_t *idx);

#endif
