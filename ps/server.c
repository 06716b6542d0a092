/* Parameter server: message handling over its store, consistency rule and delta downlink. */
#include "server.h"

#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "clock.h"
#include "consistency.h"
#include "delta.h"
#include "fs.h"
#include "jobckpt.h"
#include "liveness.h"
#include "log.h"
#include "mtl_weight.h"
#include "prune.h"
#include "status.h"
#include "store.h"
#include "watch.h"

struct waiting_pull {
    int active;
    int64_t clock;
    int n_sent;
    char ident[LDN_NET_IDENT_MAX];
    size_t ident_len;
};

struct ldn_server;
/* How a push's payload is taken (chosen at set-up): worker w's chunk k into the step's
 * gradient, nothing written unless all of it is valid. Returns 0, or -1 with why filled. */
typedef int take_fn(struct ldn_server *s, struct ldn_msg *m, int w, int k, char *why,
                    size_t whylen);
/* bsp: sum every group's chunk k of the open step and update the store (chosen at set-up). */
typedef int apply_fn(struct ldn_server *s, int k);

struct ldn_server {
    struct ldn_server_opts o;
    struct ldn_wire_plan next_plan; /* the plan message that ended ldn_server_run with 1 */
    const struct ldn_config *cfg;
    struct ldn_store *store;      /* weights, optimizer, versions, mask */
    struct ldn_cons *cons;        /* which pushes a step waits for */
    struct ldn_delta *delta;      /* compress.downlink = delta, else NULL */
    int64_t n;                    /* keys held: [o.lo, o.hi) */
    int W, C;                     /* workers, chunks held */
    int *ranks;                   /* worker ranks, ascending */
    float *scale;                 /* [W] 1 / size of worker w's group */
    float *acc;                   /* [n] summed gradient (bsp) or the push being applied */
    float **pending;              /* bsp: [W][n] pushes of the open step */
    char *sent;                   /* [W*C] chunk k sent for worker w's open pull */
    struct waiting_pull *waiting; /* [W] */
    struct ldn_codec_desc desc;   /* the job's codec (packed pushes), when has_desc */
    int has_desc;
    struct ldn_codec_ctx *codec;
    take_fn *take;
    apply_fn *apply;
    /* bsp with sparse pushes and an optimizer that leaves keys without a gradient as they are
     * (ldn_optim_sparse_ok): work per step follows the keys pushed, not the keys held */
    uint32_t **touch; /* [W][n]: chunk k's pushed keys (chunk-relative) from offset chunks[k].lo */
    int64_t *ntouch;  /* [W*C] */
    uint32_t *uni;    /* [n]: the union of a chunk's pushed keys (server-relative) */
    uint8_t *mark;    /* [n]: in the union (all zero between applies) */
    struct ldn_server_stats stats;
    int64_t ckpt_pending; /* step of a checkpoint to join once the state is complete, or -1 */
    /* ps.affinity (bsp): the groups' gradients' dot products, per layer and window */
    struct ldn_affinity *aff;
    int G;
    int *group;          /* [W] task group of worker w */
    const float **gptr;  /* [G] group g's gradient of the chunk being applied, or NULL */
    float *gbuf;         /* [G][largest chunk]: sums of groups of several workers */
    int64_t gbuf_len;    /* largest chunk */
    int *gn;             /* [G] workers of g in the step */
    char *present;       /* [G] g trained in the open step */
    int64_t aff_pending; /* step of an affinity request to answer once settled, or -1 */
    /* ps.task_gradients: pcgrad (bsp): each group's mean gradient of the chunk being applied,
     * its projection, PCGrad's scratch */
    float *pc_g, *pc_p;
    const float **pc_gp;
    float **pc_pp;
    int *pc_perm;
    double *pc_norm2;
    char aff_ident[LDN_NET_IDENT_MAX];
    size_t aff_ident_len;
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

static double lr_for(const struct ldn_server *s, int64_t step)
{
    return ldn_lr_at(&s->cfg->lr, s->cfg->optim.lr, step, s->o.total_steps, s->o.steps_per_epoch);
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

/* Pruning: the entries of masked keys a push of chunk c carried (sparse: the keys it named,
 * idx relative to the chunk; dense, idx NULL: its non-zero values), counted in the store's
 * masked_pushed (the update drops them; a top-k push never carries one). */
static void count_masked(struct ldn_server *s, const struct ldn_chunk *c, const uint32_t *idx,
                         const float *vals, int64_t cnt)
{
    const uint8_t *keep = s->store->mask;
    if (!keep)
        return;
    keep += c->lo;
    int64_t n = 0;
    for (int64_t j = 0; j < cnt; j++)
        n += idx ? !keep[idx[j]] : !keep[j] && vals[j] != 0.0f;
    s->store->masked_pushed += n;
}

/* take_fn for dense accumulation: the chunk (packed or plain fp32) written whole into
 * pending[w] (bsp) or acc (ssp/async). Frames may sit at any byte offset in ZeroMQ's receive
 * buffer: copy, then check. */
static int take_dense(struct ldn_server *s, struct ldn_msg *m, int w, int k, char *why,
                      size_t whylen)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    const int64_t len = c->hi - c->lo;
    float *g = (s->cfg->consistency == LDN_BSP ? s->pending[w] : s->acc) + c->lo;
    if (m->hdr.push.codec == LDN_CODEC_PACKED) { /* validated whole before g is touched */
        char cwhy[LDN_ERRLEN];
        struct ldn_codec_desc d;
        const uint64_t cstep = push_codec(s, m, c, &d);
        const uint32_t *idx;
        const float *vals;
        int64_t cnt = 0;
        if (ldn_codec_decode(s->codec, &d, cstep, zmq_msg_data(&m->frames[0]),
                             zmq_msg_size(&m->frames[0]), len, &idx, &vals, &cnt, cwhy,
                             sizeof cwhy))
            return bad_payload(s, c, cwhy, why, whylen);
        memset(g, 0, sizeof(float) * (size_t)len);
        for (int64_t j = 0; j < cnt; j++)
            g[idx ? idx[j] : j] = vals[j];
        count_masked(s, c, idx, vals, cnt);
    } else
        memcpy(g, zmq_msg_data(&m->frames[0]), sizeof(float) * (size_t)len);
    int64_t bad = first_non_finite(g, len);
    if (bad < 0 && m->hdr.push.codec != LDN_CODEC_PACKED)
        count_masked(s, c, NULL, g, len);
    return bad >= 0 ? not_finite_at(s, c, bad, why, whylen) : 0;
}

/* take_fn for sparse bsp: worker w's push of chunk k added into pending[w] (zero there
 * before) and its keys listed in touch[w]. */
static int take_sparse(struct ldn_server *s, struct ldn_msg *m, int w, int k, char *why,
                       size_t whylen)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
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
        count_masked(s, c, NULL, g, n);
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
    count_masked(s, c, idx, vals, cnt);
    return 0;
}

