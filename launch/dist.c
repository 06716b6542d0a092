#define _POSIX_C_SOURCE 200809L
/* Distributed start-up and role dispatch. */
#include "dist.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "auth.h"
#include "ckpt.h"
#include "clock.h"
#include "config.h"
#include "coordinator.h"
#include "data.h"
#include "fs.h"
#include "job.h"
#include "jobckpt.h"
#include "keyspace.h"
#include "liveness.h"
#include "log.h"
#include "model.h"
#include "net.h"
#include "phases.h"
#include "plan.h"
#include "rounds.h"
#include "rundir.h"
#include "server.h"
#include "status.h"
#include "watch.h"
#include "watchdog.h"
#include "worker.h"

/* Seconds the start-up collectives may take before the config (and ps.timeout) is known. */
#define START_UP_S 300.0

/* Rank 0 decided status (0 or an error message); everyone learns it. Returns the status. */
static int agree(int status, const char *msg)
{
    int st = status;
    MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (st != 0 && rank == 0)
        fprintf(stderr, "ladon: %s\n", msg);
    return st;
}

/* Broadcast a string from rank 0 (allocated on the other ranks). */
static char *bcast_text(const char *text)
{
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    long long n = rank == 0 ? (long long)strlen(text) : 0;
    MPI_Bcast(&n, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
    char *buf = rank == 0 ? (char *)text : malloc((size_t)n + 1);
    if (!buf)
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Bcast(buf, (int)n, MPI_CHAR, 0, MPI_COMM_WORLD);
    buf[n] = '\0';
    return buf;
}

struct data_info {
    int64_t *n_train, *n_test;
    int *classes;
    int features;
};

/* Rank 0 reads every task file's header; returns 0 or an error in err. */
static int probe_data(const struct ldn_config *cfg, struct data_info *d, char *err, size_t errlen)
{
    if (cfg->weighting.gradients == LDN_GRAD_PCGRAD && cfg->consistency != LDN_BSP)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "config %s: ps.task_gradients: pcgrad needs ps.consistency: bsp under "
                        "mpirun (the servers project the task groups' gradients of a step "
                        "against each other), got %s",
                        cfg->source, ldn_consistency_name(cfg->consistency));
    for (int t = 0; t < cfg->n_tasks; t++) {
        char name[LDN_NAME_MAX];
        int feat;
        int rc = ldn_dataset_probe(cfg->tasks[t].file, name, sizeof name, &d->classes[t], &feat,
                                   &d->n_train[t], &d->n_test[t], err, errlen);
        if (rc)
            return rc;
        if (t == 0)
            d->features = feat;
        else if (feat != d->features)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "data %s: task '%s' has %d features but task '%s' has %d; tasks "
                            "sharing a trunk need the same input size",
                            cfg->tasks[t].file, cfg->tasks[t].name, feat, cfg->tasks[0].name,
                            d->features);
    }
    return 0;
}

static void log_plan(const struct ldn_job *job, double imbalance)
{
    const struct ldn_plan *p = job->plan;
    const struct ldn_config *cfg = job->cfg;
    LDN_INFO("job: %d ranks = 1 coordinator + %d servers + %d workers in %d task groups",
             job->world, p->n_servers, p->n_workers, p->n_groups);
    for (int g = 0; g < p->n_groups; g++) {
        char tasks[512] = "";
        size_t off = 0;
        for (int i = 0; i < p->groups[g].n_tasks && off < sizeof tasks - 80; i++)
            off += (size_t)snprintf(tasks + off, sizeof tasks - off, "%s%s", i ? "," : "",
                                    cfg->tasks[p->groups[g].tasks[i]].name);
        LDN_INFO("group %d: tasks %s on worker ranks %d..%d", g, tasks, p->groups[g].ranks[0],
                 p->groups[g].ranks[p->groups[g].n_ranks - 1]);
    }
    for (int s = 0; s < p->n_servers; s++)
        LDN_INFO("server rank %d: keys [%lld, %lld) (%.2f MB) at %s", 1 + s,
                 (long long)job->ranges[s].lo, (long long)job->ranges[s].hi,
                 4e-6 * (double)(job->ranges[s].hi - job->ranges[s].lo), job->server_endpoints[s]);
    LDN_INFO("trunk: %lld parameters over %d servers, imbalance %.1f%% (largest range vs mean), "
             "%d chunks of up to %d KiB per push",
             (long long)job->trunk_params, p->n_servers, 100.0 * imbalance, job->n_chunks,
             cfg->chunk_kb);
}

/* A server for this rank's range of the job's current key layout; NULL with err. */
static struct ldn_server *new_server(const struct ldn_job *job, FILE *clock_log, char *err,
                                     size_t errlen)
{
    const struct ldn_plan *p = job->plan;
    int *workers = malloc(sizeof(int) * (size_t)p->n_workers);
    int *group_size = malloc(sizeof(int) * (size_t)p->n_workers);
    int *group = malloc(sizeof(int) * (size_t)p->n_workers);
    struct ldn_server *s = NULL;
    if (!workers || !group_size || !group)
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    else {
        for (int i = 0; i < p->n_workers; i++) {
            workers[i] = 1 + p->n_servers + i;
            group[i] = p->group_of_rank[workers[i]];
            group_size[i] = p->groups[group[i]].n_ranks;
        }
        const struct ldn_range *r = &job->ranges[job->rank - 1];
        struct ldn_server_opts o = {.rank = job->rank,
                                    .lo = r->lo,
                                    .hi = r->hi,
                                    .init = job->trunk->params + r->lo,
                                    .cfg = job->cfg,
                                    .total_steps = job->total_steps,
                                    .steps_per_epoch = job->steps_per_epoch,
                                    .n_workers = p->n_workers,
                                    .worker_ranks = workers,
                                    .worker_group_size = group_size,
                                    .worker_group = group,
                                    .n_groups = p->n_groups,
                                    .n_layers = job->trunk->n_layers,
                                    .clock_log = clock_log,
                                    .chunks = job->chunks,
                                    .n_chunks = job->n_chunks,
                                    .job = job};
        s = ldn_server_new(&o, err, errlen);
    }
    free(workers);
    free(group_size);
    free(group);
    return s;
}

