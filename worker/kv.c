/* Worker-side push/pull client. */
#include "kv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fs.h"
#include "status.h"

struct ldn_kv *ldn_kv_new(void *zctx, int rank, int n_servers,
                          char (*endpoints)[LDN_NET_ENDPOINT_MAX], const struct ldn_range *ranges,
                          const struct ldn_chunk *chunks, int n_chunks, double timeout_s, char *err,
                          size_t errlen)
{
    struct ldn_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        goto nomem;
    kv->rank = rank;
    kv->n_servers = n_servers;
    kv->ranges = ranges;
    kv->chunks = chunks;
    kv->n_chunks = n_chunks;
    kv->timeout_s = timeout_s;
    kv->pull_clock = -1;
    kv->socks = calloc((size_t)n_servers, sizeof *kv->socks);
    kv->server_ranks = malloc(sizeof(int) * (size_t)n_servers);
    kv->got = calloc((size_t)n_chunks, 1);
    if (!kv->socks || !kv->server_ranks || !kv->got)
        goto nomem;
    char ident[32];
    snprintf(ident, sizeof ident, "w%d", rank);
    for (int s = 0; s < n_servers; s++) {
        kv->server_ranks[s] = 1 + s;
        char peer[32];
        snprintf(peer, sizeof peer, "server rank %d", 1 + s);
        if (!(kv->socks[s] = ldn_net_connect(zctx, ident, endpoints[s], peer, err, errlen)))
            goto fail;
    }
    return kv;
nomem:
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", rank);
fail:
    ldn_kv_destroy(&kv);
    return NULL;
}

void ldn_kv_destroy(struct ldn_kv **pkv)
{
    if (!pkv || !*pkv)
        return;
    struct ldn_kv *kv = *pkv;
    if (kv->socks)
        for (int s = 0; s < kv->n_servers; s++)
            ldn_net_close(&kv->socks[s]);
    free(kv->socks);
    free(kv->server_ranks);
    free(kv->got);
    ldn_codec_ctx_destroy(&kv->codec);
    ldn_codec_ctx_destroy(&kv->dctx);
    free(kv->scratch);
    free(kv->gacc);
    free(kv->gidx);
    free(kv->glocal);
    free(kv->gvals);
    free(kv->gdeq);
    free(kv->residual);
    free(kv->velocity);
    free(kv->packed);
    free(kv);
    *pkv = NULL;
}

void ldn_kv_use_desc(struct ldn_kv *kv, const struct ldn_codec_desc *d)
{
    LDN_ASSERT(d->ratio_ppm <= kv->max_ratio_ppm);
    kv->desc = *d;
    ldn_codec_desc_pack(d, kv->cdesc);
}

int ldn_kv_set_codec(struct ldn_kv *kv, const struct ldn_codec_desc *d, int ef, int64_t trunk_keys,
                     char *err, size_t errlen)
{
    int rc = ldn_codec_desc_check(d, err, errlen);
    if (rc)
        return rc;
    kv->desc = *d;
    kv->max_ratio_ppm = d->ratio_ppm;
    ldn_codec_desc_pack(d, kv->cdesc);
    int64_t biggest = 0;
    for (int k = 0; k < kv->n_chunks; k++)
        if (kv->chunks[k].hi - kv->chunks[k].lo > biggest)
            biggest = kv->chunks[k].hi - kv->chunks[k].lo;
    kv->packed_cap = ldn_codec_max_bytes(d, biggest);
    kv->packed = malloc(kv->packed_cap);
    kv->codec = ldn_codec_ctx_new(d->seed ^ (uint64_t)kv->rank);
    kv->residual = ef ? calloc((size_t)trunk_keys, sizeof(float)) : NULL;
    kv->trunk_keys = trunk_keys;
    if (d->kind == LDN_CODEC_SPARSE) { /* compress.scope = global */
        if (!ef && !(kv->gacc = malloc(sizeof(float) * (size_t)trunk_keys)))
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", kv->rank);
        int64_t k = (int64_t)(((uint64_t)trunk_keys * d->ratio_ppm + 999999) / 1000000);
        k = k < 1 ? 1 : k > trunk_keys ? trunk_keys : k;
        kv->gidx = malloc(sizeof *kv->gidx * (size_t)k);
        kv->glocal = malloc(sizeof *kv->glocal * (size_t)k);
        kv->gvals = malloc(sizeof(float) * (size_t)k);
        kv->gdeq = malloc(sizeof(float) * (size_t)k);
        if (!kv->gidx || !kv->glocal || !kv->gvals || !kv->gdeq)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", kv->rank);
    }
    if (!kv->packed || !kv->codec || (ef && !kv->residual))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory for the codec",
                        kv->rank);
    kv->compressed = 1;
    return LDN_OK;
}

