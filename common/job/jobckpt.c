/* Checkpoints of a job: the collective write every role calls, and the check that a config can
 * resume from a checkpoint (docs/checkpoint.md). */
#include "jobckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "job.h"
#include "liveness.h"
#include "log.h"
#include "optim.h"
#include "schedule.h"
#include "status.h"
#include "watchdog.h"

/* The ranks a checkpoint is written by: every rank of the job, or after a loss
 * (ps.on_worker_loss: continue) every rank not lost, in a communicator made among them alone
 * (MPI_Comm_create_group: a collective over a dead rank never completes). Every rank still in
 * the job knows the same losses when it joins a checkpoint (the coordinator announces each
 * loss to everyone before the next checkpoint, and the checkpoint command carries the count,
 * which each rank checks). The communicator of the last count is kept. Returns 0 or a
 * negative status with err. */
static int live_comm(MPI_Comm *comm, char *err, size_t errlen)
{
    static MPI_Comm kept = MPI_COMM_NULL;
    static int kept_lost;
    const int lost = ldn_liveness_lost_count();
    if (lost == 0) {
        *comm = MPI_COMM_WORLD;
        return 0;
    }
    if (kept != MPI_COMM_NULL && kept_lost == lost) {
        *comm = kept;
        return 0;
    }
    int world;
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    int *ranks = malloc(sizeof(int) * (size_t)world), n = 0;
    if (!ranks)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int r = 0; r < world; r++)
        if (!ldn_liveness_is_lost(r))
            ranks[n++] = r;
    MPI_Group all, live;
    MPI_Comm_group(MPI_COMM_WORLD, &all);
    MPI_Group_incl(all, n, ranks, &live);
    MPI_Comm nc = MPI_COMM_NULL;
    int rc = MPI_Comm_create_group(MPI_COMM_WORLD, live, 9000 + lost % 1000, &nc);
    MPI_Group_free(&live);
    MPI_Group_free(&all);
    free(ranks);
    if (rc != MPI_SUCCESS)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                        "MPI_Comm_create_group among the %d ranks still in the job failed", n);
    kept = nc; /* an earlier one is not freed: freeing is collective over ranks now lost */
    kept_lost = lost;
    *comm = nc;
    return 0;
}

int ldn_jobckpt_check_lost(int64_t step, unsigned announced, int rank, char *err, size_t errlen)
{
    const int known = ldn_liveness_lost_count();
    if ((int)announced == known)
        return 0;
    char list[256];
    return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                    "rank %d: the coordinator's checkpoint of step %lld counts %u lost worker(s), "
                    "this rank knows %d (%s): they would write with different ranks",
                    rank, (long long)step, announced, known,
                    known ? ldn_liveness_lost_list(list, sizeof list) : "none");
}

int ldn_jobckpt_write(const struct ldn_job *job, int64_t step, const char *metrics,
                      const struct ldn_ckpt_items *items, char *path, size_t path_len, char *err,
                      size_t errlen)
{
    const struct ldn_config *cfg = job->cfg;
    struct ldn_ckpt_meta meta = {.step = step,
                                 .steps_per_epoch = job->steps_per_epoch,
                                 .total_steps = job->total_steps,
                                 .n_servers = job->plan->n_servers,
                                 .n_workers = job->plan->n_workers,
                                 .features = job->features,
                                 .seed = cfg->seed,
                                 .init_id = job->init_id,
                                 .round = job->round_index + 1,
                                 .lost_workers = ldn_liveness_lost_count(),
                                 .config = cfg->resolved_yaml,
                                 .metrics = metrics ? metrics : ""};
    char what[LDN_PATH_MAX + 128];
    snprintf(what, sizeof what,
             "the collective write of checkpoint step %lld into %s (every rank "
             "still in the job takes part; checkpoint.timeout)",
             (long long)step, cfg->ckpt.dir);
    ldn_watchdog_arm(what, cfg->ckpt.timeout_s);
    MPI_Comm comm = MPI_COMM_NULL;
    int rc = live_comm(&comm, err, errlen);
    if (rc == 0)
        rc = ldn_ckpt_write(comm, cfg->ckpt.dir, &meta, items, cfg->ckpt.keep_last, path, path_len,
                            err, errlen);
    ldn_watchdog_disarm();
    return rc;
}

