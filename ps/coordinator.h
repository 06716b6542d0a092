/* The coordinator (rank 0): drives the job's phases, gathers reports, prints progress,
 * writes metrics.jsonl, detects silent (dead) processes and shuts the job down.
 *
 * A run is a list of phases — train [from, to), eval at step, stop — sent to every worker
 * as command messages (docs/wire.md); each phase ends when every worker answered done. New
 * phase kinds (checkpoint, distillation round with a re-partitioned trunk, pruning step) are
 * new entries in that list with their own handlers on servers and workers. */
#ifndef LDN_COORDINATOR_H
#define LDN_COORDINATOR_H

#include <stddef.h>

#include "job.h"

/* Run the job to the end. router: the coordinator's bound ROUTER (workers connect to it);
 * servers[s]: DEALERs connected to each server. Returns 0 or a negative status with err
 * naming what failed (a silent rank, a server error, a metrics write). */
int ldn_coord_run(const struct ldn_job *job, void *router, void **servers, char *err,
                  size_t errlen);

#endif
