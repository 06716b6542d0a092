/* Parameter server: one key range of the trunk, its optimizer state, and the consistency
 * model (bsp / ssp / async) that decides when a pull may be answered. The gradient applied
 * is the sum over task groups of each group's mean push (a group that sat the step out sent
 * a CLOCK instead).
 *
 * Single-threaded: ldn_server_handle processes one message and may answer on the socket it
 * came from; ldn_server_run is the event loop over one ROUTER socket. Every message is
 * validated before it touches state (sender, op, key range, lengths, step, finite values);
 * a bad one is counted, answered with an ERROR and never applied. */
#ifndef LDN_SERVER_H
#define LDN_SERVER_H

#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "config.h"
#include "job.h"
#include "keyspace.h"
#include "net.h"
#include "plan.h"

struct ldn_server_opts {
    int rank;
    int64_t lo, hi;    /* key range [lo, hi) */
    const float *init; /* initial values of the range, copied */
    const struct ldn_config *cfg;
    int64_t total_steps, steps_per_epoch;
    int n_workers;
    const int *worker_ranks;        /* ascending */
    const int *worker_group_size;   /* [n_workers]: workers in that worker's task group */
    const int *worker_group;        /* [n_workers]: that worker's task group (ps.affinity) */
    int n_groups;                   /* task groups (ps.affinity) */
    int n_layers;                   /* trunk layers (ps.affinity) */
    FILE *clock_log;                /* optional: one line per served pull (see docs/wire.md) */
    const struct ldn_chunk *chunks; /* the job's chunk table (all servers), borrowed */
    int n_chunks;
    const struct ldn_job *job; /* for checkpoints (NULL: none, e.g. in tests) */
};

struct ldn_server_stats {
    int64_t steps_applied; /* BSP steps, or pushes applied (ssp/async) */
    int64_t pushes, pulls, bad_messages;
    int64_t bytes_in, bytes_out;
    int64_t max_staleness; /* max over served pulls of (clock asked - slowest clock) */
    int64_t pcgrad_projections, pcgrad_pairs; /* ps.task_gradients pcgrad: projections made,
                                                 of the ordered group pairs looked at */
};

struct ldn_server;

/* A new server for opts. Returns NULL with err on failure. */
struct ldn_server *ldn_server_new(const struct ldn_server_opts *opts, char *err, size_t errlen);
void ldn_server_destroy(struct ldn_server **s);

/* Handle one received message (ownership of m's frames passes to the server). Returns 1
 * when a stop command arrived, 2 for a plan switch, 0 otherwise (bad messages included), negative
 * on a socket failure. */
int ldn_server_handle(struct ldn_server *s, void *sock, struct ldn_msg *m);

/* Event loop on a ROUTER socket until stopped. `coord` is a DEALER connected to the
 * coordinator, used for nothing but liveness; a wait longer than cfg->timeout_s (no
 * message at all, or pushes of an open step missing) ends with LDN_ERR_TIMEOUT and err
 * naming what was awaited. */
int ldn_server_run(struct ldn_server *s, void *sock, char *err, size_t errlen);
/* ldn_server_run returns 1 instead of 0 when a plan message ended it (between phases): the
 * caller rebuilds the key layout (job->replan with these widths), makes a new server and
 * starts it at the plan's step. The plan (borrowed, valid until destroy). */
const struct ldn_wire_plan *ldn_server_next_plan(const struct ldn_server *s);
/* Start a fresh server at global step `step` (a plan switch): every clock and chunk version. */
void ldn_server_start_at(struct ldn_server *s, int64_t step);

struct ldn_ckpt;
/* Continue from a checkpoint (before ldn_server_run): this server's rows of the trunk and of
 * the optimizer state, the update counts, and every worker's clock at the checkpoint's step.
 * Returns 0 or a negative status with err naming the checkpoint and what is wrong. */
int ldn_server_resume(struct ldn_server *s, const struct ldn_ckpt *ck, char *err, size_t errlen);

void ldn_server_get_stats(const struct ldn_server *s, struct ldn_server_stats *st);
/* The server's current weights for [lo, hi) (borrowed). */
const float *ldn_server_params(const struct ldn_server *s);

#endif
