/* Distributed worker: step loop, head averaging in the group, push/pull, reports. */
#define _POSIX_C_SOURCE 200809L
#include "worker.h"

#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckpt.h"
#include "clock.h"
#include "cmdqueue.h"
#include "codec.h"
#include "compressor.h"
#include "data.h"
#include "distill.h"
#include "fs.h"
#include "jobckpt.h"
#include "kv.h"
#include "liveness.h"
#include "log.h"
#include "model.h"
#include "mtl_weight.h"
#include "optim.h"
#include "plan.h"
#include "prune.h"
#include "rounds.h"
#include "schedule.h"
#include "status.h"
#include "watchdog.h"
#include "weighting.h"

#define HEARTBEAT_S 1.0

struct wtask {
    int t;                 /* task index in the config */
    int64_t ckpt_state[2]; /* batcher pos, passes, as a checkpoint stores them */
    struct ldn_dataset *train, *test;
    struct ldn_batcher batcher;
    struct ldn_optim *head_opt;
    /* figures since the last progress report */
    double loss_sum;
    int64_t correct, seen;
    double kl_sum; /* a distillation round: sum over own rows of T^2 * KL, rows agreeing */
    int64_t agree;
    /* train.task_weighting: the factor of the task's loss at its last step; uncertainty: the
     * learned log-variance (identical in the group: its gradient is averaged like the head's) */
    double weight_now;
    float log_var, lv_used; /* lv_used: the one of the last step (weight_now = e^-lv_used) */
    struct ldn_optim *lv_opt;
};

struct worker {
    const struct ldn_job *job;
    const struct ldn_config *cfg;
    const struct ldn_group *group;
    MPI_Comm comm; /* the group's (dist.c's), or own_comm once a member was lost */
    int gsize, grank;
    /* ps.on_worker_loss: continue: the group's members still alive (world ranks), a
     * communicator made among them after a loss, and a loss to act on at the next safe point */
    int *members, n_members;
    MPI_Comm own_comm;
    int regroup;
    float *red_in, *red_out; /* the head sums' buffers (never in place: an abandoned sum with a
                                lost member must not write into the gradient) */
    int64_t red_cap;
    int64_t n_sums;  /* head sums completed (the same sequence on every member of the group) */
    float *last_sum; /* the last one's result, [last_n], and the group size it was made with */
    int64_t last_n, last_cap;
    int last_div;
    uint32_t epoch;     /* the group's re-formings so far (the coordinator's count) */
    double coord_heard; /* when the coordinator was last heard */
    /* commands that arrived while busy, with the dwa weights of a train command (the
     * running range keeps its own) */
    struct ldn_cmdq early;
    int n; /* hosted tasks */
    struct wtask *tasks;
    int *slot_of_task; /* [n_tasks] -> index in tasks, -1 when not hosted */
    struct ldn_model *model;
    struct ldn_schedule sched;
    struct ldn_batch_buf buf;
    int64_t *idx;
    struct ldn_kv *kv;
    /* compressed pushes (kv borrows it); NULL when they are dense */
    struct ldn_compressor *comp;
    void *coord;        /* DEALER to the coordinator */
    double last_sent;   /* time of the last message to the coordinator */
    int64_t step;       /* the step being trained (for the push hook) */
    int64_t have_clock; /* clock of the trunk weights held (complete pull) */
    /* Trunk gradients alternate between two buffers: ZeroMQ sends step s's from one (no
     * copy) while step s + 1 writes the other. */
    float *grad_buf[2];
    atomic_int inflight[2];
    struct ldn_wdistill *distill; /* a distillation round's teacher, or NULL */
    uint8_t *keep; /* pruning: [trunk params], 0 where the servers masked a weight (NULL: none) */
    float *dwa_w;  /* dwa: [n_tasks] the weights the coordinator sent with the train command */
    int push_rc;   /* first error of the push hook */
    char push_err[LDN_ERRLEN];
    /* figures since the last progress report */
    int64_t bytes_dense_mark, bytes_push_mark, bytes_pull_mark, staleness_sum, pulls;
    double compute_s, wait_s;
};

static void free_trunk(struct worker *w);

static void worker_free(struct worker *w)
{
    if (w->tasks)
        for (int i = 0; i < w->n; i++) {
            ldn_dataset_destroy(&w->tasks[i].train);
            ldn_dataset_destroy(&w->tasks[i].test);
            ldn_batcher_deinit(&w->tasks[i].batcher);
            ldn_optim_destroy(&w->tasks[i].head_opt);
            ldn_optim_destroy(&w->tasks[i].lv_opt);
        }
    free(w->tasks);
    free(w->dwa_w);
    ldn_cmdq_free(&w->early);
    free(w->slot_of_task);
    if (w->distill)
        ldn_wdistill_deinit(w->distill);
    free(w->distill);
    free(w->keep);
    free_trunk(w);
    ldn_schedule_deinit(&w->sched);
    ldn_batch_buf_deinit(&w->buf);
    free(w->idx);
    free(w->members);
    free(w->red_in);
    free(w->red_out);
    free(w->last_sum);
    if (w->own_comm != MPI_COMM_NULL)
        MPI_Comm_free(&w->own_comm);
    ldn_net_close(&w->coord);
}

static int send_coord(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    long rc = ldn_net_send(w->coord, NULL, 0, h, NULL, err, errlen);
    w->last_sent = ldn_clock_now();
    return rc < 0 ? (int)rc : 0;
}

static int heartbeat(struct worker *w, char *err, size_t errlen);

/* kv idle hook: a heartbeat while waiting for the servers. */
static void idle_heartbeat(void *ud)
{
    struct worker *w = ud;
    char err[LDN_ERRLEN];
    heartbeat(w, err, sizeof err);
}

static int heartbeat(struct worker *w, char *err, size_t errlen)
{
    if (ldn_clock_now() - w->last_sent < HEARTBEAT_S)
        return 0;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_HEARTBEAT, w->job->rank);
    h.heartbeat.step = w->step;
    return send_coord(w, &h, err, errlen);
}

/* A heartbeat now, however recent the last message. */
static int heartbeat_now(struct worker *w, char *err, size_t errlen)
{
    w->last_sent = 0;
    return heartbeat(w, err, errlen);
}

/* Forward hook: rows [r0, r1) of trunk layer l are about to read their weights: let the open
 * pull deliver them. */
static void need_rows(void *ud, int l, int r0, int r1)
{
    struct worker *w = ud;
    double t0 = ldn_clock_now();
    if (w->push_rc == 0)
        w->push_rc = ldn_kv_wait_rows(w->kv, l, r0, r1, w->model->trunk->params, w->push_err,
                                      sizeof w->push_err);
    w->wait_s += ldn_clock_now() - t0;
}

/* Backward hook: rows [r0, r1) of trunk layer l have their final gradient: push them. */
static void push_block(void *ud, int l, int r0, int r1)
{
    struct worker *w = ud;
    if (w->push_rc)
        return;
    const struct ldn_layer *ly = &w->model->trunk->layers[l];
    const int64_t lo = ly->offset + (int64_t)r0 * ly->row_len,
                  hi = ly->offset + (int64_t)r1 * ly->row_len;
    if (w->keep) /* masked keys push nothing: the codec's k goes to live ones */
        ldn_prune_zero(w->keep + lo, w->model->trunk->grads + lo, hi - lo);
    w->push_rc = ldn_kv_push_range(w->kv, w->step, w->model->trunk->grads, lo, hi,
                                   &w->inflight[w->step & 1], w->push_err, sizeof w->push_err);
}