static int resume_server(const struct ldn_job *job, struct ldn_server *s, char *err, size_t errlen)
{
    const struct ldn_range *r = &job->ranges[job->rank - 1];
    struct ldn_ckpt ck;
    double t0 = ldn_clock_now();
    int rc = ldn_ckpt_open(job->resume_path, &ck, err, errlen);
    if (rc == 0) {
        rc = ldn_server_resume(s, &ck, err, errlen);
        ldn_ckpt_close(&ck);
    }
    if (rc == 0)
        LDN_INFO("ps %d: loaded its %.1f MB of the trunk (and optimizer state) from the "
                 "checkpoint in %.2f s",
                 job->rank, 4e-6 * (double)(r->hi - r->lo), ldn_clock_now() - t0);
    return rc;
}

/* A plan switch on a server: the new key layout, a fresh server at the plan's step, and done
 * to the coordinator once it can serve. */
static int replan_server(const struct ldn_job *job, void *router, struct ldn_server **s,
                         FILE *clock_log, char *err, size_t errlen)
{
    const struct ldn_wire_plan p = *ldn_server_next_plan(*s);
    int widths[LDN_WIRE_MAX_LAYERS];
    for (uint32_t i = 0; i < p.n_trunk; i++)
        widths[i] = (int)p.trunk[i];
    ldn_server_destroy(s);
    int rc = job->replan(job->replan_ud, widths, (int)p.n_trunk, err, errlen);
    if (rc == 0 && !(*s = new_server(job, clock_log, err, errlen)))
        rc = LDN_ERR_NOMEM;
    if (rc)
        return rc;
    ldn_server_start_at(*s, p.step);
    struct ldn_wire_msg done;
    ldn_wire_msg_init(&done, LDN_OP_DONE, job->rank);
    done.done.step = p.step;
    return ldn_net_send(router, "c0", 2, &done, NULL, err, errlen) < 0 ? LDN_ERR_IO : 0;
}

static int run_server(const struct ldn_job *job, void *router, char *err, size_t errlen)
{
    FILE *clock_log = NULL;
    if (job->cfg->record_clocks) {
        char path[LDN_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/clocks-ps%d.tsv", job->cfg->run_dir, job->rank);
        if (!(clock_log = fopen(path, "w")))
            return ldn_fail(err, errlen, LDN_ERR_IO, "ps %d: cannot write %s", job->rank, path);
    }
    struct ldn_server *s = new_server(job, clock_log, err, errlen);
    int rc = s ? 0 : LDN_ERR_NOMEM;
    if (rc == 0 && job->resume_path)
        rc = resume_server(job, s, err, errlen);
    while (rc == 0 && (rc = ldn_server_run(s, router, err, errlen)) == 1)
        rc = replan_server(job, router, &s, clock_log, err, errlen);
    ldn_server_destroy(&s);
    if (clock_log)
        fclose(clock_log);
    return rc;
}

static int run_coordinator(const struct ldn_job *job, void *router, char *err, size_t errlen)
{
    int S = job->plan->n_servers, rc = 0;
    void **socks = calloc((size_t)S, sizeof *socks);
    if (!socks)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int s = 0; s < S && rc == 0; s++) {
        char peer[32];
        snprintf(peer, sizeof peer, "server rank %d", 1 + s);
        if (!(socks[s] =
                  ldn_net_connect(job->zctx, "c0", job->server_endpoints[s], peer, err, errlen)))
            rc = LDN_ERR_IO;
    }
    if (rc == 0)
        rc = ldn_coord_run(job, router, socks, err, errlen);
    for (int s = 0; s < S; s++)
        ldn_net_close(&socks[s]);
    free(socks);
    return rc;
}

/* Rank 0: the checkpoint `arg` names, checked against the job. 0 or an error in err. */
static int check_resume(const char *arg, const struct ldn_job *job, char *path, size_t len,
                        int64_t *step, char *err, size_t errlen)
{
    int rc = ldn_ckpt_resolve(arg, job->cfg->ckpt.dir, path, len, err, errlen);
    struct ldn_ckpt ck;
    if (rc == 0 && (rc = ldn_ckpt_open(path, &ck, err, errlen)) == 0) {
        rc = ldn_jobckpt_check(&ck, job->cfg, job->features, job->plan->n_workers, job->total_steps,
                               err, errlen);
        *step = ck.step;
        ldn_ckpt_close(&ck);
    }
    return rc;
}

