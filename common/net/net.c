/* ZeroMQ sockets and wire-format messages. */
#define _DEFAULT_SOURCE
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "clock.h"
#include "fs.h"
#include "status.h"

int ldn_net_local_address(const char *iface, char *ip, size_t len, char *err, size_t errlen)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "getifaddrs: %s", strerror(errno));
    int want = iface && *iface && strcmp(iface, "auto") != 0;
    int found = 0;
    for (struct ifaddrs *a = ifs; a && !found; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET || !(a->ifa_flags & IFF_UP))
            continue;
        if (want ? strcmp(a->ifa_name, iface) != 0 : (a->ifa_flags & IFF_LOOPBACK) != 0)
            continue;
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)a->ifa_addr;
        found = inet_ntop(AF_INET, &sin->sin_addr, ip, (socklen_t)len) != NULL;
    }
    freeifaddrs(ifs);
    if (found)
        return LDN_OK;
    if (want)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "ps.interface: no IPv4 address on an interface named '%s' that is up",
                        iface);
    snprintf(ip, len, "127.0.0.1");
    return LDN_OK;
}

int ldn_net_bind(void *sock, const char *ip, char *endpoint, size_t len, char *err, size_t errlen)
{
    char ep[LDN_NET_ENDPOINT_MAX];
    snprintf(ep, sizeof ep, "tcp://%s:*", ip);
    if (zmq_bind(sock, ep) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "zmq_bind %s: %s", ep, zmq_strerror(errno));
    size_t n = len;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, endpoint, &n) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "ZMQ_LAST_ENDPOINT: %s", zmq_strerror(errno));
    return LDN_OK;
}

static _Atomic int64_t max_frame = LDN_NET_MAX_FRAME_DEFAULT;

void ldn_net_set_max_frame(int64_t bytes)
{
    atomic_store(&max_frame, bytes);
}

int64_t ldn_net_max_frame(void)
{
    return atomic_load(&max_frame);
}

static _Atomic int queue_messages = LDN_NET_QUEUE_DEFAULT;

void ldn_net_set_queue(int messages)
{
    atomic_store(&queue_messages, messages < 1 ? 1 : messages);
}

int ldn_net_queue(void)
{
    return atomic_load(&queue_messages);
}

static _Atomic int send_timeout_ms = LDN_NET_SEND_TIMEOUT_MS_DEFAULT;

void ldn_net_set_send_timeout(double seconds)
{
    double ms = seconds * 1000.0;
    atomic_store(&send_timeout_ms, ms < 1 ? 1 : ms > 86400000.0 ? 86400000 : (int)ms);
}

static const struct ldn_auth *_Atomic auth;

void ldn_net_use_auth(const struct ldn_auth *a)
{
    atomic_store(&auth, a);
}

const struct ldn_auth *ldn_net_auth(void)
{
    return atomic_load(&auth);
}

const char *ldn_net_auth_hint(void)
{
    return ldn_net_auth() ? "; net.curve is on: a peer whose CURVE handshake fails (keys not "
                            "of this job, or net.curve set differently) never connects; a "
                            "refused client key is logged by the listening rank"
                          : "";
}

/* Options every socket gets. */
static int setup(void *sock, int type, const char *ident, char *err, size_t errlen)
{
    /* A short linger: the last messages (done, counters) still go out after close, and a
     * dead peer cannot hold the process at exit for long. */
    int one = 1, linger = 2000, hwm = ldn_net_queue(), sndtimeo = atomic_load(&send_timeout_ms);
    int64_t maxmsg = ldn_net_max_frame();
    if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(sock, ZMQ_SNDTIMEO, &sndtimeo, sizeof sndtimeo) != 0 ||
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        (ident && zmq_setsockopt(sock, ZMQ_ROUTING_ID, ident, strlen(ident)) != 0) ||
        (type == ZMQ_ROUTER && zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one) != 0) ||
        (type == ZMQ_ROUTER && zmq_setsockopt(sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one) != 0))
        return ldn_fail(err, errlen, LDN_ERR_IO, "zmq_setsockopt: %s", zmq_strerror(errno));
    return LDN_OK;
}