/* apply_fn, ps.task_gradients: pcgrad (bsp, dense aggregation): each task group's mean
 * gradient of chunk k, PCGrad among the groups that trained (Yu et al. 2020: a group's
 * gradient loses its component along another's when the two conflict, in an order drawn from
 * the seed, the step and the chunk), then their sum, then the update. Chunk by chunk: each
 * server decides on its own rows, a chunk (ps.chunk_kb of one layer's rows) at a time. */
static int apply_pcgrad(struct ldn_server *s, int k)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    const int64_t len = c->hi - c->lo;
    const float **gp = s->pc_gp;
    float **pp = s->pc_pp;
    int n = 0;
    for (int g = 0; g < s->G; g++) {
        float *mean = s->pc_g + (size_t)n * (size_t)s->gbuf_len;
        int any = 0;
        for (int w = 0; w < s->W; w++) {
            if (s->group[w] != g || !ldn_cons_in_step(s->cons, w))
                continue;
            const float *x = s->pending[w] + c->lo, f = s->scale[w];
            for (int64_t i = 0; i < len; i++)
                mean[i] = any ? mean[i] + f * x[i] : f * x[i];
            any = 1;
        }
        if (!any)
            continue;
        gp[n] = mean;
        pp[n] = s->pc_p + (size_t)n * (size_t)s->gbuf_len;
        n++;
    }
    if (n == 0) /* a step where every group sat out changes nothing */
        return ldn_store_skip(s->store, k);
    if (n == 1)
        memcpy(s->acc + c->lo, gp[0], sizeof(float) * (size_t)len);
    else {
        struct ldn_rng r;
        ldn_rng_init(&r, s->cfg->seed,
                     LDN_STREAM_PCGRAD +
                         (uint64_t)s->cons->step * (uint64_t)s->store->n_chunks_total +
                         (uint64_t)(s->store->first_chunk + k));
        s->stats.pcgrad_projections += ldn_mtl_pcgrad(gp, pp, n, len, &r, s->pc_perm, s->pc_norm2);
        s->stats.pcgrad_pairs += (int64_t)n * (n - 1);
        ldn_mtl_sum((const float *const *)pp, n, len, s->acc + c->lo);
    }
    return ldn_store_update(s->store, k, s->acc, lr_for(s, s->cons->step));
}

/* apply_fn, dense: the sum over groups of each group's mean, adding workers in rank order
 * (reproducible), then the update. */
static int apply_sum(struct ldn_server *s, int k)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    int first = 1;
    for (int w = 0; w < s->W; w++) {
        if (!ldn_cons_in_step(s->cons, w))
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
    if (first) /* a step where every group sat out changes nothing */
        return ldn_store_skip(s->store, k);
    return ldn_store_update(s->store, k, s->acc, lr_for(s, s->cons->step));
}

/* apply_fn, sparse: the same sums and update over the union of the keys pushed; pending is
 * left zero again. */
static int apply_sparse(struct ldn_server *s, int k)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    int64_t m = 0;
    for (int w = 0; w < s->W; w++) {
        if (!ldn_cons_in_step(s->cons, w))
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
    int rc = ldn_store_update_keys(s->store, k, s->acc, s->uni, m, lr_for(s, s->cons->step));
    for (int w = 0; w < s->W; w++) { /* every pushed key, a taken-out worker's included */
        if (!s->cons->pushed[w])
            continue;
        float *g = s->pending[w];
        const uint32_t *t = s->touch[w] + c->lo;
        const int64_t nt = s->ntouch[(size_t)w * (size_t)s->C + (size_t)k];
        for (int64_t j = 0; j < nt; j++)
            g[c->lo + t[j]] = 0.0f;
    }
    for (int64_t j = 0; j < m; j++)
        s->mark[s->uni[j]] = 0;
    if (s->delta)
        ldn_delta_changed(s->delta, s->uni, m);
    return rc;
}

/* ps.affinity: chunk k's group gradients (the sum of each group's pushes: one worker's push
 * is used in place) into the accumulator, before the apply clears them. */
static void affinity_add(struct ldn_server *s, int k)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    const int64_t len = c->hi - c->lo;
    memset(s->gn, 0, sizeof *s->gn * (size_t)s->G);
    for (int g = 0; g < s->G; g++)
        s->gptr[g] = NULL;
    for (int w = 0; w < s->W; w++) {
        if (!ldn_cons_in_step(s->cons, w))
            continue;
        const int g = s->group[w];
        const float *p = s->pending[w] + c->lo;
        float *b = s->gbuf + (size_t)g * (size_t)s->gbuf_len;
        if (s->gn[g] == 0)
            s->gptr[g] = p;
        else {
            if (s->gn[g] == 1) {
                memcpy(b, s->gptr[g], sizeof(float) * (size_t)len);
                s->gptr[g] = b;
            }
            for (int64_t i = 0; i < len; i++)
                b[i] += p[i];
        }
        s->gn[g]++;
    }
    for (int g = 0; g < s->G; g++)
        s->present[g] = s->gn[g] > 0;
    ldn_affinity_add(s->aff, c->layer, s->gptr, len);
}

