/* Liveness in one place: who a rank is (rank, role, task group, host) for messages, when a
 * peer last spoke, which peers have gone silent for longer than the job's liveness timeout,
 * and the process-wide record of the workers the job lost and goes on without
 * (ps.on_worker_loss: continue). docs/faults.md says what each role does with it.
 *
 * A tracker is not thread-safe; the lost record is written and read by the rank's main
 * thread only. */
#ifndef LDN_LIVENESS_H
#define LDN_LIVENESS_H

#include <stddef.h>

#include "config.h"
#include "job.h"

struct ldn_liveness;

/* Seconds of silence after which a peer counts as dead or hung: ps.liveness_timeout, at most
 * ps.timeout. */
double ldn_liveness_timeout(const struct ldn_config *cfg);

/* "worker rank 5 (group 1: tasks a,b; host vm)", "server rank 2 (host vm)", "the coordinator
 * (rank 0, host vm)" into buf; returns buf. */
const char *ldn_liveness_name(const struct ldn_job *job, int rank, char *buf, size_t len);

/* A tracker of `n` ranks (indexed by rank), every one seen at `now`; NULL when out of memory.
 * destroy accepts NULL and sets *l to NULL. */
struct ldn_liveness *ldn_liveness_new(int n, double timeout_s, double now);
void ldn_liveness_destroy(struct ldn_liveness **l);
/* Rank r spoke (or is to be watched afresh) at `now`. */
void ldn_liveness_seen(struct ldn_liveness *l, int r, double now);
/* Seconds since rank r last spoke. */
double ldn_liveness_silent(const struct ldn_liveness *l, int r, double now);
/* The first rank in [lo, hi) that is not lost and has been silent for longer than the timeout,
 * or -1. */
int ldn_liveness_expired(const struct ldn_liveness *l, int lo, int hi, double now);

/* The process-wide record of lost ranks (a worker the job goes on without). note returns 1
 * when r was not already recorded. */
int ldn_liveness_note_lost(int r);
int ldn_liveness_is_lost(int r);
int ldn_liveness_lost_count(void);
/* The lost ranks as "3, 7" into buf (empty when none); returns buf. */
const char *ldn_liveness_lost_list(char *buf, size_t len);
/* Forget every lost rank (a new job on the same ranks, and tests). */
void ldn_liveness_reset_lost(void);

/* mpirun was started with orte_enable_recovery (Open MPI 4.1: the survivors of a dead rank
 * keep running; the ranks see OMPI_MCA_orte_enable_recovery in their environment). */
int ldn_liveness_recovery_on(void);

#endif