/* The one-chunk scratch buffer (sized to the largest chunk), allocated once. */
static int need_scratch(struct ldn_kv *kv, char *err, size_t errlen)
{
    if (kv->scratch)
        return LDN_OK;
    int64_t most = 0;
    for (int k = 0; k < kv->n_chunks; k++)
        if (kv->chunks[k].hi - kv->chunks[k].lo > most)
            most = kv->chunks[k].hi - kv->chunks[k].lo;
    if (!(kv->scratch = malloc(sizeof(float) * (size_t)(most > 0 ? most : 1))))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", kv->rank);
    return LDN_OK;
}

int ldn_kv_set_momentum_correction(struct ldn_kv *kv, float momentum, int nesterov, int masking,
                                   int64_t trunk_keys, char *err, size_t errlen)
{
    kv->momentum = momentum;
    kv->nesterov = nesterov;
    kv->masking = masking;
    if (!(kv->velocity = calloc((size_t)trunk_keys, sizeof(float))))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", kv->rank);
    return nesterov ? need_scratch(kv, err, errlen) : LDN_OK;
}

int ldn_kv_set_push_options(struct ldn_kv *kv, int64_t min_elements, double clip_norm,
                            int64_t trunk_keys, char *err, size_t errlen)
{
    kv->min_elements = min_elements;
    kv->clip_norm = clip_norm;
    kv->trunk_keys = trunk_keys;
    return need_scratch(kv, err, errlen);
}

/* The header of a push of chunk c with one payload frame of `bytes`. */
static void push_header(struct ldn_wire_msg *h, const struct ldn_kv *kv, const struct ldn_chunk *c,
                        int64_t step, enum ldn_codec_id codec, uint64_t bytes)
{
    ldn_wire_msg_init(h, LDN_OP_PUSH, kv->rank);
    h->push.step = step;
    h->push.lo = (uint64_t)c->lo;
    h->push.hi = (uint64_t)c->hi;
    h->push.codec = codec;
    h->nframes = 1;
    h->lens[0] = bytes;
}

/* The values chunk c contributes to the step: its gradient, clipped (compress.clip_norm), and
 * with momentum correction folded into the velocity u, which is returned instead; with
 * Nesterov momentum, g + momentum * u (DGC's Nesterov momentum correction, the increment
 * dense Nesterov SGD would apply), in the scratch buffer. */
static const float *chunk_values(struct ldn_kv *kv, const struct ldn_chunk *c, const float *grad)
{
    const int64_t n = c->hi - c->lo;
    const float *g = grad + c->lo;
    if (kv->clip_norm > 0 && kv->scratch) { /* DGC local gradient clipping, per chunk */
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)g[i] * g[i];
        double bound = kv->clip_norm * sqrt((double)n / (double)kv->trunk_keys);
        if (ss > bound * bound) {
            float f = (float)(bound / sqrt(ss));
            for (int64_t i = 0; i < n; i++)
                kv->scratch[i] = g[i] * f;
            g = kv->scratch;
        }
    }
    if (kv->velocity) { /* DGC momentum correction: compress the velocity */
        float *u = kv->velocity + c->lo;
        for (int64_t i = 0; i < n; i++)
            u[i] = kv->momentum * u[i] + g[i];
        if (!kv->nesterov)
            return u;
        for (int64_t i = 0; i < n; i++) /* g may be the scratch itself: element for element */
            kv->scratch[i] = g[i] + kv->momentum * u[i];
        g = kv->scratch;
    }
    return g;
}