/* bsp: chunk k of the open step is complete: apply it; the last chunk completes the step. */
static int apply_chunk(struct ldn_server *s, int k)
{
    const int64_t step = s->cons->step;
    if (s->aff)
        affinity_add(s, k);
    int rc = s->apply(s, k);
    if (rc)
        return rc;
    const int done = ldn_cons_applied(s->cons, k);
    s->stats.steps_applied += done;
    if (done && s->aff)
        ldn_affinity_step(s->aff, step, s->present);
    return 0;
}

/* ssp/async: worker w's push of chunk k (in acc), scaled by its group's size, applied now. */
static int apply_now(struct ldn_server *s, int w, int k, int64_t step)
{
    const struct ldn_chunk *c = &s->store->chunks[k];
    if (s->scale[w] != 1.0f)
        for (int64_t i = c->lo; i < c->hi; i++)
            s->acc[i] *= s->scale[w];
    int rc = ldn_store_update(s->store, k, s->acc, lr_for(s, step));
    if (rc == 0 && k == 0)
        s->stats.steps_applied++;
    return rc;
}

/* Set-up of the bsp aggregation: a pending gradient per worker, and with sparse pushes (an
 * optimizer that leaves keys without a gradient as they are) the keys each push touched.
 * Returns 0 or LDN_ERR_NOMEM (the caller frees what was allocated). */
static int setup_bsp(struct ldn_server *s)
{
    const size_t W = (size_t)s->W, n = (size_t)s->n;
    const int pcgrad = s->cfg->weighting.gradients == LDN_GRAD_PCGRAD; /* dense: per group */
    const int sparse = s->has_desc && s->desc.kind != LDN_CODEC_DENSE &&
                       ldn_optim_sparse_ok(s->store->opt) && !pcgrad &&
                       !getenv("LDN_PS_DENSE_APPLY"); /* test hook: the dense path, to compare */
    s->take = sparse ? take_sparse : take_dense;
    s->apply = sparse ? apply_sparse : pcgrad ? apply_pcgrad : apply_sum;
    if (sparse) { /* pending stays zero between steps: only pushed keys are written */
        s->touch = calloc(W, sizeof *s->touch);
        s->ntouch = calloc(W * (size_t)s->C, sizeof *s->ntouch);
        s->uni = malloc(sizeof *s->uni * n);
        s->mark = calloc(n, 1);
        if (!s->touch || !s->ntouch || !s->uni || !s->mark)
            return LDN_ERR_NOMEM;
    }
    for (size_t w = 0; w < W; w++) {
        s->pending[w] = sparse ? calloc(n, sizeof(float)) : malloc(sizeof(float) * n);
        if (!s->pending[w] || (sparse && !(s->touch[w] = malloc(sizeof(uint32_t) * n))))
            return LDN_ERR_NOMEM;
    }
    return 0;
}

/* Set-up of ps.affinity: the accumulator and the group scratch. Returns 0 or LDN_ERR_NOMEM
 * (the caller frees what was allocated). */
static int setup_affinity(struct ldn_server *s, const struct ldn_server_opts *o)
{
    s->G = o->n_groups;
    int L = o->n_layers;
    if (!o->worker_group || s->G < 1 || L < 1)
        return LDN_ERR_NOMEM; /* cannot happen: dist.c fills them */
    for (int k = 0; k < s->C; k++)
        if (s->store->chunks[k].hi - s->store->chunks[k].lo > s->gbuf_len)
            s->gbuf_len = s->store->chunks[k].hi - s->store->chunks[k].lo;
    s->aff = ldn_affinity_new(s->G, L, o->cfg->affinity);
    s->group = malloc(sizeof *s->group * (size_t)s->W);
    s->gptr = calloc((size_t)s->G, sizeof *s->gptr);
    s->gbuf = malloc(sizeof(float) * (size_t)s->G * (size_t)(s->gbuf_len > 0 ? s->gbuf_len : 1));
    s->gn = calloc((size_t)s->G, sizeof *s->gn);
    s->present = calloc((size_t)s->G, 1);
    if (!s->aff || !s->group || !s->gptr || !s->gbuf || !s->gn || !s->present)
        return LDN_ERR_NOMEM;
    memcpy(s->group, o->worker_group, sizeof *s->group * (size_t)s->W);
    return 0;
}

/* Set-up of ps.task_gradients: pcgrad (bsp): the groups, and per group a mean and a projected
 * gradient of the largest chunk. Returns 0 or LDN_ERR_NOMEM (the caller frees). */
