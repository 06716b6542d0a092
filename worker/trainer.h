/* The local trainer: every task of a config trained in one process (shared trunk, per-task
 * heads, global task schedule, per-task loss weights). It is the numerical reference for the
 * distributed engine. */
#ifndef LDN_TRAINER_H
#define LDN_TRAINER_H

#include <stddef.h>

#include "config.h"

/* Train cfg's tasks, evaluating every cfg->eval_every epochs; progress lines go to the log,
 * evaluations to RUN_DIR/metrics.jsonl, the resolved config to RUN_DIR/config.yaml, and
 * checkpoints (checkpoint.*) to checkpoint.dir in the distributed runs' format, written with the
 * serial HDF5 driver. resume (NULL for a fresh run) is "latest", a checkpoint file or a
 * directory: training continues from it exactly. Returns 0 or a negative status with one line
 * in err. */
int ldn_train_local(const struct ldn_config *cfg, const char *resume, char *err, size_t errlen);

#endif
