/* Coordinator: phases, reports, progress, metrics, liveness. */
#define _POSIX_C_SOURCE 200809L
#include "coordinator.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "affinity.h"
#include "ckpt.h"
#include "clock.h"
#include "data.h"
#include "jobckpt.h"
#include "keyspace.h"
#include "liveness.h"
#include "log.h"
#include "loss.h"
#include "metrics.h"
#include "optim.h"
#include "phases.h"
#include "prune.h"
#include "rundir.h"
#include "status.h"
#include "teacher.h"
#include "watch.h"
#include "weighting.h"

#define PING_S 1.0
#define RING 64

struct task_acc {
    double loss_sum, kl_sum;
    int64_t correct, seen, agree;
};

/* Progress reports of one step mark, until every (worker, task) pair has reported. */
struct mark {
    int64_t step;
    int count;
    int64_t samples;
    double bytes_push, bytes_pull, staleness, pulls, compute_s, wait_s;
};

struct coord {
    const struct ldn_job *job;
    const struct ldn_config *cfg;
    void *router;
    void **servers;
    int W, H;                  /* workers; hosted (worker, task) pairs */
    struct ldn_liveness *live; /* when each rank last spoke (workers: any message; servers:
                                  their answers to pings) */
    double live_s;             /* the liveness timeout (ps.liveness_timeout, ps.timeout) */
    int n_lost;                /* workers lost and gone on without (ps.on_worker_loss) */
    char *paused;              /* [n_tasks]: every worker of the task's group is lost */
    char *asked;               /* [world]: the worker asked for its group's re-forming */
    uint32_t *epoch;           /* [n_groups]: re-formings of the group so far */
    char *regroup_due;         /* [n_groups]: lost a member, its survivors not re-formed yet */
    int *group_lost;           /* [n_groups]: members lost so far */
    int *group_lost_eval;      /* [n_groups]: ... when the running evaluation began */
    int64_t *last_step;        /* [world] */
    double last_ping;
    struct task_acc *train_acc; /* [n_tasks], since the last evaluation */
    struct task_acc *eval_acc;  /* [n_tasks], of the running evaluation */
    struct mark ring[RING];
    double mark_time; /* time of the last printed mark */
    int64_t mark_step;
    /* totals since the start */
    double t_start, train_time, phase_start;
    int64_t samples;
    double bytes_push, bytes_pull, bytes_dense, worker_steps;
    double last_push_per_step, last_pull_per_step;
    double *residual_sum; /* [world]: last residual norm reported by each worker */
    FILE *metrics;
    int tty;
    const char *phase;
    char *last_metrics;   /* the last evaluation's metrics.jsonl rows, stored in checkpoints */
    int64_t bad_messages; /* malformed or unexpected messages from workers, warned and dropped */
    struct ldn_wire_plan plans[1]; /* the trunks PLAN phases switch to (phase arg) */
    int n_plans;
    const struct ldn_round_config *round; /* a run with rounds: this round (NULL without) */
    int distill;                          /* the round distils */
    int pruned;                           /* prune.*: the trunk is pruned */
    double sparsity;                      /* the share of its weights masked */
    /* train.task_weighting: dwa's loss history and weights (sent with every train command);
     * the weights and log-variances the workers last reported (uncertainty) */
    int method;
    struct ldn_dwa dwa;
    float *dwa_frame;  /* [n_tasks] */
    double *w_report;  /* [n_tasks] */
    double *lv_report; /* [n_tasks] */
};

/* Send command h to rank `rank` (a server through its socket, a worker on the router). */
static int send_to(struct coord *c, int rank, const struct ldn_wire_msg *h, char *err,
                   size_t errlen)
{
    long rc;
    if (rank <= c->job->plan->n_servers)
        rc = ldn_net_send(c->servers[rank - 1], NULL, 0, h, NULL, err, errlen);
    else {
        char ident[32];
        int n = snprintf(ident, sizeof ident, "w%d", rank);
        rc = ldn_net_send(c->router, ident, (size_t)n, h, NULL, err, errlen);
    }
    return rc < 0 ? (int)rc : 0;
}

static int lose_worker(struct coord *c, int w, const char *why, char *err, size_t errlen);

/* Send h to every worker not lost; with ps.on_worker_loss: continue, a worker that cannot be
 * reached (ZeroMQ saw its connection close) is lost. */
static int send_all_workers(struct coord *c, const struct ldn_wire_msg *h,
                            const void *const *frames, char *err, size_t errlen)
{
    for (int r = 1 + c->job->plan->n_servers; r < c->job->world; r++) {
        if (ldn_liveness_is_lost(r))
            continue;
        char ident[32];
        int n = snprintf(ident, sizeof ident, "w%d", r);
        long sent = ldn_net_send(c->router, ident, (size_t)n, h, frames, err, errlen);
        int rc = sent < 0 ? (int)sent : 0;
        if (rc && c->cfg->on_worker_loss == LDN_LOSS_CONTINUE) {
            char why[LDN_ERRLEN + 64];
            snprintf(why, sizeof why, "unreachable (%s)", err);
            rc = lose_worker(c, r, why, err, errlen);
        }
        if (rc)
            return rc;
    }
    return 0;
}

static int ping(struct coord *c, char *err, size_t errlen)
{
    double now = ldn_clock_now();
    if (now - c->last_ping < PING_S)
        return 0;
    c->last_ping = now;
    /* Best effort: a peer that already finished and closed its socket cannot be reached and
     * that is fine; liveness is judged by what arrives, not by what can be sent. */
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PING, 0);
    for (int r = 1; r < c->job->world; r++)
        if (!ldn_liveness_is_lost(r))
            send_to(c, r, &h, NULL, 0);
    (void)err;
    (void)errlen;
    return 0;
}

static void bar(struct coord *c, int64_t step, double sps)
{
    if (!c->tty)
        return;
    int64_t total = c->job->total_steps;
    int width = 30, fill = total > 0 ? (int)(width * step / total) : width;
    char b[64];
    for (int i = 0; i < width; i++)
        b[i] = i < fill ? '#' : '.';
    b[width] = '\0';
    double eta = sps > 0 ? (double)(total - step) * c->cfg->batch_size * c->W / sps : 0;
    printf("\r\033[K[%s] %3d%% step %lld/%lld %.0f samples/s eta %.0fs", b,
           (int)(100 * step / (total ? total : 1)), (long long)step, (long long)total, sps, eta);
    fflush(stdout);
}

/* The distillation weight of the last step before `step` (as the workers used it). */
static double distill_alpha(const struct coord *c, int64_t step)
{
    return ldn_distill_alpha_at(c->round->teacher.annealing, c->round->teacher.alpha, step - 1, 0,
                                c->job->total_steps);
}

static void print_mark(struct coord *c, struct mark *m)
{
    double now = ldn_clock_now();
    double dt = now - c->mark_time;
    int64_t steps = m->step - c->mark_step;
    double sps = dt > 0 ? (double)m->samples / dt : 0;
    double per = steps > 0 ? (double)steps * c->W : 1;
    c->last_push_per_step = m->bytes_push / per;
    c->last_pull_per_step = m->bytes_pull / per;
    char buf[4096];
    int epoch = (int)((m->step - 1) / c->job->steps_per_epoch) + 1;
    double lr = ldn_lr_at(&c->cfg->lr, c->cfg->optim.lr, m->step - 1, c->job->total_steps,
                          c->job->steps_per_epoch);
    int off = 0;
    if (c->round)
        off = snprintf(buf, sizeof buf, "round %s (%d/%d) | ", c->round->name,
                       c->job->round_index + 1, c->job->run_cfg->n_rounds);
    off += snprintf(buf + off, sizeof buf - (size_t)off,
                    "epoch %d/%d step %lld/%lld | %.0f samples/s | lr %.4g", epoch, c->cfg->epochs,
                    (long long)m->step, (long long)c->job->total_steps, sps, lr);
    if (c->distill)
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | alpha %.3f",
                        distill_alpha(c, m->step));
    if (c->pruned)
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | sparsity %.3f", c->sparsity);
    for (int t = 0; t < c->cfg->n_tasks && off < (int)sizeof buf - 160; t++) {
        const struct task_acc *a = &c->train_acc[t];
        if (!a->seen)
            continue;
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | %s loss %.4f acc %.1f%%",
                        c->cfg->tasks[t].name, a->loss_sum / (double)a->seen,
                        100.0 * (double)a->correct / (double)a->seen);
        if (c->method != LDN_WEIGHT_STATIC)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " w %.3f", c->w_report[t]);
        if (c->distill)
            off +=
                snprintf(buf + off, sizeof buf - (size_t)off, " agree %.1f%% kl %.4f",
                         100.0 * (double)a->agree / (double)a->seen, a->kl_sum / (double)a->seen);
    }
    snprintf(buf + off, sizeof buf - (size_t)off,
             " | push %.1f KB pull %.1f KB per step | staleness %.2f | wait %.0f%%",
             c->last_push_per_step / 1e3, c->last_pull_per_step / 1e3,
             m->pulls > 0 ? m->staleness / m->pulls : 0.0,
             m->compute_s + m->wait_s > 0 ? 100 * m->wait_s / (m->compute_s + m->wait_s) : 0.0);
    LDN_INFO("%s", buf);
    bar(c, m->step, sps);
    c->mark_time = now;
    c->mark_step = m->step;
}