static int setup_pcgrad(struct ldn_server *s, const struct ldn_server_opts *o)
{
    if (!s->group) { /* ps.affinity did not set them up */
        s->G = o->n_groups;
        if (!o->worker_group || s->G < 1 || !(s->group = malloc(sizeof *s->group * (size_t)s->W)))
            return LDN_ERR_NOMEM;
        memcpy(s->group, o->worker_group, sizeof *s->group * (size_t)s->W);
        for (int k = 0; k < s->C; k++)
            if (s->store->chunks[k].hi - s->store->chunks[k].lo > s->gbuf_len)
                s->gbuf_len = s->store->chunks[k].hi - s->store->chunks[k].lo;
    }
    const size_t G = (size_t)s->G, len = (size_t)(s->gbuf_len > 0 ? s->gbuf_len : 1);
    s->pc_g = malloc(sizeof(float) * G * len);
    s->pc_p = malloc(sizeof(float) * G * len);
    s->pc_gp = calloc(G, sizeof *s->pc_gp);
    s->pc_pp = calloc(G, sizeof *s->pc_pp);
    s->pc_perm = calloc(G, sizeof *s->pc_perm);
    s->pc_norm2 = calloc(G, sizeof *s->pc_norm2);
    return s->pc_g && s->pc_p && s->pc_gp && s->pc_pp && s->pc_perm && s->pc_norm2 ? 0
                                                                                   : LDN_ERR_NOMEM;
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
    s->ckpt_pending = -1;
    struct ldn_store_opts so = {.rank = o->rank,
                                .lo = o->lo,
                                .hi = o->hi,
                                .init = o->init,
                                .chunks = o->chunks,
                                .n_chunks = o->n_chunks,
                                .optim = o->cfg->optim,
                                .timeout_s = o->cfg->timeout_s};
    if (ldn_codec_momentum_on_workers(&o->cfg->compress)) {
        so.optim.momentum = 0.0; /* the workers keep the momentum (DGC momentum correction) */
        so.optim.nesterov = false;
    }
    if (!(s->store = ldn_store_new(&so, err, errlen))) {
        free(s);
        return NULL;
    }
    s->C = s->store->C;
    const size_t W = (size_t)s->W, C = (size_t)s->C;
    s->cons = ldn_cons_new(o->cfg->consistency, o->cfg->staleness, s->W, s->C);
    s->acc = malloc(sizeof(float) * (size_t)s->n);
    s->ranks = malloc(sizeof(int) * W);
    s->sent = calloc(W * C, 1);
    s->scale = malloc(sizeof(float) * W);
    s->pending = calloc(W, sizeof *s->pending);
    s->waiting = calloc(W, sizeof *s->waiting);
    if (!s->cons || !s->acc || !s->ranks || !s->sent || !s->scale || !s->pending || !s->waiting)
        goto nomem;
    for (size_t w = 0; w < W; w++)
        s->scale[w] = o->worker_group_size ? 1.0f / (float)o->worker_group_size[w] : 1.0f;
    memcpy(s->ranks, o->worker_ranks, sizeof(int) * W);
    s->o.worker_ranks = s->ranks;
    s->o.init = NULL;
    s->o.chunks = NULL;
    s->o.worker_group_size = NULL;
    s->o.worker_group = NULL;
    /* compress.*: packed pushes are accepted with the job's descriptor of their step */
    s->has_desc = ldn_codec_desc_from_config(&o->cfg->compress, o->cfg->seed, &s->desc);
    if (s->has_desc && !(s->codec = ldn_codec_ctx_new(s->desc.seed)))
        goto nomem;
    s->take = take_dense;
    if (o->cfg->consistency == LDN_BSP && setup_bsp(s) != 0)
        goto nomem;
    s->aff_pending = -1;
    if (o->cfg->affinity > 0 && o->n_groups > LDN_AFFINITY_MAX_GROUPS) {
        ldn_server_destroy(&s);
        ldn_fail(err, errlen, LDN_ERR_CONFIG,
                 "ps.affinity: measured for at most %d task groups, this job has %d",
                 LDN_AFFINITY_MAX_GROUPS, o->n_groups);
        return NULL;
    }
    if (o->cfg->affinity > 0 && o->cfg->consistency == LDN_BSP && setup_affinity(s, o) != 0)
        goto nomem;
    if (o->cfg->weighting.gradients == LDN_GRAD_PCGRAD && o->cfg->consistency == LDN_BSP &&
        setup_pcgrad(s, o) != 0)
        goto nomem;
    if (o->cfg->compress.downlink == LDN_DOWNLINK_DELTA &&
        !(s->delta = ldn_delta_new(o->cfg, s->store, s->W, s->take == take_sparse)))
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
    ldn_store_destroy(&s->store); /* first: it waits for ZeroMQ to let go of the weights */
    ldn_cons_destroy(&s->cons);
    ldn_delta_destroy(&s->delta);
    if (s->pending)
        for (int w = 0; w < s->W; w++)
            free(s->pending[w]);
    free(s->pending);
    if (s->touch)
        for (int w = 0; w < s->W; w++)
            free(s->touch[w]);
    free(s->touch);
    free(s->ntouch);
    free(s->uni);
    free(s->mark);
    free(s->acc);
    free(s->ranks);
    free(s->sent);
    free(s->scale);
    free(s->waiting);
    ldn_codec_ctx_destroy(&s->codec);
    ldn_affinity_destroy(&s->aff);
    free(s->group);
    free(s->gptr);
    free(s->gbuf);
    free(s->gn);
    free(s->present);
    free(s->pc_g);
    free(s->pc_p);
    free(s->pc_gp);
    free(s->pc_pp);
    free(s->pc_perm);
    free(s->pc_norm2);
    free(s);
    *ps = NULL;
}

