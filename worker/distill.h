/* A distillation round on a distributed worker: the teacher's soft targets for the heads this
 * worker hosts, made where the data is (its shard of its tasks' training rows), and the loss of
 * one step (teacher.temperature, alpha, annealing over the round).
 *
 * teacher.inputs: all. A head lives on its own task group's workers, so the other tasks'
 * inputs come to it: with inputs: all the worker also loads its shard of every other task's
 * training inputs, and each step of task t adds a second block of `batch` rows of one other task
 * (the task chosen by the step, the rows drawn from a random stream of the seed, the step and
 * the shard, so a resumed run draws the same rows). Those rows carry no label for head t: they
 * train it on the distillation term alone (alpha * T^2 * KL), through the same trunk pass. The
 * local trainer gets the same kind of objective the other way round (every head runs on each
 * batch); the two are not bit-identical. */
#ifndef LDN_WDISTILL_H
#define LDN_WDISTILL_H

#include <stddef.h>
#include <stdint.h>

#include "data.h"
#include "job.h"
#include "loss.h"
#include "model.h"
#include "teacher.h"

struct ldn_wdistill {
    struct ldn_teacher teacher;
    const struct ldn_round_config *rc;
    int n_tasks, features, shard;
    uint64_t seed;
    int64_t total_steps;
    struct ldn_dataset **rows; /* [n_tasks]: training rows here (the hosted tasks' borrowed, the
                                  others' owned, with inputs: all), NULL for none */
    char *owned;               /* [n_tasks] */
    float *soft;               /* [2 * batch, max classes] */
    int32_t *no_label;         /* [batch] of -1 */
    int64_t *idx;              /* [batch]: the extra rows of this step */
    int extra_task;            /* of this step's extra rows */
};

/* Set up job's round (job->round_index >= 0 with a teacher block) on a worker of shard `shard`
 * of `nshards` in its group: train[t] is the hosted task t's training split (NULL for a task
 * not hosted); `batch` rows per step. Loads the members and makes the soft targets (logged),
 * calling tick(tick_ud) after each batch of the build when tick is not NULL (heartbeats).
 * Returns 0 or a negative status with err naming the round and the member. */
int ldn_wdistill_init(struct ldn_wdistill *D, const struct ldn_job *job, int shard, int nshards,
                      struct ldn_dataset *const *train, int batch, void (*tick)(void *),
                      void *tick_ud, char *err, size_t errlen);
void ldn_wdistill_deinit(struct ldn_wdistill *D);

/* Rows a step of task t adds after its own b rows (inputs: all): gathered into buf's rows
 * [b, b + n) with no label. Returns n (0 without inputs: all or another task's rows). */
int ldn_wdistill_gather_extra(struct ldn_wdistill *D, int t, int64_t step,
                              struct ldn_batch_buf *buf, int b);

/* The distillation weight in effect at `step`. */
double ldn_wdistill_alpha(const struct ldn_wdistill *D, int64_t step);

/* The loss of a step of task t on logits z [b + extra, classes] of buf's rows (own rows idx[0..b)
 * with labels, then `extra` rows from ldn_wdistill_gather_extra), scaled by weight; the
 * gradient into buf->dz. Returns the own rows' mean loss, *correct their rows predicted right
 * and rep the own rows' KL and agreement. */
double ldn_wdistill_loss(struct ldn_wdistill *D, int t, int64_t step, const float *z,
                         const int64_t *idx, int b, int extra, struct ldn_batch_buf *buf,
                         float weight, int64_t *correct, struct ldn_distill_report *rep);

#endif