static void add_progress(struct coord *c, int from, const struct ldn_wire_progress *v)
{
    int t = v->task;
    int64_t step = v->step;
    c->train_acc[t].seen += v->samples;
    c->train_acc[t].loss_sum += v->loss_sum;
    c->train_acc[t].correct += v->correct;
    c->train_acc[t].kl_sum += v->kl_sum;
    c->train_acc[t].agree += v->agree;
    if (c->method == LDN_WEIGHT_DWA)
        ldn_dwa_add(&c->dwa, t, v->loss_sum, v->samples);
    if (v->samples > 0) {
        c->w_report[t] = v->task_weight;
        c->lv_report[t] = v->log_var;
    }
    c->samples += v->samples;
    c->bytes_push += (double)v->bytes_push;
    c->bytes_pull += (double)v->bytes_pull;
    c->bytes_dense += (double)v->bytes_dense;
    struct mark *m = &c->ring[(step / (c->cfg->log_every > 0 ? c->cfg->log_every : 1)) % RING];
    if (m->step != step) {
        if (m->count > 0) /* a lagging mark overwritten: print what it had */
            print_mark(c, m);
        memset(m, 0, sizeof *m);
        m->step = step;
    }
    m->count++;
    m->samples += v->samples;
    m->bytes_push += (double)v->bytes_push;
    m->bytes_pull += (double)v->bytes_pull;
    m->staleness += (double)v->staleness_sum;
    m->pulls += (double)v->pulls;
    m->compute_s += v->compute_s;
    m->wait_s += v->wait_s;
    if (v->residual_norm > 0) /* workers with a residual report it in their first task's line */
        c->residual_sum[from] = v->residual_norm;
    if (m->count == c->H) {
        print_mark(c, m);
        m->count = 0;
        m->step = -1;
    }
}

/* Who has checked in (wait_hello) or finished the phase (wait_workers). */
struct waiting {
    char *seen; /* [world] */
    int left;
};

/* Drop a message the coordinator cannot use: warned, counted, reported at the end. */
static int unexpected(struct coord *c, const struct ldn_wire_msg *h, const char *why)
{
    c->bad_messages++;
    LDN_WARN("coordinator: ignored %s from rank %d: %s", ldn_wire_op_name(h->op), h->from, why);
    return 0;
}

static int from_worker(const struct coord *c, int from)
{
    return from > c->job->plan->n_servers && from < c->job->world;
}

/* The router's messages come from workers only: rank `from` a worker of the job and the
 * routing id exactly "w<from>" (its length included). */
static int sent_by_worker(const struct coord *c, const struct ldn_msg *m)
{
    char ident[32];
    snprintf(ident, sizeof ident, "w%d", m->hdr.from);
    return from_worker(c, m->hdr.from) && ldn_net_ident_is(m, ident);
}

/* A report of task `task` at `step` must come from a worker hosting that task. */
static int report_ok(const struct coord *c, int from, int task, int64_t step)
{
    if (!from_worker(c, from) || task >= c->cfg->n_tasks || step > c->job->total_steps)
        return 0;
    int g = c->job->plan->group_of_rank[from];
    return g >= 0 && c->job->plan->group_of_task[task] == g;
}

/* Handlers of the dispatch tables: 0 to go on, negative (with err) to end the job. */
static int on_progress(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h, char *err,
                       size_t errlen)
{
    (void)wt;
    (void)err;
    (void)errlen;
    const struct ldn_wire_progress *v = &h->progress;
    if (!report_ok(c, h->from, v->task, v->step))
        return unexpected(c, h, "task not hosted by the sender, or step past the end");
    add_progress(c, h->from, v);
    return 0;
}

static int on_eval_result(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h,
                          char *err, size_t errlen)
{
    (void)wt;
    (void)err;
    (void)errlen;
    const struct ldn_wire_eval_result *v = &h->eval_result;
    if (!report_ok(c, h->from, v->task, v->step))
        return unexpected(c, h, "task not hosted by the sender, or step past the end");
    struct task_acc *a = &c->eval_acc[v->task];
    a->loss_sum += v->loss_sum;
    a->correct += v->correct;
    a->seen += v->rows;
    return 0;
}

/* hello in wait_hello, done in wait_workers: the sender has arrived (once). */
static int on_arrived(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h, char *err,
                      size_t errlen)
{
    (void)err;
    (void)errlen;
    if (!from_worker(c, h->from) || wt->seen[h->from])
        return unexpected(c, h, "not a worker, or already counted");
    wt->seen[h->from] = 1;
    wt->left--;
    return 0;
}

static int on_error(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h, char *err,
                    size_t errlen)
{
    (void)c;
    (void)wt;
    return ldn_fail(err, errlen, LDN_ERR_PEER, "rank %d reported: %s", h->from, h->error.msg);
}

/* heartbeat, and a hello repeated after the check-in: liveness only (handle_router). */
static int on_alive(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h, char *err,
                    size_t errlen)
{
    (void)c;
    (void)wt;
    (void)h;
    (void)err;
    (void)errlen;
    return 0;
}

/* Group g re-forms once every worker of it still alive has asked (regroup_request): each gets
 * the same members (regroup), whatever losses it had read when it asked. Before the list goes
 * out, each member must still be reachable (a ping): once a member has the list it is inside
 * MPI_Comm_create_group with all of them, so one found gone now is lost first (the others'
 * requests stand). Returns 0 or a negative status with err. */
static int try_regroup(struct coord *c, int g, char *err, size_t errlen)
{
    const struct ldn_group *gr = &c->job->plan->groups[g];
    int n = 0, all = 1;
    for (int i = 0; i < gr->n_ranks; i++) {
        const int r = gr->ranks[i];
        if (!ldn_liveness_is_lost(r)) {
            all &= c->asked[r];
            n++;
        }
    }
    if (!all || n == 0)
        return 0;
    struct ldn_wire_msg ping;
    ldn_wire_msg_init(&ping, LDN_OP_PING, 0);
    for (int i = 0; i < gr->n_ranks; i++) {
        const int r = gr->ranks[i];
        if (ldn_liveness_is_lost(r) || send_to(c, r, &ping, err, errlen) == 0)
            continue;
        char why[LDN_ERRLEN + 64];
        snprintf(why, sizeof why, "unreachable when its group was to re-form (%s)", err);
        return lose_worker(c, r, why, err, errlen); /* which tries again without it */
    }
    int32_t *members = malloc(sizeof(int32_t) * (size_t)n);
    if (!members)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for the re-forming of group %d",
                        g);
    n = 0;
    for (int i = 0; i < gr->n_ranks; i++)
        if (!ldn_liveness_is_lost(gr->ranks[i]))
            members[n++] = gr->ranks[i];
    for (int i = 1; i < n; i++) /* ascending (insertion sort: groups are small) */
        for (int k = i; k > 0 && members[k - 1] > members[k]; k--) {
            int32_t t = members[k];
            members[k] = members[k - 1];
            members[k - 1] = t;
        }
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_REGROUP, 0);
    h.regroup = (struct ldn_wire_regroup){
        .group = (uint32_t)g, .epoch = ++c->epoch[g], .members = (uint32_t)n};
    h.nframes = 1;
    h.lens[0] = sizeof(int32_t) * (size_t)n;
    const void *frames[1] = {members};
    char list[256] = "";
    for (int i = 0, o = 0; i < n && o < (int)sizeof list - 16; i++)
        o += snprintf(list + o, sizeof list - (size_t)o, "%s%d", i ? ", " : "", members[i]);
    LDN_INFO("group %d re-forms (re-forming %u) with worker rank(s) %s", g, c->epoch[g], list);
    c->regroup_due[g] = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        char ident[32];
        int len = snprintf(ident, sizeof ident, "w%d", members[i]);
        c->asked[members[i]] = 0;
        if (ldn_net_send(c->router, ident, (size_t)len, &h, frames, err, errlen) < 0)
            rc = ldn_fail(err, errlen, LDN_ERR_PEER,
                          "the re-forming of group %d could not reach worker rank %d, reachable a "
                          "moment before: the others wait for it in MPI_Comm_create_group",
                          g, members[i]);
    }
    free(members);
    return rc;
}