/* The worker's trunk state for the job's current key layout and a trunk of hidden widths
 * widths[0..n_widths): model (trunk and heads, fresh from the seed), head optimizers, the
 * push/pull client with its compression state, the second gradient buffer and the hooks. */
static int setup_trunk(struct worker *w, const int *widths, int n_widths, char *err, size_t errlen)
{
    const struct ldn_job *job = w->job;
    const struct ldn_config *cfg = w->cfg;
    int max_batch = w->buf.max_batch > 1024 ? w->buf.max_batch : 1024;
    w->model = ldn_model_new_trunk(cfg, widths, n_widths, job->features, job->classes, max_batch,
                                   err, errlen);
    if (!w->model)
        return LDN_ERR_NOMEM;
    for (int i = 0; i < w->n; i++) { /* head optimizers sized now that the heads exist */
        ldn_optim_destroy(&w->tasks[i].head_opt);
        w->tasks[i].head_opt = ldn_optim_new(&cfg->optim, w->model->heads[w->tasks[i].t]->n_params);
        if (!w->tasks[i].head_opt)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    w->kv = ldn_kv_new(job->zctx, job->rank, job->plan->n_servers, job->server_endpoints,
                       job->ranges, job->chunks, job->n_chunks, cfg->timeout_s, err, errlen);
    if (!w->kv)
        return LDN_ERR_IO;
    struct ldn_nn *trunk = w->model->trunk;
    struct ldn_codec_desc desc; /* the warm-up's first epoch sends the most */
    if (ldn_codec_desc_from_config(&cfg->compress, cfg->seed, &desc)) {
        ldn_codec_desc_at(&cfg->compress, cfg->seed, 0, job->steps_per_epoch, &desc);
        const struct ldn_compressor_opts o = {.error_feedback = cfg->compress.error_feedback,
                                              .min_elements = cfg->compress.min_elements,
                                              .clip_norm = cfg->compress.clip_norm,
                                              .momentum_correction =
                                                  ldn_codec_momentum_on_workers(&cfg->compress),
                                              .momentum = (float)cfg->optim.momentum,
                                              .nesterov = cfg->optim.nesterov,
                                              .masking = cfg->compress.momentum_masking};
        w->comp = ldn_compressor_new(&desc, desc.seed ^ (uint64_t)job->rank, trunk->n_params,
                                     ldn_kv_biggest_chunk(w->kv), &o, err, errlen);
        if (!w->comp)
            return LDN_ERR_CONFIG;
        ldn_kv_set_compressor(w->kv, w->comp);
    }
    /* Push each block of trunk gradient as soon as the backward pass has it. */
    w->grad_buf[0] = trunk->grads;
    if (!(w->grad_buf[1] = malloc(sizeof(float) * (size_t)trunk->n_params)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    ldn_kv_set_idle(w->kv, idle_heartbeat, w);
    ldn_nn_set_grad_hook(trunk, push_block, w);
    ldn_nn_set_forward_hook(trunk, need_rows, w);
    return LDN_OK;
}

/* Tear down what setup_trunk built (ZeroMQ may still read the gradient buffers: wait). */
static void free_trunk(struct worker *w)
{
    if (w->model)
        for (int i = 0; i < 2; i++)
            ldn_net_wait_sent(&w->inflight[i], w->cfg->timeout_s);
    ldn_model_destroy(&w->model);
    ldn_kv_destroy(&w->kv);
    ldn_compressor_destroy(&w->comp);
    free(w->grad_buf[1]);
    w->grad_buf[1] = NULL;
}

/* A round of a run with rounds: the hosted heads from the snapshot the round starts from (not
 * when resuming), and a distillation round's teacher. */
static int setup_round(struct worker *w, char *err, size_t errlen)
{
    const struct ldn_job *job = w->job;
    if (job->round_index < 0)
        return 0;
    const int n = w->cfg->n_tasks;
    struct ldn_nn **heads = calloc((size_t)n, sizeof *heads);
    struct ldn_dataset **train = calloc((size_t)n, sizeof *train);
    int rc = heads && train ? 0 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < w->n; i++) {
        heads[w->tasks[i].t] = w->model->heads[w->tasks[i].t];
        train[w->tasks[i].t] = w->tasks[i].train;
    }
    if (rc == 0 && job->round_init && !job->resume_path)
        rc = ldn_rounds_load_init(job->run_cfg, job->round_index, w->cfg, job->round_init, NULL,
                                  heads, err, errlen);
    if (rc == 0 && job->run_cfg->rounds[job->round_index].has_teacher) {
        if (!(w->distill = calloc(1, sizeof *w->distill)))
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        else if ((rc = ldn_wdistill_init(w->distill, job, w->grank, w->gsize, train,
                                         w->cfg->batch_size, idle_heartbeat, w, err, errlen))) {
            free(w->distill);
            w->distill = NULL;
        }
    }
    free(heads);
    free(train);
    return rc;
}

static int setup(struct worker *w, char *err, size_t errlen)
{
    const struct ldn_job *job = w->job;
    const struct ldn_config *cfg = w->cfg;
    openblas_set_num_threads(cfg->threads); /* train.threads, whatever the environment says */
    w->n = w->group->n_tasks;
    w->tasks = calloc((size_t)w->n, sizeof *w->tasks);
    w->slot_of_task = malloc(sizeof(int) * (size_t)cfg->n_tasks);
    int64_t *masked = calloc((size_t)cfg->n_tasks, sizeof *masked);
    if (!w->tasks || !w->slot_of_task || !masked) {
        free(masked);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < cfg->n_tasks; t++)
        w->slot_of_task[t] = -1;
    int max_classes = 1;
    for (int i = 0; i < w->n; i++) {
        struct wtask *wt = &w->tasks[i];
        wt->t = w->group->tasks[i];
        w->slot_of_task[wt->t] = i;
        masked[wt->t] = job->n_train[wt->t];
        const char *file = cfg->tasks[wt->t].file;
        wt->train = ldn_dataset_load(file, "train", w->grank, w->gsize, err, errlen);
        if (!wt->train) {
            free(masked);
            return LDN_ERR_FORMAT;
        }
        wt->test = ldn_dataset_load(file, "test", w->grank, w->gsize, err, errlen);
        if (!wt->test) {
            free(masked);
            return LDN_ERR_FORMAT;
        }
        if (ldn_batcher_init(&wt->batcher, wt->train->n, cfg->seed,
                             LDN_STREAM_BATCH + (uint64_t)wt->t * 4096u + (uint64_t)w->grank) ||
            !(wt->head_opt = ldn_optim_new(&cfg->optim, 1))) {
            free(masked);
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        }
        if (job->classes[wt->t] > max_classes)
            max_classes = job->classes[wt->t];
        wt->weight_now = cfg->tasks[wt->t].weight;
        if (cfg->weighting.method == LDN_WEIGHT_UNCERTAINTY &&
            !(wt->lv_opt = ldn_uw_optim_new(&cfg->optim))) {
            free(masked);
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        }
    }
    if (cfg->weighting.method == LDN_WEIGHT_DWA) {
        if (!(w->dwa_w = malloc(sizeof(float) * (size_t)cfg->n_tasks)) ||
            ldn_cmdq_init(&w->early, cfg->n_tasks) != 0) {
            free(masked);
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        }
        for (int t = 0; t < cfg->n_tasks; t++)
            w->dwa_w[t] = 1.0f;
    }
    int rc = ldn_schedule_init(&w->sched, cfg, masked, err, errlen);
    free(masked);
    if (rc)
        return rc;
    /* a distillation round with inputs: all trains a second block of rows per step */
    const struct ldn_round_config *round =
        job->round_index >= 0 ? &job->run_cfg->rounds[job->round_index] : NULL;
    const int all =
        round && round->has_teacher && round->teacher.inputs == LDN_TEACHER_ALL && cfg->n_tasks > 1;
    const int rows = cfg->batch_size * (all ? 2 : 1);
    w->idx = malloc(sizeof(int64_t) * (size_t)cfg->batch_size);
    if (!w->idx || ldn_batch_buf_init(&w->buf, rows, job->features, max_classes))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    /* the coordinator first: a distillation round's set-up sends it heartbeats */
    char ident[32];
    snprintf(ident, sizeof ident, "w%d", job->rank);
    if (!(w->coord = ldn_net_connect(job->zctx, ident, job->coord_endpoint, "the coordinator", err,
                                     errlen)))
        return LDN_ERR_IO;
    if ((rc = setup_trunk(w, cfg->trunk, cfg->n_trunk, err, errlen)) ||
        (rc = setup_round(w, err, errlen)))
        return rc;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_HELLO, job->rank);
    return send_coord(w, &h, err, errlen);
}

/* The buffers of head sums abandoned because a member of the group was lost: MPI may still
 * hold them (a collective with a dead member never completes and cannot be freed), so they
 * stay allocated, and reachable, until the process ends. */
#define ABANDONED_MAX 64
static void *abandoned[ABANDONED_MAX];
static int n_abandoned;

static void abandon(void **p)
{
    if (n_abandoned < ABANDONED_MAX)
        abandoned[n_abandoned++] = *p;
    *p = NULL;
}

/* A worker of the job was lost (lost from the coordinator): recorded; when it is of this
 * worker's group, the group re-forms at the next safe point (regroup). */
static void note_lost(struct worker *w, int rank)
{
    ldn_liveness_note_lost(rank);
    for (int i = 0; i < w->n_members; i++)
        if (w->members[i] == rank) {
            w->members[i] = w->members[--w->n_members];
            w->regroup = 1;
            LDN_WARN("worker %d: group member rank %d lost; the group re-forms without it",
                     w->job->rank, rank);
            return;
        }
}

/* Take the coordinator's messages that arrived while training, without waiting: pings, lost;
 * any command is kept for the command loop. */
static int take_weights(struct worker *w, const struct ldn_msg *m, float *dst, char *err,
                        size_t errlen);

/* One message of the coordinator taken while busy (closed here): a lost worker is noted, a
 * ping is a sign of life only, a command is queued for the command loop (with its task
 * weights, which travel in its frame and are checked now). */
static void take_early(struct worker *w, struct ldn_msg *m)
{
    w->coord_heard = ldn_clock_now();
    const struct ldn_wire_msg h = m->hdr;
    float *slot;
    if (h.op == LDN_OP_LOST)
        note_lost(w, h.lost.rank);
    else if (h.op != LDN_OP_PING &&
             ldn_cmdq_add(&w->early, &h, w->job->rank, h.op == LDN_OP_TRAIN && w->dwa_w, &slot) ==
                 0 &&
             slot) {
        char why[LDN_ERRLEN];
        if (take_weights(w, m, slot, why, sizeof why) != 0)
            ldn_cmdq_fail_last(&w->early, why);
    }
    ldn_msg_close(m);
}

static void poll_coord(struct worker *w)
{
    struct ldn_msg m;
    char why[LDN_ERRLEN];
    while (ldn_net_recv(w->coord, 0, &m, 0, why, sizeof why) == 0)
        take_early(w, &m);
}

/* regroup's members: the coordinator's answer (regroup) to this worker's regroup_request,
 * checked: the group's, ascending, this worker among them, a newer re-forming than the last.
 * Returns 0 or a negative status with err. */
static int take_members(struct worker *w, const struct ldn_msg *m, char *err, size_t errlen)
{
    const struct ldn_wire_regroup *r = &m->hdr.regroup;
    const int me = w->job->rank, g = w->job->plan->group_of_rank[me];
    const int n = (int)r->members;
    if ((int)r->group != g || r->epoch <= w->epoch || n > w->group->n_ranks || m->nframes != 1 ||
        zmq_msg_size((zmq_msg_t *)&m->frames[0]) != sizeof(int32_t) * (size_t)n)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "worker %d: the coordinator's regroup (group %u, re-forming %u, %d "
                        "members) does not fit group %d after re-forming %u",
                        me, r->group, r->epoch, n, g, w->epoch);
    const unsigned char *p = zmq_msg_data((zmq_msg_t *)&m->frames[0]);
    int found = 0;
    for (int i = 0; i < n; i++) {
        int32_t v;
        memcpy(&v, p + sizeof v * (size_t)i, sizeof v);
        int ok = i == 0 || v > w->members[i - 1];
        for (int k = 0, in = 0; ok && k <= w->group->n_ranks; k++)
            if (k == w->group->n_ranks)
                ok = in;
            else if (w->group->ranks[k] == v)
                in = 1;
        if (!ok)
            return ldn_fail(err, errlen, LDN_ERR_PEER,
                            "worker %d: the coordinator's regroup names rank %d, not a member of "
                            "group %d in ascending order",
                            me, (int)v, g);
        w->members[i] = v;
        found |= v == me;
    }
    if (!found)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "worker %d: the coordinator's regroup of group %d leaves this worker out",
                        me, g);
    w->n_members = n;
    w->epoch = r->epoch;
    return 0;
}

