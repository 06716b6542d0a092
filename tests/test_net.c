#define _POSIX_C_SOURCE 200809L
/* Socket factory limits: a frame bigger than ldn_net_max_frame() is never delivered (ZeroMQ
 * drops the connection that sent it), one within the bound is, and the watch of the listening
 * socket reports the drop; ldn_net_send refuses such a frame, naming net.max_message_mb; a
 * send to a peer whose queue (net.queue_messages) is full fails naming the limit and the peer;
 * the routing id comparison counts the id's length. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "clock.h"
#include "cu_main.h"
#include "net.h"
#include "status.h"
#include "watch.h"

/* Send one frame of `bytes` from a fresh DEALER to router; 1 when router received it. */
static int delivered(void *zctx, void *router, const char *endpoint, size_t bytes)
{
    static char big[1 << 20];
    void *d = ldn_net_socket(zctx, ZMQ_DEALER, "w1", NULL, 0);
    CU_ASSERT_FATAL(d != NULL);
    int never = -1; /* a dropped connection stays closed: one disconnect per call */
    zmq_setsockopt(d, ZMQ_RECONNECT_IVL, &never, sizeof never);
    zmq_connect(d, endpoint);
    zmq_send(d, big, bytes, 0);
    zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
    int got = zmq_poll(&it, 1, 1000) == 1;
    while (got && zmq_poll(&it, 1, 0) == 1) { /* drain identity and frame */
        zmq_msg_t x;
        zmq_msg_init(&x);
        zmq_msg_recv(&x, router, 0);
        zmq_msg_close(&x);
    }
    ldn_net_close(&d);
    return got;
}

/* A ROUTER from the factory bound to loopback; its endpoint into ep. */
static void *bound_router(void *zctx, char *ep, size_t len)
{
    char err[LDN_ERRLEN];
    void *router = ldn_net_socket(zctx, ZMQ_ROUTER, NULL, err, sizeof err);
    CU_ASSERT_FATAL(router && ldn_net_bind(router, "127.0.0.1", ep, len, err, sizeof err) == 0);
    return router;
}

static void test_max_frame(void)
{
    int64_t old = ldn_net_max_frame();
    ldn_net_set_max_frame(64 << 10);
    void *zctx = zmq_ctx_new();
    char ep[LDN_NET_ENDPOINT_MAX];
    void *router = bound_router(zctx, ep, sizeof ep);
    CU_ASSERT(delivered(zctx, router, ep, 1000));
    CU_ASSERT(!delivered(zctx, router, ep, 1 << 20));
    CU_ASSERT(delivered(zctx, router, ep, 60 << 10));
    int hwm = 0;
    size_t sz = sizeof hwm;
    zmq_getsockopt(router, ZMQ_RCVHWM, &hwm, &sz);
    CU_ASSERT(hwm > 0);
    ldn_net_close(&router);
    zmq_ctx_term(zctx);
    ldn_net_set_max_frame(old);
}

/* Poll w until it has reported `want` drops or `secs` passed; the drops reported. */
static int64_t watch_until(struct ldn_net_watch *w, int64_t want, double secs)
{
    double end = ldn_clock_now() + secs;
    struct timespec ts = {0, 20000000};
    while (ldn_net_watch_dropped(w) < want && ldn_clock_now() < end) {
        ldn_net_watch_poll(w, ldn_clock_now());
        nanosleep(&ts, NULL);
    }
    ldn_net_watch_poll(w, ldn_clock_now());
    return ldn_net_watch_dropped(w);
}

/* A frame above the limit never arrives and the watch names the drop after its grace; a
 * delivered message's connection closing after an announcement (expect) or after quiet is not
 * reported. */
static void test_watch(void)
{
    int64_t old = ldn_net_max_frame();
    ldn_net_set_max_frame(64 << 10);
    void *zctx = zmq_ctx_new();
    char ep[LDN_NET_ENDPOINT_MAX], err[LDN_ERRLEN];
    void *router = bound_router(zctx, ep, sizeof ep);
    struct ldn_net_watch *w = ldn_net_watch_new(zctx, router, "test router", 0.3, err, sizeof err);
    CU_ASSERT_FATAL(w != NULL);
    CU_ASSERT(!delivered(zctx, router, ep, 1 << 20)); /* dropped by ZeroMQ ... */
    CU_ASSERT_EQUAL(watch_until(w, 1, 3.0), 1);       /* ... and named */
    CU_ASSERT(delivered(zctx, router, ep, 1000));     /* a normal close, announced */
    ldn_net_watch_expect(w, 1, ldn_clock_now());
    CU_ASSERT_EQUAL(watch_until(w, 2, 1.0), 1);
    CU_ASSERT(delivered(zctx, router, ep, 1000)); /* unannounced: reported (it cannot tell) */
    CU_ASSERT_EQUAL(watch_until(w, 2, 3.0), 2);
    ldn_net_watch_quiet(w); /* the job ends: nothing more is reported */
    CU_ASSERT(!delivered(zctx, router, ep, 1 << 20));
    CU_ASSERT_EQUAL(watch_until(w, 3, 1.0), 2);
    CU_ASSERT_EQUAL(ldn_net_watch_refused(w), 0);
    ldn_net_watch_destroy(&w);
    CU_ASSERT_PTR_NULL(w);
    ldn_net_watch_destroy(&w);
    ldn_net_close(&router);
    zmq_ctx_term(zctx);
    ldn_net_set_max_frame(old);
}

