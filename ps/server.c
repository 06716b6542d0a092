/* Parameter server: key range, optimizer, consistency model. */
#include "server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "log.h"
#include "optim.h"
#include "status.h"

struct waiting_pull {
    int active;
    int64_t clock;
    char ident[LDN_NET_IDENT_MAX];
    size_t ident_len;
};

struct ldn_server {
    struct ldn_server_opts o;
    const struct ldn_config *cfg;
    int64_t n;     /* keys held */
    float *params; /* [n] */
    float *acc;    /* [n] aggregated gradient */
    struct ldn_optim *opt;
    int W;
    int *ranks;     /* worker ranks, ascending */
    int64_t *clock; /* per worker: pushes received (its clock) */
    /* bsp: pushes of the open step, copied out of the (possibly unaligned) frames */
    int64_t step;    /* bsp: steps applied = the open step's index */
    float **pending; /* [W][n], allocated for bsp only */
    int *has_pending;
    int n_pending;
    double pending_since;
    struct waiting_pull *waiting;
    struct ldn_server_stats st;
};

static int worker_index(const struct ldn_server *s, int rank)
{
    int lo = 0, hi = s->W - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (s->ranks[mid] == rank)
            return mid;
        if (s->ranks[mid] < rank)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

struct ldn_server *ldn_server_new(const struct ldn_server_opts *o, char *err, size_t errlen)
{
    struct ldn_server *s = calloc(1, sizeof *s);
    if (!s)
        goto nomem;
    s->o = *o;
    s->cfg = o->cfg;
    s->n = o->hi - o->lo;
    s->W = o->n_workers;
    s->params = malloc(sizeof(float) * (size_t)s->n);
    s->acc = malloc(sizeof(float) * (size_t)s->n);
    s->opt = ldn_optim_new(&o->cfg->optim, s->n);
    s->ranks = malloc(sizeof(int) * (size_t)s->W);
    s->clock = calloc((size_t)s->W, sizeof *s->clock);
    s->pending = calloc((size_t)s->W, sizeof *s->pending);
    s->has_pending = calloc((size_t)s->W, sizeof *s->has_pending);
    s->waiting = calloc((size_t)s->W, sizeof *s->waiting);
    if (!s->params || !s->acc || !s->opt || !s->ranks || !s->clock || !s->pending ||
        !s->has_pending || !s->waiting)
        goto nomem;
    if (o->cfg->consistency == LDN_BSP)
        for (int w = 0; w < s->W; w++)
            if (!(s->pending[w] = malloc(sizeof(float) * (size_t)s->n)))
                goto nomem;
    memcpy(s->params, o->init, sizeof(float) * (size_t)s->n);
    memcpy(s->ranks, o->worker_ranks, sizeof(int) * (size_t)s->W);
    s->o.worker_ranks = s->ranks;
    s->o.init = NULL;
    return s;
nomem:
    ldn_server_destroy(&s);
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "ps %d: out of memory for %lld keys", o->rank,
             (long long)(o->hi - o->lo));
    return NULL;
}

void ldn_server_destroy(struct ldn_server **ps)
{
    if (!ps || !*ps)
        return;
    struct ldn_server *s = *ps;
    if (s->pending)
        for (int w = 0; w < s->W; w++)
            free(s->pending[w]);
    free(s->params);
    free(s->acc);
    ldn_optim_destroy(&s->opt);
    free(s->ranks);
    free(s->clock);
    free(s->pending);
    free(s->has_pending);
    free(s->waiting);
    free(s);
    *ps = NULL;
}

void ldn_server_get_stats(const struct ldn_server *s, struct ldn_server_stats *st)
{
    *st = s->st;
}
const float *ldn_server_params(const struct ldn_server *s)
{
    return s->params;
}

static int64_t min_clock(const struct ldn_server *s)
{
    int64_t m = INT64_MAX;
    for (int w = 0; w < s->W; w++)
        if (s->clock[w] < m)
            m = s->clock[w];
    return m;
}

