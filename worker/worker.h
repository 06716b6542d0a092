/* A distributed worker: trains the tasks of its group on its shard against the parameter
 * servers, following the coordinator's phase commands (train steps, evaluate, stop). */
#ifndef LDN_WORKER_H
#define LDN_WORKER_H

#include <mpi.h>
#include <stddef.h>

#include "job.h"

/* Run until the coordinator says stop. group_comm spans the workers of this rank's group
 * (head gradients are averaged on it). Returns 0 or a negative status with err. */
int ldn_worker_run(const struct ldn_job *job, MPI_Comm group_comm, char *err, size_t errlen);

#endif