/* ldn_net_send does not send a frame above the limit: the receiver would drop the connection. */
static void test_send_above_limit(void)
{
    int64_t old = ldn_net_max_frame();
    ldn_net_set_max_frame(64 << 10);
    void *zctx = zmq_ctx_new();
    char err[LDN_ERRLEN] = "";
    void *d = ldn_net_socket(zctx, ZMQ_DEALER, "w1", err, sizeof err);
    CU_ASSERT_FATAL(d != NULL);
    static char big[(64 << 10) + 1];
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PARAMS, 1);
    h.nframes = 1;
    h.lens[0] = sizeof big;
    const void *frames[1] = {big};
    CU_ASSERT_EQUAL(ldn_net_send(d, NULL, 0, &h, frames, err, sizeof err), LDN_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "net.max_message_mb"));
    ldn_net_close(&d);
    zmq_ctx_term(zctx);
    ldn_net_set_max_frame(old);
}

/* Messages of 64 KiB to a peer that never reads: the sender's queue (plus the peer's and the
 * kernel's buffers) fills, and the send after it fails naming net.queue_messages and the peer.
 * Without a send high-water mark the queue would grow without end (the loop's 3000 messages). */
static void test_queue_full(void)
{
    int old_q = ldn_net_queue();
    ldn_net_set_queue(10);
    ldn_net_set_send_timeout(0.2);
    void *zctx = zmq_ctx_new();
    char ep[LDN_NET_ENDPOINT_MAX], err[LDN_ERRLEN] = "";
    void *router = bound_router(zctx, ep, sizeof ep);
    void *d = ldn_net_socket(zctx, ZMQ_DEALER, "w1", err, sizeof err);
    CU_ASSERT_FATAL(d && zmq_connect(d, ep) == 0);
    static char chunk[64 << 10];
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PARAMS, 1);
    h.nframes = 1;
    h.lens[0] = sizeof chunk;
    const void *frames[1] = {chunk};
    /* the dealer says hello so that the router knows w1 */
    CU_ASSERT(ldn_net_send(d, NULL, 0, &h, frames, err, sizeof err) > 0);
    struct ldn_msg m;
    CU_ASSERT_FATAL(ldn_net_recv(router, 1, &m, 2000, err, sizeof err) == 0);
    ldn_msg_close(&m);
    long rc = 0;
    int sent = 0;
    while (sent < 3000 && (rc = ldn_net_send(router, "w1", 2, &h, frames, err, sizeof err)) > 0)
        sent++;
    CU_ASSERT_EQUAL(rc, LDN_ERR_TIMEOUT);
    CU_ASSERT(sent < 3000);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "net.queue_messages: 10 messages"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "'w1'"));
    /* the other way: the router never reads the dealer's messages */
    sent = 0;
    while (sent < 3000 && (rc = ldn_net_send(d, NULL, 0, &h, frames, err, sizeof err)) > 0)
        sent++;
    CU_ASSERT_EQUAL(rc, LDN_ERR_TIMEOUT);
    CU_ASSERT(sent < 3000);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "net.queue_messages: 10 messages"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ep));
    int hwm = 0;
    size_t sz = sizeof hwm;
    zmq_getsockopt(d, ZMQ_SNDHWM, &hwm, &sz);
    CU_ASSERT_EQUAL(hwm, 10);
    int zero = 0; /* the queued messages go at close */
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(router, ZMQ_LINGER, &zero, sizeof zero);
    ldn_net_close(&d);
    ldn_net_close(&router);
    zmq_ctx_term(zctx);
    ldn_net_set_queue(old_q);
    ldn_net_set_send_timeout(LDN_NET_SEND_TIMEOUT_MS_DEFAULT / 1000.0);
}

static void test_ident_is(void)
{
    struct ldn_msg m = {.ident = "c0\0x", .ident_len = 4};
    CU_ASSERT(!ldn_net_ident_is(&m, "c0"));
    m.ident_len = 2;
    CU_ASSERT(ldn_net_ident_is(&m, "c0"));
    CU_ASSERT(!ldn_net_ident_is(&m, "c"));
}

static const struct ldn_cu_test TESTS[] = {
    {"max_frame", test_max_frame},
    {"watch", test_watch},
    {"send_above_limit", test_send_above_limit},
    {"queue_full", test_queue_full},
    {"ident_is", test_ident_is},
    {NULL, NULL},
};

LDN_CU_MAIN("net", TESTS)