static double lr_for(const struct ldn_server *s, int64_t step)
{
    return ldn_lr_at(&s->cfg->lr, s->cfg->optim.lr, step, s->o.total_steps, s->o.steps_per_epoch);
}

/* May the pull of worker w at clock c be answered now? */
static int servable(const struct ldn_server *s, int w, int64_t c)
{
    switch (s->cfg->consistency) {
    case LDN_BSP: return s->step >= c;
    case LDN_SSP: return s->clock[w] >= c && min_clock(s) >= c - s->cfg->staleness;
    case LDN_ASYNC: return 1;
    }
    return 1;
}

static int send_params(struct ldn_server *s, void *sock, const char *ident, size_t ident_len, int w,
                       int64_t c)
{
    struct ldn_wire_hdr h;
    ldn_wire_hdr_init(&h, LDN_OP_PARAMS, s->o.rank);
    int64_t slowest = s->cfg->consistency == LDN_BSP ? s->step : min_clock(s);
    h.step = slowest; /* the version served: steps applied (bsp) or the slowest clock */
    h.lo = (uint64_t)s->o.lo;
    h.hi = (uint64_t)s->o.hi;
    h.codec = LDN_CODEC_DENSE_F32;
    h.nframes = 1;
    h.lens[0] = (uint64_t)s->n * sizeof(float);
    const void *frames[1] = {s->params};
    char err[LDN_ERRLEN];
    long sent = ldn_net_send(sock, ident, ident_len, &h, frames, err, sizeof err);
    if (sent < 0) {
        LDN_ERROR("%s", err);
        return (int)sent;
    }
    s->st.pulls++;
    s->st.bytes_out += sent;
    if (w >= 0 && c - slowest > s->st.max_staleness)
        s->st.max_staleness = c - slowest;
    if (s->o.clock_log && w >= 0)
        fprintf(s->o.clock_log, "%d\t%lld\t%lld\t%lld\n", s->ranks[w], (long long)c,
                (long long)min_clock(s), (long long)s->step);
    return 0;
}