/* Compress chunk c of grad and send it as one packed push. */
static long push_packed(struct ldn_kv *kv, const struct ldn_chunk *c, int64_t step,
                        const float *grad, char *err, size_t errlen)
{
    size_t len = 0;
    const int64_t n = c->hi - c->lo;
    const uint64_t cstep = ldn_wire_codec_step(step, (uint64_t)c->lo);
    const float *g = chunk_values(kv, c, grad);
    if (n < kv->min_elements && kv->scratch) { /* small: dense, with everything kept folded in */
        float *acc = kv->scratch, *r = kv->residual ? kv->residual + c->lo : NULL;
        for (int64_t i = 0; i < n; i++) {
            acc[i] = g[i] + (r ? r[i] : 0.0f);
            if (r)
                r[i] = 0.0f;
        }
        if (kv->velocity && kv->masking) /* all sent: momentum factor masking clears it all */
            memset(kv->velocity + c->lo, 0, sizeof(float) * (size_t)n);
        struct ldn_wire_msg h;
        push_header(&h, kv, c, step, LDN_CODEC_DENSE_F32, (uint64_t)n * sizeof(float));
        const void *frames[1] = {acc};
        return ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
    }
    int rc = ldn_codec_compress(kv->codec, &kv->desc, cstep, g,
                                kv->residual ? kv->residual + c->lo : NULL, n, kv->packed,
                                kv->packed_cap, &len, err, errlen);
    if (rc)
        return rc;
    if (kv->velocity && kv->masking && kv->desc.kind != LDN_CODEC_DENSE) { /* factor masking */
        const uint32_t *idx;
        const float *vals;
        int64_t count;
        if ((rc = ldn_codec_decode(kv->codec, &kv->desc, cstep, kv->packed, len, n, &idx, &vals,
                                   &count, err, errlen)))
            return rc;
        float *u = kv->velocity + c->lo;
        for (int64_t i = 0; i < count; i++)
            u[idx[i]] = 0.0f;
    }
    struct ldn_wire_msg h;
    push_header(&h, kv, c, step, LDN_CODEC_PACKED, len);
    h.push.ncdesc = LDN_CODEC_DESC_WORDS;
    memcpy(h.push.cdesc, kv->cdesc, sizeof kv->cdesc);
    const void *frames[1] = {kv->packed};
    return ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
}

/* compress.scope = global: chunks of the step accumulate (into the residual, or a scratch
 * without error feedback) until the whole trunk is in; then the exact top-k over all of it is
 * taken and every chunk is sent with the elements selected in it (sparse payloads, 0..n each). */
static int push_global(struct ldn_kv *kv, int64_t step, const float *grad, int first, int last,
                       char *err, size_t errlen)
{
    float *acc = kv->residual ? kv->residual : kv->gacc;
    for (int k = first; k < last; k++) {
        const struct ldn_chunk *c = &kv->chunks[k];
        const float *g = chunk_values(kv, c, grad);
        float *a = acc + c->lo;
        if (kv->residual)
            for (int64_t i = 0; i < c->hi - c->lo; i++)
                a[i] += g[i];
        else
            memcpy(a, g, sizeof(float) * (size_t)(c->hi - c->lo));
        kv->gkeys += c->hi - c->lo;
    }
    if (kv->gkeys < kv->trunk_keys)
        return LDN_OK; /* the rest of the step's gradient is still being computed */
    kv->gkeys = 0;
    const int64_t n = kv->trunk_keys;
    int64_t k = (int64_t)(((uint64_t)n * kv->desc.ratio_ppm + 999999) / 1000000);
    k = k < 1 ? 1 : k > n ? n : k;
    int64_t m = ldn_codec_topk(kv->codec, acc, n, k, kv->gidx);
    if (m < 0)
        return ldn_fail(err, errlen, (int)m, "worker %d: global top-k failed", kv->rank);
    int64_t j = 0;
    for (int ci = 0; ci < kv->n_chunks; ci++) {
        const struct ldn_chunk *c = &kv->chunks[ci];
        int64_t j0 = j;
        while (j < m && (int64_t)kv->gidx[j] < c->hi) {
            kv->glocal[j - j0] = kv->gidx[j] - (uint32_t)c->lo;
            kv->gvals[j - j0] = acc[kv->gidx[j]];
            j++;
        }
        size_t len = 0;
        int rc = ldn_codec_encode(&kv->desc, c->hi - c->lo, kv->glocal, j - j0, kv->gvals,
                                  ldn_codec_ctx_rng(kv->codec), kv->packed, kv->packed_cap, &len,
                                  kv->gdeq, err, errlen);
        if (rc)
            return rc;
        for (int64_t q = j0; q < j; q++) {
            uint32_t i = kv->gidx[q];
            if (kv->residual) /* error feedback keeps what rounding lost */
                kv->residual[i] -= kv->gdeq[q - j0];
            if (kv->velocity && kv->masking) /* momentum factor masking */
                kv->velocity[i] = 0.0f;
        }
        struct ldn_wire_msg h;
        push_header(&h, kv, c, step, LDN_CODEC_PACKED, len);
        h.push.ncdesc = LDN_CODEC_DESC_WORDS;
        memcpy(h.push.cdesc, kv->cdesc, sizeof kv->cdesc);
        const void *frames[1] = {kv->packed};
        long sent = ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
        if (sent < 0)
            return (int)sent;
        kv->bytes_push += sent;
    }
    return LDN_OK;
}

