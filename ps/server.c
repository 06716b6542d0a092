/* Parameter server: key range, optimizer, consistency model, chunk by chunk. */
#include "server.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "clock.h"
#include "fs.h"
#include "jobckpt.h"
#include "log.h"
#include "optim.h"
#include "status.h"

struct waiting_pull {
    int active;
    int64_t clock;
    int n_sent;
    char ident[LDN_NET_IDENT_MAX];
    size_t ident_len;
};

struct ldn_server {
    struct ldn_server_opts o;
    struct ldn_wire_plan next_plan; /* the plan message that ended ldn_server_run with 1 */
    const struct ldn_config *cfg;
    int64_t n;     /* keys held: [o.lo, o.hi) */
    float *params; /* [n] */
    float *acc;    /* [n] aggregated / scaled gradient */
    struct ldn_optim *opt;
    int W;
    int *ranks;               /* worker ranks, ascending */
    int C;                    /* chunks held */
    struct ldn_chunk *chunks; /* [C], keys relative to o.lo */
    int64_t *version;         /* [C] updates applied to each chunk */
    atomic_int *inflight;     /* [C] sends of the chunk's weights ZeroMQ still reads */
    int *cnt;                 /* [C] bsp: workers whose chunk of the open step is in */
    char *got;                /* [W*C] chunk k of worker w received (open step / clock) */
    char *sent;               /* [W*C] chunk k sent for worker w's open pull */
    int *recv;                /* [W] chunks received from worker w for its current clock */
    char *pushed;             /* [W] bsp: worker w pushed (not clocked) in the open step */
    float *scale;             /* [W] 1 / size of worker w's group */
    int64_t *clock;           /* [W] complete pushes received from worker w */
    int64_t step;             /* bsp: steps completed (every chunk applied) */
    int applied_in_step;      /* bsp: chunks of the open step applied */
    float **pending;          /* bsp: [W][n] pushes of the open step */
    int n_pending;            /* bsp: chunk pushes received for the open step */
    double pending_since;
    struct waiting_pull *waiting; /* [W] */
    struct ldn_codec_desc desc;   /* the job's codec (packed pushes), when has_desc */
    int has_desc;
    struct ldn_codec_ctx *codec;
    struct ldn_server_stats st;
    int first_chunk;      /* index of chunks[0] in the job's chunk table */
    int n_chunks_total;   /* chunks of the whole job */
    int64_t ckpt_pending; /* step of a checkpoint to join once the state is complete, or -1 */
    /* compress.downlink = delta: a pull sends what changed since that worker's last pull */
    int delta;
    struct ldn_codec_desc ddesc; /* sparse, compress.downlink_quant */
    uint64_t ddesc_words[LDN_CODEC_DESC_WORDS];
    struct ldn_codec_ctx *dctx;
    float *held;    /* [W][n]: what each worker holds of the range (valid where held_ok) */
    char *held_ok;  /* [W][C] */
    uint32_t *didx; /* scratch for one chunk: changed indices, values, dequantized values */
    float *dvals, *ddeq;
    uint8_t *dout;
    size_t dcap;
    /* bsp with sparse pushes and an optimizer that leaves keys without a gradient as they are
     * (ldn_optim_sparse_ok): work per step follows the keys pushed, not the keys held */
    int sparse;
    uint32_t **touch; /* [W][n]: chunk k's pushed keys (chunk-relative) from offset chunks[k].lo */
    int64_t *ntouch;  /* [W*C] */
    uint32_t *uni;    /* [n]: the union of a chunk's pushed keys (server-relative) */
    uint8_t *mark;    /* [n]: in the union (all zero between applies) */
    uint64_t *dirty;  /* [W][words]: exact delta pulls: keys changed since w's last pull */
    int64_t words;
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

/* compress.downlink = delta: what each worker holds of the range, scratch for one chunk's
 * delta, and with exact (fp32) deltas of sparse pushes a change bitmap per worker. Returns 0 or
 * LDN_ERR_NOMEM (the caller frees what was allocated). */
static int setup_downlink(struct ldn_server *s)
{
    const struct ldn_server_opts *o = &s->o;
    const size_t W = (size_t)s->W, C = (size_t)s->C;
    s->delta = 1;
    s->ddesc = (struct ldn_codec_desc){.kind = LDN_CODEC_SPARSE,
                                       .quant = o->cfg->compress.downlink_quant,
                                       .ratio_ppm = 1000000,
                                       .chunk = (uint32_t)o->cfg->compress.chunk,
                                       .levels = (uint32_t)o->cfg->compress.levels,
                                       .seed = o->cfg->seed};
    ldn_codec_desc_pack(&s->ddesc, s->ddesc_words);
    int64_t most = 0;
    for (int k = 0; k < s->C; k++)
        if (s->chunks[k].hi - s->chunks[k].lo > most)
            most = s->chunks[k].hi - s->chunks[k].lo;
    s->dcap = ldn_codec_max_bytes(&s->ddesc, most);
    s->held = malloc(sizeof(float) * (size_t)s->n * W);
    s->held_ok = calloc(W * C, 1);
    s->didx = malloc(sizeof *s->didx * (size_t)most);
    s->dvals = malloc(sizeof(float) * (size_t)most);
    s->ddeq = malloc(sizeof(float) * (size_t)most);
    s->dout = malloc(s->dcap);
    s->dctx = ldn_codec_ctx_new(o->cfg->seed ^ 0x646f776e6c696e6bULL);
    if (!s->held || !s->held_ok || !s->didx || !s->dvals || !s->ddeq || !s->dout || !s->dctx)
        return LDN_ERR_NOMEM;
    if (s->sparse && s->ddesc.quant == LDN_QUANT_FP32) { /* exact deltas: track changes */
        s->words = (s->n + 63) / 64;
        if (!(s->dirty = calloc(W * (size_t)s->words, sizeof *s->dirty)))
            return LDN_ERR_NOMEM;
    }
    return LDN_OK;
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
    for (int k = 0; k < o->n_chunks; k++)
        s->C += o->chunks[k].lo >= o->lo && o->chunks[k].hi <= o->hi;
    if (s->C == 0) {
        ldn_fail(err, errlen, LDN_ERR_INTERNAL, "ps %d: no chunk in [%lld, %lld)", o->rank,
                 (long long)o->lo, (long long)o->hi);
        free(s);
        return NULL;
    }
    const size_t W = (size_t)s->W, C = (size_t)s->C;
    s->params = malloc(sizeof(float) * (size_t)s->n);
    s->acc = malloc(sizeof(float) * (size_t)s->n);
    struct ldn_optim_config oc = o->cfg->optim;
    if (ldn_codec_momentum_on_workers(&o->cfg->compress)) {
        oc.momentum = 0.0; /* the workers keep the momentum (DGC momentum correction) */
        oc.nesterov = false;
    }
    s->opt = ldn_optim_new(&oc, s->n);
    s->ranks = malloc(sizeof(int) * W);
    s->chunks = malloc(sizeof *s->chunks * C);
    s->version = calloc(C, sizeof *s->version);
    s->inflight = calloc(C, sizeof *s->inflight);
    s->cnt = calloc(C, sizeof *s->cnt);
    s->got = calloc(W * C, 1);
    s->sent = calloc(W * C, 1);
    s->recv = calloc(W, sizeof *s->recv);
    s->clock = calloc(W, sizeof *s->clock);
    s->pushed = calloc(W, 1);
    s->scale = malloc(sizeof(float) * W);
    s->pending = calloc(W, sizeof *s->pending);
    s->waiting = calloc(W, sizeof *s->waiting);
    if (!s->params || !s->acc || !s->opt || !s->ranks || !s->chunks || !s->version ||
        !s->inflight || !s->cnt || !s->got || !s->sent || !s->recv || !s->clock || !s->pushed ||
        !s->scale || !s->pending || !s->waiting)
        goto nomem;
    if (o->cfg->consistency == LDN_BSP)
        for (size_t w = 0; w < W; w++)
            if (!(s->pending[w] = malloc(sizeof(float) * (size_t)s->n)))
                goto nomem;
    int c = 0;
    s->first_chunk = -1;
    s->n_chunks_total = o->n_chunks;
    s->ckpt_pending = -1;
    for (int k = 0; k < o->n_chunks; k++)
        if (o->chunks[k].lo >= o->lo && o->chunks[k].hi <= o->hi) {
            if (s->first_chunk < 0)
                s->first_chunk = k;
            s->chunks[c] = o->chunks[k];
            s->chunks[c].lo -= o->lo;
            s->chunks[c].hi -= o->lo;
            c++;
        }
    for (size_t w = 0; w < W; w++)
        s->scale[w] = o->worker_group_size ? 1.0f / (float)o->worker_group_size[w] : 1.0f;
    memcpy(s->params, o->init, sizeof(float) * (size_t)s->n);
    memcpy(s->ranks, o->worker_ranks, sizeof(int) * W);
    s->o.worker_ranks = s->ranks;
    s->o.init = NULL;
    s->o.chunks = NULL;
    s->o.worker_group_size = NULL;
    /* compress.*: packed pushes are accepted with the job's descriptor of their step */
    s->has_desc = ldn_codec_desc_from_config(&o->cfg->compress, o->cfg->seed, &s->desc);
    if (s->has_desc && !(s->codec = ldn_codec_ctx_new(s->desc.seed)))
        goto nomem;
    s->sparse = o->cfg->consistency == LDN_BSP && s->has_desc && s->desc.kind != LDN_CODEC_DENSE &&
                ldn_optim_sparse_ok(s->opt) &&
                !getenv("LDN_PS_DENSE_APPLY"); /* test hook: the dense path, to compare */
    if (s->sparse) { /* pending stays zero between steps: only pushed keys are written */
        s->touch = calloc(W, sizeof *s->touch);
        s->ntouch = calloc(W * C, sizeof *s->ntouch);
        s->uni = malloc(sizeof *s->uni * (size_t)s->n);
        s->mark = calloc((size_t)s->n, 1);
        if (!s->touch || !s->ntouch || !s->uni || !s->mark)
            goto nomem;
        for (size_t w = 0; w < W; w++) {
            free(s->pending[w]);
            if (!(s->pending[w] = calloc((size_t)s->n, sizeof(float))) ||
                !(s->touch[w] = malloc(sizeof(uint32_t) * (size_t)s->n)))
                goto nomem;
        }
    }
    if (o->cfg->compress.downlink == LDN_DOWNLINK_DELTA && setup_downlink(s) != 0)
        goto nomem;
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
    /* ZeroMQ may still read params (zero-copy sends): wait, and if it does not let go in
     * time, leave params and the counters allocated rather than free memory in use. */
    int in_use = 0;
    if (s->inflight)
        for (int k = 0; k < s->C; k++)
            in_use |= ldn_net_wait_sent(&s->inflight[k], s->cfg->timeout_s) != 0;
    if (in_use)
        LDN_WARN("ps %d: ZeroMQ still holds weights at shutdown; leaving them allocated",
                 s->o.rank);
    else {
        free(s->params);
        free(s->inflight);
    }
    if (s->pending)
        for (int w = 0; w < s->W; w++)
            free(s->pending[w]);
    free(s->pending);
    free(s->acc);
    ldn_optim_destroy(&s->opt);
    free(s->ranks);
    free(s->chunks);
    free(s->version);
    free(s->cnt);
    free(s->got);
    free(s->sent);
    free(s->recv);
    free(s->clock);
    free(s->pushed);
    free(s->scale);
    free(s->waiting);
    ldn_codec_ctx_destroy(&s->codec);
    ldn_codec_ctx_destroy(&s->dctx);
    free(s->held);
    free(s->held_ok);
    free(s->didx);
    free(s->dvals);
    free(s->ddeq);
    free(s->dout);
    if (s->touch)
        for (int w = 0; w < s->W; w++)
            free(s->touch[w]);
    free(s->touch);
    free(s->ntouch);
    free(s->uni);
    free(s->mark);
    free(s->dirty);
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

/* The header of a pull answer for chunk c: one frame of `bytes`. */
static void params_header(const struct ldn_server *s, struct ldn_wire_msg *h,
                          const struct ldn_chunk *c, int64_t version, enum ldn_codec_id codec,
                          uint64_t bytes)
{
    ldn_wire_msg_init(h, LDN_OP_PARAMS, s->o.rank);
    h->params.step = version;
    h->params.lo = (uint64_t)(s->o.lo + c->lo);
    h->params.hi = (uint64_t)(s->o.lo + c->hi);
    h->params.codec = codec;
    h->nframes = 1;
    h->lens[0] = bytes;
}

/* Exact deltas with change tracking (s->dirty): bit i of worker w's map says key i changed
 * since w's last pull. The mask of chunk c's keys within bitmap word `word`. */
static uint64_t chunk_bits(const struct ldn_chunk *c, int64_t word)
{
    int64_t base = word * 64;
    uint64_t m = ~0ULL;
    if (base < c->lo)
        m &= ~0ULL << (c->lo - base);
    if (c->hi - base < 64)
        m &= ~(~0ULL << (c->hi - base));
    return m;
}

/* The keys of chunk c marked for worker w whose weights differ from what w holds, into
 * didx/dvals in ascending order; their marks are cleared. */
static int64_t marked_changes(struct ldn_server *s, int w, const struct ldn_chunk *c,
                              const float *p, const float *held)
{
    uint64_t *bits = s->dirty + (size_t)w * (size_t)s->words;
    int64_t m = 0;
    for (int64_t wd = c->lo / 64; wd * 64 < c->hi; wd++) {
        uint64_t mine = bits[wd] & chunk_bits(c, wd);
        bits[wd] &= ~mine;
        while (mine) {
            int64_t i = wd * 64 + __builtin_ctzll(mine) - c->lo; /* chunk-relative */
            mine &= mine - 1;
            if (memcmp(&p[i], &held[i], sizeof(float)) != 0) {
                s->didx[m] = (uint32_t)i;
                s->dvals[m++] = p[i];
            }
        }
    }
    return m;
}

/* Worker w now holds all of chunk c: no key of it is pending for w. */
static void clear_marks(struct ldn_server *s, int w, const struct ldn_chunk *c)
{
    uint64_t *bits = s->dirty + (size_t)w * (size_t)s->words;
    for (int64_t wd = c->lo / 64; wd * 64 < c->hi; wd++)
        bits[wd] &= ~chunk_bits(c, wd);
}

/* Keys (server-relative) just changed: pending for every worker's next pull. */
static void mark_changed(struct ldn_server *s, const uint32_t *keys, int64_t m)
{
    for (int w = 0; w < s->W; w++) {
        uint64_t *bits = s->dirty + (size_t)w * (size_t)s->words;
        for (int64_t j = 0; j < m; j++)
            bits[keys[j] / 64] |= 1ULL << (keys[j] % 64);
    }
}

/* compress.downlink = delta: chunk k for worker w as what changed since w's last pull (fp32:
 * the new values of the changed keys, which the worker stores; fp16/int8: quantized
 * differences, which it adds, and what rounding lost is in the next difference). Returns 1
 * when sent, 0 when dense is smaller (or w holds nothing yet), negative on a send failure. */
static int send_delta(struct ldn_server *s, void *sock, const char *ident, size_t ident_len, int k,
                      int64_t version, int w)
{
    const struct ldn_chunk *c = &s->chunks[k];
    const int64_t n = c->hi - c->lo;
    char *ok = &s->held_ok[(size_t)w * (size_t)s->C + (size_t)k];
    float *held = s->held + (size_t)w * (size_t)s->n + c->lo;
    const float *p = s->params + c->lo;
    if (!*ok)
        return 0;
    const int exact = s->ddesc.quant == LDN_QUANT_FP32;
    int64_t m = 0;
    if (s->dirty) /* only the keys changed since this worker's last pull can differ */
        m = marked_changes(s, w, c, p, held);
    else
        for (int64_t i = 0; i < n; i++) {
            if (memcmp(&p[i], &held[i], sizeof(float)) == 0) /* bitwise: -0.0 and 0.0 differ */
                continue;
            s->didx[m] = (uint32_t)i;
            s->dvals[m++] = exact ? p[i] : p[i] - held[i];
        }
    size_t len = 0;
    char err[LDN_ERRLEN];
    if (ldn_codec_encode(&s->ddesc, n, s->didx, m, s->dvals, NULL, s->dout, s->dcap, &len, s->ddeq,
                         err, sizeof err) != 0 ||
        len >= (size_t)n * sizeof(float))
        return 0; /* dense is smaller (or a delta does not code: send the weights) */
    struct ldn_wire_msg h;
    params_header(s, &h, c, version, LDN_CODEC_PACKED, len);
    h.params.ncdesc = LDN_CODEC_DESC_WORDS;
    memcpy(h.params.cdesc, s->ddesc_words, sizeof h.params.cdesc);
    const void *frames[1] = {s->dout};
    long sent = ldn_net_send(sock, ident, ident_len, &h, frames, err, sizeof err);
    if (sent < 0) {
        LDN_ERROR("%s", err);
        return (int)sent;
    }
    s->st.bytes_out += sent;
    for (int64_t j = 0; j < m; j++) /* what the worker has now */
        held[s->didx[j]] = exact ? s->dvals[j] : held[s->didx[j]] + s->ddeq[j];
    return 1;
}

/* Send chunk k (current weights) to ident; version = what the header reports; w is the
 * worker index (-1: the coordinator). */
static int send_chunk(struct ldn_server *s, void *sock, const char *ident, size_t ident_len, int k,
                      int64_t version, int w)
{
    if (s->delta && w >= 0) {
        int rc = send_delta(s, sock, ident, ident_len, k, version, w);
        if (rc != 0)
            return rc < 0 ? rc : 0;
    }
    const struct ldn_chunk *c = &s->chunks[k];
    struct ldn_wire_msg h;
    params_header(s, &h, c, version, LDN_CODEC_DENSE_F32,
                  (uint64_t)(c->hi - c->lo) * sizeof(float));
    const void *frames[1] = {s->params + c->lo};
    char err[LDN_ERRLEN];
    /* No copy: the chunk is not updated again before ZeroMQ is done with it (before_update). */
    long sent =
        ldn_net_send_zc(sock, ident, ident_len, &h, frames, &s->inflight[k], err, sizeof err);
    if (sent < 0) {
        LDN_ERROR("%s", err);
        return (int)sent;
    }
    s->st.bytes_out += sent;
    if (s->delta && w >= 0) {
        memcpy(s->held + (size_t)w * (size_t)s->n + c->lo, s->params + c->lo,
               sizeof(float) * (size_t)(c->hi - c->lo));
        s->held_ok[(size_t)w * (size_t)s->C + (size_t)k] = 1;
        if (s->dirty)
            clear_marks(s, w, c);
    }
    return 0;
}

/* A pull finished: count it and record it in the clock log. */
static void pull_served(struct ldn_server *s, int w, int64_t c)
{
    int64_t slowest = min_clock(s);
    s->st.pulls++;
    if (s->cfg->consistency != LDN_BSP && c - slowest > s->st.max_staleness)
        s->st.max_staleness = c - slowest;
    if (s->o.clock_log)
        fprintf(s->o.clock_log, "%d\t%lld\t%lld\t%lld\n", s->ranks[w], (long long)c,
                (long long)slowest, (long long)s->step);
}

/* Answer what the open pulls may now have: bsp chunk by chunk as each reaches the clock
 * asked; ssp/async all chunks once the worker's own pushes are in and (ssp) the slowest
 * worker is within the staleness bound. */
static int serve_waiting(struct ldn_server *s, void *sock)
{
    for (int w = 0; w < s->W; w++) {
        struct waiting_pull *p = &s->waiting[w];
        if (!p->active)
            continue;
        int bsp = s->cfg->consistency == LDN_BSP;
        if (!bsp && (s->clock[w] < p->clock || (s->cfg->consistency == LDN_SSP &&
                                                min_clock(s) < p->clock - s->cfg->staleness)))
            continue;
        char *sent = s->sent + (size_t)w * (size_t)s->C;
        for (int k = 0; k < s->C; k++) {
            if (sent[k] || (bsp && s->version[k] < p->clock))
                continue;
            int rc = send_chunk(s, sock, p->ident, p->ident_len, k,
                                bsp ? s->version[k] : min_clock(s), w);
            if (rc < 0)
                return rc;
            sent[k] = 1;
            p->n_sent++;
        }
        if (p->n_sent == s->C) {
            p->active = 0;
            pull_served(s, w, p->clock);
        }
    }
    return 0;
}

/* Chunk k's weights are about to change: wait for ZeroMQ to finish sending them. Under bsp
 * every answer was received before the next pushes could come, so this does not wait. */
static int before_update(struct ldn_server *s, int k)
{
    if (ldn_net_wait_sent(&s->inflight[k], s->cfg->timeout_s) == 0)
        return 0;
    LDN_ERROR("ps %d: ZeroMQ did not finish sending chunk [%lld, %lld) within %.0f s", s->o.rank,
              (long long)(s->o.lo + s->chunks[k].lo), (long long)(s->o.lo + s->chunks[k].hi),
              s->cfg->timeout_s);
    return LDN_ERR_TIMEOUT;
}

/* bsp: chunk k of the open step is applied; after the last chunk the step is complete. */
static int finish_bsp_chunk(struct ldn_server *s, int k)
{
    s->version[k]++;
    s->cnt[k] = 0;
    if (++s->applied_in_step == s->C) {
        s->applied_in_step = 0;
        s->n_pending = 0;
        s->step++;
        s->st.steps_applied++;
        memset(s->got, 0, (size_t)s->W * (size_t)s->C);
        memset(s->pushed, 0, (size_t)s->W);
    }
    return 0;
}

/* apply_bsp_chunk for sparse pushes (s->sparse): the same sums and update, over the union
 * of the keys pushed; pending is left zero again. */
static void apply_sparse(struct ldn_server *s, const struct ldn_chunk *c, int k, double lr)
{
    int64_t m = 0;
    for (int w = 0; w < s->W; w++) {
        if (!s->pushed[w])
            continue;
        const float *g = s->pending[w], f = s->scale[w];
        const uint32_t *t = s->touch[w] + c->lo;
        const int64_t nt = s->ntouch[(size_t)w * (size_t)s->C + (size_t)k];
        for (int64_t j = 0; j < nt; j++) {
            const uint32_t i = (uint32_t)c->lo + t[j];
            if (!s->mark[i]) {
                s->mark[i] = 1;
                s->uni[m++] = i;
                s->acc[i] = f * g[i];
            } else {
                s->acc[i] += f * g[i];
            }
        }
    }
    ldn_optim_update_keys(s->opt, s->params, s->acc, s->uni, m, lr);
    for (int w = 0; w < s->W; w++) {
        if (!s->pushed[w])
            continue;
        float *g = s->pending[w];
        const uint32_t *t = s->touch[w] + c->lo;
        const int64_t nt = s->ntouch[(size_t)w * (size_t)s->C + (size_t)k];
        for (int64_t j = 0; j < nt; j++)
            g[c->lo + t[j]] = 0.0f;
    }
    for (int64_t j = 0; j < m; j++)
        s->mark[s->uni[j]] = 0;
    if (s->dirty)
        mark_changed(s, s->uni, m);
}

/* bsp: every worker's chunk k of the open step is in: sum in worker-rank order, average,
 * apply; when it was the last chunk of the step, the step is complete. */
static int apply_bsp_chunk(struct ldn_server *s, int k)
{
    const struct ldn_chunk *c = &s->chunks[k];
    if (s->sparse) {
        int rc = before_update(s, k);
        if (rc)
            return rc;
        apply_sparse(s, c, k, lr_for(s, s->step));
        return finish_bsp_chunk(s, k);
    }
    /* sum over groups of each group's mean, adding workers in rank order (reproducible) */
    int first = 1;
    for (int w = 0; w < s->W; w++) {
        if (!s->pushed[w])
            continue;
        const float *g = s->pending[w], f = s->scale[w];
        if (first && f == 1.0f)
            memcpy(s->acc + c->lo, g + c->lo, sizeof(float) * (size_t)(c->hi - c->lo));
        else if (first)
            for (int64_t i = c->lo; i < c->hi; i++)
                s->acc[i] = f * g[i];
        else
            for (int64_t i = c->lo; i < c->hi; i++)
                s->acc[i] += f * g[i];
        first = 0;
    }
    const float *grad = s->acc;
    int rc = before_update(s, k);
    if (rc)
        return rc;
    if (!first) /* a step where every group sat out changes nothing */
        ldn_optim_update(s->opt, s->params, grad, c->lo, c->hi, s->version[k] + 1,
                         lr_for(s, s->step));
    return finish_bsp_chunk(s, k);
}

/* Index of the first NaN or infinity in x[0..n), or -1. The fast pass relies on x * 0 being
 * NaN exactly for non-finite x, which vectorises (no early exit). */
static int64_t first_non_finite(const float *x, int64_t n)
{
    float probe = 0.0f;
    for (int64_t i = 0; i < n; i++)
        probe += x[i] * 0.0f;
    if (probe == 0.0f)
        return -1;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

static int reject(struct ldn_server *s, void *sock, struct ldn_msg *m, int status, const char *what)
{
    s->st.bad_messages++;
    char text[LDN_WIRE_MSG_MAX];
    int64_t step;
    char at[40] = "";
    if (ldn_wire_msg_step(&m->hdr, &step))
        snprintf(at, sizeof at, " (step %lld)", (long long)step);
    snprintf(text, sizeof text, "ps %d rejected %s from %d%s: %s", s->o.rank,
             ldn_wire_op_name(m->hdr.op), m->hdr.from, at, what);
    LDN_WARN("%s", text);
    ldn_net_reply_error(sock, m, s->o.rank, status, text);
    ldn_msg_close(m);
    return 0;
}

/* The chunk a push addresses, or -1 with why filled. */
static int push_chunk(const struct ldn_server *s, const struct ldn_msg *m, char *why, size_t len)
{
    const struct ldn_wire_push *h = &m->hdr.push;
    if (h->codec == LDN_CODEC_PACKED) {
        uint64_t want[LDN_CODEC_DESC_WORDS];
        if (s->has_desc) { /* the job's codec as of this step (DGC warm-up changes the ratio) */
            struct ldn_codec_desc d;
            ldn_codec_desc_at(&s->cfg->compress, s->cfg->seed, h->step, s->o.steps_per_epoch, &d);
            ldn_codec_desc_pack(&d, want);
        }
        if (!s->has_desc || h->ncdesc != LDN_CODEC_DESC_WORDS ||
            memcmp(h->cdesc, want, sizeof want) != 0) {
            snprintf(why, len, "codec descriptor differs from this job's (compress.*)");
            return -1;
        }
    } else if (h->codec != LDN_CODEC_DENSE_F32) {
        snprintf(why, len, "unknown codec %u", h->codec);
        return -1;
    }
    int k = -1;
    if (h->lo >= (uint64_t)s->o.lo && h->lo < (uint64_t)s->o.hi)
        k = ldn_keyspace_find_chunk(s->chunks, s->C, (int64_t)h->lo - s->o.lo);
    if (k < 0 || h->hi != (uint64_t)(s->o.lo + s->chunks[k].hi)) {
        snprintf(why, len,
                 "key range [%llu, %llu) is not a chunk of this server's range [%lld, %lld)",
                 (unsigned long long)h->lo, (unsigned long long)h->hi, (long long)s->o.lo,
                 (long long)s->o.hi);
        return -1;
    }
    uint64_t bytes = (uint64_t)(s->chunks[k].hi - s->chunks[k].lo) * sizeof(float);
    if (h->codec == LDN_CODEC_PACKED && m->nframes == 1)
        return k; /* its length is checked by the decoder */
    if (m->nframes != 1 || m->hdr.lens[0] != bytes) {
        snprintf(why, len, "dense push of [%llu, %llu) needs 1 frame of %llu bytes",
                 (unsigned long long)h->lo, (unsigned long long)h->hi, (unsigned long long)bytes);
        return -1;
    }
    return k;
}

/* "value at key K is not finite" for chunk c's element i into why; returns -1. */
static int not_finite_at(const struct ldn_server *s, const struct ldn_chunk *c, int64_t i,
                         char *why, size_t whylen)
{
    snprintf(why, whylen, "value at key %lld is not finite", (long long)(s->o.lo + c->lo + i));
    return -1;
}

/* What decoding push m of chunk c needs: its descriptor into *d (equal to the step's, checked
 * in push_chunk) and the codec step (random-k's shared seed) as the return value. */
static uint64_t push_codec(const struct ldn_server *s, const struct ldn_msg *m,
                           const struct ldn_chunk *c, struct ldn_codec_desc *d)
{
    ldn_codec_desc_unpack(m->hdr.push.cdesc, d, NULL, 0); /* equal to the step's: push_chunk */
    return ldn_wire_codec_step(m->hdr.push.step, (uint64_t)(s->o.lo + c->lo));
}

/* "payload of [lo, hi): <the codec's reason>" into why; returns -1. */
static int bad_payload(const struct ldn_server *s, const struct ldn_chunk *c, const char *cwhy,
                       char *why, size_t whylen)
{
    snprintf(why, whylen, "payload of [%lld, %lld): %.150s", (long long)(s->o.lo + c->lo),
             (long long)(s->o.lo + c->hi), cwhy);
    return -1;
}

/* Sparse bsp (s->sparse): worker w's push of chunk k added into pending[w] (zero there
 * before) and its keys listed in touch[w]; nothing is written unless all of it is valid.
 * Returns 0, or -1 with why filled. */
static int take_sparse(struct ldn_server *s, struct ldn_msg *m, int w, int k, char *why,
                       size_t whylen)
{
    const struct ldn_chunk *c = &s->chunks[k];
    const int64_t n = c->hi - c->lo;
    float *g = s->pending[w] + c->lo;
    uint32_t *t = s->touch[w] + c->lo;
    int64_t *nt = &s->ntouch[(size_t)w * (size_t)s->C + (size_t)k];
    if (m->hdr.push.codec != LDN_CODEC_PACKED) { /* a dense chunk (compress.min_elements) */
        memcpy(g, zmq_msg_data(&m->frames[0]), sizeof(float) * (size_t)n);
        int64_t bad = first_non_finite(g, n);
        if (bad >= 0) {
            memset(g, 0, sizeof(float) * (size_t)n);
            return not_finite_at(s, c, bad, why, whylen);
        }
        for (int64_t i = 0; i < n; i++)
            t[i] = (uint32_t)i;
        *nt = n;
        return 0;
    }
    struct ldn_codec_desc d;
    const uint64_t cstep = push_codec(s, m, c, &d);
    const uint32_t *idx;
    const float *vals;
    int64_t cnt = 0;
    char cwhy[LDN_ERRLEN];
    if (ldn_codec_decode(s->codec, &d, cstep, zmq_msg_data(&m->frames[0]),
                         zmq_msg_size(&m->frames[0]), n, &idx, &vals, &cnt, cwhy, sizeof cwhy))
        return bad_payload(s, c, cwhy, why, whylen);
    int64_t bad = first_non_finite(vals, cnt);
    if (bad >= 0)
        return not_finite_at(s, c, idx[bad], why, whylen);
    for (int64_t j = 0; j < cnt; j++) {
        g[idx[j]] += vals[j];
        t[j] = idx[j];
    }
    *nt = cnt;
    return 0;
}

static int handle_push(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    int k = push_chunk(s, m, why, sizeof why);
    if (k < 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    const int bsp = s->cfg->consistency == LDN_BSP;
    char *got = s->got + (size_t)w * (size_t)s->C;
    int64_t expect = bsp ? s->step : s->clock[w];
    if (m->hdr.push.step != expect || got[k]) {
        snprintf(why, sizeof why, "push for step %lld, expected step %lld%s",
                 (long long)m->hdr.push.step, (long long)expect,
                 got[k] ? " (this chunk was already pushed)" : "");
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    /* Frames may sit at any byte offset in ZeroMQ's receive buffer: copy, then check. */
    const struct ldn_chunk *c = &s->chunks[k];
    int rc;
    float *g = (bsp ? s->pending[w] : s->acc) + c->lo;
    const int64_t len = c->hi - c->lo;
    if (s->sparse) {
        if (take_sparse(s, m, w, k, why, sizeof why))
            return reject(s, sock, m, LDN_ERR_FORMAT, why);
    } else if (m->hdr.push.codec == LDN_CODEC_PACKED) { /* validated whole before g is touched */
        memset(g, 0, sizeof(float) * (size_t)len);
        char cwhy[LDN_ERRLEN];
        struct ldn_codec_desc d;
        const uint64_t cstep = push_codec(s, m, c, &d);
        rc = ldn_codec_decode_add(s->codec, &d, cstep, zmq_msg_data(&m->frames[0]),
                                  zmq_msg_size(&m->frames[0]), len, 1.0f, g, cwhy, sizeof cwhy);
        if (rc) {
            bad_payload(s, c, cwhy, why, sizeof why);
            return reject(s, sock, m, LDN_ERR_FORMAT, why);
        }
    } else
        memcpy(g, zmq_msg_data(&m->frames[0]), sizeof(float) * (size_t)len);
    int64_t bad_at = s->sparse ? -1 : first_non_finite(g, len);
    if (bad_at >= 0) {
        not_finite_at(s, c, bad_at, why, sizeof why);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    ldn_msg_close(m);
    s->st.bytes_in += (int64_t)m->bytes;
    got[k] = 1;
    s->pushed[w] = 1;
    if (++s->recv[w] == s->C) { /* the worker's whole push of this clock is in */
        s->recv[w] = 0;
        s->clock[w]++;
        s->st.pushes++;
        if (!bsp)
            memset(got, 0, (size_t)s->C);
    }
    if (bsp) {
        if (s->n_pending++ == 0)
            s->pending_since = ldn_clock_now();
        if (++s->cnt[k] == s->W && (rc = apply_bsp_chunk(s, k)))
            return rc;
    } else {
        if (s->scale[w] != 1.0f)
            for (int64_t i = 0; i < len; i++)
                g[i] *= s->scale[w];
        if ((rc = before_update(s, k)))
            return rc;
        ldn_optim_update(s->opt, s->params, s->acc, c->lo, c->hi, s->version[k] + 1,
                         lr_for(s, m->hdr.push.step));
        s->version[k]++;
        if (k == 0)
            s->st.steps_applied++;
    }
    return serve_waiting(s, sock);
}

/* A worker whose group sat step `step` out: it counts as having pushed every chunk of that
 * step, with nothing to add. */
static int handle_clock(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    const int bsp = s->cfg->consistency == LDN_BSP;
    int64_t expect = bsp ? s->step : s->clock[w];
    const struct ldn_wire_clock *h = &m->hdr.clock;
    if (h->lo != (uint64_t)s->o.lo || h->hi != (uint64_t)s->o.hi || m->nframes != 0) {
        snprintf(why, sizeof why,
                 "clock must name this server's range [%lld, %lld) and carry "
                 "no payload",
                 (long long)s->o.lo, (long long)s->o.hi);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    /* The worker's own clock must be at the step too: under bsp a worker that already pushed
     * (or clocked) this step has moved past it. */
    if (h->step != expect || s->clock[w] != h->step || s->recv[w] != 0) {
        snprintf(why, sizeof why,
                 "clock for step %lld, expected step %lld from a worker that pushed nothing "
                 "for it (worker's clock %lld)",
                 (long long)h->step, (long long)expect, (long long)s->clock[w]);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    ldn_msg_close(m);
    s->clock[w]++;
    if (bsp) {
        char *got = s->got + (size_t)w * (size_t)s->C;
        if (s->n_pending++ == 0)
            s->pending_since = ldn_clock_now();
        for (int k = 0; k < s->C; k++) {
            got[k] = 1;
            int rc;
            if (++s->cnt[k] == s->W && (rc = apply_bsp_chunk(s, k)))
                return rc;
        }
    }
    return serve_waiting(s, sock);
}

static int handle_pull(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    const struct ldn_wire_pull *h = &m->hdr.pull;
    if (h->lo != (uint64_t)s->o.lo || h->hi != (uint64_t)s->o.hi) {
        snprintf(why, sizeof why, "pull of [%llu, %llu), this server holds [%lld, %lld)",
                 (unsigned long long)h->lo, (unsigned long long)h->hi, (long long)s->o.lo,
                 (long long)s->o.hi);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    if (m->nframes != 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, "pull carries no payload frames");
    int64_t c = h->step;
    struct waiting_pull *p = &s->waiting[w];
    if (c < 0 || c > s->clock[w] + 1 || p->active) {
        snprintf(why, sizeof why, "pull at clock %lld, worker's clock is %lld%s", (long long)c,
                 (long long)s->clock[w], p->active ? " (a pull is already open)" : "");
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    ldn_msg_close(m);
    p->active = 1;
    p->clock = c;
    p->n_sent = 0;
    memset(s->sent + (size_t)w * (size_t)s->C, 0, (size_t)s->C);
    memcpy(p->ident, m->ident, sizeof p->ident);
    p->ident_len = m->ident_len;
    return serve_waiting(s, sock);
}

/* The counters, as the answer to stop and stats_request. */
static int send_counters(struct ldn_server *s, void *sock, const struct ldn_msg *m)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_SERVER_STATS, s->o.rank);
    const struct ldn_server_stats *st = &s->st;
    h.server_stats = (struct ldn_wire_server_stats){.steps_applied = st->steps_applied,
                                                    .pushes = st->pushes,
                                                    .pulls = st->pulls,
                                                    .bad_messages = st->bad_messages,
                                                    .bytes_in = st->bytes_in,
                                                    .bytes_out = st->bytes_out,
                                                    .max_staleness = st->max_staleness};
    return ldn_net_send(sock, m->ident, m->ident_len, &h, NULL, NULL, 0) < 0 ? LDN_ERR_IO : 0;
}

/* Handlers of the dispatch table: w is the sender's worker index, -1 for the coordinator.
 * Each closes m; returns 0 to go on, 1 to stop serving, negative on a send failure. */
static int on_stop(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    ldn_msg_close(m);
    send_counters(s, sock, m);
    return 1;
}

static int on_ping(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)s;
    (void)sock;
    (void)w;
    ldn_msg_close(m);
    return 0;
}

static int on_ckpt(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    if (!s->o.job)
        return reject(s, sock, m, LDN_ERR_FORMAT, "checkpoint asked of a server without a job");
    ldn_msg_close(m);
    s->ckpt_pending = m->hdr.ckpt.step; /* joined once the step is complete */
    return 0;
}

/* plan: end the event loop; the caller rebuilds the server for the new trunk. Only between
 * phases: nothing of a step may be open. */
static int on_plan(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    const struct ldn_wire_plan *p = &m->hdr.plan;
    if (p->step != s->step || s->n_pending > 0 || p->n_trunk < 1)
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "a plan switch needs a trunk and no open step (at the server's step)");
    ldn_msg_close(m);
    s->next_plan = *p;
    return 2;
}

void ldn_server_start_at(struct ldn_server *s, int64_t step)
{
    for (int k = 0; k < s->C; k++)
        s->version[k] = step;
    s->step = step;
    for (int w = 0; w < s->W; w++)
        s->clock[w] = step;
}

const struct ldn_wire_plan *ldn_server_next_plan(const struct ldn_server *s)
{
    return &s->next_plan;
}

static int on_stats_request(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    ldn_msg_close(m);
    return send_counters(s, sock, m);
}

static int on_pull(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    if (w >= 0)
        return handle_pull(s, sock, m, w);
    /* the coordinator reads the current weights (final weights, checkpoints) */
    ldn_msg_close(m);
    for (int k = 0; k < s->C; k++) {
        int rc = send_chunk(s, sock, m->ident, m->ident_len, k, s->version[k], -1);
        if (rc)
            return rc;
    }
    return 0;
}

enum { BY_COORD = 1, BY_WORKER = 2 };

/* What a server accepts: kind -> handler and who may send it. */
static const struct route {
    int (*fn)(struct ldn_server *s, void *sock, struct ldn_msg *m, int w);
    int by;
} ROUTES[LDN_OP_COUNT_] = {
    [LDN_OP_PUSH] = {handle_push, BY_WORKER},
    [LDN_OP_PULL] = {on_pull, BY_WORKER | BY_COORD},
    [LDN_OP_CLOCK] = {handle_clock, BY_WORKER},
    [LDN_OP_PING] = {on_ping, BY_COORD},
    [LDN_OP_CKPT] = {on_ckpt, BY_COORD},
    [LDN_OP_STOP] = {on_stop, BY_COORD},
    [LDN_OP_STATS_REQUEST] = {on_stats_request, BY_COORD},
    [LDN_OP_PLAN] = {on_plan, BY_COORD},
};

int ldn_server_handle(struct ldn_server *s, void *sock, struct ldn_msg *m)
{
    const struct ldn_wire_msg *h = &m->hdr;
    const struct route *r = h->op < LDN_OP_COUNT_ ? &ROUTES[h->op] : NULL;
    if (!r || !r->fn)
        return reject(s, sock, m, LDN_ERR_FORMAT, "unexpected op for a server");
    if ((r->by & BY_COORD) && h->from == 0 && strcmp(m->ident, "c0") == 0)
        return r->fn(s, sock, m, -1);
    if (!(r->by & BY_WORKER))
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "commands come from the coordinator (rank 0) only");
    int w = worker_index(s, h->from);
    char ident[LDN_NET_IDENT_MAX];
    snprintf(ident, sizeof ident, "w%d", h->from);
    if (w < 0 || strcmp(ident, m->ident) != 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, "sender is not a worker of this job");
    return r->fn(s, sock, m, w);
}

/* The workers whose chunks of the open bsp step are missing, as "3, 5". */
static void missing_workers(const struct ldn_server *s, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int w = 0; w < s->W && off < len - 16; w++) {
        const char *got = s->got + (size_t)w * (size_t)s->C;
        int all = 1;
        for (int k = 0; k < s->C; k++)
            all &= got[k] || s->version[k] > s->step;
        if (!all)
            off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? ", " : "", s->ranks[w]);
    }
}

/* The checkpoint asked for can be written once every push of the steps before it is in:
 * under bsp the step is complete, under ssp/async every worker's clock has reached it. */
static int ckpt_ready(const struct ldn_server *s)
{
    if (s->ckpt_pending < 0)
        return 0;
    if (s->cfg->consistency == LDN_BSP)
        return s->step >= s->ckpt_pending && s->n_pending == 0;
    return min_clock(s) >= s->ckpt_pending;
}

static int checkpoint(struct ldn_server *s, char *err, size_t errlen)
{
    const struct ldn_nn *trunk = s->o.job->trunk;
    const int64_t lo = s->o.lo, hi = s->o.hi;
    struct ldn_ckpt_items it = {0};
    int rc = ldn_ckpt_add_net(&it, trunk, "/trunk", s->params, lo, hi);
    if (rc == 0 && s->opt->m)
        rc = ldn_ckpt_add_net(&it, trunk, "/optimizer/m/trunk", s->opt->m, lo, hi);
    if (rc == 0 && s->opt->v)
        rc = ldn_ckpt_add_net(&it, trunk, "/optimizer/v/trunk", s->opt->v, lo, hi);
    if (rc == 0)
        rc = ldn_ckpt_add_rows(&it, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, s->n_chunks_total,
                               1, s->first_chunk, s->C, s->version);
    char path[LDN_PATH_MAX + 64];
    if (rc)
        rc = ldn_fail(err, errlen, rc, "ps %d: checkpoint items: out of memory", s->o.rank);
    else
        rc =
            ldn_jobckpt_write(s->o.job, s->ckpt_pending, NULL, &it, path, sizeof path, err, errlen);
    ldn_ckpt_items_free(&it);
    s->ckpt_pending = -1;
    return rc;
}

int ldn_server_resume(struct ldn_server *s, const struct ldn_ckpt *ck, char *err, size_t errlen)
{
    const struct ldn_nn *trunk = s->o.job->trunk;
    const int64_t lo = s->o.lo, hi = s->o.hi;
    int had = 0, same = 0;
    int rc = ldn_jobckpt_stored_state(ck, s->cfg, s->W, &had, &same, err, errlen);
    if (rc == 0)
        rc = ldn_ckpt_read_net(ck, trunk, "/trunk", s->params, lo, hi, err, errlen);
    /* Servers of a job with momentum correction kept no momentum: this job's starts at zero. */
    if (rc == 0 && s->opt->m && !(had & LDN_JOBCKPT_VELOCITY))
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/m/trunk", s->opt->m, lo, hi, err, errlen);
    if (rc == 0 && s->opt->v)
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/v/trunk", s->opt->v, lo, hi, err, errlen);
    if (rc)
        return rc;
    int nd;
    int64_t dims[2];
    /* Updates per chunk: kept when the chunk table is the same (same ps.servers and
     * ps.chunk_kb), else every chunk counts the checkpoint's steps (exact under bsp). */
    if (ldn_ckpt_shape(ck, "/optimizer/trunk_updates", &nd, dims, NULL, 0) == 0 && nd == 1 &&
        dims[0] == s->n_chunks_total && ck->n_servers == s->cfg->servers) {
        if ((rc = ldn_ckpt_read(ck, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, dims,
                                s->first_chunk, s->C, s->version, 1, err, errlen)))
            return rc;
    } else {
        for (int k = 0; k < s->C; k++)
            s->version[k] = ck->step;
    }
    s->step = ck->step;
    for (int w = 0; w < s->W; w++)
        s->clock[w] = ck->step;
    return 0;
}

int ldn_server_run(struct ldn_server *s, void *sock, char *err, size_t errlen)
{
    const double timeout = s->cfg->timeout_s;
    double last = ldn_clock_now();
    for (;;) {
        if (ckpt_ready(s)) {
            int rc = checkpoint(s, err, errlen);
            if (rc)
                return rc;
            last = ldn_clock_now();
        }
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        int rc = ldn_net_recv(sock, 1, &m, 500, why, sizeof why);
        double now = ldn_clock_now();
        if (rc == LDN_ERR_TIMEOUT) {
            if (s->n_pending > 0 && now - s->pending_since > timeout) {
                char missing[256];
                missing_workers(s, missing, sizeof missing);
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
        if (rc != 0) /* 1: stop, 2: plan */
            return rc > 0 ? rc - 1 : ldn_fail(err, errlen, rc, "ps %d: send failed", s->o.rank);
    }
}