static int serve_waiting(struct ldn_server *s, void *sock)
{
    for (int w = 0; w < s->W; w++) {
        struct waiting_pull *p = &s->waiting[w];
        if (p->active && servable(s, w, p->clock)) {
            p->active = 0;
            int rc = send_params(s, sock, p->ident, p->ident_len, w, p->clock);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* Apply acc (already the averaged gradient) with the learning rate of `step`. */
static void apply(struct ldn_server *s, int64_t step)
{
    ldn_optim_step(s->opt, s->params, s->acc, lr_for(s, step));
    s->st.steps_applied++;
}

/* BSP: all pushes of the open step are in: sum them in worker-rank order, average, apply. */
static void close_bsp_step(struct ldn_server *s)
{
    const float inv = 1.0f / (float)s->W;
    memcpy(s->acc, s->pending[0], sizeof(float) * (size_t)s->n);
    for (int w = 1; w < s->W; w++) {
        const float *g = s->pending[w];
        for (int64_t i = 0; i < s->n; i++)
            s->acc[i] += g[i];
    }
    if (s->W > 1)
        for (int64_t i = 0; i < s->n; i++)
            s->acc[i] *= inv;
    for (int w = 0; w < s->W; w++)
        s->has_pending[w] = 0;
    s->n_pending = 0;
    apply(s, s->step);
    s->step++;
}

static int reject(struct ldn_server *s, void *sock, struct ldn_msg *m, int status, const char *what)
{
    s->st.bad_messages++;
    char text[LDN_WIRE_MSG_MAX];
    snprintf(text, sizeof text, "ps %d rejected %s from %d (step %lld): %s", s->o.rank,
             ldn_wire_op_name(m->hdr.op), m->hdr.from, (long long)m->hdr.step, what);
    LDN_WARN("%s", text);
    ldn_net_reply_error(sock, m, s->o.rank, status, text);
    ldn_msg_close(m);
    return 0;
}

static int check_dense_range(const struct ldn_server *s, const struct ldn_msg *m, char *why,
                             size_t len)
{
    if (m->hdr.lo != (uint64_t)s->o.lo || m->hdr.hi != (uint64_t)s->o.hi) {
        snprintf(why, len, "key range [%llu, %llu) is not this server's range [%lld, %lld)",
                 (unsigned long long)m->hdr.lo, (unsigned long long)m->hdr.hi, (long long)s->o.lo,
                 (long long)s->o.hi);
        return -1;
    }
    if (m->hdr.codec != LDN_CODEC_DENSE_F32) {
        snprintf(why, len, "unknown codec %u", m->hdr.codec);
        return -1;
    }
    return 0;
}

static int handle_push(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    if (check_dense_range(s, m, why, sizeof why))
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    if (m->nframes != 1 || m->hdr.lens[0] != (uint64_t)s->n * sizeof(float)) {
        snprintf(why, sizeof why, "dense push needs 1 frame of %lld bytes",
                 (long long)s->n * (long long)sizeof(float));
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    int64_t expect = s->cfg->consistency == LDN_BSP ? s->step : s->clock[w];
    if (m->hdr.step != expect || (s->cfg->consistency == LDN_BSP && s->has_pending[w])) {
        snprintf(why, sizeof why, "push for step %lld, expected step %lld", (long long)m->hdr.step,
                 (long long)expect);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    /* Frames may sit at any byte offset in ZeroMQ's receive buffer: copy, then check. */
    const int bsp = s->cfg->consistency == LDN_BSP;
    float *g = bsp ? s->pending[w] : s->acc;
    memcpy(g, zmq_msg_data(&m->frames[0]), sizeof(float) * (size_t)s->n);
    for (int64_t i = 0; i < s->n; i++)
        if (!isfinite(g[i])) {
            snprintf(why, sizeof why, "value at key %lld is not finite", (long long)(s->o.lo + i));
            return reject(s, sock, m, LDN_ERR_FORMAT, why);
        }
    ldn_msg_close(m);
    s->st.pushes++;
    s->st.bytes_in += (int64_t)m->bytes;
    s->clock[w]++;
    if (bsp) {
        s->has_pending[w] = 1;
        if (s->n_pending++ == 0)
            s->pending_since = ldn_now();
        if (s->n_pending == s->W)
            close_bsp_step(s);
    } else {
        if (s->W > 1) {
            const float inv = 1.0f / (float)s->W;
            for (int64_t i = 0; i < s->n; i++)
                g[i] *= inv;
        }
        apply(s, s->clock[w] - 1);
    }
    return serve_waiting(s, sock);
}

static int handle_pull(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    if (check_dense_range(s, m, why, sizeof why))
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    if (m->nframes != 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, "pull carries no payload frames");
    int64_t c = m->hdr.step;
    if (c < 0 || c > s->clock[w] + (s->cfg->consistency == LDN_BSP ? 1 : 0) ||
        s->waiting[w].active) {
        snprintf(why, sizeof why, "pull at clock %lld, worker's clock is %lld%s", (long long)c,
                 (long long)s->clock[w], s->waiting[w].active ? " (a pull is already open)" : "");
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    ldn_msg_close(m);
    if (servable(s, w, c))
        return send_params(s, sock, m->ident, m->ident_len, w, c);
    struct waiting_pull *p = &s->waiting[w];
    p->active = 1;
    p->clock = c;
    memcpy(p->ident, m->ident, sizeof p->ident);
    p->ident_len = m->ident_len;
    return 0;
}

static int send_done(struct ldn_server *s, void *sock, struct ldn_msg *m, enum ldn_wire_op op)
{
    struct ldn_wire_hdr h;
    ldn_wire_hdr_init(&h, op, s->o.rank);
    h.step = s->step;
    const struct ldn_server_stats *st = &s->st;
    double v[] = {(double)st->steps_applied, (double)st->pushes,   (double)st->pulls,
                  (double)st->bad_messages,  (double)st->bytes_in, (double)st->bytes_out,
                  (double)st->max_staleness};
    h.nvals = LDN_ARRAY_LEN(v);
    memcpy(h.vals, v, sizeof v);
    return ldn_net_send(sock, m->ident, m->ident_len, &h, NULL, NULL, 0) < 0 ? LDN_ERR_IO : 0;
}

int ldn_server_handle(struct ldn_server *s, void *sock, struct ldn_msg *m)
{
    const struct ldn_wire_hdr *h = &m->hdr;
    if (h->op == LDN_OP_CONTROL) {
        if (h->from != 0)
            return reject(s, sock, m, LDN_ERR_FORMAT, "control messages come from rank 0 only");
        int kind = h->nvals ? (int)h->vals[0] : -1;
        ldn_msg_close(m);
        if (kind == LDN_CTL_STOP) {
            send_done(s, sock, m, LDN_OP_DONE);
            return 1;
        }
        if (kind == LDN_CTL_PING)
            return 0;
        return reject(s, sock, m, LDN_ERR_FORMAT, "unknown control command");
    }
    if (h->op == LDN_OP_STATS) {
        ldn_msg_close(m);
        return send_done(s, sock, m, LDN_OP_STATS);
    }
    if (h->op == LDN_OP_PULL && h->from == 0 && strcmp(m->ident, "c0") == 0) {
        /* the coordinator reads the current weights (final weights, checkpoints) */
        ldn_msg_close(m);
        return send_params(s, sock, m->ident, m->ident_len, -1, h->step);
    }
    int w = worker_index(s, h->from);
    char ident[LDN_NET_IDENT_MAX];
    snprintf(ident, sizeof ident, "w%d", h->from);
    if (w < 0 || strcmp(ident, m->ident) != 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, "sender is not a worker of this job");
    if (h->op == LDN_OP_PUSH)
        return handle_push(s, sock, m, w);
    if (h->op == LDN_OP_PULL)
        return handle_pull(s, sock, m, w);
    return reject(s, sock, m, LDN_ERR_FORMAT, "unexpected op for a server");
}

int ldn_server_run(struct ldn_server *s, void *sock, char *err, size_t errlen)
{
    const double timeout = s->cfg->timeout_s;
    double last = ldn_now();
    for (;;) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        int rc = ldn_net_recv(sock, 1, &m, 500, why, sizeof why);
        double now = ldn_now();
        if (rc == LDN_ERR_TIMEOUT) {
            if (s->n_pending > 0 && now - s->pending_since > timeout) {
                char missing[256] = "";
                size_t off = 0;
                for (int w = 0; w < s->W && off < sizeof missing - 16; w++)
                    if (!s->has_pending[w])
                        off += (size_t)snprintf(missing + off, sizeof missing - off, "%s%d",
                                                off ? ", " : "", s->ranks[w]);
                return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                                "ps %d: step %lld: waited %.0f s for pushes from worker rank(s) "
                                "%s (ps.timeout)",
                                s->o.rank, (long long)s->step, timeout, missing);
            }
            if (now - last > timeout)
                return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                                "ps %d: no message from the coordinator (rank 0) or any worker "
                                "for %.0f s (ps.timeout)",
                                s->o.rank, timeout);
            continue;
        }
        last = now;
        if (rc == LDN_ERR_FORMAT || rc == LDN_ERR_PEER) {
            s->st.bad_messages++;
            LDN_WARN("ps %d: rejected a message from '%s': %s", s->o.rank, m.ident, why);
            char text[LDN_WIRE_MSG_MAX];
            snprintf(text, sizeof text, "ps %d rejected the message: %.200s", s->o.rank, why);
            ldn_net_reply_error(sock, &m, s->o.rank, rc, text);
            continue;
        }
        if (rc < 0)
            return ldn_fail(err, errlen, rc, "ps %d: %s", s->o.rank, why);
        rc = ldn_server_handle(s, sock, &m);
        if (rc != 0)
            return rc > 0 ? LDN_OK : ldn_fail(err, errlen, rc, "ps %d: send failed", s->o.rank);
    }
}