int ldn_kv_push_range(struct ldn_kv *kv, int64_t step, const float *grad, int64_t lo, int64_t hi,
                      atomic_int *inflight, char *err, size_t errlen)
{
    int k = ldn_keyspace_find_chunk(kv->chunks, kv->n_chunks, lo);
    if (k < 0)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL, "worker %d: no chunk starts at key %lld",
                        kv->rank, (long long)lo);
    if (kv->compressed && kv->desc.kind == LDN_CODEC_SPARSE) {
        int last = k;
        while (last < kv->n_chunks && kv->chunks[last].hi <= hi) {
            kv->bytes_dense += (kv->chunks[last].hi - kv->chunks[last].lo) * (int64_t)sizeof(float);
            last++;
        }
        return push_global(kv, step, grad, k, last, err, errlen);
    }
    for (; k < kv->n_chunks && kv->chunks[k].hi <= hi; k++) {
        const struct ldn_chunk *c = &kv->chunks[k];
        kv->bytes_dense += (c->hi - c->lo) * (int64_t)sizeof(float);
        if (kv->compressed) {
            long sent = push_packed(kv, c, step, grad, err, errlen);
            if (sent < 0)
                return (int)sent;
            kv->bytes_push += sent;
            continue;
        }
        struct ldn_wire_msg h;
        push_header(&h, kv, c, step, LDN_CODEC_DENSE_F32,
                    (uint64_t)(c->hi - c->lo) * sizeof(float));
        const void *frames[1] = {grad + c->lo};
        long sent = inflight ? ldn_net_send_zc(kv->socks[c->server], NULL, 0, &h, frames, inflight,
                                               err, errlen)
                             : ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
        if (sent < 0)
            return (int)sent;
        kv->bytes_push += sent;
    }
    return LDN_OK;
}

/* A pull or clock (a header only) to every server, covering its range. */
static int to_every_server(struct ldn_kv *kv, enum ldn_wire_op op, int64_t step, char *err,
                           size_t errlen)
{
    for (int s = 0; s < kv->n_servers; s++) {
        struct ldn_wire_msg h;
        ldn_wire_msg_init(&h, op, kv->rank);
        const uint64_t lo = (uint64_t)kv->ranges[s].lo, hi = (uint64_t)kv->ranges[s].hi;
        if (op == LDN_OP_PULL)
            h.pull = (struct ldn_wire_pull){.step = step, .lo = lo, .hi = hi};
        else
            h.clock = (struct ldn_wire_clock){.step = step, .lo = lo, .hi = hi};
        long sent = ldn_net_send(kv->socks[s], NULL, 0, &h, NULL, err, errlen);
        if (sent < 0)
            return (int)sent;
        kv->bytes_push += sent;
    }
    return LDN_OK;
}

int ldn_kv_clock(struct ldn_kv *kv, int64_t step, char *err, size_t errlen)
{
    return to_every_server(kv, LDN_OP_CLOCK, step, err, errlen);
}

int ldn_kv_pull_begin(struct ldn_kv *kv, int64_t clock, char *err, size_t errlen)
{
    int rc = to_every_server(kv, LDN_OP_PULL, clock, err, errlen);
    if (rc)
        return rc;
    memset(kv->got, 0, (size_t)kv->n_chunks);
    kv->pull_left = kv->n_chunks;
    kv->last_version = INT64_MAX;
    kv->pull_clock = clock;
    return LDN_OK;
}

