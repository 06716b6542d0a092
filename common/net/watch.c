/* Monitor events of a listening socket: connections dropped without a word (watch.h). */
#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "net.h"
#include "status.h"

#define HELD_MAX 64   /* disconnects held at once; an older one is judged early */
#define LOGGED_MAX 10 /* drops logged one line each; the rest are counted */
#define REFUSED_LOG 3 /* handshake failures logged */

struct ldn_net_watch {
    void *sock; /* the watched socket (borrowed) */
    void *mon;  /* PAIR connected to its monitor */
    char name[64];
    double grace;
    double held[HELD_MAX]; /* when each held disconnect came, oldest first */
    int n_held;
    int budget;          /* announced departures not yet seen */
    double budget_until; /* ... valid until then */
    int hs_failed;       /* handshake failures whose disconnect is still to come */
    int quiet;
    int64_t dropped, refused;
};

struct ldn_net_watch *ldn_net_watch_new(void *zctx, void *sock, const char *name, double grace_s,
                                        char *err, size_t errlen)
{
    struct ldn_net_watch *w = calloc(1, sizeof *w);
    if (!w) {
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        return NULL;
    }
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://ldn-watch-%p", (void *)w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->sock = sock;
    w->grace = grace_s;
    const int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(sock, ep, events) != 0) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s: zmq_socket_monitor: %s", name, zmq_strerror(errno));
        free(w);
        return NULL;
    }
    int linger = 0;
    w->mon = zmq_socket(zctx, ZMQ_PAIR);
    if (!w->mon || zmq_setsockopt(w->mon, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_connect(w->mon, ep) != 0) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s: monitor socket: %s", name, zmq_strerror(errno));
        ldn_net_watch_destroy(&w);
    }
    return w;
}

void ldn_net_watch_destroy(struct ldn_net_watch **pw)
{
    if (!pw || !*pw)
        return;
    struct ldn_net_watch *w = *pw;
    zmq_socket_monitor(w->sock, NULL, 0);
    if (w->mon)
        zmq_close(w->mon);
    free(w);
    *pw = NULL;
}

static void report(struct ldn_net_watch *w)
{
    w->dropped++;
    if (w->dropped <= LOGGED_MAX)
        LDN_WARN("%s: a connection to its listening socket was closed unannounced (%lld so far%s): "
                 "ZeroMQ drops a peer that sends a frame above net.max_message_mb (%.2f MiB) or "
                 "breaks the protocol, without delivering it; or a peer process ended",
                 w->name, (long long)w->dropped,
                 w->dropped == LOGGED_MAX ? "; further ones are counted, not logged" : "",
                 (double)ldn_net_max_frame() / (1 << 20));
}

/* One disconnect at time now: a handshake failure's, an announced one, or held. */
static void disconnected(struct ldn_net_watch *w, double now)
{
    if (w->hs_failed > 0) {
        w->hs_failed--;
        return;
    }
    if (w->quiet)
        return;
    if (w->budget > 0 && now <= w->budget_until) {
        w->budget--;
        return;
    }
    if (w->n_held == HELD_MAX) { /* judge the oldest now */
        report(w);
        memmove(w->held, w->held + 1, sizeof w->held[0] * (HELD_MAX - 1));
        w->n_held--;
    }
    w->held[w->n_held++] = now;
}

static void handshake_failed(struct ldn_net_watch *w, uint16_t ev, uint32_t value)
{
    w->refused++;
    w->hs_failed++;
    if (ev != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && w->refused <= REFUSED_LOG) /* ZAP logs those */
        LDN_WARN("%s: refused a connection whose handshake failed (%s %#x): not a peer of this "
                 "job, or net.curve set differently",
                 w->name,
                 ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "ZMTP/CURVE protocol error" : "error",
                 value);
}

int ldn_net_watch_poll(struct ldn_net_watch *w, double now)
{
    if (!w)
        return 0;
    for (;;) {
        zmq_msg_t a, b;
        zmq_msg_init(&a);
        if (zmq_msg_recv(&a, w->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&a);
            break;
        }
        uint16_t ev = 0;
        uint32_t value = 0;
        if (zmq_msg_size(&a) >= 6) {
            memcpy(&ev, zmq_msg_data(&a), 2);
            memcpy(&value, (const char *)zmq_msg_data(&a) + 2, 4);
        }
        int more = zmq_msg_more(&a);
        zmq_msg_close(&a);
        if (more) { /* the endpoint part */
            zmq_msg_init(&b);
            zmq_msg_recv(&b, w->mon, 0);
            zmq_msg_close(&b);
        }
        if (ev == ZMQ_EVENT_DISCONNECTED)
            disconnected(w, now);
        else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                 ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL || ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            handshake_failed(w, ev, value);
    }
    if (w->budget > 0 && now > w->budget_until)
        w->budget = 0;
    int k = 0;
    while (k < w->n_held && now - w->held[k] > w->grace)
        k++;
    if (w->quiet)
        k = 0, w->n_held = 0;
    for (int i = 0; i < k; i++)
        report(w);
    memmove(w->held, w->held + k, sizeof w->held[0] * (size_t)(w->n_held - k));
    w->n_held -= k;
    return k;
}

void ldn_net_watch_expect(struct ldn_net_watch *w, int n, double now)
{
    if (!w || n <= 0)
        return;
    int forgive = n < w->n_held ? n : w->n_held; /* the most recent ones held */
    w->n_held -= forgive;
    w->budget = (w->budget > 0 && now <= w->budget_until ? w->budget : 0) + n - forgive;
    w->budget_until = now + w->grace;
}

void ldn_net_watch_quiet(struct ldn_net_watch *w)
{
    if (w) {
        w->quiet = 1;
        w->n_held = 0;
    }
}

int64_t ldn_net_watch_dropped(const struct ldn_net_watch *w)
{
    return w ? w->dropped : 0;
}

int64_t ldn_net_watch_refused(const struct ldn_net_watch *w)
{
    return w ? w->refused : 0;
}