/* The survivors of a loss must re-form with the same members, though each learns of the losses
 * at its own time (two members lost close together: one survivor may have read both, another
 * one only): each asks the coordinator, which answers every survivor with the same list once
 * all of them have asked (ps/coordinator.c). Waiting, the worker sends heartbeats and keeps the
 * coordinator's other messages. Returns 0 with w->members set, 1 when the coordinator stopped
 * the job meanwhile (not re-formed), or a negative status with err. */
static int agree_members(struct worker *w, char *err, size_t errlen)
{
    const struct ldn_job *job = w->job;
    if (ldn_cmdq_holds(&w->early, LDN_OP_STOP)) { /* stopping anyway: no re-forming */
        w->regroup = 0;
        return 1;
    }
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_REGROUP_REQUEST, job->rank);
    h.regroup_request.group = (uint32_t)job->plan->group_of_rank[job->rank];
    h.regroup_request.step = w->step;
    if (ldn_net_send(w->coord, NULL, 0, &h, NULL, err, errlen) < 0)
        return LDN_ERR_IO;
    w->last_sent = ldn_clock_now();
    const double start = w->last_sent, live_s = ldn_liveness_timeout(w->cfg);
    for (;;) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        heartbeat(w, NULL, 0);
        int r = ldn_net_recv(w->coord, 0, &m, 100, why, sizeof why);
        const double now = ldn_clock_now();
        if (r == 0 && m.hdr.op == LDN_OP_REGROUP) {
            w->coord_heard = now;
            r = take_members(w, &m, err, errlen);
            ldn_msg_close(&m);
            return r;
        }
        if (r == 0) {
            take_early(w, &m);
            if (ldn_cmdq_holds(&w->early, LDN_OP_STOP)) {
                w->regroup = 0;
                return 1;
            }
        } else if (r != LDN_ERR_TIMEOUT)
            return ldn_fail(err, errlen, r, "worker %d: bad message from the coordinator: %s",
                            job->rank, why);
        char who[128];
        if (now - w->coord_heard > live_s)
            return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                            "worker %d: nothing from %s for %.1f s while waiting for the "
                            "survivors of its group (regroup; ps.liveness_timeout)",
                            job->rank, ldn_liveness_name(job, 0, who, sizeof who),
                            now - w->coord_heard);
        if (now - start > w->cfg->timeout_s)
            return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                            "worker %d: waited %.0f s for the coordinator to name the survivors "
                            "of group %d (regroup; ps.timeout)",
                            job->rank, now - start, h.regroup_request.group);
    }
}