void ldn_server_get_stats(const struct ldn_server *s, struct ldn_server_stats *st)
{
    *st = s->stats;
}
const float *ldn_server_params(const struct ldn_server *s)
{
    return s->store->params;
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

/* compress.downlink = delta: chunk k for worker w as what changed since w's last pull. Returns
 * 1 when sent, 0 when dense is smaller (or w holds nothing yet), negative on a send failure. */
static int send_delta(struct ldn_server *s, void *sock, const char *ident, size_t ident_len, int k,
                      int64_t version, int w)
{
    const void *frames[1];
    size_t len;
    if (!ldn_delta_delta(s->delta, s->store, w, k, &frames[0], &len))
        return 0;
    struct ldn_wire_msg h;
    params_header(s, &h, &s->store->chunks[k], version, LDN_CODEC_PACKED, len);
    h.params.ncdesc = LDN_CODEC_DESC_WORDS;
    memcpy(h.params.cdesc, ldn_delta_desc(s->delta), sizeof h.params.cdesc);
    char err[LDN_ERRLEN];
    long sent = ldn_net_send(sock, ident, ident_len, &h, frames, err, sizeof err);
    if (sent < 0) {
        LDN_ERROR("%s", err);
        return (int)sent;
    }
    s->stats.bytes_out += sent;
    ldn_delta_delivered(s->delta, w, k);
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
    struct ldn_store *st = s->store;
    const struct ldn_chunk *c = &st->chunks[k];
    struct ldn_wire_msg h;
    params_header(s, &h, c, version, LDN_CODEC_DENSE_F32,
                  (uint64_t)(c->hi - c->lo) * sizeof(float));
    const void *frames[1] = {st->params + c->lo};
    char err[LDN_ERRLEN];
    /* No copy: the store does not update the chunk before ZeroMQ is done with it. */
    long sent =
        ldn_net_send_zc(sock, ident, ident_len, &h, frames, &st->inflight[k], err, sizeof err);
    if (sent < 0) {
        LDN_ERROR("%s", err);
        return (int)sent;
    }
    s->stats.bytes_out += sent;
    if (s->delta && w >= 0)
        ldn_delta_dense(s->delta, st, w, k);
    return 0;
}

/* A pull finished: count it and record it in the clock log. */
static void pull_served(struct ldn_server *s, int w, int64_t c)
{
    int64_t slowest = ldn_cons_min_clock(s->cons);
    s->stats.pulls++;
    if (s->cfg->consistency != LDN_BSP && c - slowest > s->stats.max_staleness)
        s->stats.max_staleness = c - slowest;
    if (s->o.clock_log)
        fprintf(s->o.clock_log, "%d\t%lld\t%lld\t%lld\n", s->ranks[w], (long long)c,
                (long long)slowest, (long long)s->cons->step);
}

/* Answer what the open pulls may now have: bsp chunk by chunk as each reaches the clock
 * asked; ssp/async all chunks once the consistency rule allows. */
static int serve_waiting(struct ldn_server *s, void *sock)
{
    const int bsp = s->cfg->consistency == LDN_BSP;
    const int64_t *version = s->store->version;
    for (int w = 0; w < s->W; w++) {
        struct waiting_pull *p = &s->waiting[w];
        if (!p->active || (!bsp && !ldn_cons_may_serve(s->cons, w, p->clock)))
            continue;
        char *sent = s->sent + (size_t)w * (size_t)s->C;
        for (int k = 0; k < s->C; k++) {
            if (sent[k] || (bsp && version[k] < p->clock))
                continue;
            int rc = send_chunk(s, sock, p->ident, p->ident_len, k,
                                bsp ? version[k] : ldn_cons_min_clock(s->cons), w);
            if (rc < 0 && s->cfg->on_worker_loss == LDN_LOSS_CONTINUE) {
                /* gone (ZeroMQ saw its connection close): the coordinator's liveness decides
                 * whether the job goes on without it; its pull is dropped */
                LDN_WARN("ps %d: worker rank %d cannot be reached: its pull of clock %lld is "
                         "dropped (ps.on_worker_loss: continue)",
                         s->o.rank, s->ranks[w], (long long)p->clock);
                p->active = 0;
                break;
            }
            if (rc < 0)
                return rc;
            sent[k] = 1;
            p->n_sent++;
        }
        if (p->active && p->n_sent == s->C) {
            p->active = 0;
            pull_served(s, w, p->clock);
        }
    }
    return 0;
}

static int reject(struct ldn_server *s, void *sock, struct ldn_msg *m, int status, const char *what)
{
    s->stats.bad_messages++;
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
    int k = ldn_store_chunk_of(s->store, h->lo, h->hi);
    if (k < 0) {
        snprintf(why, len,
                 "key range [%llu, %llu) is not a chunk of this server's range [%lld, %lld)",
                 (unsigned long long)h->lo, (unsigned long long)h->hi, (long long)s->o.lo,
                 (long long)s->o.hi);
        return -1;
    }
    const struct ldn_chunk *c = &s->store->chunks[k];
    uint64_t bytes = (uint64_t)(c->hi - c->lo) * sizeof(float);
    if (h->codec == LDN_CODEC_PACKED && m->nframes == 1)
        return k; /* its length is checked by the decoder */
    if (m->nframes != 1 || m->hdr.lens[0] != bytes) {
        snprintf(why, len, "dense push of [%llu, %llu) needs 1 frame of %llu bytes",
                 (unsigned long long)h->lo, (unsigned long long)h->hi, (unsigned long long)bytes);
        return -1;
    }
    return k;
}

/* A push: validated (chunk, step, payload), taken into the step's gradient, counted by the
 * consistency rule, applied when it says so; then the open pulls get what they now may. */
static int handle_push(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    int k = push_chunk(s, m, why, sizeof why);
    if (k < 0)
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    const int64_t expect = ldn_cons_expected(s->cons, w), step = m->hdr.push.step;
    const int again = ldn_cons_has(s->cons, w, k);
    if (step != expect || again) {
        snprintf(why, sizeof why, "push for step %lld, expected step %lld%s", (long long)step,
                 (long long)expect, again ? " (this chunk was already pushed)" : "");
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    if (s->take(s, m, w, k, why, sizeof why))
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    ldn_msg_close(m);
    s->stats.bytes_in += (int64_t)m->bytes;
    const int flags = ldn_cons_push(s->cons, w, k, ldn_clock_now());
    if (flags & LDN_CONS_CLOCKED)
        s->stats.pushes++;
    int rc = 0;
    if (s->cfg->consistency != LDN_BSP)
        rc = apply_now(s, w, k, step);
    else if (flags & LDN_CONS_READY)
        rc = apply_chunk(s, k);
    return rc ? rc : serve_waiting(s, sock);
}

/* bsp: apply every chunk of the open step that is complete. */
static int apply_ready(struct ldn_server *s)
{
    for (int k = 0; k < s->C; k++) {
        int rc = ldn_cons_ready(s->cons, k) ? apply_chunk(s, k) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* A worker whose group sat step `step` out: it counts as having pushed every chunk of that
 * step, with nothing to add. */
static int handle_clock(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    char why[200];
    const struct ldn_wire_clock *h = &m->hdr.clock;
    if (h->lo != (uint64_t)s->o.lo || h->hi != (uint64_t)s->o.hi || m->nframes != 0) {
        snprintf(why, sizeof why,
                 "clock must name this server's range [%lld, %lld) and carry "
                 "no payload",
                 (long long)s->o.lo, (long long)s->o.hi);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    if (!ldn_cons_clock_ok(s->cons, w, h->step)) {
        snprintf(why, sizeof why,
                 "clock for step %lld, expected step %lld from a worker that pushed nothing "
                 "for it (worker's clock %lld)",
                 (long long)h->step, (long long)ldn_cons_expected(s->cons, w),
                 (long long)s->cons->clock[w]);
        return reject(s, sock, m, LDN_ERR_FORMAT, why);
    }
    ldn_msg_close(m);
    ldn_cons_clock(s->cons, w, ldn_clock_now());
    int rc = apply_ready(s);
    return rc ? rc : serve_waiting(s, sock);
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
    int64_t c = h->step, have = s->cons->clock[w];
    struct waiting_pull *p = &s->waiting[w];
    if (c < 0 || c > have + 1 || p->active) {
        snprintf(why, sizeof why, "pull at clock %lld, worker's clock is %lld%s", (long long)c,
                 (long long)have, p->active ? " (a pull is already open)" : "");
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

/* The watch of the listening socket (NULL without a job, e.g. in tests). */
static struct ldn_net_watch *watch_of(const struct ldn_server *s)
{
    return s->o.job ? s->o.job->watch : NULL;
}

/* The counters, as the answer to stop and stats_request. */
static int send_counters(struct ldn_server *s, void *sock, const struct ldn_msg *m)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_SERVER_STATS, s->o.rank);
    const struct ldn_server_stats *st = &s->stats;
    h.server_stats =
        (struct ldn_wire_server_stats){.steps_applied = st->steps_applied,
                                       .pushes = st->pushes,
                                       .pulls = st->pulls,
                                       .bad_messages = st->bad_messages,
                                       .bytes_in = st->bytes_in,
                                       .bytes_out = st->bytes_out,
                                       .max_staleness = st->max_staleness,
                                       .mask_changes = s->store->mask_changes,
                                       .masked_pushed = s->store->masked_pushed,
                                       .pcgrad_projections = st->pcgrad_projections,
                                       .pcgrad_pairs = st->pcgrad_pairs,
                                       .dropped_connections = ldn_net_watch_dropped(watch_of(s))};
    return ldn_net_send(sock, m->ident, m->ident_len, &h, NULL, NULL, 0) < 0 ? LDN_ERR_IO : 0;
}

/* Handlers of the dispatch table: w is the sender's worker index, -1 for the coordinator.
 * Each closes m; returns 0 to go on, 1 to stop serving, negative on a send failure. */
static int on_stop(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    ldn_msg_close(m);
    ldn_net_watch_quiet(watch_of(s)); /* the job's peers leave now */
    send_counters(s, sock, m);
    return 1;
}

/* ping: answered with a heartbeat (the coordinator's liveness of servers); best effort. */
static int on_ping(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    ldn_msg_close(m);
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_HEARTBEAT, s->o.rank);
    h.heartbeat.step = s->cons->step;
    char err[LDN_ERRLEN];
    ldn_net_send(sock, m->ident, m->ident_len, &h, NULL, err, sizeof err);
    return 0;
}

static int on_ckpt(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    if (!s->o.job)
        return reject(s, sock, m, LDN_ERR_FORMAT, "checkpoint asked of a server without a job");
    ldn_msg_close(m);
    char err[LDN_ERRLEN];
    if (ldn_jobckpt_check_lost(m->hdr.ckpt.step, m->hdr.ckpt.lost, s->o.rank, err, sizeof err)) {
        LDN_ERROR("ps %d: %s", s->o.rank, err);
        return LDN_ERR_INTERNAL;
    }
    s->ckpt_pending = m->hdr.ckpt.step; /* joined once the step is complete */
    return 0;
}

/* plan: end the event loop; the caller rebuilds the server for the new trunk. Only between
 * phases: nothing of a step may be open. */
static int on_plan(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    const struct ldn_wire_plan *p = &m->hdr.plan;
    if (p->step != s->cons->step || ldn_cons_step_open(s->cons, NULL) || p->n_trunk < 1)
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "a plan switch needs a trunk and no open step (at the server's step)");
    ldn_msg_close(m);
    s->next_plan = *p;
    /* every worker closes its sockets to this server and makes new ones */
    ldn_net_watch_expect(watch_of(s), s->W, ldn_clock_now());
    return 2;
}

/* prune level LDN_WIRE_PRUNE_LEVELS: mask this server's weights at the thresholds; the keys
 * newly masked are changes for the delta downlink. Fills masked[layer]. */
static int prune_apply(struct ldn_server *s, const struct ldn_prune_units *u, const uint64_t *thr,
                       int64_t *masked)
{
    struct ldn_store *st = s->store;
    uint8_t *keep = malloc((size_t)st->n);
    uint32_t *changed = s->delta ? malloc(sizeof(uint32_t) * (size_t)st->n) : NULL;
    if (!keep || (s->delta && !changed)) {
        free(keep);
        return LDN_ERR_NOMEM;
    }
    if (st->mask)
        memcpy(keep, st->mask, (size_t)st->n);
    else
        memset(keep, 1, (size_t)st->n);
    ldn_prune_mask(s->o.job->trunk, u, thr, st->params, st->lo, st->hi, keep, masked);
    int64_t m = 0;
    for (int64_t i = 0; changed && i < st->n; i++)
        if (!keep[i] && st->params[i] != 0.0f)
            changed[m++] = (uint32_t)i;
    int rc = ldn_store_set_mask(st, keep);
    if (rc == 0 && s->delta)
        ldn_delta_changed(s->delta, changed, m);
    free(keep);
    free(changed);
    return rc;
}

/* prune: one pass of a mask update (docs/wire.md): a histogram of this server's weights, or the
 * mask itself; answered with prune_hist. Only between phases, at the server's step. */
static int on_prune(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    const struct ldn_wire_prune *p = &m->hdr.prune;
    struct ldn_prune_units u;
    if (!s->o.job || !ldn_prune_on(&s->cfg->prune))
        return reject(s, sock, m, LDN_ERR_FORMAT, "prune asked of a server that does not prune");
    ldn_prune_units_init(&u, &s->cfg->prune, s->o.job->trunk);
    if (p->step != s->cons->step || ldn_cons_step_open(s->cons, NULL) || (int)p->n_thr != u.n)
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "a prune pass needs one threshold per unit and no open step (at the "
                      "server's step)");
    const int apply = p->level == LDN_WIRE_PRUNE_LEVELS;
    const size_t count = apply ? (size_t)u.n_layers : (size_t)u.n * LDN_PRUNE_BINS;
    uint64_t *out = calloc(count, sizeof *out);
    int64_t masked[LDN_MAX_LAYERS];
    int rc = out ? 0 : LDN_ERR_NOMEM;
    if (rc == 0 && apply && (rc = prune_apply(s, &u, p->thr, masked)) == 0)
        for (int l = 0; l < u.n_layers; l++)
            out[l] = (uint64_t)masked[l];
    else if (rc == 0 && !apply)
        ldn_prune_hist(s->o.job->trunk, &u, (int)p->level, p->thr, s->store->params, s->store->lo,
                       s->store->hi, out);
    if (rc) {
        free(out);
        return reject(s, sock, m, rc, "prune: out of memory, or ZeroMQ held the weights");
    }
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PRUNE_HIST, s->o.rank);
    h.prune_hist.step = p->step;
    h.prune_hist.level = p->level;
    h.nframes = 1;
    h.lens[0] = sizeof *out * count;
    const void *frames[1] = {out};
    ldn_msg_close(m);
    long sent = ldn_net_send(sock, m->ident, m->ident_len, &h, frames, NULL, 0);
    free(out);
    return sent < 0 ? LDN_ERR_IO : 0;
}

void ldn_server_start_at(struct ldn_server *s, int64_t step)
{
    ldn_store_start_at(s->store, step);
    ldn_cons_start_at(s->cons, step);
}

const struct ldn_wire_plan *ldn_server_next_plan(const struct ldn_server *s)
{
    return &s->next_plan;
}

/* affinity_request: answered (send_affinity) once every step before the one asked is
 * applied; only with ps.affinity under bsp. */
static int on_affinity_request(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    if (!s->aff)
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "affinity asked of a server that does not measure it (ps.affinity)");
    ldn_msg_close(m);
    s->aff_pending = m->hdr.affinity_request.step;
    memcpy(s->aff_ident, m->ident, sizeof s->aff_ident);
    s->aff_ident_len = m->ident_len;
    return 0;
}