/* What start-up builds on every rank, torn down by dist_free. */
struct dist {
    int rank, world;
    struct ldn_config *cfg;     /* the job's: the run's, or the round's in a run with rounds */
    struct ldn_config *run_cfg; /* a run with rounds: the run's (with its rounds), else NULL */
    int round_index;            /* the round being run, -1 without rounds */
    struct ldn_round_paths paths;
    FILE *run_metrics; /* rank 0, a run with rounds: the run's metrics.jsonl */
    double round_t0;
    struct data_info d;
    struct ldn_plan *plan;     /* roles and task groups */
    struct ldn_keyspace *keys; /* the trunk's key layout: rebuilt per plan */
    struct ldn_job job;        /* what the roles borrow */
    char *resume_path;
    char (*eps)[LDN_NET_ENDPOINT_MAX]; /* [world] */
    char (*hosts)[LDN_JOB_HOST_MAX];   /* [world] */
    void *router;                      /* coordinator and servers */
    struct ldn_auth *auth;             /* net.curve: this rank's keys (and ZAP handler) */
    MPI_Comm group;                    /* workers: their task group */
    enum ldn_role role;
};

/* What one job (a run, or one round of a run with rounds) built. */
static void dist_free_job(struct dist *x)
{
    if (x->group != MPI_COMM_NULL)
        MPI_Comm_free(&x->group);
    ldn_net_watch_destroy(&x->job.watch);
    ldn_net_close(&x->router);
    ldn_net_use_auth(NULL);
    ldn_auth_destroy(&x->auth);
    if (x->job.zctx)
        zmq_ctx_term(x->job.zctx);
    x->job.zctx = NULL;
    free(x->eps);
    free(x->hosts);
    free(x->resume_path);
    x->eps = NULL;
    x->hosts = NULL;
    x->resume_path = NULL;
    ldn_keyspace_destroy(&x->keys);
    ldn_plan_destroy(&x->plan);
    free(x->d.n_train);
    free(x->d.n_test);
    free(x->d.classes);
    memset(&x->d, 0, sizeof x->d);
}

static void dist_free(struct dist *x)
{
    dist_free_job(x);
    if (x->run_cfg && x->cfg != x->run_cfg)
        ldn_config_destroy(&x->run_cfg);
    ldn_config_destroy(&x->cfg);
    if (x->run_metrics)
        fclose(x->run_metrics);
    x->run_metrics = NULL;
}

/* Start-up failed on some rank (rank 0 has said why): free what was built, end MPI, exit 1. */
static int give_up(struct dist *x)
{
    dist_free(x);
    ldn_watchdog_disarm();
    MPI_Finalize();
    return 1;
}

