/* What every rank of a distributed job knows after start-up (launch/dist.c builds it):
 * the config, the plan, the data sizes, the endpoints and the trunk's key ranges (the last
 * rebuilt by a PLAN phase, through `replan`). */
#ifndef LDN_JOB_H
#define LDN_JOB_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "keyspace.h"
#include "net.h"
#include "nn.h"
#include "plan.h"

#define LDN_JOB_HOST_MAX 64

struct ldn_job {
    const struct ldn_config *cfg;
    const struct ldn_plan *plan;
    int rank, world;
    void *zctx;
    int features;
    const int64_t *n_train, *n_test; /* [n_tasks], whole tasks */
    const int *classes;              /* [n_tasks] */
    int64_t steps_per_epoch, total_steps;
    char coord_endpoint[LDN_NET_ENDPOINT_MAX];
    char (*server_endpoints)[LDN_NET_ENDPOINT_MAX]; /* [n_servers] */
    const struct ldn_range *ranges;                 /* [n_servers] */
    const struct ldn_chunk *chunks;                 /* chunk table, key order */
    int n_chunks;
    int64_t trunk_params;
    const struct ldn_nn *trunk; /* the trunk's layer geometry (key layout of every range) */
    /* A PLAN phase: switch the trunk to hidden widths widths[0..n) on this rank (the fields
     * trunk, trunk_params, ranges, chunks and n_chunks above are rebuilt; every role re-reads
     * them afterwards and rebuilds its own trunk state). launch/dist.c provides it. Returns 0
     * or a negative status with err. */
    int (*replan)(void *ud, const int *widths, int n, char *err, size_t errlen);
    void *replan_ud;
    /* A round of a run with rounds (round_index < 0: a run without them): the run's config
     * (with its rounds; cfg above is the round's own, ldn_config_round), the round's index, the
     * snapshot it starts from (NULL: fresh weights) and its teacher's member checkpoints; on
     * rank 0 the run's metrics.jsonl, which gets every round's records too. */
    const struct ldn_config *run_cfg;
    int round_index;
    const char *round_init;
    const char *const *round_members;
    FILE *run_metrics;
    double round_t0; /* rank 0: when the round's set-up began (ldn_clock_now) */
    /* ladon train --resume: the checkpoint every role loads its state from (NULL: fresh) */
    const char *resume_path;
    int64_t resume_step;
    /* the identity of the weights the run started from (ldn_model_init_id; from the
     * checkpoint when resuming, 0 when it has none): every checkpoint records it */
    uint64_t init_id;
    /* each rank's host name (MPI_Get_processor_name), [world]; liveness names ranks by it */
    char (*hosts)[LDN_JOB_HOST_MAX];
    /* coordinator and servers: the watch of their listening socket (common/net/watch.h; NULL
     * elsewhere): polled in their loops, told of the job's own departures */
    struct ldn_net_watch *watch;
};

#endif
