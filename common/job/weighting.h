/* The state of a run's task weighting (train.task_weighting) that outlives one step, and its
 * part of a checkpoint (docs/checkpoint.md, "Task weighting"):
 *
 * - DWA (struct ldn_dwa): the coordinator, or the local trainer, adds every training loss it
 *   is told about to the running epoch's sums and, at the end of each epoch, turns the last
 *   two epochs' mean losses into the weights of the next epoch (common/nn/mtl_weight.h). The
 *   sums are kept in fixed point (int64 units of 2^-24), so the order in which the workers'
 *   reports arrive cannot change them and a checkpoint holds them exactly.
 * - Uncertainty: each task's learned log-variance s_t and its optimizer (the head's optimizer
 *   kind, learning rate, momentum and moments, without weight decay), held where the head is. */
#ifndef LDN_WEIGHTING_H
#define LDN_WEIGHTING_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "config.h"
#include "optim.h"

#define LDN_DWA_FIXED_ONE 16777216.0 /* 2^24: one unit of loss in the fixed-point sums */

struct ldn_dwa {
    int K;
    double T;
    int64_t epochs;   /* epochs completed */
    float *hist;      /* [2 * K]: mean training loss of epoch e-1 (first K), of epoch e-2 */
    int64_t *loss_fx; /* [K]: this epoch's sum of row losses, fixed point */
    int64_t *rows;    /* [K]: this epoch's rows */
    double *w;        /* [K]: the weights in effect (1 for the first two epochs) */
};

/* K tasks, temperature T. 0 or LDN_ERR_NOMEM. */
int ldn_dwa_init(struct ldn_dwa *d, int K, double T);
void ldn_dwa_deinit(struct ldn_dwa *d);
/* Add `rows` rows of task t whose losses sum to loss_sum (negative or non-finite sums count as
 * 0 and the sum is capped at 2^38, so the fixed-point total cannot overflow). */
void ldn_dwa_add(struct ldn_dwa *d, int t, double loss_sum, int64_t rows);
/* End of an epoch: its mean losses become the history (a task without rows keeps its previous
 * mean), the sums restart and the weights of the next epoch are computed. */
void ldn_dwa_end_epoch(struct ldn_dwa *d);
/* The weights in effect into w[0..K) as float32, the way the loss uses them. */
void ldn_dwa_weights_f32(const struct ldn_dwa *d, float *w);
/* d's datasets /weighting/dwa/{history,loss_sum,rows,epochs}: d must live until the write. */
int ldn_dwa_ckpt_add(const struct ldn_dwa *d, struct ldn_ckpt_items *it);
/* Read them back and recompute the weights. 0, 1 when ck has no DWA state (d restarts from
 * ck's epoch with weights 1 for two epochs), or a negative status with err. */
int ldn_dwa_ckpt_read(struct ldn_dwa *d, const struct ldn_ckpt *ck, char *err, size_t errlen);

/* Uncertainty weighting: the optimizer of one task's log-variance (NULL when out of memory). */
struct ldn_optim *ldn_uw_optim_new(const struct ldn_optim_config *head);
/* /weighting/log_var/<task> and /weighting/optimizer/{m,v,t}/<task>; s and o must live until
 * the write. */
int ldn_uw_ckpt_add(struct ldn_ckpt_items *it, const char *task, const float *s,
                    struct ldn_optim *o);
/* Read them back: 0, 1 when ck has none for task (s and o are left as they are: a run that
 * did not weigh by uncertainty), or a negative status with err (also for |s| > 80). */
int ldn_uw_ckpt_read(const struct ldn_ckpt *ck, const char *task, float *s, struct ldn_optim *o,
                     char *err, size_t errlen);

#endif