/* A pull answer coded as a delta (compress.downlink = delta, docs/wire.md): validate the
 * whole payload, then store the new values (fp32) or add the differences (fp16, int8) into
 * the chunk's weights. */
static int apply_delta(struct ldn_kv *kv, int s, int k, const struct ldn_msg *m, float *dst,
                       char *err, size_t errlen)
{
    struct ldn_codec_desc d;
    char why[LDN_ERRLEN];
    const int64_t n = kv->chunks[k].hi - kv->chunks[k].lo;
    if (m->hdr.params.ncdesc != LDN_CODEC_DESC_WORDS ||
        ldn_codec_desc_unpack(m->hdr.params.cdesc, &d, why, sizeof why) != 0 ||
        d.kind != LDN_CODEC_SPARSE || d.quant > LDN_QUANT_INT8)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "worker %d: server rank %d sent a pull answer with a codec other than a "
                        "sparse fp32/fp16/int8 delta",
                        kv->rank, kv->server_ranks[s]);
    if (!kv->dctx && !(kv->dctx = ldn_codec_ctx_new(0)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "worker %d: out of memory", kv->rank);
    const uint32_t *idx;
    const float *vals;
    int64_t count;
    int rc = ldn_codec_decode(kv->dctx, &d, 0, zmq_msg_data((zmq_msg_t *)&m->frames[0]),
                              m->hdr.lens[0], n, &idx, &vals, &count, why, sizeof why);
    if (rc)
        return ldn_fail(err, errlen, rc, "worker %d: pull answer from server rank %d: %s", kv->rank,
                        kv->server_ranks[s], why);
    if (d.quant == LDN_QUANT_FP32)
        for (int64_t j = 0; j < count; j++)
            dst[idx[j]] = vals[j];
    else
        for (int64_t j = 0; j < count; j++)
            dst[idx[j]] += vals[j];
    return 0;
}

/* Take one answer from server s: a chunk of the open pull, or an error. */
static int take(struct ldn_kv *kv, int s, float *params, char *err, size_t errlen)
{
    struct ldn_msg m;
    char why[LDN_ERRLEN];
    int rc = ldn_net_recv(kv->socks[s], 0, &m, 0, why, sizeof why);
    if (rc == LDN_ERR_TIMEOUT)
        return 0;
    if (rc != 0)
        return ldn_fail(err, errlen, rc, "worker %d: bad answer from server rank %d: %s", kv->rank,
                        kv->server_ranks[s], why);
    kv->bytes_pull += (int64_t)m.bytes;
    if (m.hdr.op == LDN_OP_ERROR) {
        ldn_msg_close(&m);
        return ldn_fail(err, errlen, LDN_ERR_PEER, "worker %d: server rank %d: %s", kv->rank,
                        kv->server_ranks[s], m.hdr.error.msg);
    }
    const struct ldn_wire_params *h = &m.hdr.params;
    int k = m.hdr.op == LDN_OP_PARAMS && h->lo <= INT64_MAX
                ? ldn_keyspace_find_chunk(kv->chunks, kv->n_chunks, (int64_t)h->lo)
                : -1;
    const int packed = h->codec == LDN_CODEC_PACKED;
    if (k < 0 || kv->chunks[k].server != s || kv->got[k] || h->hi != (uint64_t)kv->chunks[k].hi ||
        m.nframes != 1 ||
        (!packed &&
         m.hdr.lens[0] != (uint64_t)(kv->chunks[k].hi - kv->chunks[k].lo) * sizeof(float))) {
        ldn_msg_close(&m);
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "worker %d: unexpected %s [%llu, %llu) from server rank %d while pulling "
                        "clock %lld",
                        kv->rank, ldn_wire_op_name(m.hdr.op), (unsigned long long)h->lo,
                        (unsigned long long)h->hi, kv->server_ranks[s], (long long)kv->pull_clock);
    }
    if (packed) {
        if ((rc = apply_delta(kv, s, k, &m, params + kv->chunks[k].lo, err, errlen))) {
            ldn_msg_close(&m);
            return rc;
        }
    } else
        memcpy(params + kv->chunks[k].lo, zmq_msg_data(&m.frames[0]), m.hdr.lens[0]);
    if (h->step < kv->last_version)
        kv->last_version = h->step;
    ldn_msg_close(&m);
    kv->got[k] = 1;
    kv->pull_left--;
    return 0;
}

