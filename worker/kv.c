/* Worker-side push/pull client. */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "compressor.h"
#include "fs.h"
#include "status.h"

struct ldn_kv {
    int rank;
    int n_servers;
    void **socks; /* DEALER per server */
    const struct ldn_range *ranges;
    const struct ldn_chunk *chunks;
    int n_chunks;
    int *server_ranks;
    double timeout_s;
    char *got;                      /* [n_chunks]: received in the open pull */
    int pull_left;                  /* chunks of the open pull still to come */
    int64_t pull_clock;             /* clock of the open pull, -1 when none */
    int64_t bytes_push, bytes_pull; /* cumulative, all parts */
    int64_t bytes_dense;            /* what the pushed chunks weigh as dense fp32 */
    int64_t last_version;           /* min over chunks of the version served by the last pull */
    void (*idle)(void *ud);         /* called about once a second while waiting (may be NULL) */
    void *idle_ud;
    struct ldn_compressor *comp; /* borrowed; NULL: dense fp32 pushes */
    struct ldn_codec_ctx *dctx;  /* decodes pull deltas (compress.downlink = delta) */
};

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
    ldn_codec_ctx_destroy(&kv->dctx);
    free(kv);
    *pkv = NULL;
}

int64_t ldn_kv_biggest_chunk(const struct ldn_kv *kv)
{
    int64_t biggest = 0;
    for (int k = 0; k < kv->n_chunks; k++)
        if (kv->chunks[k].hi - kv->chunks[k].lo > biggest)
            biggest = kv->chunks[k].hi - kv->chunks[k].lo;
    return biggest;
}

void ldn_kv_set_compressor(struct ldn_kv *kv, struct ldn_compressor *comp)
{
    kv->comp = comp;
}

void ldn_kv_set_idle(struct ldn_kv *kv, void (*idle)(void *ud), void *ud)
{
    kv->idle = idle;
    kv->idle_ud = ud;
}

int64_t ldn_kv_bytes_push(const struct ldn_kv *kv)
{
    return kv->bytes_push;
}

int64_t ldn_kv_bytes_pull(const struct ldn_kv *kv)
{
    return kv->bytes_pull;
}

int64_t ldn_kv_bytes_dense(const struct ldn_kv *kv)
{
    return kv->bytes_dense;
}

int64_t ldn_kv_last_version(const struct ldn_kv *kv)
{
    return kv->last_version;
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

/* Send what the compressor made of chunk c: dense fp32 values, or a payload for the
 * descriptor in force. */
static long send_compressed(struct ldn_kv *kv, const struct ldn_chunk *c, int64_t step,
                            const struct ldn_compressed *out, char *err, size_t errlen)
{
    struct ldn_wire_msg h;
    if (out->dense) {
        push_header(&h, kv, c, step, LDN_CODEC_DENSE_F32,
                    (uint64_t)(c->hi - c->lo) * sizeof(float));
        const void *frames[1] = {out->vals};
        return ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
    }
    push_header(&h, kv, c, step, LDN_CODEC_PACKED, out->len);
    h.push.ncdesc = LDN_CODEC_DESC_WORDS;
    ldn_codec_desc_pack(ldn_compressor_desc(kv->comp), h.push.cdesc);
    const void *frames[1] = {out->payload};
    return ldn_net_send(kv->socks[c->server], NULL, 0, &h, frames, err, errlen);
}

/* compress.scope = global: chunks [first, last) of the step go into the compressor; once the
 * whole trunk is in, every chunk is sent with the elements the global top-k selected in it. */
static int push_global(struct ldn_kv *kv, int64_t step, const float *grad, int first, int last,
                       char *err, size_t errlen)
{
    int complete = 0;
    for (int k = first; k < last; k++) {
        int rc = ldn_compressor_global_add(kv->comp, grad, kv->chunks[k].lo, kv->chunks[k].hi, err,
                                           errlen);
        if (rc < 0)
            return rc;
        complete |= rc;
    }
    if (!complete)
        return LDN_OK; /* the rest of the step's gradient is still being computed */
    for (int ci = 0; ci < kv->n_chunks; ci++) {
        const struct ldn_chunk *c = &kv->chunks[ci];
        struct ldn_compressed out;
        int rc = ldn_compressor_global_take(kv->comp, c->lo, c->hi, &out, err, errlen);
        if (rc)
            return rc;
        long sent = send_compressed(kv, c, step, &out, err, errlen);
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
    if (kv->comp && ldn_compressor_is_global(kv->comp)) {
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
        if (kv->comp) {
            struct ldn_compressed out;
            int rc = ldn_compressor_compress(kv->comp, ldn_wire_codec_step(step, (uint64_t)c->lo),
                                             grad, c->lo, c->hi, &out, err, errlen);
            if (rc)
                return rc;
            long sent = send_compressed(kv, c, step, &out, err, errlen);
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
                            "server rank %d (keys [%lld, %lld), ps.timeout%s)",
                            kv->rank, kv->timeout_s, (long long)kv->pull_clock,
                            kv->server_ranks[kv->chunks[k].server], (long long)kv->chunks[k].lo,
                            (long long)kv->chunks[k].hi, ldn_net_auth_hint());
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