/* The group re-forms among its members still alive, as the coordinator names them
 * (agree_members): a communicator made by them alone
 * (MPI_Comm_create_group over the survivors: only they take part, so the lost rank cannot
 * hold it up), then each hosted task's rows are split among them again (the shards of the
 * lost worker are taken over) and each batch order starts afresh on the new shard. Returns 0,
 * 1 when the job stopped instead, or a negative status with err. */
static int regroup(struct worker *w, char *err, size_t errlen)
{
    const struct ldn_job *job = w->job;
    int rc = agree_members(w, err, errlen);
    if (rc)
        return rc;
    w->regroup = 0;
    int me = 0;
    while (w->members[me] != job->rank)
        me++;
    MPI_Comm nc = MPI_COMM_NULL;
    if (w->n_members > 1) {
        /* the tag of this re-forming: the same on every member, another for the next */
        const int tag = 7000 + (int)(w->epoch % 100000u);
        char what[160];
        snprintf(what, sizeof what,
                 "worker %d: the re-forming of its group among %d survivors "
                 "(MPI_Comm_create_group; ps.timeout)",
                 job->rank, w->n_members);
        ldn_watchdog_arm(what, w->cfg->timeout_s);
        MPI_Group world, mine;
        MPI_Comm_group(MPI_COMM_WORLD, &world);
        MPI_Group_incl(world, w->n_members, w->members, &mine);
        rc = MPI_Comm_create_group(MPI_COMM_WORLD, mine, tag, &nc);
        MPI_Group_free(&mine);
        MPI_Group_free(&world);
        ldn_watchdog_disarm();
        if (rc != MPI_SUCCESS)
            return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                            "worker %d: MPI_Comm_create_group among the group's survivors failed",
                            job->rank);
    }
    if (w->own_comm != MPI_COMM_NULL)
        MPI_Comm_free(&w->own_comm);
    w->own_comm = nc;
    w->comm = nc;
    w->gsize = w->n_members;
    w->grank = me;
    for (int i = 0; i < w->n; i++) {
        struct wtask *wt = &w->tasks[i];
        const char *file = w->cfg->tasks[wt->t].file;
        ldn_dataset_destroy(&wt->train);
        ldn_dataset_destroy(&wt->test);
        ldn_batcher_deinit(&wt->batcher);
        heartbeat_now(w, NULL, 0); /* a heartbeat around each load: it is not silence */
        if (!(wt->train = ldn_dataset_load(file, "train", w->grank, w->gsize, err, errlen)) ||
            !(wt->test = ldn_dataset_load(file, "test", w->grank, w->gsize, err, errlen)))
            return LDN_ERR_FORMAT;
        heartbeat_now(w, NULL, 0);
        if (ldn_batcher_init(&wt->batcher, wt->train->n, w->cfg->seed,
                             LDN_STREAM_BATCH + (uint64_t)wt->t * 4096u + (uint64_t)w->grank))
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    LDN_INFO("worker %d: group re-formed with %d worker(s); this one now trains and evaluates "
             "shard %d of %d of its task(s) (%lld training rows of %s)",
             job->rank, w->gsize, w->grank + 1, w->gsize, (long long)w->tasks[0].train->n,
             w->cfg->tasks[w->tasks[0].t].name);
    return 0;
}

/* Sum g[0..n) (task t's `what`) over the group into red_out. Returns 0 when summed, 1 when a
 * member was lost meanwhile (the sum is abandoned: sum again after regroup), or a negative
 * status with err. */
static int sum_group(struct worker *w, int t, const float *g, int64_t n, const char *what,
                     char *err, size_t errlen)
{
    if (n > w->red_cap) {
        free(w->red_in);
        free(w->red_out);
        w->red_in = malloc(sizeof(float) * (size_t)n);
        w->red_out = malloc(sizeof(float) * (size_t)n);
        if (!w->red_in || !w->red_out)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        w->red_cap = n;
    }
    memcpy(w->red_in, g, sizeof(float) * (size_t)n);
    /* Non-blocking, polled with a deadline: a stuck group member is reported by name instead
     * of hanging this rank inside MPI; short sleeps once it takes long keep the core free. */
    for (int64_t off = 0; off < n; off += INT_MAX) { /* MPI counts are int */
        int64_t len = n - off < INT_MAX ? n - off : INT_MAX;
        MPI_Request req;
        if (MPI_Iallreduce(w->red_in + off, w->red_out + off, (int)len, MPI_FLOAT, MPI_SUM, w->comm,
                           &req) != MPI_SUCCESS)
            return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                            "MPI_Iallreduce of the %s of task %s failed", what,
                            w->cfg->tasks[t].name);
        double start = ldn_clock_now(), polled = start;
        int done = 0;
        while (!done) {
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done)
                break;
            double now = ldn_clock_now(), waited = now - start;
            if (now - polled > 0.01) { /* waiting for the group is not silence */
                polled = now;
                heartbeat(w, NULL, 0);
            }
            if (w->cfg->on_worker_loss == LDN_LOSS_CONTINUE && now == polled) {
                poll_coord(w);
                if (w->regroup) { /* never completes: its buffers stay with MPI */
                    abandon((void **)&w->red_in);
                    abandon((void **)&w->red_out);
                    w->red_cap = 0;
                    return 1;
                }
            }
            if (waited > w->cfg->timeout_s) {
                char names[256] = "";
                for (int i = 0, o = 0; i < w->n_members && o < (int)sizeof names - 16; i++)
                    o += snprintf(names + o, sizeof names - (size_t)o, "%s%d", i ? ", " : "",
                                  w->members[i]);
                return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                                "worker %d: waited %.0f s for the %s of task %s from its group "
                                "(worker ranks %s, ps.timeout)",
                                w->job->rank, w->cfg->timeout_s, what, w->cfg->tasks[t].name,
                                names);
            }
            if (waited > 1e-3) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
    return 0;
}

/* After a re-forming: the survivors agree on the head sums done. A member of the old group
 * that died may have sent its part of sum k to some survivors and not to others, so some may
 * have finished sum k and the others not (never more than one apart: the ones behind are
 * still in it). The ones ahead then hand their result of sum k to the ones behind, so every
 * survivor applies the same sum k and the group's heads stay identical; *caught_up = 1 on a
 * survivor that took it (into `grads`, already divided; `n` its length: the pending sum's head,
 * 0 outside a sum). Collective over the new group; 0 or a negative status with err. */
static int sync_sums(struct worker *w, float *grads, int64_t n, int *caught_up, char *err,
                     size_t errlen)
{
    *caught_up = 0;
    if (w->gsize == 1)
        return 0;
    int64_t a[2] = {w->n_sums, -w->n_sums}, b[2];
    if (MPI_Allreduce(a, b, 2, MPI_INT64_T, MPI_MAX, w->comm) != MPI_SUCCESS)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL, "worker %d: head-sum count exchange failed",
                        w->job->rank);
    if (b[0] == -b[1])
        return 0;
    const int ahead = w->n_sums == b[0];
    int64_t c[3] = {ahead ? -(int64_t)w->grank : INT64_MIN, ahead ? w->last_n : 0,
                    ahead ? w->last_div : 0},
            d[3];
    if (MPI_Allreduce(c, d, 3, MPI_INT64_T, MPI_MAX, w->comm) != MPI_SUCCESS)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL, "worker %d: head-sum exchange failed",
                        w->job->rank);
    const int root = (int)-d[0];
    const int64_t len = d[1];
    if (!ahead && (n != len || len > INT_MAX))
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                        "worker %d: behind the group by a head sum of %lld values, but waiting "
                        "in one of %lld",
                        w->job->rank, (long long)len, (long long)n);
    float *buf = ahead ? w->last_sum : grads;
    if (MPI_Bcast(buf, (int)len, MPI_FLOAT, root, w->comm) != MPI_SUCCESS)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL, "worker %d: head-sum hand-over failed",
                        w->job->rank);
    if (!ahead) {
        const float inv = 1.0f / (float)d[2];
        for (int64_t i = 0; i < len; i++)
            grads[i] *= inv;
        w->n_sums++;
        *caught_up = 1;
        LDN_INFO("worker %d: took head sum %lld from group rank %d (finished before the loss)",
                 w->job->rank, (long long)w->n_sums, root);
    }
    return 0;
}