typedef int (*coord_fn)(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h,
                        char *err, size_t errlen);

/* regroup_request: a survivor of a loss in its group waits for the members to re-form with. */
static int on_regroup_request(struct coord *c, struct waiting *wt, const struct ldn_wire_msg *h,
                              char *err, size_t errlen)
{
    (void)wt;
    (void)err;
    (void)errlen;
    if (!from_worker(c, h->from) || c->cfg->on_worker_loss != LDN_LOSS_CONTINUE ||
        (int)h->regroup_request.group != c->job->plan->group_of_rank[h->from])
        return unexpected(c, h, "not a worker of that group, or no ps.on_worker_loss: continue");
    c->asked[h->from] = 1;
    return try_regroup(c, (int)h->regroup_request.group, err, errlen);
}

/* What the coordinator accepts from workers while they check in, and during a phase. */
static const coord_fn HELLO_ROUTES[LDN_OP_COUNT_] = {
    [LDN_OP_HELLO] = on_arrived,
    [LDN_OP_HEARTBEAT] = on_alive,
    [LDN_OP_ERROR] = on_error,
    [LDN_OP_REGROUP_REQUEST] = on_regroup_request,
};
static const coord_fn PHASE_ROUTES[LDN_OP_COUNT_] = {
    [LDN_OP_HELLO] = on_alive,
    [LDN_OP_HEARTBEAT] = on_alive,
    [LDN_OP_PROGRESS] = on_progress,
    [LDN_OP_EVAL_RESULT] = on_eval_result,
    [LDN_OP_DONE] = on_arrived,
    [LDN_OP_ERROR] = on_error,
    [LDN_OP_REGROUP_REQUEST] = on_regroup_request,
};

/* Receive one message on the router (200 ms at most) and dispatch it by routes; a malformed
 * one is warned about and counted, and one of another protocol version answered with an
 * error. Returns 0 or the handler's failure. */
static int handle_router(struct coord *c, struct waiting *wt, const coord_fn *routes, char *err,
                         size_t errlen)
{
    struct ldn_msg m;
    char why[LDN_ERRLEN];
    int r = ldn_net_recv(c->router, 1, &m, 200, why, sizeof why);
    ldn_net_watch_poll(c->job->watch, ldn_clock_now());
    if (r == LDN_ERR_TIMEOUT)
        return 0;
    if (r != 0) {
        c->bad_messages++;
        LDN_WARN("coordinator: bad message from '%s': %s", m.ident, why);
        if (r == LDN_ERR_PEER)
            ldn_net_reply_error(c->router, &m, 0, r, why);
        return 0;
    }
    ldn_msg_close(&m);
    const struct ldn_wire_msg *h = &m.hdr;
    if (!sent_by_worker(c, &m)) {
        c->bad_messages++;
        LDN_WARN("coordinator: ignored %s claiming to be from rank %d: routing id is not "
                 "w%d of a worker of this job",
                 ldn_wire_op_name(h->op), h->from, h->from);
        return 0;
    }
    if (ldn_liveness_is_lost(h->from)) { /* stopped, then resumed: it is out of the job */
        c->bad_messages++;
        if (c->bad_messages <= 10)
            LDN_WARN("coordinator: ignored %s from worker rank %d, which the job lost",
                     ldn_wire_op_name(h->op), h->from);
        return 0;
    }
    {
        ldn_liveness_seen(c->live, h->from, ldn_clock_now());
        int64_t step;
        if (ldn_wire_msg_step(h, &step))
            c->last_step[h->from] = step;
    }
    coord_fn fn = h->op < LDN_OP_COUNT_ ? routes[h->op] : NULL;
    return fn ? fn(c, wt, h, err, errlen) : unexpected(c, h, "not expected now");
}

/* Servers answer pings with a heartbeat: take what their sockets hold (only while waiting for
 * workers, when no other answer of a server is due). */
static void drain_servers(struct coord *c)
{
    for (int s = 0; s < c->job->plan->n_servers; s++) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        while (ldn_net_recv(c->servers[s], 0, &m, 0, why, sizeof why) == 0) {
            ldn_msg_close(&m);
            ldn_liveness_seen(c->live, 1 + s, ldn_clock_now());
            if (m.hdr.op != LDN_OP_HEARTBEAT)
                unexpected(c, &m.hdr, "not expected from a server now");
        }
    }
}

/* ps.on_worker_loss: continue: worker rank w fell silent. Everyone else is told (servers take
 * it out of the live set, its group's survivors take over its rows), its group shrinks, and
 * when no worker of the group is left its tasks pause. Returns 0 or a send failure. */
static int lose_worker(struct coord *c, int w, const char *why, char *err, size_t errlen)
{
    const struct ldn_plan *p = c->job->plan;
    char who[256];
    ldn_liveness_name(c->job, w, who, sizeof who);
    ldn_liveness_note_lost(w);
    ldn_net_watch_expect(c->job->watch, 1, ldn_clock_now());
    c->n_lost++;
    LDN_WARN("%s lost: %s during the %s phase, last step %lld; the job goes on without it "
             "(ps.on_worker_loss: continue)",
             who, why, c->phase ? c->phase : "start-up", (long long)c->last_step[w]);
    const int g = p->group_of_rank[w];
    const struct ldn_group *gr = &p->groups[g];
    int left = 0;
    for (int i = 0; i < gr->n_ranks; i++)
        left += !ldn_liveness_is_lost(gr->ranks[i]);
    c->W--;
    c->H -= gr->n_tasks;
    for (int i = 0; i < gr->n_tasks && left == 0; i++) {
        c->paused[gr->tasks[i]] = 1;
        LDN_WARN("task %s paused: every worker of group %d is lost; the other tasks go on",
                 c->cfg->tasks[gr->tasks[i]].name, g);
    }
    if (left > 0)
        LDN_INFO("group %d goes on with %d of its %d workers, which take over the lost one's "
                 "rows",
                 g, left, gr->n_ranks);
    c->regroup_due[g] = left > 0;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_LOST, 0);
    h.lost.rank = w;
    h.lost.step = c->last_step[w];
    /* a worker that cannot be told is gone too (two lost close together: the second may not
     * have been found silent yet); it is lost in turn once everyone else has been told */
    char *unreachable = calloc((size_t)c->job->world, 1);
    if (!unreachable)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    char why_next[LDN_ERRLEN + 64] = "";
    for (int r = 1; r < c->job->world; r++) {
        if (ldn_liveness_is_lost(r))
            continue;
        int rc = send_to(c, r, &h, err, errlen);
        if (rc && r > p->n_servers) {
            unreachable[r] = 1;
            snprintf(why_next, sizeof why_next, "unreachable (%s)", err);
        } else if (rc) {
            free(unreachable);
            return rc;
        }
    }
    /* survivors that asked before this loss was known waited for it too */
    c->asked[w] = 0;
    c->group_lost[g]++;
    int rc = 0;
    for (int r = 1; r < c->job->world && rc == 0; r++)
        if (unreachable[r] && !ldn_liveness_is_lost(r))
            rc = lose_worker(c, r, why_next, err, errlen);
    free(unreachable);
    return rc ? rc : try_regroup(c, g, err, errlen);
}

/* Rank r has been silent for `silent` seconds, more than the liveness timeout, `when` (NULL:
 * during this phase). A worker under ps.on_worker_loss: continue is lost and the job goes on;
 * a server, or a worker under fail, ends the job, named. */
static int rank_silent(struct coord *c, int r, double silent, const char *when, char *err,
                       size_t errlen)
{
    char w[128], why[256];
    if (r > c->job->plan->n_servers && c->cfg->on_worker_loss == LDN_LOSS_CONTINUE) {
        snprintf(why, sizeof why, "nothing from it for %.1f s%s%s (ps.liveness_timeout %g s)",
                 silent, when ? " " : "", when ? when : "", c->live_s);
        return lose_worker(c, r, why, err, errlen);
    }
    char who[256];
    ldn_liveness_name(c->job, r, who, sizeof who);
    if (!when)
        snprintf(w, sizeof w, "during the %s phase", c->phase ? c->phase : "start-up");
    if (r <= c->job->plan->n_servers)
        return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                        "%s answered no ping for %.1f s %s: dead or hung (ps.liveness_timeout)",
                        who, silent, when ? when : w);
    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                    "%s sent nothing for %.1f s %s (last step %lld): dead or hung "
                    "(ps.liveness_timeout; ps.on_worker_loss: fail)",
                    who, silent, when ? when : w, (long long)c->last_step[r]);
}

/* Wait until every worker has answered DONE for this phase, handling reports meanwhile; a
 * worker or server silent for the liveness timeout is named (and, a worker with
 * ps.on_worker_loss: continue, gone on without). */
