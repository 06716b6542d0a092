/* A job's checkpoints on top of the checkpoint file format (common/ckpt): the collective write
 * of one step by every rank, the checks before a resume, what compression state carries over,
 * and a task's part (head, head optimizer, batch order) as a worker or the local trainer
 * holds it. docs/checkpoint.md describes the layout. */
#ifndef LDN_JOBCKPT_H
#define LDN_JOBCKPT_H

#include <stddef.h>
#include <stdint.h>

#include "ckpt.h"
#include "config.h"
#include "job.h"
#include "nn.h"

/* A distributed job's checkpoint of `step`: every rank calls it with its items
 * (the coordinator passes the last evaluation as metrics); written to checkpoint.dir with
 * checkpoint.keep_last, under a watchdog of checkpoint.timeout seconds. */
/* A checkpoint command of `step` counts `announced` lost workers: 0 when this rank knows as
 * many (every rank must write with the same ranks), else a negative status with err naming
 * both counts. */
int ldn_jobckpt_check_lost(int64_t step, unsigned announced, int rank, char *err, size_t errlen);

int ldn_jobckpt_write(const struct ldn_job *job, int64_t step, const char *metrics,
                      const struct ldn_ckpt_items *items, char *path, size_t path_len, char *err,
                      size_t errlen);

/* Can a job of cfg (features inputs, n_workers workers, total_steps steps) resume from ck?
 * Returns 0, or LDN_ERR_CONFIG with one line naming the first difference (model shape,
 * tasks, optimizer) in err, or LDN_ERR_FORMAT when the file's objects cannot all be walked
 * (damaged metadata) or a trunk or head layer is missing. Another worker layout or compress
 * section is one warning saying what carries over. */
int ldn_jobckpt_check(const struct ldn_ckpt *ck, const struct ldn_config *cfg, int features,
                      int n_workers, int64_t total_steps, char *err, size_t errlen);

/* Per-worker compression state (bits): a codec (and its random stream), an error-feedback
 * residual, a momentum-correction velocity (the servers then keep no momentum buffer). */
enum { LDN_JOBCKPT_CODEC = 1, LDN_JOBCKPT_RESIDUAL = 2, LDN_JOBCKPT_VELOCITY = 4 };
/* The state a job of cfg keeps per worker (the bits above; 0 for plain dense pushes). */
int ldn_jobckpt_compress_state(const struct ldn_config *cfg);
/* The same for the job that wrote ck (from its stored config), and whether its workers line
 * up with those of a job of cfg with n_workers workers (*same: same count, same
 * tasks.*.workers; otherwise no worker state carries over). 0 or FORMAT with err. */
int ldn_jobckpt_stored_state(const struct ldn_ckpt *ck, const struct ldn_config *cfg, int n_workers,
                             int *state, int *same, char *err, size_t errlen);
/* Does a residual written with ckpt_state carry over to a job with job_state? Only when both
 * keep one and both or neither use momentum correction (the residual's units differ). */
int ldn_jobckpt_keeps_residual(int ckpt_state, int job_state);

struct ldn_optim;
struct ldn_batcher;

/* Where in ck the worker_index-th worker of a job (0-based among the worker ranks) finds its
 * own state (/workers/<rank>/...): worker ranks follow the coordinator and the servers, so the
 * rank is 1 + the checkpoint's servers + worker_index, whatever ps.servers is now; a local
 * trainer's checkpoint keeps its one worker's state at rank 0. task is one of its tasks. */
int ldn_jobckpt_worker_source(const struct ldn_ckpt *ck, int worker_index, const char *task);

/* A task's part of a checkpoint as a worker holds it: with `head_too`, /heads/<task> and its
 * optimizer state (/optimizer/{m,v,t}/heads/<task>); always the batch order of that task's
 * shard under /workers/<rank>/batch/<task>/{perm,state,rng}. state[2] receives the batcher's
 * position and passes and must live until the write. */
int ldn_jobckpt_add_task(struct ldn_ckpt_items *it, int rank, const char *task,
                         const struct ldn_nn *head, struct ldn_optim *opt,
                         const struct ldn_batcher *b, int64_t state[2], int head_too);
/* Read back what ldn_jobckpt_add_task wrote: the head and its optimizer state always, and
 * rank's batch order (checked) into b unless b is NULL (another worker layout: the order of a
 * shard that no longer exists is not read). */
int ldn_jobckpt_read_task(const struct ldn_ckpt *ck, int rank, const char *task,
                          struct ldn_nn *head, struct ldn_optim *opt, struct ldn_batcher *b,
                          char *err, size_t errlen);

#endif
