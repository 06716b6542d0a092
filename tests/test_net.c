/* Socket factory limits: a frame bigger than ldn_net_max_frame() is never delivered (ZeroMQ
 * drops the connection that sent it), one within the bound is; the routing id comparison
 * counts the id's length. */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "cu_main.h"
#include "net.h"
#include "status.h"

/* Send one frame of `bytes` from a fresh DEALER to router; 1 when router received it. */
static int delivered(void *zctx, void *router, const char *endpoint, size_t bytes)
{
    static char big[1 << 20];
    void *d = ldn_net_socket(zctx, ZMQ_DEALER, "w1", NULL, 0);
    CU_ASSERT_FATAL(d != NULL);
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

static void test_max_frame(void)
{
    int64_t old = ldn_net_max_frame();
    ldn_net_set_max_frame(64 << 10);
    void *zctx = zmq_ctx_new();
    char ep[LDN_NET_ENDPOINT_MAX], err[LDN_ERRLEN];
    void *router = ldn_net_socket(zctx, ZMQ_ROUTER, NULL, err, sizeof err);
    CU_ASSERT_FATAL(router &&
                    ldn_net_bind(router, "127.0.0.1", ep, sizeof ep, err, sizeof err) == 0);
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
    {"ident_is", test_ident_is},
    {NULL, NULL},
};

LDN_CU_MAIN("net", TESTS)