static int wait_workers(struct coord *c, char *err, size_t errlen)
{
    const struct ldn_plan *p = c->job->plan;
    struct waiting wt = {calloc((size_t)c->job->world, 1), c->W};
    if (!wt.seen)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    double now = ldn_clock_now();
    for (int r = 1; r < c->job->world; r++) {
        ldn_liveness_seen(c->live, r, now);
        wt.seen[r] = ldn_liveness_is_lost(r); /* not in c->W: not waited for */
    }
    int rc = 0;
    while (wt.left > 0 && rc == 0) {
        rc = handle_router(c, &wt, PHASE_ROUTES, err, errlen);
        now = ldn_clock_now();
        if (rc == 0)
            rc = ping(c, err, errlen);
        drain_servers(c);
        for (int r = 1; r < c->job->world && rc == 0; r++) {
            const double silent = ldn_liveness_silent(c->live, r, now);
            /* every worker still in the job is watched, done or not: a done one answers pings
             * (and its group's survivors may be waiting for it to re-form) */
            if (ldn_liveness_is_lost(r) || silent <= c->live_s)
                continue;
            rc = rank_silent(c, r, silent, NULL, err, errlen);
            /* it, and any worker lost with it (unreachable when told), is waited for no longer */
            for (int q = 1 + p->n_servers; q < c->job->world && rc == 0; q++)
                if (!wt.seen[q] && ldn_liveness_is_lost(q)) {
                    wt.seen[q] = 1;
                    wt.left--;
                }
        }
    }
    free(wt.seen);
    return rc;
}

static int phase_train(struct coord *c, int64_t from, int64_t to, char *err, size_t errlen)
{
    c->phase = "train";
    double t0 = ldn_clock_now();
    c->mark_time = t0;
    c->mark_step = from;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_TRAIN, 0);
    h.train.from = from;
    h.train.to = to;
    int rc = 0;
    if (c->method == LDN_WEIGHT_DWA) { /* the weights of these steps travel with the command */
        ldn_dwa_weights_f32(&c->dwa, c->dwa_frame);
        h.nframes = 1;
        h.lens[0] = sizeof(float) * (uint64_t)c->cfg->n_tasks;
        const void *frames[1] = {c->dwa_frame};
        rc = send_all_workers(c, &h, frames, err, errlen);
    } else
        rc = send_all_workers(c, &h, NULL, err, errlen);
    if (rc == 0)
        rc = wait_workers(c, err, errlen);
    c->train_time += ldn_clock_now() - t0;
    c->worker_steps += (double)(to - from) * c->W;
    /* every progress report of the phase came before its worker's done: an epoch that ended
     * here is complete */
    if (rc == 0 && c->method == LDN_WEIGHT_DWA && to % c->job->steps_per_epoch == 0) {
        ldn_dwa_end_epoch(&c->dwa);
        char buf[2048];
        int off = 0;
        for (int t = 0; t < c->cfg->n_tasks && off < (int)sizeof buf - 64; t++) {
            off += snprintf(buf + off, sizeof buf - (size_t)off, " %s %.4f", c->cfg->tasks[t].name,
                            c->dwa.w[t]);
        }
        LDN_INFO("dwa: epoch %lld ended at step %lld; weights of the next epoch:%s",
                 (long long)c->dwa.epochs, (long long)to, buf);
    }
    return rc;
}

/* Mean over workers of the last residual norm they reported. */
static double mean_residual(const struct coord *c)
{
    double s = 0;
    for (int r = 0; r < c->job->world; r++)
        s += c->residual_sum[r];
    return c->W > 0 ? s / c->W : 0;
}

/* The group that hosts task t, or -1. */
static int task_group(const struct coord *c, int t)
{
    const struct ldn_plan *p = c->job->plan;
    for (int g = 0; g < p->n_groups; g++)
        for (int i = 0; i < p->groups[g].n_tasks; i++)
            if (p->groups[g].tasks[i] == t)
                return g;
    return -1;
}

static int phase_eval(struct coord *c, int64_t step, char *err, size_t errlen)
{
    c->phase = "eval";
    const struct ldn_config *cfg = c->cfg;
    memset(c->eval_acc, 0, sizeof *c->eval_acc * (size_t)cfg->n_tasks);
    memcpy(c->group_lost_eval, c->group_lost, sizeof(int) * (size_t)c->job->plan->n_groups);
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_EVAL, 0);
    h.eval.step = step;
    int rc = send_all_workers(c, &h, NULL, err, errlen);
    if (rc == 0)
        rc = wait_workers(c, err, errlen);
    if (rc)
        return rc;
    double epoch = (double)step / (double)c->job->steps_per_epoch;
    double lr =
        ldn_lr_at(&cfg->lr, cfg->optim.lr, step - 1, c->job->total_steps, c->job->steps_per_epoch);
    char buf[4096];
    int off = snprintf(buf, sizeof buf, "eval epoch %.2f step %lld:", epoch, (long long)step);
    char *text = NULL;
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    if (!mem)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; t < cfg->n_tasks; t++) {
        const struct task_acc *e = &c->eval_acc[t], *a = &c->train_acc[t];
        if (c->paused[t]) {
            if (off < (int)sizeof buf - 64)
                off += snprintf(buf + off, sizeof buf - (size_t)off, " %s paused (workers lost)",
                                cfg->tasks[t].name);
            continue;
        }
        const int g = task_group(c, t);
        if (e->seen < c->job->n_test[t] && g >= 0 && c->group_lost[g] > c->group_lost_eval[g]) {
            /* a worker lost while it evaluated: its shard's figures are missing, or a survivor
             * evaluated a shard of the group before it re-formed */
            LDN_WARN("eval of step %lld: task %s covered %lld of %lld test rows, as a worker was "
                     "lost during the evaluation: no figures for it this time",
                     (long long)step, cfg->tasks[t].name, (long long)e->seen,
                     (long long)c->job->n_test[t]);
            if (off < (int)sizeof buf - 64)
                off += snprintf(buf + off, sizeof buf - (size_t)off, " %s incomplete (worker lost)",
                                cfg->tasks[t].name);
            continue;
        }
        if (e->seen != c->job->n_test[t]) {
            fclose(mem);
            free(text);
            return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                            "eval of task %s covered %lld of %lld test rows", cfg->tasks[t].name,
                            (long long)e->seen, (long long)c->job->n_test[t]);
        }
        struct ldn_eval_record rec = {
            .task = cfg->tasks[t].name,
            .step = step,
            .epoch = epoch,
            .loss = e->loss_sum / (double)e->seen,
            .accuracy = (double)e->correct / (double)e->seen,
            .test_rows = e->seen,
            .train_loss = a->seen ? a->loss_sum / (double)a->seen : NAN,
            .train_accuracy = a->seen ? (double)a->correct / (double)a->seen : NAN,
            .samples_per_s = c->train_time > 0 ? (double)c->samples / c->train_time : 0,
            .lr = lr,
            .elapsed_s = ldn_clock_now() - c->t_start,
            .push_bytes_per_step = c->worker_steps > 0 ? c->bytes_push / c->worker_steps : 0,
            .pull_bytes_per_step = c->worker_steps > 0 ? c->bytes_pull / c->worker_steps : 0,
            .dense_bytes_per_step = c->worker_steps > 0 ? c->bytes_dense / c->worker_steps : 0,
            .residual_norm = mean_residual(c),
            .round = c->round ? c->round->name : NULL,
            .distill = c->distill,
            .teacher_agreement = a->seen ? (double)a->agree / (double)a->seen : NAN,
            .distill_kl = a->seen ? a->kl_sum / (double)a->seen : NAN,
            .distill_alpha = c->distill ? distill_alpha(c, step) : 0,
            .pruned = c->pruned,
            .sparsity = c->sparsity,
            .weighting = c->method != LDN_WEIGHT_STATIC ? ldn_weighting_name(c->method) : NULL,
            .task_weight = c->w_report[t],
            .has_log_var = c->method == LDN_WEIGHT_UNCERTAINTY,
            .log_var = c->lv_report[t]};
        ldn_metrics_write(mem, &rec);
        if (ldn_metrics_write(c->metrics, &rec) != 0 ||
            (c->job->run_metrics && ldn_metrics_write(c->job->run_metrics, &rec) != 0)) {
            fclose(mem);
            free(text);
            return ldn_fail(err, errlen, LDN_ERR_IO, "metrics: write to %s/metrics.jsonl failed",
                            cfg->run_dir);
        }
        if (off < (int)sizeof buf - 64)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " %s acc %.2f%% (loss %.4f)",
                            cfg->tasks[t].name, 100.0 * rec.accuracy, rec.loss);
    }
    memset(c->train_acc, 0, sizeof *c->train_acc * (size_t)cfg->n_tasks);
    LDN_INFO("%s", buf);
    if (fclose(mem) == 0) {
        free(c->last_metrics);
        c->last_metrics = text;
    } else
        free(text);
    FILE *const out[2] = {c->metrics, c->job->run_metrics}; /* ps.affinity: its row */
    return cfg->affinity > 0
               ? ldn_affinity_gather(c->job, c->servers, step, epoch, out, 2, err, errlen)
               : 0;
}

