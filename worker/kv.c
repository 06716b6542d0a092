/* Worker-side push/pull client. */
#include "kv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "net.h"
#include "status.h"

struct ldn_kv *ldn_kv_new(void *zctx, int rank, int n, char (*endpoints)[LDN_NET_ENDPOINT_MAX],
                          const int *server_ranks, const struct ldn_range *ranges, double timeout_s,
                          char *err, size_t errlen)
{
    struct ldn_kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        goto nomem;
    kv->rank = rank;
    kv->n_servers = n;
    kv->timeout_s = timeout_s;
    kv->socks = calloc((size_t)n, sizeof *kv->socks);
    kv->ranges = malloc(sizeof *kv->ranges * (size_t)n);
    kv->server_ranks = malloc(sizeof(int) * (size_t)n);
    if (!kv->socks || !kv->ranges || !kv->server_ranks)
        goto nomem;
    memcpy(kv->ranges, ranges, sizeof *kv->ranges * (size_t)n);
    memcpy(kv->server_ranks, server_ranks, sizeof(int) * (size_t)n);
    char ident[32];
    snprintf(ident, sizeof ident, "w%d", rank);
    for (int s = 0; s < n; s++) {
        kv->socks[s] = zmq_socket(zctx, ZMQ_DEALER);
        if (!kv->socks[s] || ldn_net_setup(kv->socks[s], ident, err, errlen) != 0)
            goto fail;
        if (zmq_connect(kv->socks[s], endpoints[s]) != 0) {
            ldn_fail(err, errlen, LDN_ERR_IO, "worker %d: connect to server rank %d at %s: %s",
                     rank, server_ranks[s], endpoints[s], zmq_strerror(zmq_errno()));
            goto fail;
        }
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
            if (kv->socks[s])
                zmq_close(kv->socks[s]);
    free(kv->socks);
    free(kv->ranges);
    free(kv->server_ranks);
    free(kv);
    *pkv = NULL;
}

int ldn_kv_push(struct ldn_kv *kv, int64_t step, const float *grad, char *err, size_t errlen)
{
    for (int s = 0; s < kv->n_servers; s++) {
        struct ldn_wire_hdr h;
        ldn_wire_hdr_init(&h, LDN_OP_PUSH, kv->rank);
        h.step = step;
        h.lo = (uint64_t)kv->ranges[s].lo;
        h.hi = (uint64_t)kv->ranges[s].hi;
        h.codec = LDN_CODEC_DENSE_F32;
        h.nframes = 1;
        h.lens[0] = (uint64_t)(kv->ranges[s].hi - kv->ranges[s].lo) * sizeof(float);
        const void *frames[1] = {grad + kv->ranges[s].lo};
        long sent = ldn_net_send(kv->socks[s], NULL, 0, &h, frames, err, errlen);
        if (sent < 0)
            return (int)sent;
        kv->bytes_push += sent;
    }
    return LDN_OK;
}

int ldn_kv_pull(struct ldn_kv *kv, int64_t clock, float *params, char *err, size_t errlen)
{
    enum { MAXS = 256 };
    zmq_pollitem_t items[MAXS];
    int n = kv->n_servers, left = n;
    if (n > MAXS)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "more than %d servers", MAXS);
    char got[MAXS] = {0};
    for (int s = 0; s < n; s++) {
        struct ldn_wire_hdr h;
        ldn_wire_hdr_init(&h, LDN_OP_PULL, kv->rank);
        h.step = clock;
        h.lo = (uint64_t)kv->ranges[s].lo;
        h.hi = (uint64_t)kv->ranges[s].hi;
        h.codec = LDN_CODEC_DENSE_F32;
        long sent = ldn_net_send(kv->socks[s], NULL, 0, &h, NULL, err, errlen);
        if (sent < 0)
            return (int)sent;
        kv->bytes_push += sent;
        items[s] = (zmq_pollitem_t){kv->socks[s], 0, ZMQ_POLLIN, 0};
    }
    kv->last_version = INT64_MAX;
    double deadline = ldn_now() + kv->timeout_s;
    while (left > 0) {
        double wait = deadline - ldn_now();
        int pr = wait > 0 ? zmq_poll(items, n, (long)(wait * 1000) + 1) : 0;
        if (pr < 0)
            return ldn_fail(err, errlen, LDN_ERR_IO, "worker %d: zmq_poll: %s", kv->rank,
                            zmq_strerror(zmq_errno()));
        if (pr == 0) {
            for (int s = 0; s < n; s++)
                if (!got[s])
                    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                                    "worker %d: waited %.0f s for the trunk weights of clock %lld "
                                    "from server rank %d (ps.timeout)",
                                    kv->rank, kv->timeout_s, (long long)clock, kv->server_ranks[s]);
        }
        for (int s = 0; s < n; s++) {
            if (!(items[s].revents & ZMQ_POLLIN))
                continue;
            struct ldn_msg m;
            char why[LDN_ERRLEN];
            int rc = ldn_net_recv(kv->socks[s], 0, &m, 0, why, sizeof why);
            if (rc == LDN_ERR_TIMEOUT)
                continue;
            if (rc != 0)
                return ldn_fail(err, errlen, rc, "worker %d: bad answer from server rank %d: %s",
                                kv->rank, kv->server_ranks[s], why);
            kv->bytes_pull += (int64_t)m.bytes;
            if (m.hdr.op == LDN_OP_ERROR) {
                ldn_msg_close(&m);
                return ldn_fail(err, errlen, LDN_ERR_PEER, "worker %d: server rank %d: %s",
                                kv->rank, kv->server_ranks[s], m.hdr.msg);
            }
            int64_t len = kv->ranges[s].hi - kv->ranges[s].lo;
            if (m.hdr.op != LDN_OP_PARAMS || got[s] || m.nframes != 1 ||
                m.hdr.lo != (uint64_t)kv->ranges[s].lo || m.hdr.hi != (uint64_t)kv->ranges[s].hi ||
                m.hdr.lens[0] != (uint64_t)len * sizeof(float)) {
                ldn_msg_close(&m);
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "worker %d: unexpected %s from server rank %d while pulling "
                                "clock %lld",
                                kv->rank, ldn_wire_op_name(m.hdr.op), kv->server_ranks[s],
                                (long long)clock);
            }
            memcpy(params + kv->ranges[s].lo, zmq_msg_data(&m.frames[0]),
                   sizeof(float) * (size_t)len);
            if (m.hdr.step < kv->last_version)
                kv->last_version = m.hdr.step;
            ldn_msg_close(&m);
            got[s] = 1;
            left--;
        }
    }
    return LDN_OK;
}