void *ldn_net_socket(void *zctx, int type, const char *ident, char *err, size_t errlen)
{
    void *sock = zmq_socket(zctx, type);
    if (!sock) {
        ldn_fail(err, errlen, LDN_ERR_IO, "zmq_socket: %s", zmq_strerror(errno));
        return NULL;
    }
    if (setup(sock, type, ident, err, errlen) != 0)
        ldn_net_close(&sock);
    return sock;
}

void *ldn_net_listen(void *zctx, const char *iface, char *endpoint, size_t len, char *err,
                     size_t errlen)
{
    char ip[64];
    const struct ldn_auth *a = ldn_net_auth();
    void *sock = ldn_net_socket(zctx, ZMQ_ROUTER, NULL, err, errlen);
    if (sock && ((a && ldn_auth_server(a, sock, err, errlen) != 0) ||
                 ldn_net_local_address(iface, ip, sizeof ip, err, errlen) != 0 ||
                 ldn_net_bind(sock, ip, endpoint, len, err, errlen) != 0))
        ldn_net_close(&sock);
    return sock;
}

void *ldn_net_connect(void *zctx, const char *ident, const char *endpoint, const char *peer,
                      char *err, size_t errlen)
{
    const struct ldn_auth *a = ldn_net_auth();
    void *sock = ldn_net_socket(zctx, ZMQ_DEALER, ident, err, errlen);
    if (sock && a && ldn_auth_client(a, sock, endpoint, err, errlen) != 0) {
        ldn_net_close(&sock);
        return NULL;
    }
    if (sock && zmq_connect(sock, endpoint) != 0) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s: connect to %s at %s: %s", ident ? ident : "-", peer,
                 endpoint, zmq_strerror(errno));
        ldn_net_close(&sock);
    }
    return sock;
}

void ldn_net_close(void **sock)
{
    if (sock && *sock) {
        zmq_close(*sock);
        *sock = NULL;
    }
}

static void release_frame(void *data, void *hint)
{
    (void)data;
    atomic_fetch_sub_explicit((atomic_int *)hint, 1, memory_order_release);
}

/* The error of a send that ZMQ_SNDTIMEO ended, naming the peer: a ROUTER (ZMQ_ROUTER_MANDATORY:
 * a peer without a connection fails at once, EHOSTUNREACH) waits only for a full queue; a
 * DEALER also for a connection that is not there. */
static int send_timed_out(void *sock, const char *ident, size_t ident_len,
                          const struct ldn_wire_msg *h, char *err, size_t errlen)
{
    const double s = atomic_load(&send_timeout_ms) / 1000.0;
    const int q = ldn_net_queue();
    if (ident) {
        char id[LDN_NET_IDENT_MAX]; /* printable: a routing id ZeroMQ made up is binary */
        size_t k = 0;
        for (; k < ident_len && k + 1 < sizeof id; k++)
            id[k] = ident[k] > 32 && ident[k] < 127 ? ident[k] : '?';
        id[k] = '\0';
        return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                        "send %s to '%s': its queue stayed full for %.0f s (net.queue_messages: "
                        "%d messages per peer; the peer does not read, or reads too slowly)",
                        ldn_wire_op_name(h->op), id, s, q);
    }
    char ep[LDN_NET_ENDPOINT_MAX] = "";
    size_t n = sizeof ep;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &n) != 0 || !ep[0])
        snprintf(ep, sizeof ep, "(no endpoint)");
    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                    "send %s to the peer at %s: not taken within %.0f s: its queue is full "
                    "(net.queue_messages: %d messages per peer; the peer does not read) or no "
                    "connection to it is up (the peer is gone or never connected)%s",
                    ldn_wire_op_name(h->op), ep, s, q, ldn_net_auth_hint());
}

/* Identity (if any), header, then the payload frames: copied when inflight is NULL, else
 * handed to ZeroMQ by reference with *inflight counting the frames it still holds. */