static const coord_fn CONFIRM_ROUTES[LDN_OP_COUNT_] = {
    [LDN_OP_HELLO] = on_alive,
    [LDN_OP_HEARTBEAT] = on_alive,
    [LDN_OP_ERROR] = on_error,
    [LDN_OP_REGROUP_REQUEST] = on_regroup_request,
};

/* Before a collective of every rank (a checkpoint): each rank still in the job answers a ping
 * (servers and idle workers answer with a heartbeat), or is found unreachable or silent for
 * the liveness timeout. A worker is then lost (ps.on_worker_loss: continue) or named (fail), a
 * server named: once the collective has begun, a rank gone would hold it until its own timeout.
 * Returns 0 or a negative status with err. */
static int confirm_once(struct coord *c, const char *before, char *err, size_t errlen)
{
    const struct ldn_plan *p = c->job->plan;
    const double t0 = ldn_clock_now();
    char when[96];
    snprintf(when, sizeof when, "before %s", before);
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PING, 0);
    c->last_ping = t0;
    int rc = 0;
    for (int r = 1; r < c->job->world && rc == 0; r++) {
        if (ldn_liveness_is_lost(r) || send_to(c, r, &h, err, errlen) == 0)
            continue;
        if (r <= p->n_servers || c->cfg->on_worker_loss != LDN_LOSS_CONTINUE) {
            char who[256];
            return ldn_fail(err, errlen, LDN_ERR_PEER, "%s cannot be reached before %s: %s",
                            ldn_liveness_name(c->job, r, who, sizeof who), before, err);
        }
        char why[LDN_ERRLEN + 64];
        snprintf(why, sizeof why, "unreachable before %s (%s)", before, err);
        rc = lose_worker(c, r, why, err, errlen);
    }
    struct waiting wt = {NULL, 0};
    for (int r = 1; r < c->job->world && rc == 0;) {
        if ((rc = ping(c, err, errlen)) != 0) /* the others wait for the coordinator meanwhile */
            break;
        const double now = ldn_clock_now();
        if (ldn_liveness_is_lost(r) || ldn_liveness_silent(c->live, r, now) < now - t0) {
            r++; /* heard from since the ping */
            continue;
        }
        if (now - t0 > c->live_s) {
            rc = rank_silent(c, r, now - t0, when, err, errlen);
            continue;
        }
        if (r <= p->n_servers) {
            struct timespec ts = {0, 1000000}; /* servers' answers: polled every ms */
            nanosleep(&ts, NULL);
            drain_servers(c);
        } else
            rc = handle_router(c, &wt, CONFIRM_ROUTES, err, errlen);
    }
    /* the survivors of a loss re-form first (they ask, and wait for the answer) */
    for (int g = 0; g < p->n_groups && rc == 0;) {
        if (!c->regroup_due[g]) {
            g++;
            continue;
        }
        const double now = ldn_clock_now();
        if (now - t0 > c->cfg->timeout_s)
            return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                            "waited %.0f s before %s for the survivors of group %d to ask to "
                            "re-form (ps.timeout)",
                            c->cfg->timeout_s, before, g);
        const struct ldn_group *gr = &p->groups[g];
        for (int i = 0; i < gr->n_ranks && rc == 0; i++) { /* one that fell silent meanwhile */
            const int r = gr->ranks[i];
            const double silent = ldn_liveness_silent(c->live, r, now);
            if (!ldn_liveness_is_lost(r) && !c->asked[r] && silent > c->live_s)
                rc = rank_silent(c, r, silent, when, err, errlen);
        }
        if (rc == 0 && (rc = ping(c, err, errlen)) == 0)
            rc = handle_router(c, &wt, CONFIRM_ROUTES, err, errlen);
    }
    return rc;
}

/* confirm_once until a round finds no new loss (a rank lost in one round may have been
 * waited for by the others). */
static int confirm_ranks(struct coord *c, const char *before, char *err, size_t errlen)
{
    for (;;) {
        const int lost = c->n_lost;
        int rc = confirm_once(c, before, err, errlen);
        if (rc || c->n_lost == lost)
            return rc;
    }
}

/* Every rank still in the job joins the collective write of a checkpoint of `step`
 * (docs/checkpoint.md). */
static int phase_checkpoint(struct coord *c, int64_t step, char *err, size_t errlen)
{
    c->phase = "checkpoint";
    char before[64];
    snprintf(before, sizeof before, "the checkpoint of step %lld", (long long)step);
    int rc = confirm_ranks(c, before, err, errlen);
    if (rc)
        return rc;
    /* After a loss the ranks still in the job write it (common/job/jobckpt.c); a paused task's
     * head went with its workers, and a checkpoint without it could not be resumed. */
    for (int t = 0; t < c->cfg->n_tasks; t++)
        if (c->paused[t]) {
            LDN_WARN("checkpoint of step %lld skipped: task %s is paused (every worker of its "
                     "group lost), and its head was lost with them",
                     (long long)step, c->cfg->tasks[t].name);
            return 0;
        }
    const double t0 = ldn_clock_now();
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_CKPT, 0);
    h.ckpt.step = step;
    h.ckpt.lost = (uint32_t)ldn_liveness_lost_count();
    /* a rank lost from here on ends the job: the write waits for it (checkpoint.timeout) */
    for (int r = 1; r < c->job->world && rc == 0; r++)
        if (!ldn_liveness_is_lost(r))
            rc = send_to(c, r, &h, err, errlen);
    if (rc)
        return rc;
    struct ldn_ckpt_items mine = {0}; /* dwa: the loss history */
    char path[LDN_PATH_MAX + 64];
    if (c->method == LDN_WEIGHT_DWA && ldn_dwa_ckpt_add(&c->dwa, &mine) != 0) {
        ldn_ckpt_items_free(&mine);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint items: out of memory");
    }
    rc = ldn_jobckpt_write(c->job, step, c->last_metrics ? c->last_metrics : "", &mine, path,
                           sizeof path, err, errlen);
    ldn_ckpt_items_free(&mine);
    if (rc)
        return rc;
    double dt = ldn_clock_now() - t0;
    struct stat st;
    double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
    LDN_INFO("checkpoint step %lld: %s (%.1f MB in %.2f s, %.0f MB/s)", (long long)step, path, mb,
             dt, dt > 0 ? mb / dt : 0);
    return 0;
}

/* Read every server's range of the trunk and write RUN_DIR/trunk.f32 (docs/wire.md). */
static int save_trunk(struct coord *c, char *err, size_t errlen)
{
    const int S = c->job->plan->n_servers;
    size_t bytes = sizeof(float) * (size_t)c->job->trunk_params;
    float *trunk = malloc(bytes);
    if (!trunk)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for the trunk");
    int rc = 0;
    for (int s = 0; s < S && rc == 0; s++) {
        const struct ldn_range *r = &c->job->ranges[s];
        struct ldn_wire_msg h;
        ldn_wire_msg_init(&h, LDN_OP_PULL, 0);
        h.pull.lo = (uint64_t)r->lo;
        h.pull.hi = (uint64_t)r->hi;
        if (ldn_net_send(c->servers[s], NULL, 0, &h, NULL, err, errlen) < 0) {
            rc = LDN_ERR_IO;
            break;
        }
        int left = 0;
        for (int k = 0; k < c->job->n_chunks; k++)
            left += c->job->chunks[k].server == s;
        double deadline = ldn_clock_now() + c->cfg->timeout_s;
        while (left > 0) {
            struct ldn_msg m;
            char why[LDN_ERRLEN];
            int got = ldn_net_recv(c->servers[s], 0, &m, 200, why, sizeof why);
            ping(c, NULL, 0); /* the workers hear from the coordinator while it waits */
            if (got == 0) {
                int k = m.hdr.op == LDN_OP_PARAMS && m.hdr.params.lo <= INT64_MAX
                            ? ldn_keyspace_find_chunk(c->job->chunks, c->job->n_chunks,
                                                      (int64_t)m.hdr.params.lo)
                            : -1;
                if (k >= 0 && c->job->chunks[k].server == s && m.nframes == 1 &&
                    m.hdr.lens[0] ==
                        sizeof(float) * (uint64_t)(c->job->chunks[k].hi - c->job->chunks[k].lo)) {
                    memcpy(trunk + c->job->chunks[k].lo, zmq_msg_data(&m.frames[0]), m.hdr.lens[0]);
                    left--;
                }
                ldn_msg_close(&m);
            }
            if (left > 0 && ldn_clock_now() > deadline) {
                rc = ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                              "waited %.0f s for the weights of server rank %d (ps.timeout%s)",
                              c->cfg->timeout_s, 1 + s, ldn_net_auth_hint());
                break;
            }
        }
    }
    if (rc == 0)
        rc = ldn_rundir_write_trunk(c->cfg, trunk, c->job->trunk_params, err, errlen);
    free(trunk);
    return rc;
}