/* The answer to an affinity request: the reported window's partials over this server's rows. */
static int send_affinity(struct ldn_server *s, void *sock, char *err, size_t errlen)
{
    const double *dots;
    const uint64_t *counts;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_AFFINITY, s->o.rank);
    ldn_affinity_report(s->aff, &dots, &counts, &h.affinity.from, &h.affinity.to);
    const size_t GG = (size_t)s->G * (size_t)s->G;
    h.affinity.step = s->aff_pending;
    h.affinity.groups = (uint32_t)s->G;
    h.affinity.layers = (uint32_t)s->o.n_layers;
    h.nframes = 2;
    h.lens[0] = sizeof *dots * GG * (size_t)s->o.n_layers;
    h.lens[1] = sizeof *counts * GG;
    const void *frames[2] = {dots, counts};
    s->aff_pending = -1;
    long sent = ldn_net_send(sock, s->aff_ident, s->aff_ident_len, &h, frames, err, errlen);
    return sent < 0 ? (int)sent : 0;
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
        int rc = send_chunk(s, sock, m->ident, m->ident_len, k, s->store->version[k], -1);
        if (rc)
            return rc;
    }
    return 0;
}

enum { BY_COORD = 1, BY_WORKER = 2 };

/* lost (ps.on_worker_loss: continue): the coordinator found worker `rank` silent for the
 * liveness timeout. It leaves the live set (so it no longer holds back a bsp step or an ssp
 * bound; what it sent for the open step is dropped), its open pull is forgotten, the pushes
 * of its group's survivors are scaled by one over their new count, and whatever the live set
 * now allows is applied and served. */