/* The chunks a wait is for: [first, last) of the table. */
struct want {
    int first, last;
};

static int wanted_in(const struct ldn_kv *kv, const struct want *wt)
{
    for (int k = wt->first; k < wt->last; k++)
        if (!kv->got[k])
            return 0;
    return 1;
}

/* Receive answers of the open pull until every chunk of *wt is in. */
static int receive_until(struct ldn_kv *kv, const struct want *wt, float *params, char *err,
                         size_t errlen)
{
    enum { MAXS = 256 };
    zmq_pollitem_t items[MAXS];
    const int n = kv->n_servers;
    if (n > MAXS)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "more than %d servers", MAXS);
    for (int s = 0; s < n; s++)
        items[s] = (zmq_pollitem_t){kv->socks[s], 0, ZMQ_POLLIN, 0};
    double deadline = ldn_clock_now() + kv->timeout_s;
    while (!wanted_in(kv, wt)) {
        double wait = deadline - ldn_clock_now();
        int pr = wait > 0 ? zmq_poll(items, n, wait > 1.0 ? 1000 : (long)(wait * 1000) + 1) : 0;
        if (pr < 0)
            return ldn_fail(err, errlen, LDN_ERR_IO, "worker %d: zmq_poll: %s", kv->rank,
                            zmq_strerror(zmq_errno()));
        if (pr == 0 && ldn_clock_now() < deadline) { /* a quiet second: still alive */
            if (kv->idle)
                kv->idle(kv->idle_ud);
            continue;
        }
        if (pr == 0) {
            int k = 0;
            while (kv->got[k])
                k++;
            return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                            "worker %d: waited %.0f s for the trunk weights of clock %lld from "
                            "server rank %d (keys [%lld, %lld), ps.timeout)",
                            kv->rank, kv->timeout_s, (long long)kv->pull_clock,
                            kv->server_ranks[kv->chunks[k].server], (long long)kv->chunks[k].lo,
                            (long long)kv->chunks[k].hi);
        }
        for (int s = 0; s < n; s++)
            while (kv->pull_left > 0 && (items[s].revents & ZMQ_POLLIN)) {
                int before = kv->pull_left, rc = take(kv, s, params, err, errlen);
                if (rc)
                    return rc;
                deadline = ldn_clock_now() + kv->timeout_s; /* the timeout is between answers */
                if (kv->pull_left == before)                /* nothing more queued on this socket */
                    break;
            }
    }
    return LDN_OK;
}

int ldn_kv_wait_rows(struct ldn_kv *kv, int layer, int row_lo, int row_hi, float *params, char *err,
                     size_t errlen)
{
    if (kv->pull_clock < 0)
        return LDN_OK;
    struct want wt = {0, 0};
    while (wt.first < kv->n_chunks &&
           (kv->chunks[wt.first].layer < layer ||
            (kv->chunks[wt.first].layer == layer && kv->chunks[wt.first].row_hi <= row_lo)))
        wt.first++;
    wt.last = wt.first;
    while (wt.last < kv->n_chunks && kv->chunks[wt.last].layer == layer &&
           kv->chunks[wt.last].row_lo < row_hi)
        wt.last++;
    return receive_until(kv, &wt, params, err, errlen);
}

int ldn_kv_pull_end(struct ldn_kv *kv, float *params, char *err, size_t errlen)
{
    if (kv->pull_clock < 0)
        return LDN_OK;
    struct want all = {0, kv->n_chunks};
    int rc = receive_until(kv, &all, params, err, errlen);
    if (rc == 0)
        kv->pull_clock = -1;
    return rc;
}

int ldn_kv_pull(struct ldn_kv *kv, int64_t clock, float *params, char *err, size_t errlen)
{
    int rc = ldn_kv_pull_begin(kv, clock, err, errlen);
    return rc ? rc : ldn_kv_pull_end(kv, params, err, errlen);
}