static void widths(char *buf, size_t len, const int *w, int n)
{
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? ", " : "", w[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

#define DIFF(...) ldn_fail(err, errlen, LDN_ERR_CONFIG, __VA_ARGS__)

static int compare(const struct ldn_ckpt *ck, const struct ldn_config *old,
                   const struct ldn_config *cfg, int features, char *err, size_t errlen)
{
    const char *p = ck->path;
    char a[256], b[256];
    if (ck->features != features)
        return DIFF("checkpoint %s does not match: %d input features in the checkpoint, %d in "
                    "the data",
                    p, ck->features, features);
    if (old->n_trunk != cfg->n_trunk ||
        memcmp(old->trunk, cfg->trunk, sizeof(int) * (size_t)cfg->n_trunk) != 0) {
        widths(a, sizeof a, old->trunk, old->n_trunk);
        widths(b, sizeof b, cfg->trunk, cfg->n_trunk);
        return DIFF("checkpoint %s does not match: model.trunk is %s in the checkpoint, %s in "
                    "the config",
                    p, a, b);
    }
    if (old->activation != cfg->activation)
        return DIFF("checkpoint %s does not match: model.activation is %s in the checkpoint, %s "
                    "in the config",
                    p, ldn_activation_name(old->activation), ldn_activation_name(cfg->activation));
    for (int t = 0; t < cfg->n_tasks; t++) {
        const struct ldn_task_config *tk = &cfg->tasks[t];
        int o = ldn_config_task_index(old, tk->name);
        if (o < 0)
            return DIFF("checkpoint %s does not match: task %s is not in the checkpoint", p,
                        tk->name);
        if (old->tasks[o].n_head != tk->n_head ||
            memcmp(old->tasks[o].head, tk->head, sizeof(int) * (size_t)tk->n_head) != 0) {
            widths(a, sizeof a, old->tasks[o].head, old->tasks[o].n_head);
            widths(b, sizeof b, tk->head, tk->n_head);
            return DIFF("checkpoint %s does not match: tasks.%s.head is %s in the checkpoint, %s "
                        "in the config",
                        p, tk->name, a, b);
        }
    }
    if (old->n_tasks != cfg->n_tasks)
        return DIFF("checkpoint %s does not match: %d tasks in the checkpoint, %d in the config", p,
                    old->n_tasks, cfg->n_tasks);
    if (old->optim.kind != cfg->optim.kind)
        return DIFF("checkpoint %s does not match: train.optimizer is %s in the checkpoint, %s in "
                    "the config",
                    p, ldn_optim_name(old->optim.kind), ldn_optim_name(cfg->optim.kind));
    if ((old->optim.momentum > 0) != (cfg->optim.momentum > 0))
        return DIFF("checkpoint %s does not match: train.momentum is %g in the checkpoint, %g in "
                    "the config (the momentum buffers exist in only one of them)",
                    p, old->optim.momentum, cfg->optim.momentum);
    return 0;
}

/* The per-worker compression state a job of c keeps: LDN_JOBCKPT_CODEC (compressed pushes, a
 * codec random stream), LDN_JOBCKPT_RESIDUAL (error feedback), LDN_JOBCKPT_VELOCITY (DGC momentum
 * correction; the servers then keep no momentum). */
int ldn_jobckpt_compress_state(const struct ldn_config *c)
{
    struct ldn_codec_desc d;
    if (!ldn_codec_desc_from_config(&c->compress, c->seed, &d))
        return 0;
    return LDN_JOBCKPT_CODEC | (c->compress.error_feedback ? LDN_JOBCKPT_RESIDUAL : 0) |
           (ldn_codec_momentum_on_workers(&c->compress) ? LDN_JOBCKPT_VELOCITY : 0);
}

int ldn_jobckpt_keeps_residual(int ckpt_state, int job_state)
{
    return (ckpt_state & LDN_JOBCKPT_RESIDUAL) && (job_state & LDN_JOBCKPT_RESIDUAL) &&
           (ckpt_state & LDN_JOBCKPT_VELOCITY) == (job_state & LDN_JOBCKPT_VELOCITY);
}

/* The compress section may change on resume: what carries over, and what does not (one
 * warning). */
static void compress_change(const struct ldn_ckpt *ck, const struct ldn_config *old,
                            const struct ldn_config *cfg)
{
    const struct ldn_compress_config *x = &old->compress, *y = &cfg->compress;
    int a = ldn_jobckpt_compress_state(old), b = ldn_jobckpt_compress_state(cfg);
    if (x->codec == y->codec && x->quant == y->quant && a == b)
        return;
    char what[512];
    size_t off = 0;
#define SAY(...)                                                                                   \
    off += (size_t)snprintf(what + off, off < sizeof what ? sizeof what - off : 0, __VA_ARGS__)
    if ((a & LDN_JOBCKPT_RESIDUAL) && !ldn_jobckpt_keeps_residual(a, b))
        SAY("; the workers' error-feedback residuals (what they had not sent yet) are dropped");
    if ((b & LDN_JOBCKPT_RESIDUAL) && !ldn_jobckpt_keeps_residual(a, b))
        SAY("; the workers' residuals start at zero");
    if ((a & LDN_JOBCKPT_VELOCITY) && !(b & LDN_JOBCKPT_VELOCITY) && cfg->optim.momentum > 0)
        SAY("; the momentum moves from the workers' velocities (dropped) to the servers, where "
            "it starts at zero");
    if (!(a & LDN_JOBCKPT_VELOCITY) && (b & LDN_JOBCKPT_VELOCITY) && cfg->optim.momentum > 0)
        SAY("; the momentum moves from the servers (their buffers are not read) to the "
            "workers' velocities, which start at zero");
#undef SAY
    LDN_WARN("checkpoint %s was written with compress %s/%s%s%s, this job has %s/%s%s%s%s%s",
             ck->path, ldn_codec_kind_name(x->codec), ldn_codec_quant_name(x->quant),
             a & LDN_JOBCKPT_RESIDUAL ? " + error feedback" : "",
             a & LDN_JOBCKPT_VELOCITY ? " + momentum correction" : "",
             ldn_codec_kind_name(y->codec), ldn_codec_quant_name(y->quant),
             b & LDN_JOBCKPT_RESIDUAL ? " + error feedback" : "",
             b & LDN_JOBCKPT_VELOCITY ? " + momentum correction" : "",
             off ? ":" : ": the workers' state carries over", off ? what + 1 : "");
}

/* Do the checkpoint's workers (old's tasks, n_old of them) line up with a job of cfg with
 * n_workers workers? Same count and the same tasks.*.workers: the same plan, worker for
 * worker. */
static int same_workers(const struct ldn_config *old, int n_old, const struct ldn_config *cfg,
                        int n_workers)
{
    if (n_old != n_workers)
        return 0;
    for (int t = 0; t < cfg->n_tasks; t++) {
        int o = ldn_config_task_index(old, cfg->tasks[t].name);
        if (o < 0 || old->tasks[o].workers != cfg->tasks[t].workers)
            return 0;
    }
    return 1;
}

/* The config the checkpoint's job ran with, or NULL with err filled. */
static struct ldn_config *stored_config(const struct ldn_ckpt *ck, char *err, size_t errlen)
{
    char why[LDN_ERRLEN];
    struct ldn_config *old =
        ldn_config_parse(ck->config, strlen(ck->config), ck->path, 0, NULL, why, sizeof why);
    if (!old)
        ldn_fail(err, errlen, LDN_ERR_FORMAT,
                 "checkpoint %s: the config stored in it does not parse: %s", ck->path, why);
    return old;
}

int ldn_jobckpt_stored_state(const struct ldn_ckpt *ck, const struct ldn_config *cfg, int n_workers,
                             int *state, int *same, char *err, size_t errlen)
{
    struct ldn_config *old = stored_config(ck, err, errlen);
    if (!old)
        return LDN_ERR_FORMAT;
    *state = ldn_jobckpt_compress_state(old);
    *same = same_workers(old, ck->n_workers, cfg, n_workers);
    ldn_config_destroy(&old);
    return 0;
}

/* Every trunk and head layer the job loads is in the file. */
static int require_nets(const struct ldn_ckpt *ck, const struct ldn_config *cfg, char *err,
                        size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    for (int t = -1; t < cfg->n_tasks; t++) {
        int layers = t < 0 ? cfg->n_trunk : cfg->tasks[t].n_head + 1;
        for (int l = 0; l < layers; l++)
            for (int b = 0; b < 2; b++) {
                if (t < 0)
                    snprintf(name, sizeof name, "/trunk/%d/%s", l, b ? "bias" : "weight");
                else
                    snprintf(name, sizeof name, "/heads/%s/%d/%s", cfg->tasks[t].name, l,
                             b ? "bias" : "weight");
                if (!ldn_ckpt_has(ck, name))
                    return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                    "checkpoint %s: dataset %s is missing", ck->path, name);
            }
    }
    return 0;
}

int ldn_jobckpt_check(const struct ldn_ckpt *ck, const struct ldn_config *cfg, int features,
                      int n_workers, int64_t total_steps, char *err, size_t errlen)
{
    struct ldn_config *old = stored_config(ck, err, errlen);
    if (!old)
        return LDN_ERR_FORMAT;
    int rc = compare(ck, old, cfg, features, err, errlen);
    if (rc == 0) /* damaged metadata fails here, on rank 0, before any rank starts reading */
        rc = ldn_ckpt_walk(ck, NULL, NULL, err, errlen);
    if (rc == 0)
        rc = require_nets(ck, cfg, err, errlen);
    if (rc == 0 && ck->step >= total_steps)
        rc = DIFF("checkpoint %s is at step %lld and this config trains %lld steps: nothing left "
                  "to train (raise train.epochs)",
                  ck->path, (long long)ck->step, (long long)total_steps);
    if (rc == 0 && ck->lost_workers > 0)
        LDN_WARN("checkpoint %s was written after the job had lost %d worker(s) "
                 "(ps.on_worker_loss: continue): the trunk, the heads and the optimizer state "
                 "carry over; every worker starts a new pass over its data shard, and what the "
                 "workers kept for compressed pushes starts at zero (not an exact resume)",
                 ck->path, ck->lost_workers);
    else if (rc == 0 && !same_workers(old, ck->n_workers, cfg, n_workers))
        LDN_WARN("checkpoint %s holds the state of %d workers, this job has %d (or the tasks' "
                 "workers differ): the trunk, the heads and the optimizer state carry over; every "
                 "worker starts a new pass over its data shard, and what the workers kept for "
                 "compressed pushes (residuals, velocities) starts at zero",
                 ck->path, ck->n_workers, n_workers);
    else if (rc == 0)
        compress_change(ck, old, cfg);
    if (rc == 0 && old->seed != cfg->seed)
        LDN_WARN("checkpoint %s was written with run.seed %llu, the config has %llu: task "
                 "sampling continues from the new seed",
                 ck->path, (unsigned long long)old->seed, (unsigned long long)cfg->seed);
    ldn_config_destroy(&old);
    return rc;
}

int ldn_jobckpt_add_task(struct ldn_ckpt_items *it, int rank, const char *task,
                         const struct ldn_nn *head, struct ldn_optim *opt,
                         const struct ldn_batcher *b, int64_t state[2], int head_too)
{
    char name[LDN_CKPT_NAME_MAX];
    int rc = 0;
    if (head_too) {
        snprintf(name, sizeof name, "/heads/%s", task);
        rc |= ldn_ckpt_add_net(it, head, name, head->params, 0, head->n_params);
        snprintf(name, sizeof name, "/optimizer/m/heads/%s", task);
        rc |= opt->m ? ldn_ckpt_add_net(it, head, name, opt->m, 0, head->n_params) : 0;
        snprintf(name, sizeof name, "/optimizer/v/heads/%s", task);
        rc |= opt->v ? ldn_ckpt_add_net(it, head, name, opt->v, 0, head->n_params) : 0;
        snprintf(name, sizeof name, "/optimizer/t/heads/%s", task);
        rc |= ldn_ckpt_add(it, name, LDN_CKPT_I64, 1, 1, 1, &opt->t);
    }
    state[0] = b->pos;
    state[1] = b->passes;
    snprintf(name, sizeof name, "/workers/%d/batch/%s/perm", rank, task);
    rc |= ldn_ckpt_add(it, name, LDN_CKPT_I64, 1, b->n, 1, b->perm);
    snprintf(name, sizeof name, "/workers/%d/batch/%s/state", rank, task);
    rc |= ldn_ckpt_add(it, name, LDN_CKPT_I64, 1, 2, 1, state);
    snprintf(name, sizeof name, "/workers/%d/batch/%s/rng", rank, task);
    rc |= ldn_ckpt_add(it, name, LDN_CKPT_U64, 1, 4, 1, b->rng.s);
    return rc;
}

int ldn_jobckpt_worker_source(const struct ldn_ckpt *ck, int worker_index, const char *task)
{
    char name[LDN_CKPT_NAME_MAX];
    const int r = 1 + ck->n_servers + worker_index;
    snprintf(name, sizeof name, "/workers/%d/batch/%s/perm", r, task);
    if (ldn_ckpt_has(ck, name) || worker_index != 0 || ck->n_workers != 1)
        return r;
    snprintf(name, sizeof name, "/workers/0/batch/%s/perm", task);
    return ldn_ckpt_has(ck, name) ? 0 : r;
}

/* This rank's batch order of task from the checkpoint, checked. */
static int read_batch(const struct ldn_ckpt *ck, int rank, const char *task, struct ldn_batcher *b,
                      char *err, size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    const int64_t d2[2] = {2, 1}, d4[2] = {4, 1}, dp[2] = {b->n, 1};
    int64_t state[2] = {0, 0};
    snprintf(name, sizeof name, "/workers/%d/batch/%s/perm", rank, task);
    int rc = ldn_ckpt_read(ck, name, LDN_CKPT_I64, 1, dp, 0, b->n, b->perm, 1, err, errlen);
    for (int64_t k = 0; k < b->n && rc == 0; k++)
        if (b->perm[k] < 0 || b->perm[k] >= b->n)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: %s holds row %lld outside [0, %lld)", ck->path, name,
                          (long long)b->perm[k], (long long)b->n);
    snprintf(name, sizeof name, "/workers/%d/batch/%s/state", rank, task);
    if (rc == 0)
        rc = ldn_ckpt_read(ck, name, LDN_CKPT_I64, 1, d2, 0, 2, state, 1, err, errlen);
    if (rc == 0 && (state[0] < 0 || state[0] > b->n || state[1] < 0))
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "checkpoint %s: batch position %lld of task %s outside [0, %lld]", ck->path,
                      (long long)state[0], task, (long long)b->n);
    snprintf(name, sizeof name, "/workers/%d/batch/%s/rng", rank, task);
    if (rc == 0)
        rc = ldn_ckpt_read(ck, name, LDN_CKPT_U64, 1, d4, 0, 4, b->rng.s, 1, err, errlen);
    if (rc == 0) {
        b->pos = state[0];
        b->passes = state[1];
    }
    return rc;
}