static int on_lost(struct ldn_server *s, void *sock, struct ldn_msg *m, int w)
{
    (void)w;
    const int rank = m->hdr.lost.rank, lw = worker_index(s, rank);
    if (lw < 0 || s->cfg->on_worker_loss != LDN_LOSS_CONTINUE)
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      lw < 0 ? "lost names no worker of this job"
                             : "lost without ps.on_worker_loss: continue");
    ldn_msg_close(m);
    ldn_liveness_note_lost(rank);
    ldn_net_watch_expect(watch_of(s), 1, ldn_clock_now());
    s->waiting[lw].active = 0;
    if (!ldn_cons_remove(s->cons, lw))
        return 0;
    const struct ldn_plan *p = s->o.job ? s->o.job->plan : NULL;
    int left = 0;
    if (p) {
        const int g = p->group_of_rank[rank];
        for (int v = 0; v < s->W; v++)
            left += s->cons->live[v] && p->group_of_rank[s->ranks[v]] == g;
        for (int v = 0; v < s->W && left > 0; v++)
            if (s->cons->live[v] && p->group_of_rank[s->ranks[v]] == g)
                s->scale[v] = 1.0f / (float)left;
    }
    LDN_WARN("ps %d: worker rank %d left the live set at step %lld (lost); %d live worker(s) "
             "remain, %d in its group",
             s->o.rank, rank, (long long)m->hdr.lost.step, s->cons->n_live, left);
    int rc = s->cfg->consistency == LDN_BSP ? apply_ready(s) : 0;
    return rc ? rc : serve_waiting(s, sock);
}

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
    [LDN_OP_PRUNE] = {on_prune, BY_COORD},
    [LDN_OP_AFFINITY_REQUEST] = {on_affinity_request, BY_COORD},
    [LDN_OP_LOST] = {on_lost, BY_COORD},
};