static long send_parts(void *sock, const char *ident, size_t ident_len,
                       const struct ldn_wire_msg *h, const void *const *frames,
                       atomic_int *inflight, char *err, size_t errlen)
{
    char buf[LDN_WIRE_HDR_MAX];
    int n = ldn_wire_encode(h, buf, sizeof buf);
    if (n < 0)
        return ldn_fail(err, errlen, n, "encode %s header", ldn_wire_op_name(h->op));
    const int64_t most = ldn_net_max_frame();
    for (uint32_t i = 0; i < h->nframes; i++)
        if (h->lens[i] > (uint64_t)most) /* the receiver would drop the connection */
            return ldn_fail(err, errlen, LDN_ERR_ARG,
                            "send %s: payload frame %u has %llu bytes, above net.max_message_mb "
                            "(%.2f MiB); not sent",
                            ldn_wire_op_name(h->op), i, (unsigned long long)h->lens[i],
                            (double)most / (1 << 20));
    long total = n;
    if (ident) {
        if (zmq_send(sock, ident, ident_len, ZMQ_SNDMORE) < 0)
            goto fail;
        total += (long)ident_len;
    }
    if (zmq_send(sock, buf, (size_t)n, h->nframes ? ZMQ_SNDMORE : 0) < 0)
        goto fail;
    for (uint32_t i = 0; i < h->nframes; i++) {
        int more = i + 1 < h->nframes ? ZMQ_SNDMORE : 0;
        if (!inflight) {
            if (zmq_send(sock, frames[i], h->lens[i], more) < 0)
                goto fail;
        } else {
            zmq_msg_t msg;
            atomic_fetch_add_explicit(inflight, 1, memory_order_relaxed);
            if (zmq_msg_init_data(&msg, (void *)(uintptr_t)frames[i], h->lens[i], release_frame,
                                  inflight) != 0) {
                atomic_fetch_sub_explicit(inflight, 1, memory_order_relaxed);
                goto fail;
            }
            if (zmq_msg_send(&msg, sock, more) < 0) {
                zmq_msg_close(&msg); /* runs release_frame */
                goto fail;
            }
        }
        total += (long)h->lens[i];
    }
    return total;
fail:
    if (errno == EAGAIN) /* ZMQ_SNDTIMEO ran out */
        return send_timed_out(sock, ident, ident_len, h, err, errlen);
    return ldn_fail(err, errlen, LDN_ERR_IO, "send %s: %s", ldn_wire_op_name(h->op),
                    zmq_strerror(errno));
}

long ldn_net_send(void *sock, const char *ident, size_t ident_len, const struct ldn_wire_msg *h,
                  const void *const *frames, char *err, size_t errlen)
{
    return send_parts(sock, ident, ident_len, h, frames, NULL, err, errlen);
}

long ldn_net_send_zc(void *sock, const char *ident, size_t ident_len, const struct ldn_wire_msg *h,
                     const void *const *frames, atomic_int *inflight, char *err, size_t errlen)
{
    return send_parts(sock, ident, ident_len, h, frames, inflight, err, errlen);
}

int ldn_net_wait_sent(atomic_int *inflight, double timeout_s)
{
    if (atomic_load_explicit(inflight, memory_order_acquire) == 0)
        return LDN_OK;
    struct timespec ts = {0, 20000}; /* 20 us */
    double deadline = ldn_clock_now() + timeout_s;
    while (atomic_load_explicit(inflight, memory_order_acquire) != 0) {
        if (ldn_clock_now() > deadline)
            return LDN_ERR_TIMEOUT;
        nanosleep(&ts, NULL);
    }
    return LDN_OK;
}

static int more(void *sock)
{
    int m = 0;
    size_t sz = sizeof m;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &m, &sz);
    return m;
}

/* Drop the remaining parts of the message being read. */
static void drain(void *sock)
{
    while (more(sock)) {
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, sock, 0);
        zmq_msg_close(&x);
    }
}