/* The task's head and head optimizer state. */
static int read_head(const struct ldn_ckpt *ck, const char *task, struct ldn_nn *head,
                     struct ldn_optim *opt, char *err, size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    const int64_t d1[2] = {1, 1};
    snprintf(name, sizeof name, "/heads/%s", task);
    int rc = ldn_ckpt_read_net(ck, head, name, head->params, 0, head->n_params, err, errlen);
    snprintf(name, sizeof name, "/optimizer/m/heads/%s", task);
    if (rc == 0 && opt->m)
        rc = ldn_ckpt_read_net(ck, head, name, opt->m, 0, head->n_params, err, errlen);
    snprintf(name, sizeof name, "/optimizer/v/heads/%s", task);
    if (rc == 0 && opt->v)
        rc = ldn_ckpt_read_net(ck, head, name, opt->v, 0, head->n_params, err, errlen);
    snprintf(name, sizeof name, "/optimizer/t/heads/%s", task);
    if (rc == 0)
        rc = ldn_ckpt_read_counts(ck, name, d1, 0, 1, &opt->t, err, errlen);
    return rc;
}

int ldn_jobckpt_read_task(const struct ldn_ckpt *ck, int rank, const char *task,
                          struct ldn_nn *head, struct ldn_optim *opt, struct ldn_batcher *b,
                          char *err, size_t errlen)
{
    int rc = read_head(ck, task, head, opt, err, errlen);
    return rc || !b ? rc : read_batch(ck, rank, task, b, err, errlen);
}