/* regroup, then sync_sums, under a watchdog (the survivors' collectives). */
static int reform(struct worker *w, float *grads, int64_t n, int *caught_up, char *err,
                  size_t errlen)
{
    int rc = regroup(w, err, errlen);
    if (rc == 1) /* the job stopped meanwhile */
        return 1;
    char what[160];
    snprintf(what, sizeof what,
             "worker %d: the survivors' agreement on head sums after a loss (MPI_Allreduce, "
             "MPI_Bcast; ps.timeout)",
             w->job->rank);
    ldn_watchdog_arm(what, w->cfg->timeout_s);
    if (rc == 0)
        rc = sync_sums(w, grads, n, caught_up, err, errlen);
    ldn_watchdog_disarm();
    return rc;
}

/* Average g[0..n) (task t's `what`: its head gradients, or its log-variance's gradient) over
 * the group (sum, then scale); a member lost meanwhile re-forms the group and the sum is made
 * again among the survivors (every survivor makes the same sequence of sums). */
static int average_group(struct worker *w, int t, float *g, int64_t n, const char *what, char *err,
                         size_t errlen)
{
    for (;;) {
        int caught_up = 0;
        int rc = w->regroup ? reform(w, g, n, &caught_up, err, errlen) : 0;
        if (rc == 1)
            return ldn_fail(err, errlen, LDN_ERR_PEER,
                            "worker %d: the coordinator stopped the job while the group of task "
                            "%s re-formed in the middle of a step",
                            w->job->rank, w->cfg->tasks[t].name);
        if (rc)
            return rc;
        if (caught_up)
            return 0;
        if (w->gsize == 1)
            return 0;
        if ((rc = sum_group(w, t, g, n, what, err, errlen)) < 0)
            return rc;
        if (rc == 0)
            break;
    }
    if (n > w->last_cap) {
        free(w->last_sum);
        if (!(w->last_sum = malloc(sizeof(float) * (size_t)n)))
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        w->last_cap = n;
    }
    memcpy(w->last_sum, w->red_out, sizeof(float) * (size_t)n);
    w->last_n = n;
    w->last_div = w->gsize;
    w->n_sums++;
    const float inv = 1.0f / (float)w->gsize;
    for (int64_t i = 0; i < n; i++)
        g[i] = w->red_out[i] * inv;
    return 0;
}

/* Average the head gradient of task t over the group. */
static int average_head(struct worker *w, int t, char *err, size_t errlen)
{
    struct ldn_nn *head = w->model->heads[t];
    return average_group(w, t, head->grads, head->n_params, "head gradients", err, errlen);
}

/* The factor of hosted task wt's loss this step: tasks.<t>.weight, times the coordinator's DWA
 * weight or exp(-s) (uncertainty); static weights are the config's, as before. */
static float task_weight(struct worker *w, struct wtask *wt)
{
    const double c = w->cfg->tasks[wt->t].weight;
    const int m = w->cfg->weighting.method;
    wt->lv_used = wt->log_var;
    wt->weight_now = m == LDN_WEIGHT_DWA           ? c * (double)w->dwa_w[wt->t]
                     : m == LDN_WEIGHT_UNCERTAINTY ? c * exp(-(double)wt->log_var)
                                                   : c;
    return (float)wt->weight_now;
}

/* Uncertainty weighting after a batch of mean loss `loss`: the group's mean gradient of
 * w * (L e^-s + s) in s, then a step of s's optimizer (the same on every rank of the group). */
static int step_log_var(struct worker *w, struct wtask *wt, double loss, double lr, char *err,
                        size_t errlen)
{
    double wl, gs;
    ldn_mtl_uncertainty(loss, (double)wt->log_var, &wl, &gs);
    float g = (float)(w->cfg->tasks[wt->t].weight * gs);
    int rc = average_group(w, wt->t, &g, 1, "log-variance gradient", err, errlen);
    if (rc == 0)
        ldn_optim_step(wt->lv_opt, &wt->log_var, &g, lr);
    return rc;
}

/* L2 norm of the error-feedback residual (0 without compression or error feedback). */
static double residual_norm(const struct worker *w)
{
    return w->comp ? ldn_compressor_residual_norm(w->comp) : 0.0;
}

static int send_progress(struct worker *w, int64_t step, char *err, size_t errlen)
{
    for (int i = 0; i < w->n; i++) {
        struct wtask *wt = &w->tasks[i];
        struct ldn_wire_msg h;
        ldn_wire_msg_init(&h, LDN_OP_PROGRESS, w->job->rank);
        struct ldn_wire_progress *v = &h.progress;
        v->task = wt->t;
        v->step = step;
        v->samples = wt->seen;
        v->loss_sum = wt->loss_sum;
        v->correct = wt->correct;
        v->kl_sum = wt->kl_sum;
        v->agree = wt->agree;
        v->task_weight = wt->weight_now;
        v->log_var = wt->lv_used;
        if (i == 0) { /* the worker's figures, once */
            v->bytes_push = ldn_kv_bytes_push(w->kv) - w->bytes_push_mark;
            v->bytes_pull = ldn_kv_bytes_pull(w->kv) - w->bytes_pull_mark;
            v->staleness_sum = w->staleness_sum;
            v->pulls = w->pulls;
            v->compute_s = w->compute_s;
            v->wait_s = w->wait_s;
            v->residual_norm = residual_norm(w);
            v->bytes_dense = ldn_kv_bytes_dense(w->kv) - w->bytes_dense_mark;
        }
        int rc = send_coord(w, &h, err, errlen);
        if (rc)
            return rc;
        wt->loss_sum = wt->kl_sum = 0;
        wt->correct = wt->seen = wt->agree = 0;
    }
    w->bytes_push_mark = ldn_kv_bytes_push(w->kv);
    w->bytes_dense_mark = ldn_kv_bytes_dense(w->kv);
    w->bytes_pull_mark = ldn_kv_bytes_pull(w->kv);
    w->staleness_sum = w->pulls = 0;
    w->compute_s = w->wait_s = 0;
    return 0;
}

/* After step `step`: the progress report at log marks, a heartbeat otherwise. */
static int report(struct worker *w, int64_t step, char *err, size_t errlen)
{
    if (w->cfg->log_every > 0 && (step + 1) % w->cfg->log_every == 0)
        return send_progress(w, step + 1, err, errlen);
    return heartbeat(w, err, errlen);
}

/* Train steps [from, to). Pipelining: the pull for step s + 1 is requested before step s's
 * backward pass, gradient blocks are pushed as backward finishes them (first layer first),
 * and the forward pass of step s + 1 waits for each layer's weights only when it reaches it. */