/* Stop every worker, then every server; collect the servers' counters. */
static int phase_stop(struct coord *c, char *err, size_t errlen)
{
    c->phase = "stop";
    ldn_net_watch_quiet(c->job->watch); /* the workers close their sockets now */
    struct ldn_wire_msg stop;
    ldn_wire_msg_init(&stop, LDN_OP_STOP, 0);
    int rc = send_all_workers(c, &stop, NULL, err, errlen);
    if (rc == 0)
        rc = wait_workers(c, err, errlen);
    if (rc == 0)
        rc = save_trunk(c, err, errlen);
    if (rc)
        return rc;
    const int S = c->job->plan->n_servers;
    int64_t bad = 0, applied = 0, max_stale = 0, mask_changes = 0, masked_pushed = 0;
    int64_t pc_proj = 0, pc_pairs = 0, dropped = 0;
    for (int s = 0; s < S && rc == 0; s++) {
        if ((rc = send_to(c, 1 + s, &stop, err, errlen)))
            break;
        double deadline = ldn_clock_now() + c->cfg->timeout_s;
        for (;;) {
            struct ldn_msg m;
            char why[LDN_ERRLEN];
            int r = ldn_net_recv(c->servers[s], 0, &m, 200, why, sizeof why);
            ping(c, NULL, 0); /* the workers hear from the coordinator while it waits */
            if (r == 0) {
                ldn_msg_close(&m);
                if (m.hdr.op == LDN_OP_SERVER_STATS) { /* the answer to stop */
                    const struct ldn_wire_server_stats *st = &m.hdr.server_stats;
                    applied = st->steps_applied;
                    bad += st->bad_messages;
                    max_stale = st->max_staleness > max_stale ? st->max_staleness : max_stale;
                    mask_changes += st->mask_changes;
                    masked_pushed += st->masked_pushed;
                    pc_proj += st->pcgrad_projections;
                    pc_pairs += st->pcgrad_pairs;
                    dropped += st->dropped_connections;
                    break;
                }
                continue;
            }
            if (ldn_clock_now() > deadline) {
                rc = ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                              "server rank %d did not confirm the stop within %.0f s", 1 + s,
                              c->cfg->timeout_s);
                break;
            }
        }
    }
    if (rc == 0)
        LDN_INFO("servers: %lld updates applied each, %lld bad messages rejected, max staleness "
                 "served %lld; coordinator: %lld bad messages ignored",
                 (long long)applied, (long long)bad, (long long)max_stale,
                 (long long)c->bad_messages);
    dropped += ldn_net_watch_dropped(c->job->watch);
    if (rc == 0 && dropped > 0)
        LDN_WARN("servers and coordinator: %lld connections closed unannounced (a frame above "
                 "net.max_message_mb, a protocol error or a peer process that ended; each rank's "
                 "log names the first ones)",
                 (long long)dropped);
    if (rc == 0 && c->pruned)
        LDN_INFO("servers: %lld masked keys changed after being masked; %lld pushed gradient "
                 "entries of masked keys dropped",
                 (long long)mask_changes, (long long)masked_pushed);
    if (rc == 0 && c->cfg->weighting.gradients == LDN_GRAD_PCGRAD)
        LDN_INFO("servers: pcgrad projected %lld of %lld (group, group, chunk) gradient pairs "
                 "(%.1f%% conflicting)",
                 (long long)pc_proj, (long long)pc_pairs,
                 pc_pairs ? 100.0 * (double)pc_proj / (double)pc_pairs : 0.0);
    return rc;
}

/* Wait for the HELLO of every worker (they connect after the endpoint exchange). */
static int wait_hello(struct coord *c, char *err, size_t errlen)
{
    struct waiting wt = {calloc((size_t)c->job->world, 1), c->W};
    if (!wt.seen)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    const double start = ldn_clock_now();
    for (int r = 0; r < c->job->world; r++)
        ldn_liveness_seen(c->live, r, start);
    int rc = 0;
    /* a worker that is still setting up (a distillation round's soft targets) sends
     * heartbeats: silence, not the time it takes, is what times out */
    while (wt.left > 0 && rc == 0) {
        rc = handle_router(c, &wt, HELLO_ROUTES, err, errlen);
        ping(c, err, errlen); /* servers and early workers wait for the slow ones */
        const double now = ldn_clock_now();
        for (int w = 1 + c->job->plan->n_servers; w < c->job->world && rc == 0; w++)
            if (!wt.seen[w] && ldn_liveness_silent(c->live, w, now) > c->cfg->timeout_s) {
                char who[256];
                rc = ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                              "%s did not check in: nothing from it for %.0f s (ps.timeout%s)",
                              ldn_liveness_name(c->job, w, who, sizeof who), c->cfg->timeout_s,
                              ldn_net_auth_hint());
            }
    }
    free(wt.seen);
    return rc;
}

/* With the live bar on, log lines go to stdout too (under mpirun, stdout and stderr are
 * forwarded separately and would interleave out of order): each clears the bar's line first. */
static void log_over_bar(enum ldn_log_level level, const char *line, void *ud)
{
    (void)level;
    (void)ud;
    fputs("\r\033[K", stdout);
    fputs(line, stdout);
    fflush(stdout);
}

/* Under mpirun a rank's stdout is a pseudo-terminal whatever mpirun's own stdout is, so
 * launch/ladon-run tells the ranks in LDN_TTY; without it, plain lines under mpirun. */
static int stdout_is_terminal(void)
{
    const char *e = getenv("LDN_TTY");
    if (e)
        return atoi(e) != 0;
    return isatty(STDOUT_FILENO) && !getenv("OMPI_COMM_WORLD_SIZE");
}

/* Wait for server rank 1 + s to answer done for a plan switch. */
static int wait_server_done(struct coord *c, int s, char *err, size_t errlen)
{
    double deadline = ldn_clock_now() + c->cfg->timeout_s;
    while (ldn_clock_now() < deadline) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        ping(c, NULL, 0); /* the workers hear from the coordinator while it waits */
        if (ldn_net_recv(c->servers[s], 0, &m, 200, why, sizeof why) != 0)
            continue;
        ldn_msg_close(&m);
        if (m.hdr.op == LDN_OP_DONE)
            return 0;
        if (m.hdr.op == LDN_OP_ERROR)
            return ldn_fail(err, errlen, LDN_ERR_PEER, "server rank %d: %s", 1 + s,
                            m.hdr.error.msg);
    }
    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                    "server rank %d did not confirm the plan switch within %.0f s (ps.timeout)",
                    1 + s, c->cfg->timeout_s);
}

/* Switch every rank to another trunk: this rank's key layout, then every server (each
 * rebuilds and answers done), then every worker (they pull the new trunk and answer done). */
static int phase_plan(struct coord *c, int64_t step, const struct ldn_wire_plan *p, char *err,
                      size_t errlen)
{
    c->phase = "plan";
    int widths[LDN_WIRE_MAX_LAYERS];
    for (uint32_t i = 0; i < p->n_trunk; i++)
        widths[i] = (int)p->trunk[i];
    int rc = c->job->replan(c->job->replan_ud, widths, (int)p->n_trunk, err, errlen);
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PLAN, 0);
    h.plan = *p;
    h.plan.step = step;
    for (int s = 0; s < c->job->plan->n_servers && rc == 0; s++)
        if ((rc = send_to(c, 1 + s, &h, err, errlen)) == 0)
            rc = wait_server_done(c, s, err, errlen);
    if (rc == 0)
        rc = send_all_workers(c, &h, NULL, err, errlen);
    if (rc == 0)
        rc = wait_workers(c, err, errlen);
    if (rc == 0)
        LDN_INFO("plan switch at step %lld done: %lld trunk parameters over %d servers, %d chunks",
                 (long long)step, (long long)c->job->trunk_params, c->job->plan->n_servers,
                 c->job->n_chunks);
    return rc;
}

