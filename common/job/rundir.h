/* The run directory's own files, written the same way by the local trainer and the
 * coordinator: RUN_DIR/config.yaml (the resolved config) and RUN_DIR/metrics.jsonl at the
 * start, RUN_DIR/trunk.f32 (the final trunk, raw little-endian float32 in key order) at the
 * end. Checkpoints live under checkpoint.dir (jobckpt.h). */
#ifndef LDN_RUNDIR_H
#define LDN_RUNDIR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

/* A fresh run's claim on its checkpoint directories (checkpoint.dir and, with rounds, every
 * round's): when one already holds checkpoint files (step-N.h5, latest, step-N.h5.tmp) of an
 * earlier run, LDN_ERR_CONFIG with one line saying what is there and the ways on (--resume,
 * another run.dir, --overwrite), and nothing is touched; with run.overwrite they are deleted
 * (one warning saying how many, from where). 0 when the directories are free. */
int ldn_rundir_claim(const struct ldn_config *cfg, char *err, size_t errlen);

/* Create run.dir, write config.yaml atomically and open metrics.jsonl (appended to when
 * resuming, else truncated); a fresh run (not resuming) first claims its checkpoint
 * directories (ldn_rundir_claim). Returns the metrics file (the caller closes it) or NULL with
 * err. */
FILE *ldn_rundir_start(const struct ldn_config *cfg, int resuming, char *err, size_t errlen);

/* Write RUN_DIR/trunk.f32 atomically from the n trunk weights. Returns 0 or LDN_ERR_IO. */
int ldn_rundir_write_trunk(const struct ldn_config *cfg, const float *trunk, int64_t n, char *err,
                           size_t errlen);

#endif