static int train(struct worker *w, int64_t from, int64_t to, char *err, size_t errlen)
{
    const struct ldn_config *cfg = w->cfg;
    struct ldn_nn *trunk = w->model->trunk;
    int rc = 0;
    if (w->have_clock != from && (rc = ldn_kv_pull_begin(w->kv, from, err, errlen)))
        return rc;
    const int group = w->job->plan->group_of_rank[w->job->rank];
    const double prob = ldn_plan_group_prob(w->job->plan, cfg, w->job->n_train, group);
    for (int64_t step = from; step < to; step++) {
        double t0 = ldn_clock_now(), wait_before = w->wait_s;
        if (!ldn_plan_group_trains(prob, cfg->seed, group, step)) {
            /* The group sits this step out: complete the pull, ask for the next, say so. */
            if ((rc = ldn_kv_pull_end(w->kv, trunk->params, err, errlen)) ||
                (rc = ldn_kv_pull_begin(w->kv, step + 1, err, errlen)) ||
                (rc = ldn_kv_clock(w->kv, step, err, errlen)))
                return rc;
            w->have_clock = step;
            w->wait_s += ldn_clock_now() - t0;
            if ((rc = report(w, step, err, errlen)))
                return rc;
            continue;
        }
        int t = ldn_schedule_task(&w->sched, step);
        struct wtask *wt = &w->tasks[w->slot_of_task[t]];
        int b = ldn_batcher_next(&wt->batcher, cfg->batch_size, w->idx);
        /* Forward: the hook waits for each trunk layer of the pull of clock `step`. */
        w->step = step;
        int extra = 0;
        if (w->distill) {
            ldn_batch_gather(&w->buf, 0, wt->train->x, wt->train->y, w->idx, b, w->job->features);
            extra = ldn_wdistill_gather_extra(w->distill, t, step, &w->buf, b);
        }
        const float *z = w->distill ? ldn_model_forward(w->model, t, w->buf.x, b + extra)
                                    : ldn_model_forward_rows(w->model, t, wt->train->x,
                                                             wt->train->y, w->idx, b, &w->buf);
        double tw = ldn_clock_now();
        if (!w->push_rc && (rc = ldn_kv_pull_end(w->kv, trunk->params, err, errlen)))
            return rc;
        w->wait_s += ldn_clock_now() - tw;
        if (w->push_rc)
            return ldn_fail(err, errlen, w->push_rc, "%s", w->push_err);
        w->have_clock = step;
        w->staleness_sum += step - ldn_kv_last_version(w->kv);
        w->pulls++;
        /* The next weights are asked for before the gradients go out, so each server can
         * answer chunk by chunk as it applies them. */
        if ((rc = ldn_kv_pull_begin(w->kv, step + 1, err, errlen)))
            return rc;
        /* This step's gradients go to the buffer step - 2 used: its sends are long done. */
        if (ldn_net_wait_sent(&w->inflight[step & 1], cfg->timeout_s) != 0)
            return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                            "worker %d: ZeroMQ did not finish sending step %lld's gradients "
                            "within %.0f s (ps.timeout%s)",
                            w->job->rank, (long long)(step - 2), cfg->timeout_s,
                            ldn_net_auth_hint());
        ldn_nn_use_grads(trunk, w->grad_buf[step & 1]);
        if (w->comp) {
            struct ldn_codec_desc d;
            ldn_codec_desc_at(&cfg->compress, cfg->seed, step, w->job->steps_per_epoch, &d);
            ldn_compressor_use_desc(w->comp, &d);
        }
        int64_t ok = 0;
        const float weight = task_weight(w, wt);
        double loss;
        if (w->distill) {
            struct ldn_distill_report rep = {0};
            loss = ldn_wdistill_loss(w->distill, t, step, z, w->idx, b, extra, &w->buf, weight, &ok,
                                     &rep);
            ldn_model_backward(w->model, t, w->buf.x, w->buf.dz, b + extra);
            wt->kl_sum += rep.kl * b;
            wt->agree += rep.agree;
        } else
            loss = ldn_model_loss_backward(w->model, t, z, b, weight, &w->buf, &ok);
        if (w->push_rc)
            return ldn_fail(err, errlen, w->push_rc, "%s", w->push_err);
        wt->loss_sum += loss * b;
        wt->correct += ok;
        wt->seen += b;
        double lr =
            ldn_lr_at(&cfg->lr, cfg->optim.lr, step, w->job->total_steps, w->job->steps_per_epoch);
        if ((rc = average_head(w, t, err, errlen)))
            return rc;
        struct ldn_nn *head = w->model->heads[t];
        ldn_optim_step(wt->head_opt, head->params, head->grads, lr);
        if (wt->lv_opt && (rc = step_log_var(w, wt, loss, lr, err, errlen)))
            return rc;
        w->compute_s += ldn_clock_now() - t0 - (w->wait_s - wait_before);
        if ((rc = report(w, step, err, errlen)))
            return rc;
    }
    double t1 = ldn_clock_now();
    if ((rc = ldn_kv_pull_end(w->kv, trunk->params, err, errlen)))
        return rc;
    w->wait_s += ldn_clock_now() - t1;
    w->have_clock = to;
    if (cfg->log_every > 0 && to % cfg->log_every == 0)
        return 0; /* the last step's report went out in the loop */
    return send_progress(w, to, err, errlen);
}