/* Wait for server rank 1 + s's prune_hist of (step, level): `count` uint64 added into sum. */
static int recv_prune(struct coord *c, int s, const struct ldn_wire_prune *p, size_t count,
                      uint64_t *sum, char *err, size_t errlen)
{
    double deadline = ldn_clock_now() + c->cfg->timeout_s;
    while (ldn_clock_now() < deadline) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        ping(c, NULL, 0); /* the workers hear from the coordinator while it waits */
        if (ldn_net_recv(c->servers[s], 0, &m, 200, why, sizeof why) != 0)
            continue;
        const struct ldn_wire_prune_hist *h = &m.hdr.prune_hist;
        if (m.hdr.op == LDN_OP_PRUNE_HIST && h->step == p->step && h->level == p->level) {
            int ok = m.nframes == 1 && m.hdr.lens[0] == count * sizeof *sum;
            for (size_t i = 0; ok && i < count; i++) {
                uint64_t v;
                memcpy(&v, (const char *)zmq_msg_data(&m.frames[0]) + i * sizeof v, sizeof v);
                sum[i] += v;
            }
            ldn_msg_close(&m);
            return ok ? 0
                      : ldn_fail(err, errlen, LDN_ERR_PEER,
                                 "server rank %d: prune_hist of step %lld has %d frames, not one "
                                 "of %zu counts",
                                 1 + s, (long long)p->step, m.nframes, count);
        }
        ldn_msg_close(&m);
        if (m.hdr.op == LDN_OP_ERROR)
            return ldn_fail(err, errlen, LDN_ERR_PEER, "server rank %d: %s", 1 + s,
                            m.hdr.error.msg);
    }
    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                    "server rank %d did not answer prune pass %u of step %lld within %.0f s "
                    "(ps.timeout)",
                    1 + s, p->level, (long long)p->step, c->cfg->timeout_s);
}

/* One pass to every server, their answers summed into sum (count values each). */
static int prune_pass(struct coord *c, const struct ldn_wire_prune *p, size_t count, uint64_t *sum,
                      char *err, size_t errlen)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PRUNE, 0);
    h.prune = *p;
    memset(sum, 0, sizeof *sum * count);
    int rc = 0;
    for (int s = 0; s < c->job->plan->n_servers && rc == 0; s++)
        rc = send_to(c, 1 + s, &h, err, errlen);
    for (int s = 0; s < c->job->plan->n_servers && rc == 0; s++)
        rc = recv_prune(c, s, p, count, sum, err, errlen);
    return rc;
}

/* PRUNE phase (common/job/prune.h): the thresholds of step `step` from the sum of every
 * server's histograms (LDN_PRUNE_LEVELS passes), then every server masks its rows. */
static int phase_prune(struct coord *c, int64_t step, char *err, size_t errlen)
{
    c->phase = "prune";
    const struct ldn_prune_config *pc = &c->cfg->prune;
    struct ldn_prune_units u;
    struct ldn_prune_select sel;
    ldn_prune_units_init(&u, pc, c->job->trunk);
    ldn_prune_select_start(&sel, &u, pc, c->job->total_steps, step);
    uint64_t *hist = malloc(sizeof *hist * LDN_PRUNE_BINS * (size_t)u.n);
    if (!hist)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "prune: out of memory");
    struct ldn_wire_prune p = {.step = step, .n_thr = (uint32_t)u.n};
    int rc = 0;
    for (int level = 0; level < LDN_PRUNE_LEVELS && rc == 0; level++) {
        p.level = (uint32_t)level;
        memcpy(p.thr, sel.prefix, sizeof(uint64_t) * (size_t)u.n);
        rc = prune_pass(c, &p, (size_t)u.n * LDN_PRUNE_BINS, hist, err, errlen);
        if (rc == 0 && !ldn_prune_select_refine(&sel, hist))
            rc = ldn_fail(err, errlen, LDN_ERR_PEER,
                          "prune step %lld: the servers' histograms count fewer weights than "
                          "the trunk has",
                          (long long)step);
    }
    uint64_t masked[LDN_MAX_LAYERS];
    if (rc == 0) {
        p.level = LDN_WIRE_PRUNE_LEVELS;
        ldn_prune_thresholds(&sel, p.thr);
        rc = prune_pass(c, &p, (size_t)u.n_layers, masked, err, errlen);
    }
    free(hist);
    if (rc == 0) { /* the workers pull the masked weights again */
        struct ldn_wire_msg h;
        ldn_wire_msg_init(&h, LDN_OP_PRUNE, 0);
        h.prune = p;
        if ((rc = send_all_workers(c, &h, NULL, err, errlen)) == 0)
            rc = wait_workers(c, err, errlen);
    }
    if (rc)
        return rc;
    int64_t per_layer[LDN_MAX_LAYERS];
    char what[512];
    for (int l = 0; l < u.n_layers; l++)
        per_layer[l] = (int64_t)masked[l];
    c->sparsity = ldn_prune_describe(&u, per_layer, what, sizeof what);
    LDN_INFO("prune step %lld: target %.4f, sparsity %s", (long long)step,
             ldn_prune_target_at(&u, pc, c->job->total_steps, step), what);
    return 0;
}

/* The teacher's tick while the coordinator builds its report: the servers and the workers
 * hear from it (at most once a second), so a long report is not taken for silence. */
static void ping_tick(void *ud)
{
    ping(ud, NULL, 0);
}

/* A distillation round's start: the ensemble's and each member's accuracy on every task's
 * whole test split, while the workers make their soft targets. */
static int report_teacher(struct coord *c, char *err, size_t errlen)
{
    const struct ldn_config *cfg = c->cfg;
    const int n = cfg->n_tasks;
    struct ldn_dataset **sets = calloc(2 * (size_t)n, sizeof *sets);
    int rc = sets ? 0 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; rc == 0 && t < n; t++)
        if (!(sets[n + t] = ldn_dataset_load(cfg->tasks[t].file, "test", 0, 1, err, errlen)))
            rc = LDN_ERR_FORMAT;
    struct ldn_teacher T;
    if (rc == 0) {
        const struct ldn_teacher_data d = {.train = sets,
                                           .test = sets + n,
                                           .classes = c->job->classes,
                                           .features = c->job->features,
                                           .tick = ping_tick,
                                           .tick_ud = c};
        rc = ldn_teacher_build(&T, cfg, c->round->name, &c->round->teacher, c->job->round_members,
                               &d, err, errlen);
    }
    if (rc == 0) {
        ldn_teacher_log_accuracy(&T, cfg, c->round->name, &c->round->teacher);
        ldn_teacher_deinit(&T);
    }
    for (int t = 0; sets && t < n; t++)
        ldn_dataset_destroy(&sets[n + t]);
    free(sets);
    return rc;
}

/* Test hook LDN_TEST_REPLAN=STEP:W1,W2,...: a PLAN phase at STEP to a trunk of those widths
 * (the distillation rounds of a later version schedule plan switches from the config). */
static int test_replan(struct coord *c, struct ldn_phases *phases, char *err, size_t errlen)
{
    const char *e = getenv("LDN_TEST_REPLAN");
    if (!e)
        return 0;
    struct ldn_wire_plan *p = &c->plans[0];
    long long step = -1;
    int used = 0;
    char list[256] = "";
    if (sscanf(e, "%lld:%n", &step, &used) != 1 || step < 0)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "LDN_TEST_REPLAN='%s': want STEP:W1,W2,...", e);
    p->n_trunk = 0;
    for (const char *q = e + used; *q && p->n_trunk < LDN_WIRE_MAX_LAYERS;) {
        char *end;
        long v = strtol(q, &end, 10);
        if (end == q || v < 1 || v > 1000000 || (*end && *end != ','))
            return ldn_fail(err, errlen, LDN_ERR_ARG, "LDN_TEST_REPLAN='%s': bad width list", e);
        size_t off = strlen(list);
        snprintf(list + off, sizeof list - off, "%s%ld", p->n_trunk ? ", " : "", v);
        p->trunk[p->n_trunk++] = (uint64_t)v;
        q = *end ? end + 1 : end;
    }
    if (p->n_trunk == 0)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "LDN_TEST_REPLAN='%s': no widths", e);
    c->n_plans = 1;
    struct ldn_phase ph = {.kind = LDN_PHASE_PLAN, .to = step, .arg = 0};
    int rc = ldn_phases_insert(phases, &ph, err, errlen);
    if (rc == 0)
        LDN_INFO("plan switch at step %lld: trunk [%s] (LDN_TEST_REPLAN)", step, list);
    return rc;
}

/* The phase list's handlers (phases.h): each sends its command to the roles and waits. */
static int on_train(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    return phase_train(ud, ph->from, ph->to, err, errlen);
}

static int on_eval(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    return phase_eval(ud, ph->to, err, errlen);
}

static int on_ckpt(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    return phase_checkpoint(ud, ph->to, err, errlen);
}

