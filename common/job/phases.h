/* The run's phase list: what a run does, in order, from its config alone.
 *
 * A run is a list of phases: train steps [from, to), evaluate at a step, write a checkpoint of
 * a step (always, or only when checkpoint.every_minutes have passed since the last one), and
 * stop (the final writes). The local trainer and the coordinator both build this list and walk
 * it with ldn_phases_run, each with its own handler per phase kind, so the schedule (evaluation
 * period, checkpoints by steps, by minutes and at the end) is written once. A new phase kind
 * (a distillation round's start, a pruning step, an export) is one more kind here and one more
 * handler per driver. */
#ifndef LDN_PHASES_H
#define LDN_PHASES_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum ldn_phase_kind {
    LDN_PHASE_TRAIN = 0, /* train global steps [from, to) */
    LDN_PHASE_EVAL = 1,  /* evaluate every task at step `to` */
    LDN_PHASE_CKPT = 2,  /* checkpoint of step `to` (if_due: only when its minutes are up) */
    LDN_PHASE_PLAN = 3,  /* switch to another plan (trunk geometry) at step `to` */
    LDN_PHASE_STOP = 4,  /* the end: final writes and shutdown, at step `to` */
    LDN_PHASE_PRUNE = 5, /* recompute the pruning masks before step `to` (common/job/prune.h) */
    LDN_PHASE_KINDS
};

struct ldn_phase {
    enum ldn_phase_kind kind;
    int64_t from, to; /* TRAIN: steps [from, to); the others happen at step `to` (from == to) */
    int if_due;       /* CKPT: written only when checkpoint.every_minutes have passed */
    int arg;          /* PLAN: index of the plan to switch to */
};

struct ldn_phases {
    int n;
    struct ldn_phase *list;
    int64_t eval_period; /* steps between evaluations (train.eval_every epochs, >= 1) */
    int64_t total_steps;
};

/* The phase list of a run of cfg with steps_per_epoch and total_steps, starting at step
 * `start` (0, or the step of the checkpoint it resumes from):
 *   TRAIN phases end at every evaluation (each eval_period steps and at the end), at every
 *   checkpoint.every_steps multiple, and, with checkpoint.every_minutes, at every log mark
 *   (train.log_every, else the evaluation period) so that the clock is looked at;
 *   EVAL after a TRAIN phase that ends at a multiple of eval_period or at total_steps;
 *   CKPT after it when checkpoint.every_steps divides its step or checkpoint.final and it is
 *   the last step, else CKPT with if_due when checkpoint.every_minutes is set;
 *   PRUNE before every step at which prune.* recomputes the masks (after the EVAL and CKPT
 *   of that step, so a checkpoint of step t holds the masks before step t's update);
 *   STOP at total_steps, always last.
 * Returns 0 or LDN_ERR_NOMEM / LDN_ERR_ARG (start beyond the end) with err. */

int ldn_phases_build(const struct ldn_config *cfg, int64_t steps_per_epoch, int64_t total_steps,
                     int64_t start, struct ldn_phases *out, char *err, size_t errlen);
void ldn_phases_deinit(struct ldn_phases *p);

/* Insert `ph` (a phase at step ph->to, from == to) after the TRAIN phase that ends at ph->to,
 * splitting the TRAIN phase that contains that step when none ends there. Returns 0, or
 * LDN_ERR_ARG when the step is outside [start, total_steps], or NOMEM. */
int ldn_phases_insert(struct ldn_phases *p, const struct ldn_phase *ph, char *err, size_t errlen);

/* One handler per phase kind (NULL: that kind does nothing in this driver). A handler returns
 * 0 or a negative status with err. */
typedef int ldn_phase_fn(void *ud, const struct ldn_phase *ph, char *err, size_t errlen);
struct ldn_phase_ops {
    ldn_phase_fn *fn[LDN_PHASE_KINDS];
};

/* Walk the list in order, calling each phase's handler; a CKPT with if_due runs only when
 * every_minutes have passed since the run started or its last checkpoint was written. Stops at
 * the first handler that fails and returns its status. */
int ldn_phases_run(const struct ldn_phases *p, const struct ldn_phase_ops *ops, void *ud,
                   double every_minutes, char *err, size_t errlen);

/* Name of a phase kind ("train"), for logs and errors. */
const char *ldn_phase_name(enum ldn_phase_kind k);

#endif