int ldn_server_handle(struct ldn_server *s, void *sock, struct ldn_msg *m)
{
    const struct ldn_wire_msg *h = &m->hdr;
    const struct route *r = h->op < LDN_OP_COUNT_ ? &ROUTES[h->op] : NULL;
    if (!r || !r->fn)
        return reject(s, sock, m, LDN_ERR_FORMAT, "unexpected op for a server");
    if ((r->by & BY_COORD) && h->from == 0 && ldn_net_ident_is(m, "c0"))
        return r->fn(s, sock, m, -1);
    if (!(r->by & BY_WORKER))
        return reject(s, sock, m, LDN_ERR_FORMAT,
                      "commands come from the coordinator (rank 0) only");
    int w = worker_index(s, h->from);
    char ident[LDN_NET_IDENT_MAX];
    snprintf(ident, sizeof ident, "w%d", h->from);
    if (w < 0 || !ldn_net_ident_is(m, ident))
        return reject(s, sock, m, LDN_ERR_FORMAT, "sender is not a worker of this job");
    if (!s->cons->live[w])
        return reject(s, sock, m, LDN_ERR_FORMAT, "worker was taken out of the job");
    return r->fn(s, sock, m, w);
}

/* The checkpoint asked for can be written once every push of the steps before it is in. */
static int ckpt_ready(const struct ldn_server *s)
{
    return s->ckpt_pending >= 0 && ldn_cons_settled(s->cons, s->ckpt_pending);
}

static int checkpoint(struct ldn_server *s, char *err, size_t errlen)
{
    struct ldn_ckpt_items it = {0};
    int rc = ldn_store_ckpt_items(s->store, s->o.job->trunk, &it);
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
    int had = 0, same = 0;
    int rc = ldn_jobckpt_stored_state(ck, s->cfg, s->W, &had, &same, err, errlen);
    /* Servers of a job with momentum correction kept no momentum: this job's starts at zero. */
    if (rc == 0)
        rc = ldn_store_resume(s->store, ck, s->o.job->trunk, (had & LDN_JOBCKPT_VELOCITY) != 0,
                              s->cfg->servers, err, errlen);
    if (rc == 0)
        ldn_cons_start_at(s->cons, ck->step);
    return rc;
}

/* A timeout of the event loop's wait: an error when the open step has waited too long for
 * its pushes, or nothing at all arrived for too long; 0 to go on waiting. */
static int waited_too_long(const struct ldn_server *s, double now, double last, char *err,
                           size_t errlen)
{
    const double timeout = s->cfg->timeout_s;
    double since;
    if (ldn_cons_step_open(s->cons, &since) && now - since > timeout) {
        char missing[256];
        ldn_cons_missing(s->cons, s->ranks, missing, sizeof missing);
        return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                        "ps %d: step %lld: waited %.0f s for pushes from worker rank(s) "
                        "%s (ps.timeout)",
                        s->o.rank, (long long)s->cons->step, timeout, missing);
    }
    if (now - last > timeout)
        return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                        "ps %d: no message from the coordinator (rank 0) or any worker "
                        "for %.0f s (ps.timeout%s)",
                        s->o.rank, timeout, ldn_net_auth_hint());
    return 0;
}

int ldn_server_run(struct ldn_server *s, void *sock, char *err, size_t errlen)
{
    double last = ldn_clock_now();
    for (;;) {
        if (ckpt_ready(s)) {
            int rc = checkpoint(s, err, errlen);
            if (rc)
                return rc;
            last = ldn_clock_now();
        }
        if (s->aff_pending >= 0 && ldn_cons_settled(s->cons, s->aff_pending)) {
            int rc = send_affinity(s, sock, err, errlen);
            if (rc)
                return rc;
        }
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        int rc = ldn_net_recv(sock, 1, &m, 500, why, sizeof why);
        double now = ldn_clock_now();
        ldn_net_watch_poll(watch_of(s), now);
        if (rc == LDN_ERR_TIMEOUT) {
            if ((rc = waited_too_long(s, now, last, err, errlen)))
                return rc;
            continue;
        }
        last = now;
        if (rc == LDN_ERR_FORMAT || rc == LDN_ERR_PEER) {
            s->stats.bad_messages++;
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