static int evaluate(struct worker *w, int64_t step, char *err, size_t errlen)
{
    ldn_ckpt_fault("kill-in-eval", w->job->rank, step); /* test hook (docs/checkpoint.md) */
    for (int i = 0; i < w->n; i++) {
        struct wtask *wt = &w->tasks[i];
        double loss, acc;
        int rc = heartbeat(w, err, errlen); /* a long evaluation is not silence */
        if (rc)
            return rc;
        ldn_model_evaluate(w->model, wt->t, wt->test->x, wt->test->y, wt->test->n, &loss, &acc);
        struct ldn_wire_msg h;
        ldn_wire_msg_init(&h, LDN_OP_EVAL_RESULT, w->job->rank);
        h.eval_result = (struct ldn_wire_eval_result){.task = wt->t,
                                                      .step = step,
                                                      .loss_sum = loss * (double)wt->test->n,
                                                      .correct = llround(acc * (double)wt->test->n),
                                                      .rows = wt->test->n};
        rc = send_coord(w, &h, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* A worker's own state vectors in a checkpoint, /workers/<rank>/<what>. */
struct wvec {
    const char *what;
    int type; /* enum ldn_ckpt_type */
    int64_t n;
    void *p;
};

/* The worker's vectors that exist in this job (error-feedback residual, momentum-correction
 * velocity, codec random stream); returns how many were written into v[0..3). */
static int worker_vectors(struct worker *w, struct wvec v[3])
{
    const int64_t n = w->model->trunk->n_params;
    if (!w->comp)
        return 0;
    int k = 0;
    float *residual = ldn_compressor_residual(w->comp),
          *velocity = ldn_compressor_velocity(w->comp);
    if (residual)
        v[k++] = (struct wvec){"residual", LDN_CKPT_F32, n, residual};
    if (velocity)
        v[k++] = (struct wvec){"velocity", LDN_CKPT_F32, n, velocity};
    v[k++] = (struct wvec){"codec_rng", LDN_CKPT_U64, 4, ldn_compressor_rng(w->comp)->s};
    return k;
}

/* Checkpoint datasets of this worker: its group's heads and head optimizer state (the group's
 * first rank writes them: they are identical in the group), and its own error-feedback
 * residual, momentum-correction velocity, codec random stream and batch order per task. */
static int ckpt_items(struct worker *w, struct ldn_ckpt_items *it)
{
    char name[LDN_CKPT_NAME_MAX];
    const int r = w->job->rank;
    int rc = 0;
    for (int i = 0; i < w->n && rc == 0; i++) {
        struct wtask *wt = &w->tasks[i];
        rc |= ldn_jobckpt_add_task(it, r, w->cfg->tasks[wt->t].name, w->model->heads[wt->t],
                                   wt->head_opt, &wt->batcher, wt->ckpt_state, w->grank == 0);
        if (wt->lv_opt && w->grank == 0) /* with the head, by the group's first rank */
            rc |= ldn_uw_ckpt_add(it, w->cfg->tasks[wt->t].name, &wt->log_var, wt->lv_opt);
    }
    struct wvec v[3];
    int nv = worker_vectors(w, v);
    for (int i = 0; i < nv; i++) {
        snprintf(name, sizeof name, "/workers/%d/%s", r, v[i].what);
        rc |= ldn_ckpt_add(it, name, v[i].type, 1, v[i].n, 1, v[i].p);
    }
    return rc;
}

static int checkpoint(struct worker *w, int64_t step, char *err, size_t errlen)
{
    struct ldn_ckpt_items it = {0};
    char path[LDN_PATH_MAX + 64];
    int rc = ckpt_items(w, &it);
    if (rc)
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: checkpoint items: out of memory",
                      w->job->rank);
    else
        rc = ldn_jobckpt_write(w->job, step, NULL, &it, path, sizeof path, err, errlen);
    ldn_ckpt_items_free(&it);
    w->last_sent = 0; /* a heartbeat right after */
    return rc;
}

/* Read the state ckpt_items wrote (every rank of a group reads its group's heads). */
static int resume(struct worker *w, const struct ldn_ckpt *ck, char *err, size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    /* this worker's state in the checkpoint: by its place among the workers, not its rank */
    const int r = ldn_jobckpt_worker_source(ck, w->job->rank - 1 - w->job->plan->n_servers,
                                            w->cfg->tasks[w->tasks[0].t].name);
    /* Another worker layout (count or tasks.*.workers) or compress section: rank 0 has said
     * what carries over; read what both jobs keep, the rest starts afresh. A local trainer's
     * checkpoint (rank 0) has no compression state. */
    int had = 0, same = 1;
    int rc =
        ldn_jobckpt_stored_state(ck, w->cfg, w->job->plan->n_workers, &had, &same, err, errlen);
    if (ck->lost_workers > 0) /* the lost workers' state is not in it, the others' is of the */
        same = 0;             /* shards they had re-split (rank 0 says so) */
    if (r == 0 || !same)
        had = 0;
    for (int i = 0; i < w->n && rc == 0; i++) {
        struct wtask *wt = &w->tasks[i];
        const char *task = w->cfg->tasks[wt->t].name;
        struct ldn_nn *head = w->model->heads[wt->t];
        rc = ldn_jobckpt_read_task(ck, r, task, head, wt->head_opt, same ? &wt->batcher : NULL, err,
                                   errlen);
        if (rc == 0 && wt->lv_opt &&
            (rc = ldn_uw_ckpt_read(ck, task, &wt->log_var, wt->lv_opt, err, errlen)) == 1) {
            if (w->grank == 0)
                LDN_WARN("checkpoint %s has no log-variance of task %s: it starts at 0", ck->path,
                         task);
            rc = 0;
        }
        if (wt->lv_opt) {
            wt->lv_used = wt->log_var;
            wt->weight_now = w->cfg->tasks[wt->t].weight * exp(-(double)wt->log_var);
        }
    }
    const int has = ldn_jobckpt_compress_state(w->cfg);
    struct wvec v[3];
    int nv = worker_vectors(w, v);
    for (int i = 0; i < nv && rc == 0; i++) {
        const int64_t d[2] = {v[i].n, 1};
        if (!strcmp(v[i].what, "residual")   ? !ldn_jobckpt_keeps_residual(had, has)
            : !strcmp(v[i].what, "velocity") ? !(had & LDN_JOBCKPT_VELOCITY)
                                             : !(had & LDN_JOBCKPT_CODEC))
            continue;
        snprintf(name, sizeof name, "/workers/%d/%s", r, v[i].what);
        rc = ldn_ckpt_read(ck, name, v[i].type, 1, d, 0, v[i].n, v[i].p, 1, err, errlen);
    }
    return rc;
}

static int send_done(struct worker *w, int64_t step, char *err, size_t errlen)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_DONE, w->job->rank);
    h.done.step = step;
    return send_coord(w, &h, err, errlen);
}

/* Commands from the coordinator: 0 to wait for the next one, 1 to finish, negative (with err)
 * on a failure. */
static int cmd_train(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    int rc = train(w, h->train.from, h->train.to, err, errlen);
    rc = rc ? rc : send_done(w, h->train.to, err, errlen);
    /* test hook LDN_FAULT=kill-after-done:RANK:STEP; the done goes out first (ZeroMQ sends it
     * from its own thread) */
    if (rc == 0 && ldn_ckpt_fault_armed("kill-after-done", w->job->rank, h->train.to)) {
        struct timespec ts = {0, 300000000};
        nanosleep(&ts, NULL);
        ldn_ckpt_fault("kill-after-done", w->job->rank, h->train.to);
    }
    return rc;
}

static int cmd_eval(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    int rc = evaluate(w, h->eval.step, err, errlen);
    return rc ? rc : send_done(w, h->eval.step, err, errlen);
}

static int cmd_ckpt(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    int rc = ldn_jobckpt_check_lost(h->ckpt.step, h->ckpt.lost, w->job->rank, err, errlen);
    return rc ? rc : checkpoint(w, h->ckpt.step, err, errlen);
}

static int cmd_stop(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    (void)h;
    int rc = send_done(w, w->have_clock, err, errlen);
    return rc ? rc : 1;
}

/* A ping while waiting for a command: answered, so that the coordinator can tell an idle
 * worker from a dead one (it asks before every checkpoint). */
static int cmd_ping(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    (void)h;
    return heartbeat_now(w, err, errlen);
}

/* The coordinator rejected a message of this worker (another protocol version). */
static int cmd_error(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    return ldn_fail(err, errlen, LDN_ERR_PEER, "worker %d: the coordinator answered: %s",
                    w->job->rank, h->error.msg);
}

typedef int (*worker_cmd_fn)(struct worker *w, const struct ldn_wire_msg *h, char *err,
                             size_t errlen);
/* plan: another trunk from step `step` on: rebuild the key layout and the trunk state (fresh
 * weights from the servers), then done. */
static int cmd_plan(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    const struct ldn_wire_plan *p = &h->plan;
    int widths[LDN_WIRE_MAX_LAYERS];
    for (uint32_t i = 0; i < p->n_trunk; i++)
        widths[i] = (int)p->trunk[i];
    free_trunk(w);
    int rc = w->job->replan(w->job->replan_ud, widths, (int)p->n_trunk, err, errlen);
    if (rc == 0)
        rc = setup_trunk(w, widths, (int)p->n_trunk, err, errlen);
    w->bytes_push_mark = w->bytes_pull_mark = w->bytes_dense_mark = 0; /* a new client's counts */
    if (rc == 0)
        rc = ldn_kv_pull(w->kv, p->step, w->model->trunk->params, err, errlen);
    w->have_clock = p->step;
    return rc ? rc : send_done(w, p->step, err, errlen);
}

/* Pruning: the mask as the servers hold it, read off the weights just pulled (a masked weight
 * is exactly 0; biases are never masked), and the compression state of masked keys cleared, so
 * that neither the gradient nor the error-feedback residual or velocity of a masked key is
 * ever sent. Returns 0 or LDN_ERR_NOMEM. */