/* 1. Config: rank 0 reads and validates, everyone parses the resolved text. 0 or 1 (said). */
static int start_config(struct dist *x, const char *path, int n_over, char *const *over)
{
    char err[LDN_ERRLEN] = "";
    if (x->rank == 0)
        x->cfg = ldn_config_load(path, n_over, over, err, sizeof err);
    if (agree(x->cfg || x->rank != 0 ? 0 : 1, err))
        return 1;
    char *text = bcast_text(x->rank == 0 ? x->cfg->resolved_yaml : NULL);
    if (x->rank != 0) {
        x->cfg = ldn_config_parse(text, strlen(text), path, 0, NULL, err, sizeof err);
        free(text);
        if (!x->cfg) {
            fprintf(stderr, "ladon rank %d: resolved config did not parse: %s\n", x->rank, err);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    return 0;
}

/* 2. Data sizes, probed by rank 0 and broadcast. 0 or 1 (said). */
static int start_data(struct dist *x)
{
    const int n = x->cfg->n_tasks;
    char err[LDN_ERRLEN] = "";
    struct data_info *d = &x->d;
    ldn_data_set_max_memory((int64_t)(x->cfg->data_max_memory_mb * (1 << 20)));
    d->n_train = calloc((size_t)n, sizeof(int64_t));
    d->n_test = calloc((size_t)n, sizeof(int64_t));
    d->classes = calloc((size_t)n, sizeof(int));
    if (!d->n_train || !d->n_test || !d->classes)
        MPI_Abort(MPI_COMM_WORLD, 1);
    if (agree(x->rank == 0 ? probe_data(x->cfg, d, err, sizeof err) : 0, err))
        return 1;
    MPI_Bcast(d->n_train, n, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(d->n_test, n, MPI_INT64_T, 0, MPI_COMM_WORLD);
    MPI_Bcast(d->classes, n, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Bcast(&d->features, 1, MPI_INT, 0, MPI_COMM_WORLD);
    return 0;
}

/* Per-plan set-up: the trunk's key layout for trunk widths[0..n) (ranges, chunk table),
 * filled into the job every role borrows; servers initialise the trunk from the seed. Every
 * rank computes the same. Returns 0 or a negative status with err (this rank only). */
/* The largest frame of this job, for ldn_net_set_max_frame: the bigger of its largest chunk
 * and any chunk a later plan could have (about chunk_kb of whole rows, a row at most the
 * widest input a layer can have: the features or a hidden width of up to 1,000,000, plus
 * its bias), in float32, plus 64 KiB for headers. */
static int64_t max_frame(const struct ldn_keyspace *k, int features, int chunk_kb)
{
    int64_t row = 4 * ((int64_t)(features > 1000000 ? features : 1000000) + 1);
    int64_t most = (int64_t)chunk_kb * 1024 + row;
    for (int i = 0; i < k->n_chunks; i++)
        if (4 * (k->chunks[i].hi - k->chunks[i].lo) > most)
            most = 4 * (k->chunks[i].hi - k->chunks[i].lo);
    return most + (64 << 10);
}

/* net.max_message_mb and net.queue_messages against what the key layout k sends: the largest
 * chunk (a push or a params frame of it, plus 64 KiB of headers and codec overhead) must fit in
 * a frame, and a peer's queue must hold what the job may leave unread at once — the pushes of
 * two steps to one server (a worker asks for step s + 1 before it pushes step s) or a
 * heartbeat a second to the coordinator for the longest wait — plus 64 control messages.
 * Sets the socket factory's limits; returns 0 or LDN_ERR_CONFIG with err naming the key. */
static int set_net_limits(const struct ldn_config *cfg, const struct ldn_keyspace *k, int features,
                          char *err, size_t errlen)
{
    int big = 0;
    for (int i = 1; i < k->n_chunks; i++)
        if (k->chunks[i].hi - k->chunks[i].lo > k->chunks[big].hi - k->chunks[big].lo)
            big = i;
    int64_t need = (64 << 10);
    if (k->n_chunks > 0) {
        const struct ldn_chunk *c = &k->chunks[big];
        const int64_t keys = c->hi - c->lo, rows = c->row_hi - c->row_lo;
        need += 4 * keys;
        const int64_t limit = (int64_t)(cfg->max_message_mb * (1 << 20));
        if (cfg->max_message_mb > 0 && limit < need) {
            const int64_t row_kb = rows > 0 ? 4 * keys / rows / 1024 : 0;
            char why[160] = "";
            if (rows == 1 && 4 * keys > (int64_t)cfg->chunk_kb * 1024)
                snprintf(
                    why, sizeof why,
                    "; one row of trunk layer %d alone is %lld KiB, more than ps.chunk_kb: the "
                    "layer's input width drives it",
                    c->layer, (long long)row_kb);
            return ldn_fail(
                err, errlen, LDN_ERR_CONFIG,
                "net.max_message_mb: %g MiB is below the largest frame this job sends, "
                "%.2f MiB: a chunk of %lld row%s of trunk layer %d (%lld float32 keys) "
                "plus 64 KiB of headers; chunks are about ps.chunk_kb = %d KiB of whole "
                "rows%s. Raise net.max_message_mb (0 = automatic) or lower ps.chunk_kb",
                cfg->max_message_mb, (double)need / (1 << 20), (long long)rows,
                rows == 1 ? "" : "s", c->layer, (long long)keys, cfg->chunk_kb, why);
        }
    }
    ldn_net_set_max_frame(cfg->max_message_mb > 0 ? (int64_t)(cfg->max_message_mb * (1 << 20))
                                                  : max_frame(k, features, cfg->chunk_kb));
    int most = 0, at = 0;
    for (int s = 0; s < cfg->servers; s++) {
        int n = 0;
        for (int i = 0; i < k->n_chunks; i++)
            n += k->chunks[i].server == s;
        if (n > most)
            most = n, at = s;
    }
    const double wait = cfg->timeout_s > cfg->ckpt.timeout_s ? cfg->timeout_s : cfg->ckpt.timeout_s;
    const int64_t beats = wait < 1e7 ? (int64_t)wait + 1 : 10000000;
    const int64_t qneed = (2 * (int64_t)most > beats ? 2 * (int64_t)most : beats) + 64;
    if (cfg->queue_messages < qneed)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "net.queue_messages: %d is below what this job may leave queued for one "
                        "peer, %lld messages: the pushes of two steps to server rank %d (2 x %d "
                        "chunks) or a heartbeat a second to the coordinator for the longest wait "
                        "(%.0f s: ps.timeout, checkpoint.timeout), whichever is more, plus 64",
                        cfg->queue_messages, (long long)qneed, 1 + at, most, wait);
    ldn_net_set_queue(cfg->queue_messages);
    return LDN_OK;
}

static int setup_keys(struct dist *x, const int *widths, int n, char *err, size_t errlen)
{
    const struct ldn_config *cfg = x->cfg;
    ldn_keyspace_destroy(&x->keys);
    x->keys = ldn_keyspace_new(x->d.features, widths, n, cfg->activation, cfg->servers,
                               (int64_t)cfg->chunk_kb * 1024, err, errlen);
    if (!x->keys)
        return LDN_ERR_CONFIG;
    if (x->role == LDN_ROLE_SERVER) {
        struct ldn_rng r;
        ldn_rng_init(&r, cfg->seed, LDN_STREAM_TRUNK_INIT);
        ldn_nn_init(x->keys->trunk, &r);
    }
    int rc = set_net_limits(cfg, x->keys, x->d.features, err, errlen);
    if (rc)
        return rc;
    ldn_net_set_send_timeout(cfg->timeout_s);
    x->job.trunk = x->keys->trunk;
    x->job.trunk_params = x->keys->trunk->n_params;
    x->job.ranges = x->keys->ranges;
    x->job.chunks = x->keys->chunks;
    x->job.n_chunks = x->keys->n_chunks;
    return LDN_OK;
}

/* job->replan: the key layout of another trunk (a PLAN phase), logged like the first one. */
static int replan(void *ud, const int *widths, int n, char *err, size_t errlen)
{
    struct dist *x = ud;
    int rc = setup_keys(x, widths, n, err, errlen);
    if (rc == 0 && x->role == LDN_ROLE_SERVER) {
        const struct ldn_range *r = &x->keys->ranges[x->rank - 1];
        LDN_INFO("ps %d: new plan: keys [%lld, %lld) of a %lld-parameter trunk", x->rank,
                 (long long)r->lo, (long long)r->hi, (long long)x->keys->trunk->n_params);
    }
    return rc;
}

/* 3. Roles and task groups, and the first plan's key layout. 0 or 1 (said). */
static int start_plan(struct dist *x)
{
    const struct ldn_config *cfg = x->cfg;
    char err[LDN_ERRLEN] = "";
    x->plan = ldn_plan_new(cfg, x->d.n_train, x->world, err, sizeof err);
    struct ldn_job *job = &x->job;
    *job = (struct ldn_job){.cfg = cfg,
                            .plan = x->plan,
                            .rank = x->rank,
                            .world = x->world,
                            .features = x->d.features,
                            .n_train = x->d.n_train,
                            .n_test = x->d.n_test,
                            .classes = x->d.classes,
                            .replan = replan,
                            .replan_ud = x,
                            .run_cfg = x->run_cfg,
                            .round_index = x->round_index,
                            .round_init = x->round_index >= 0 ? x->paths.init : NULL,
                            .round_members = x->paths.member,
                            .run_metrics = x->run_metrics,
                            .round_t0 = x->round_t0};
    int st = x->plan ? 0 : 1;
    if (st == 0) {
        x->role = ldn_plan_role(x->plan, x->rank);
        st = setup_keys(x, cfg->trunk, cfg->n_trunk, err, sizeof err);
    }
    if (st == 0 && x->rank == 0) /* before any role starts writing into it */
        st = ldn_mkdir_p(cfg->run_dir, err, sizeof err);
    int bad = st != 0, any_bad = 0, bad0 = bad; /* every rank built its plan and tables */
    MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Bcast(&bad0, 1, MPI_INT, 0, MPI_COMM_WORLD); /* rank 0 failed too: it says it, once */
    if (bad && x->rank != 0 && !bad0)
        fprintf(stderr, "ladon rank %d: %s\n", x->rank, err);
    if (any_bad && !bad)
        snprintf(err, sizeof err, "another rank failed to set up (its message is above)");
    if (agree(any_bad, err))
        return 1;
    job->steps_per_epoch = ldn_plan_steps_per_epoch(x->plan, cfg, x->d.n_train);
    job->total_steps = job->steps_per_epoch * cfg->epochs;
    if (x->role == LDN_ROLE_SERVER)
        ldn_log_set_role("ps", x->rank, NULL);
    else if (x->role == LDN_ROLE_WORKER) {
        const struct ldn_group *g = &x->plan->groups[x->plan->group_of_rank[x->rank]];
        char extra[80];
        snprintf(extra, sizeof extra, "task=%s%s", cfg->tasks[g->tasks[0]].name,
                 g->n_tasks > 1 ? ",..." : "");
        ldn_log_set_role("w", x->rank, extra);
    }
    return 0;
}

/* --resume: rank 0 checks the checkpoint against the job, everyone learns the path. */
static int start_resume(struct dist *x, const char *resume)
{
    char err[LDN_ERRLEN] = "", path[LDN_PATH_MAX + 64] = "";
    struct ldn_job *job = &x->job;
    int st = x->rank == 0
                 ? check_resume(resume, job, path, sizeof path, &job->resume_step, err, sizeof err)
                 : 0;
    if (agree(st, err))
        return 1;
    x->resume_path = bcast_text(x->rank == 0 ? path : NULL);
    if (x->rank == 0 && !(x->resume_path = strdup(path)))
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Bcast(&job->resume_step, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    job->resume_path = x->resume_path;
    if (x->rank == 0)
        LDN_INFO("resuming from %s (step %lld of %lld)", x->resume_path,
                 (long long)job->resume_step, (long long)job->total_steps);
    return 0;
}

/* net.curve (collective): rank 0 makes a key pair per rank and hands them out over MPI (public
 * keys and client names to everyone, each secret key to its rank only; nothing on disk); each
 * rank makes its authenticator, a ZAP handler on the listening ranks, and the socket factory
 * uses it from now on. Returns 0 or a negative status with err. */
static int start_auth(struct dist *x, char *err, size_t errlen)
{
    const int n = x->world;
    struct ldn_auth_peer *peers = calloc((size_t)n, sizeof *peers);
    char(*sec)[LDN_AUTH_KEY_Z85] = x->rank == 0 ? calloc((size_t)n, sizeof *sec) : NULL;
    char mine[LDN_AUTH_KEY_Z85] = "";
    if (!peers || (x->rank == 0 && !sec))
        MPI_Abort(MPI_COMM_WORLD, 1);
    int st = 0;
    if (x->rank == 0) {
        st = ldn_auth_keypairs(n, peers, sec, err, errlen);
        for (int r = 0; r < n; r++) /* the routing id each client rank connects with */
            if (r == 0 || ldn_plan_role(x->plan, r) == LDN_ROLE_WORKER)
                snprintf(peers[r].name, sizeof peers[r].name, r == 0 ? "c0" : "w%d", r);
    }
    MPI_Bcast(&st, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (st == 0) {
        MPI_Bcast(peers, (int)(sizeof *peers * (size_t)n), MPI_BYTE, 0, MPI_COMM_WORLD);
        MPI_Scatter(sec, LDN_AUTH_KEY_Z85, MPI_CHAR, mine, LDN_AUTH_KEY_Z85, MPI_CHAR, 0,
                    MPI_COMM_WORLD);
        x->auth = ldn_auth_new(x->job.zctx, n, x->rank, peers, mine, x->role != LDN_ROLE_WORKER,
                               err, errlen);
        st = x->auth ? 0 : LDN_ERR_IO;
    } else if (x->rank != 0)
        st = ldn_fail(err, errlen, st, "rank 0 could not make the job's CURVE keys");
    if (sec)
        memset(sec, 0, sizeof *sec * (size_t)n);
    memset(mine, 0, sizeof mine);
    free(sec);
    free(peers);
    ldn_net_use_auth(x->auth);
    return st;
}

/* A fresh run: rank 0 claims the checkpoint directories (refusing an earlier run's
 * checkpoints unless run.overwrite) before anything starts; everyone learns the outcome. */
static int start_fresh(struct dist *x)
{
    char err[LDN_ERRLEN] = "";
    return agree(x->rank == 0 ? ldn_rundir_claim(x->cfg, err, sizeof err) : 0, err) ? 1 : 0;
}

/* 4. Endpoints: the coordinator and the servers bind, everyone learns the addresses; then the
 * group communicators (collective over the world). */
static void start_endpoints(struct dist *x)
{
    char err[LDN_ERRLEN] = "", mine[LDN_NET_ENDPOINT_MAX] = "";
    struct ldn_job *job = &x->job;
    job->zctx = zmq_ctx_new();
    int st = job->zctx ? 0 : ldn_fail(err, sizeof err, LDN_ERR_IO, "zmq_ctx_new failed");
    if (x->cfg->curve) { /* collective: every rank, whatever st */
        int ast = start_auth(x, st ? NULL : err, st ? 0 : sizeof err);
        st = st ? st : ast;
    }
    if (st == 0 && x->role != LDN_ROLE_WORKER &&
        !(x->router = ldn_net_listen(job->zctx, x->cfg->iface, mine, sizeof mine, err, sizeof err)))
        st = LDN_ERR_IO;
    if (st == 0 && x->router) { /* connections dropped without a word get named */
        char name[32] = "coordinator";
        if (x->role == LDN_ROLE_SERVER)
            snprintf(name, sizeof name, "ps %d", x->rank);
        /* the grace is ps.timeout; the test hook LDN_TEST_WATCH_GRACE (seconds) shortens it */
        const char *g = getenv("LDN_TEST_WATCH_GRACE");
        const double grace = g && atof(g) > 0 ? atof(g) : x->cfg->timeout_s;
        if (!(job->watch = ldn_net_watch_new(job->zctx, x->router, name, grace, err, sizeof err)))
            st = LDN_ERR_IO;
    }
    int any = st != 0, fail_any = 0;
    MPI_Allreduce(&any, &fail_any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (fail_any) {
        if (st)
            fprintf(stderr, "ladon rank %d: %s\n", x->rank, err);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (!(x->eps = calloc((size_t)x->world, sizeof *x->eps)))
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(mine, LDN_NET_ENDPOINT_MAX, MPI_CHAR, x->eps, LDN_NET_ENDPOINT_MAX, MPI_CHAR,
                  MPI_COMM_WORLD);
    for (int r = 0; r < x->world && x->auth; r++)
        if (x->eps[r][0])
            ldn_auth_set_endpoint(x->auth, r, x->eps[r], NULL, 0);
    /* every rank's host, for the names liveness gives ranks in its messages */
    char host[MPI_MAX_PROCESSOR_NAME] = "", mine_host[LDN_JOB_HOST_MAX] = "";
    int hl = 0;
    MPI_Get_processor_name(host, &hl);
    snprintf(mine_host, sizeof mine_host, "%s", host);
    if (!(x->hosts = calloc((size_t)x->world, sizeof *x->hosts)))
        MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Allgather(mine_host, LDN_JOB_HOST_MAX, MPI_CHAR, x->hosts, LDN_JOB_HOST_MAX, MPI_CHAR,
                  MPI_COMM_WORLD);
    job->hosts = x->hosts;
    memcpy(job->coord_endpoint, x->eps[0], LDN_NET_ENDPOINT_MAX);
    job->server_endpoints = x->eps + 1;
    x->group = MPI_COMM_NULL;
    MPI_Comm_split(MPI_COMM_WORLD,
                   x->role == LDN_ROLE_WORKER ? x->plan->group_of_rank[x->rank] : MPI_UNDEFINED,
                   x->rank, &x->group);
}

/* Role dispatch: run this rank's role to the end. Returns 0 or a negative status with err. */
static int run_role(struct dist *x, char *err, size_t errlen)
{
    if (x->role == LDN_ROLE_COORD)
        return run_coordinator(&x->job, x->router, err, errlen);
    if (x->role == LDN_ROLE_SERVER)
        return run_server(&x->job, x->router, err, errlen);
    return ldn_worker_run(&x->job, x->group, err, errlen);
}

/* Rank 0: the identity of the weights this job starts from (job.init_id): the resumed
 * checkpoint's, or ldn_model_init_id of the fresh model, the seed's or the init round's
 * snapshot (loaded into trunk and heads here, which checks it). 0 or a status with err. */
static int init_identity(struct dist *x, const char *resume, uint64_t *id, char *err, size_t errlen)
{
    if (resume) {
        struct ldn_ckpt ck;
        int rc = ldn_ckpt_open(x->resume_path, &ck, err, errlen);
        *id = rc == 0 ? ck.init_id : 0;
        if (rc == 0)
            ldn_ckpt_close(&ck);
        return rc;
    }
    struct ldn_model *m = ldn_model_new(x->cfg, x->d.features, x->d.classes, 1, err, errlen);
    if (!m)
        return LDN_ERR_NOMEM;
    int rc = 0;
    if (x->round_index >= 0 && x->paths.init)
        rc = ldn_rounds_load_init(x->run_cfg, x->round_index, x->cfg, x->paths.init, m->trunk,
                                  m->heads, err, errlen);
    *id = rc == 0 ? ldn_model_init_id(m->trunk, m->heads, m->n_heads) : 0;
    ldn_model_destroy(&m);
    return rc;
}

/* The servers of a round that starts from an earlier round's snapshot (and is not resumed):
 * the trunk from that snapshot instead of the seed. Rank 0 checks the snapshot (the error that
 * names the round and what differs comes from it) and gives every rank the job's init_id.
 * 0 or 1 (said). */
static int start_init(struct dist *x, const char *resume)
{
    char err[LDN_ERRLEN] = "";
    int st = 0;
    if (x->rank == 0)
        st = init_identity(x, resume, &x->job.init_id, err, sizeof err);
    else if (x->round_index >= 0 && x->paths.init && !resume && x->role == LDN_ROLE_SERVER)
        st = ldn_rounds_load_init(x->run_cfg, x->round_index, x->cfg, x->paths.init, x->keys->trunk,
                                  NULL, err, sizeof err);
    int bad = st != 0, any_bad = 0;
    MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (bad && x->rank != 0)
        fprintf(stderr, "ladon rank %d: %s\n", x->rank, err);
    if (any_bad && !bad)
        snprintf(err, sizeof err, "another rank failed to load the round's init (above)");
    if (agree(any_bad, err))
        return 1;
    MPI_Bcast(&x->job.init_id, 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
    if (x->rank == 0 && x->round_index >= 0 && x->paths.init && !resume)
        LDN_INFO("round %s: starts from round %s (%s)", x->run_cfg->rounds[x->round_index].name,
                 x->run_cfg->rounds[x->round_index].init, x->paths.init);
    return 0;
}

/* Rank 0 after a clean end: RUN_DIR/status says so ("finished", and the ranks lost). Under
 * mpirun with orte_enable_recovery, mpirun exits 0 whatever the ranks did (Open MPI 4.1.4),
 * so launch/ladon-run takes the job's outcome from this file. */
static void write_status(const struct ldn_config *cfg, int lost)
{
    char path[LDN_PATH_MAX + 16], list[256];
    snprintf(path, sizeof path, "%s/status", cfg->run_dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        LDN_WARN("cannot write %s", path);
        return;
    }
    fprintf(f, "finished lost=%s\n", lost ? ldn_liveness_lost_list(list, sizeof list) : "none");
    if (fclose(f) != 0)
        LDN_WARN("cannot write %s", path);
}

/* One job on every rank: start-up, the roles, the final barrier, what it built freed (the
 * config stays). 0, or 1 when start-up failed (said); a failure of a role aborts the job. */
static int run_job(struct dist *x, const char *resume)
{
    const double timeout = x->cfg->timeout_s;
    const double up = timeout > START_UP_S ? timeout : START_UP_S;
    /* each start-up collective under the watchdog, named: every rank takes part in each */
    ldn_watchdog_arm("the start-up collective of the data sizes (MPI_Bcast from rank 0; every "
                     "rank takes part)",
                     up);
    if (start_data(x))
        return 1;
    ldn_watchdog_arm("the start-up collective of the plan (MPI_Allreduce of every rank's set-up, "
                     "MPI_Bcast of the outcome)",
                     up);
    if (start_plan(x))
        return 1;
    ldn_watchdog_arm(resume ? "the start-up collective of the resume checkpoint (MPI_Bcast from "
                              "rank 0)"
                            : "the start-up collective of the run directory check (MPI_Bcast "
                              "from rank 0)",
                     up);
    if (resume ? start_resume(x, resume) : start_fresh(x))
        return 1;
    ldn_watchdog_arm("the start-up collectives of the initial weights (the init round's snapshot "
                     "on rank 0 and the servers: MPI_Allreduce of their outcome; init_id: "
                     "MPI_Bcast from rank 0)",
                     up);
    if (start_init(x, resume))
        return 1;
    ldn_watchdog_arm("the start-up collectives of the endpoints (CURVE keys: MPI_Bcast, "
                     "MPI_Scatter; endpoints and hosts: MPI_Allgather; task groups: "
                     "MPI_Comm_split)",
                     up);
    start_endpoints(x);
    if (x->rank == 0) {
        LDN_INFO("config %s (run %s, seed %llu), coordinator at %s, data plane %s", x->cfg->source,
                 x->cfg->run_name, (unsigned long long)x->cfg->seed, x->job.coord_endpoint,
                 x->auth ? "CURVE-authenticated (net.curve)"
                         : "unauthenticated (net.curve: false)");
        log_plan(&x->job, x->keys->imbalance);
    }
    ldn_watchdog_disarm();
    if (x->rank == 0 && x->cfg->on_worker_loss == LDN_LOSS_CONTINUE && !ldn_liveness_recovery_on())
        LDN_WARN("ps.on_worker_loss: continue, but mpirun runs without orte_enable_recovery: "
                 "mpirun itself ends the job when a rank dies (launch/ladon-run adds --mca "
                 "orte_enable_recovery 1; docs/faults.md)");
    char err[LDN_ERRLEN] = "";
    if (run_role(x, err, sizeof err) != 0) {
        LDN_ERROR("%s", err);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, 3);
    }
    /* A lost worker (ps.on_worker_loss: continue) is gone from every collective: the group
     * communicator that held it is left alone (an abandoned head sum may still refer to it) and
     * the final barrier, which it would never join, is skipped. */
    const int lost = ldn_liveness_lost_count();
    if (lost > 0)
        x->group = MPI_COMM_NULL;
    /* sockets and the ZeroMQ context go before the barrier: linger ends with them */
    if (x->group != MPI_COMM_NULL)
        MPI_Comm_free(&x->group);
    ldn_net_watch_destroy(&x->job.watch);
    ldn_net_close(&x->router);
    ldn_net_use_auth(NULL);
    ldn_auth_destroy(&x->auth);
    zmq_ctx_term(x->job.zctx);
    x->job.zctx = NULL;
    if (lost == 0) {
        ldn_watchdog_arm("the final barrier (every rank ends together; ps.timeout)", timeout);
        MPI_Barrier(MPI_COMM_WORLD);
        ldn_watchdog_disarm();
    } else if (x->rank == 0) {
        char list[256];
        LDN_INFO("final barrier skipped: worker rank(s) %s were lost",
                 ldn_liveness_lost_list(list, sizeof list));
    }
    if (x->rank == 0)
        write_status(x->cfg, lost);
    dist_free_job(x);
    return 0;
}

/* A run with rounds: each round is a job of its own on the same ranks (its config from
 * ldn_config_round, its plan and key ranges, its run directory under run.dir/rounds/NAME), in
 * order; a round whose snapshot is there is skipped when resuming and the first one that is
 * not is resumed from its latest checkpoint. 0, or 1 (said). */
static int run_rounds(struct dist *x, const char *resume)
{
    char err[LDN_ERRLEN] = "";
    x->run_cfg = x->cfg;
    x->cfg = NULL;
    const struct ldn_config *run = x->run_cfg;
    int st = 0;
    if (x->rank == 0) {
        st = ldn_rounds_check(run, resume, err, sizeof err);
        if (st == 0 && !(x->run_metrics = ldn_rundir_start(run, resume != NULL, err, sizeof err)))
            st = LDN_ERR_IO;
    }
    if (agree(st, err))
        return 1;
    for (int i = 0; i < run->n_rounds; i++) {
        const struct ldn_round_config *rr = &run->rounds[i];
        x->cfg = ldn_config_round(run, i, err, sizeof err); /* the same on every rank */
        if (agree(x->cfg ? 0 : 1, err))
            return 1;
        int state = x->rank == 0 && resume ? ldn_rounds_state(x->cfg) : 0;
        MPI_Bcast(&state, 1, MPI_INT, 0, MPI_COMM_WORLD);
        if (state == 2) {
            if (x->rank == 0)
                LDN_INFO("round %s (%d/%d): done (its snapshot is in %s)", rr->name, i + 1,
                         run->n_rounds, x->cfg->ckpt.dir);
            ldn_config_destroy(&x->cfg);
            continue;
        }
        x->round_index = i;
        x->round_t0 = ldn_clock_now();
        ldn_rounds_paths(run, i, &x->paths);
        if (x->rank == 0) {
            char from[512] = "";
            for (int m = 0, off = 0; m < rr->teacher.n_members && off < (int)sizeof from - 80; m++)
                off += snprintf(from + off, sizeof from - (size_t)off, "%s%.64s", m ? ", " : "",
                                rr->teacher.members[m]);
            LDN_INFO("round %s (%d/%d): %d trunk layer(s), %s%s%s", rr->name, i + 1, run->n_rounds,
                     rr->n_trunk, rr->has_teacher ? "distilling from " : "on labels", from,
                     state == 1 ? " (resumed)" : "");
        }
        if (run_job(x, state == 1 ? "latest" : NULL))
            return 1;
        ldn_config_destroy(&x->cfg);
    }
    x->cfg = x->run_cfg; /* dist_free frees it once */
    x->run_cfg = NULL;
    return 0;
}

int ldn_dist_main(const char *config_path, int n_over, char *const *over, const char *resume)
{
    /* Checkpoints: Open MPI's OMPIO moves collective writes through aggregator processes by
     * default; letting every rank write its own part ("individual") halves the time of a
     * checkpoint on one host (bench/checkpoint.sh). A value set by the user wins. */
    setenv("OMPI_MCA_fcoll", "individual", 0);
    /* MPI carries only start-up, checkpoints and task-group head sums; the ranks that wait
     * in it share their host's cores with workers. Open MPI spins in every wait and yields
     * the core only when it knows the host is oversubscribed; without that, a collective
     * where ranks outnumber cores takes a scheduler time slice per hop (33 ms per barrier
     * with 9 ranks on 2 cores, 0.25 ms when yielding; a checkpoint is dozens of collectives).
     * Yield always; a value set by the user wins. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    MPI_Init(NULL, NULL);
    struct dist x = {.group = MPI_COMM_NULL, .round_index = -1};
    MPI_Comm_rank(MPI_COMM_WORLD, &x.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &x.world);
    ldn_log_set_role(x.rank == 0 ? "coord" : "rank", x.rank, NULL);
    /* The start-up collectives have no timeout of their own: a rank that hangs before them
     * would hang the job. START_UP_S until the config is known, then ps.timeout. */
    ldn_watchdog_arm("the start-up collective of the config (MPI_Bcast from rank 0; every rank "
                     "takes part)",
                     START_UP_S);
    if (start_config(&x, config_path, n_over, over))
        return give_up(&x);
    if (x.cfg->n_rounds > 0 ? run_rounds(&x, resume) : run_job(&x, resume))
        return give_up(&x);
    dist_free(&x);
    if (ldn_liveness_lost_count() > 0) {
        /* Open MPI 4.1.4's MPI_Finalize fences every rank of the job, and after a rank died it
         * waited forever in about one run in three (docs/faults.md); everything is written and
         * closed by now, so the survivors leave without it. */
        fflush(NULL);
        _exit(0);
    }
    MPI_Finalize();
    return 0;
}