static int on_plan(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct coord *c = ud;
    return phase_plan(c, ph->to, &c->plans[ph->arg], err, errlen);
}

static int on_stop(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    (void)ph;
    return phase_stop(ud, err, errlen);
}

static int on_prune(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    return phase_prune(ud, ph->to, err, errlen);
}

static void coord_free(struct coord *c)
{
    if (c->tty) {
        ldn_log_set_sink(NULL, NULL);
        fputs("\n", stdout);
    }
    if (c->metrics)
        fclose(c->metrics);
    ldn_liveness_destroy(&c->live);
    free(c->paused);
    free(c->asked);
    free(c->epoch);
    free(c->regroup_due);
    free(c->group_lost);
    free(c->group_lost_eval);
    free(c->last_step);
    free(c->train_acc);
    free(c->eval_acc);
    free(c->residual_sum);
    free(c->last_metrics);
    ldn_dwa_deinit(&c->dwa);
    free(c->dwa_frame);
    free(c->w_report);
    free(c->lv_report);
}

/* train.task_weighting: the coordinator's part (dwa: its loss history, from the checkpoint of a
 * resumed run). */
static int start_weighting(struct coord *c, char *err, size_t errlen)
{
    const struct ldn_config *cfg = c->cfg;
    c->method = cfg->weighting.method;
    c->w_report = malloc(sizeof(double) * (size_t)cfg->n_tasks);
    c->lv_report = calloc((size_t)cfg->n_tasks, sizeof(double));
    if (!c->w_report || !c->lv_report)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; t < cfg->n_tasks; t++)
        c->w_report[t] = cfg->tasks[t].weight;
    if (c->method != LDN_WEIGHT_STATIC)
        LDN_INFO("train.task_weighting: %s%s", ldn_weighting_name(c->method),
                 c->method == LDN_WEIGHT_DWA
                     ? " (the coordinator's weights go with every train command; 1 for the first "
                       "two epochs)"
                     : " (loss L e^-s + s, s learned per task on its group's workers)");
    if (c->method != LDN_WEIGHT_DWA)
        return 0;
    if (ldn_dwa_init(&c->dwa, cfg->n_tasks, cfg->weighting.dwa_temperature) != 0 ||
        !(c->dwa_frame = malloc(sizeof(float) * (size_t)cfg->n_tasks)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if (!c->job->resume_path)
        return 0;
    struct ldn_ckpt ck;
    int rc = ldn_ckpt_open(c->job->resume_path, &ck, err, errlen);
    if (rc)
        return rc;
    rc = ldn_dwa_ckpt_read(&c->dwa, &ck, err, errlen);
    if (rc == 1) {
        LDN_WARN("checkpoint %s has no DWA loss history: weights 1 for the next two epochs",
                 ck.path);
        rc = 0;
    }
    ldn_ckpt_close(&ck);
    for (int t = 0; t < cfg->n_tasks && rc == 0; t++)
        c->w_report[t] = cfg->tasks[t].weight * c->dwa.w[t];
    return rc;
}

int ldn_coord_run(const struct ldn_job *job, void *router, void **servers, char *err, size_t errlen)
{
    const struct ldn_config *cfg = job->cfg;
    const struct ldn_plan *p = job->plan;
    struct coord c = {.job = job,
                      .cfg = cfg,
                      .router = router,
                      .servers = servers,
                      .W = p->n_workers,
                      .tty = stdout_is_terminal()};
    for (int g = 0; g < p->n_groups; g++)
        c.H += p->groups[g].n_tasks * p->groups[g].n_ranks;
    c.live_s = ldn_liveness_timeout(cfg);
    c.live = ldn_liveness_new(job->world, c.live_s, ldn_clock_now());
    c.paused = calloc((size_t)cfg->n_tasks, 1);
    c.asked = calloc((size_t)job->world, 1);
    c.epoch = calloc((size_t)p->n_groups, sizeof *c.epoch);
    c.regroup_due = calloc((size_t)p->n_groups, 1);
    c.group_lost = calloc((size_t)p->n_groups, sizeof *c.group_lost);
    c.group_lost_eval = calloc((size_t)p->n_groups, sizeof *c.group_lost_eval);
    c.last_step = calloc((size_t)job->world, sizeof *c.last_step);
    c.train_acc = calloc((size_t)cfg->n_tasks, sizeof *c.train_acc);
    c.eval_acc = calloc((size_t)cfg->n_tasks, sizeof *c.eval_acc);
    c.residual_sum = calloc((size_t)job->world, sizeof *c.residual_sum);
    int rc = 0;
    if (!c.live || !c.paused || !c.asked || !c.epoch || !c.regroup_due || !c.group_lost ||
        !c.group_lost_eval || !c.last_step || !c.train_acc || !c.eval_acc || !c.residual_sum)
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int i = 0; i < RING; i++)
        c.ring[i].step = -1;
    if (c.tty)
        ldn_log_set_sink(log_over_bar, NULL);
    if (rc == 0 && !(c.metrics = ldn_rundir_start(cfg, job->resume_path != NULL, err, errlen)))
        rc = LDN_ERR_IO;
    if (job->round_index >= 0) {
        c.round = &job->run_cfg->rounds[job->round_index];
        c.distill = c.round->has_teacher;
    }
    if (rc == 0 && c.distill)
        rc = report_teacher(&c, err, errlen);
    if (rc == 0)
        rc = start_weighting(&c, err, errlen);
    if ((c.pruned = ldn_prune_on(&cfg->prune)) && cfg->compress.codec == LDN_COMPRESS_RANDOMK)
        LDN_WARN("prune with compress.codec randomk: random-k's keys come from the seed alone, "
                 "not from the mask, so about the pruned share of its k goes to masked keys "
                 "(dropped by the servers); topk or threshold spend k on live keys only");
    if (c.pruned && job->resume_path) {
        /* the masks of the last update before the resumed step (as the schedule set them) */
        struct ldn_prune_units u;
        ldn_prune_units_init(&u, &cfg->prune, job->trunk);
        for (int64_t t = job->resume_step - 1; t >= 0; t--)
            if (ldn_prune_is_step(&cfg->prune, job->total_steps, t)) {
                c.sparsity = ldn_prune_target_at(&u, &cfg->prune, job->total_steps, t);
                break;
            }
    }
    c.t_start = ldn_clock_now();
    if (rc == 0)
        rc = wait_hello(&c, err, errlen);
    if (rc == 0 && c.round)
        LDN_INFO("round %s: every worker ready %.2f s after the round's set-up began (plan, key "
                 "ranges%s)",
                 c.round->name, ldn_clock_now() - job->round_t0,
                 c.distill ? ", members loaded, soft targets made" : "");
    if (rc == 0)
        LDN_INFO("all %d workers checked in; %lld steps per epoch, %d epochs, %s", c.W,
                 (long long)job->steps_per_epoch, cfg->epochs,
                 ldn_consistency_name(cfg->consistency));
    struct ldn_phases phases = {0};
    if (rc == 0)
        rc = ldn_phases_build(cfg, job->steps_per_epoch, job->total_steps,
                              job->resume_path ? job->resume_step : 0, &phases, err, errlen);
    static const struct ldn_phase_ops ops = {.fn = {[LDN_PHASE_TRAIN] = on_train,
                                                    [LDN_PHASE_EVAL] = on_eval,
                                                    [LDN_PHASE_CKPT] = on_ckpt,
                                                    [LDN_PHASE_PLAN] = on_plan,
                                                    [LDN_PHASE_PRUNE] = on_prune,
                                                    [LDN_PHASE_STOP] = on_stop}};
    if (rc == 0)
        rc = test_replan(&c, &phases, err, errlen);
    if (rc == 0)
        rc = ldn_phases_run(&phases, &ops, &c, cfg->ckpt.every_minutes, err, errlen);
    ldn_phases_deinit(&phases);
    if (rc == 0 && c.n_lost > 0) {
        char lost[256], paused[512] = "";
        for (int t = 0, off = 0; t < cfg->n_tasks && off < (int)sizeof paused - 80; t++)
            if (c.paused[t])
                off += snprintf(paused + off, sizeof paused - (size_t)off, "%s%s", off ? ", " : "",
                                cfg->tasks[t].name);
        LDN_WARN("finished without worker rank(s) %s (lost); tasks paused: %s",
                 ldn_liveness_lost_list(lost, sizeof lost), paused[0] ? paused : "none");
    }
    if (rc == 0)
        LDN_INFO("done: %lld steps, %.0f samples/s, %.1f s in all, metrics in %s/metrics.jsonl",
                 (long long)job->total_steps, c.train_time > 0 ? c.samples / c.train_time : 0,
                 ldn_clock_now() - c.t_start, cfg->run_dir);
    coord_free(&c);
    return rc;
}