static int learn_mask(struct worker *w, char *err, size_t errlen)
{
    const struct ldn_nn *trunk = w->model->trunk;
    if (!w->keep && !(w->keep = malloc((size_t)trunk->n_params)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory for the mask",
                        w->job->rank);
    for (int l = 0; l < trunk->n_layers; l++) {
        const struct ldn_layer *ly = &trunk->layers[l];
        for (int64_t k = 0; k < ly->n_params; k++) {
            const int64_t i = ly->offset + k;
            const int bias = k % ly->row_len == ly->row_len - 1;
            w->keep[i] = bias || trunk->params[i] != 0.0f;
        }
    }
    float *residual = w->comp ? ldn_compressor_residual(w->comp) : NULL,
          *velocity = w->comp ? ldn_compressor_velocity(w->comp) : NULL;
    if (residual)
        ldn_prune_zero(w->keep, residual, trunk->n_params);
    if (velocity)
        ldn_prune_zero(w->keep, velocity, trunk->n_params);
    return 0;
}

/* prune: the servers have just masked weights of step `step`; the weights held (pulled before
 * the mask update) are stale: pull them again, learn the mask from them, then done. */
static int cmd_prune(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    const int64_t step = h->prune.step;
    int rc = ldn_kv_pull(w->kv, step, w->model->trunk->params, err, errlen);
    w->have_clock = step;
    if (rc == 0)
        rc = learn_mask(w, err, errlen);
    return rc ? rc : send_done(w, step, err, errlen);
}

/* lost: a worker of the job was lost; this worker's group re-forms now when it was one of its
 * own (a worker waiting for a command is at a safe point). */
static int cmd_lost(struct worker *w, const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    if (w->cfg->on_worker_loss != LDN_LOSS_CONTINUE)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "worker %d: the coordinator announced a lost worker without "
                        "ps.on_worker_loss: continue",
                        w->job->rank);
    note_lost(w, h->lost.rank);
    int caught_up = 0;
    int rc = w->regroup ? reform(w, NULL, 0, &caught_up, err, errlen) : 0;
    return rc == 1 ? 0 : rc; /* stopped meanwhile: the stop waits among the early commands */
}

static const worker_cmd_fn COMMANDS[LDN_OP_COUNT_] = {
    [LDN_OP_LOST] = cmd_lost, [LDN_OP_PRUNE] = cmd_prune, [LDN_OP_PLAN] = cmd_plan,
    [LDN_OP_PING] = cmd_ping, [LDN_OP_TRAIN] = cmd_train, [LDN_OP_EVAL] = cmd_eval,
    [LDN_OP_CKPT] = cmd_ckpt, [LDN_OP_STOP] = cmd_stop,   [LDN_OP_ERROR] = cmd_error,
};

/* dwa: the task weights that come with a train command (one frame of n_tasks float32, each
 * finite, in [0, n_tasks]: they sum to n_tasks, and a weight can underflow to 0). */
static int take_weights(struct worker *w, const struct ldn_msg *m, float *dst, char *err,
                        size_t errlen)
{
    const int K = w->cfg->n_tasks;
    if (m->nframes != 1 || zmq_msg_size((zmq_msg_t *)&m->frames[0]) != sizeof(float) * (size_t)K)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "worker %d: the coordinator's train command of steps [%lld, %lld) has no "
                        "frame of %d task weights (train.task_weighting: dwa)",
                        w->job->rank, (long long)m->hdr.train.from, (long long)m->hdr.train.to, K);
    const unsigned char *p = zmq_msg_data((zmq_msg_t *)&m->frames[0]);
    for (int t = 0; t < K; t++) {
        float v;
        memcpy(&v, p + sizeof(float) * (size_t)t, sizeof v); /* frames may be unaligned */
        if (!isfinite(v) || v < 0 || v > (float)K * 1.001f)
            return ldn_fail(err, errlen, LDN_ERR_PEER,
                            "worker %d: the coordinator's task weight of %s is %g, outside [0, %d]",
                            w->job->rank, w->cfg->tasks[t].name, (double)v, K);
        dst[t] = v;
    }
    return 0;
}

int ldn_worker_run(const struct ldn_job *job, MPI_Comm group_comm, char *err, size_t errlen)
{
    struct worker w = {.job = job, .cfg = job->cfg, .comm = group_comm, .own_comm = MPI_COMM_NULL};
    w.group = &job->plan->groups[job->plan->group_of_rank[job->rank]];
    MPI_Comm_size(group_comm, &w.gsize);
    MPI_Comm_rank(group_comm, &w.grank);
    int rc = (w.members = malloc(sizeof(int) * (size_t)w.group->n_ranks))
                 ? 0
                 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < w.group->n_ranks; i++)
        w.members[w.n_members++] = w.group->ranks[i];
    if (rc == 0)
        rc = setup(&w, err, errlen);
    const int64_t start = job->resume_path ? job->resume_step : 0;
    if (rc == 0 && job->resume_path) {
        struct ldn_ckpt ck;
        if ((rc = ldn_ckpt_open(job->resume_path, &ck, err, errlen)) == 0) {
            rc = resume(&w, &ck, err, errlen);
            ldn_ckpt_close(&ck);
        }
    }
    if (rc == 0)
        rc = ldn_kv_pull(w.kv, start, w.model->trunk->params, err, errlen); /* initial weights */
    if (rc == 0 && start > 0 && ldn_prune_on(&job->cfg->prune)) /* resumed: masks held */
        rc = learn_mask(&w, err, errlen);
    w.have_clock = start;
    /* The coordinator pings at least every second while it waits; silence for the liveness
     * timeout means it is dead or hung. */
    const double live_s = ldn_liveness_timeout(job->cfg);
    w.coord_heard = ldn_clock_now();
    while (rc == 0) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        if (w.regroup) { /* a loss read while training, after the last head sum: waiting for a
                            command is a safe point (the coordinator waits for the re-forming) */
            int caught_up = 0;
            if ((rc = reform(&w, NULL, 0, &caught_up, err, errlen)) == 1)
                rc = 0; /* stopped meanwhile: the stop waits among the early commands */
            if (rc)
                break;
        }
        int early =
            ldn_cmdq_next(&w.early, &m.hdr, w.dwa_w, err, errlen); /* one that came while busy */
        if (early < 0) {
            rc = early;
            break;
        }
        if (!early) {
            int r = ldn_net_recv(w.coord, 0, &m, 500, why, sizeof why);
            const double now = ldn_clock_now();
            if (r == LDN_ERR_TIMEOUT) {
                if (now - w.coord_heard <= live_s)
                    continue;
                char who[128];
                rc = ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                              "worker %d: nothing from %s for %.1f s, not even a ping: dead or "
                              "hung (ps.liveness_timeout%s)",
                              job->rank, ldn_liveness_name(job, 0, who, sizeof who),
                              now - w.coord_heard, ldn_net_auth_hint());
                break;
            }
            if (r != 0) {
                rc = ldn_fail(err, errlen, r, "worker %d: bad message from the coordinator: %s",
                              job->rank, why);
                break;
            }
            if (m.hdr.op == LDN_OP_TRAIN && w.dwa_w &&
                (rc = take_weights(&w, &m, w.dwa_w, err, errlen))) {
                ldn_msg_close(&m);
                break;
            }
            ldn_msg_close(&m);
        }
        worker_cmd_fn fn = m.hdr.op < LDN_OP_COUNT_ ? COMMANDS[m.hdr.op] : NULL;
        if (!fn) {
            LDN_WARN("worker %d: ignored %s from the coordinator", job->rank,
                     ldn_wire_op_name(m.hdr.op));
            continue;
        }
        rc = fn(&w, &m.hdr, err, errlen);
        w.coord_heard = ldn_clock_now(); /* a long command is not the coordinator's silence */
        if (rc == 1) {
            rc = 0;
            break;
        }
    }
    worker_free(&w);
    return rc;
}
