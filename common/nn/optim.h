/* Optimizers over flat parameter vectors, and learning-rate schedules.
 *
 * Semantics follow PyTorch's torch.optim so that results compare one to one:
 *  - SGD: g += wd*p; buf = mu*buf + g; g = nesterov ? g + mu*buf : buf; p -= lr*g
 *  - Adam: g += wd*p (L2); m, v moments with bias correction; p -= lr*mhat/(sqrt(vhat)+eps)
 *  - AdamW: p -= lr*wd*p (decoupled), then Adam without L2. */
#ifndef LDN_OPTIM_H
#define LDN_OPTIM_H

#include <stdint.h>

#include "config.h"

struct ldn_optim {
    struct ldn_optim_config cfg;
    int64_t n;
    int64_t t; /* steps taken */
    float *m;  /* momentum buffer (SGD) or first moment (Adam), [n] */
    float *v;  /* second moment (Adam), [n], NULL for SGD */
};

/* Optimizer state for n parameters (zeroed). Returns NULL on allocation failure. */
struct ldn_optim *ldn_optim_new(const struct ldn_optim_config *cfg, int64_t n);
void ldn_optim_destroy(struct ldn_optim **o);

/* True when the optimizer keeps no state per key and leaves a key with a zero gradient as it
 * is (SGD without momentum or weight decay): updating only the keys that have a gradient is
 * then the dense update. */
bool ldn_optim_sparse_ok(const struct ldn_optim *o);
/* That update on params[keys[j]] with grad[keys[j]], j < m, the same arithmetic per key as
 * ldn_optim_update (only when ldn_optim_sparse_ok). */
void ldn_optim_update_keys(struct ldn_optim *o, float *params, const float *grad,
                           const uint32_t *keys, int64_t m, double lr);

/* One step on params[0..n) with gradient grad at learning rate lr (o->t counts the steps). */
void ldn_optim_step(struct ldn_optim *o, float *params, const float *grad, double lr);

/* Step number t (1-based, for Adam's bias correction) on keys [lo, hi) only: params, grad and
 * the optimizer state are indexed by key, so disjoint ranges can be updated one at a time
 * (a parameter server applies each chunk as soon as it is complete). Does not touch o->t. */
void ldn_optim_update(struct ldn_optim *o, float *params, const float *grad, int64_t lo, int64_t hi,
                      int64_t t, double lr);

/* Learning rate at global step `step` (0-based) of a run of total_steps steps, with
 * steps_per_epoch steps per epoch (for the step schedule). */
double ldn_lr_at(const struct ldn_lr_config *lr, double base_lr, int64_t step, int64_t total_steps,
                 int64_t steps_per_epoch);

#endif