int ldn_net_recv(void *sock, int router, struct ldn_msg *m, int timeout_ms, char *err,
                 size_t errlen)
{
    m->nframes = 0;
    m->ident_len = 0;
    m->user_len = 0;
    m->user[0] = '\0';
    m->bytes = 0;
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    int pr = zmq_poll(&it, 1, timeout_ms);
    if (pr < 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "zmq_poll: %s", zmq_strerror(errno));
    if (pr == 0)
        return LDN_ERR_TIMEOUT;
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (router) {
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return ldn_fail(err, errlen, LDN_ERR_IO, "recv: %s", zmq_strerror(errno));
        }
        m->ident_len =
            zmq_msg_size(&part) < LDN_NET_IDENT_MAX ? zmq_msg_size(&part) : LDN_NET_IDENT_MAX - 1;
        memcpy(m->ident, zmq_msg_data(&part), m->ident_len);
        m->ident[m->ident_len] = '\0';
        m->bytes += zmq_msg_size(&part);
        if (!more(sock)) {
            zmq_msg_close(&part);
            return ldn_fail(err, errlen, LDN_ERR_FORMAT, "message has no header frame");
        }
    }
    if (zmq_msg_recv(&part, sock, 0) < 0) {
        zmq_msg_close(&part);
        return ldn_fail(err, errlen, LDN_ERR_IO, "recv: %s", zmq_strerror(errno));
    }
    m->bytes += zmq_msg_size(&part);
    /* the connection's ZAP user id (ZeroMQ puts it on the parts it received, not on the
     * routing id part a ROUTER makes up) */
    const char *user = zmq_msg_gets(&part, "User-Id");
    if (user) {
        m->user_len = strnlen(user, LDN_NET_IDENT_MAX - 1);
        memcpy(m->user, user, m->user_len);
        m->user[m->user_len] = '\0';
    }
    int rc = ldn_wire_decode(zmq_msg_data(&part), zmq_msg_size(&part), &m->hdr, err, errlen);
    zmq_msg_close(&part);
    if (rc != 0) {
        drain(sock);
        return rc;
    }
    while (more(sock)) {
        if (m->nframes == LDN_WIRE_MAX_FRAMES) {
            drain(sock);
            ldn_msg_close(m);
            return ldn_fail(err, errlen, LDN_ERR_FORMAT, "more than %d payload frames",
                            LDN_WIRE_MAX_FRAMES);
        }
        zmq_msg_t *f = &m->frames[m->nframes];
        zmq_msg_init(f);
        if (zmq_msg_recv(f, sock, 0) < 0) {
            zmq_msg_close(f);
            ldn_msg_close(m);
            return ldn_fail(err, errlen, LDN_ERR_IO, "recv: %s", zmq_strerror(errno));
        }
        m->bytes += zmq_msg_size(f);
        m->nframes++;
    }
    if ((uint32_t)m->nframes != m->hdr.nframes) {
        int got = m->nframes;
        ldn_msg_close(m);
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header lists %u payload frames, got %d",
                        m->hdr.nframes, got);
    }
    for (int i = 0; i < m->nframes; i++)
        if (zmq_msg_size(&m->frames[i]) != m->hdr.lens[i]) {
            size_t got = zmq_msg_size(&m->frames[i]);
            ldn_msg_close(m);
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "payload frame %d has %zu bytes, header says %llu", i, got,
                            (unsigned long long)m->hdr.lens[i]);
        }
    return LDN_OK;
}

void ldn_msg_close(struct ldn_msg *m)
{
    for (int i = 0; i < m->nframes; i++)
        zmq_msg_close(&m->frames[i]);
    m->nframes = 0;
}

int ldn_net_ident_is(const struct ldn_msg *m, const char *want)
{
    size_t n = strlen(want);
    if (ldn_net_auth() && !(m->user_len == n && memcmp(m->user, want, n) == 0))
        return 0;
    return m->ident_len == n && memcmp(m->ident, want, n) == 0;
}

void ldn_net_reply_error(void *sock, const struct ldn_msg *m, int from, int status,
                         const char *text)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_ERROR, from);
    h.error.status = status;
    ldn_wire_msg_step(&m->hdr, &h.error.step);
    snprintf(h.error.msg, sizeof h.error.msg, "%s", text);
    ldn_net_send(sock, m->ident, m->ident_len, &h, NULL, NULL, 0);
}
