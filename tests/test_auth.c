/* CURVE authentication: key pairs, and a ZAP handler that admits only the job's client keys
 * and names each connection by the key it authenticated with (the ZAP user id that
 * ldn_net_ident_is checks). */
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "auth.h"
#include "cu_main.h"
#include "net.h"
#include "status.h"

enum { COORD, WORKER, SERVER, N_RANKS }; /* ranks 0..2 of the test "job" */

static void test_keypairs(void)
{
    struct ldn_auth_peer p[3];
    char sec[3][LDN_AUTH_KEY_Z85], err[LDN_ERRLEN] = "";
    CU_ASSERT_FATAL(ldn_auth_keypairs(3, p, sec, err, sizeof err) == 0);
    for (int i = 0; i < 3; i++) {
        uint8_t bin[32];
        CU_ASSERT(strlen(p[i].pub) == 40 && strlen(sec[i]) == 40);
        CU_ASSERT(zmq_z85_decode(bin, p[i].pub) != NULL);
        CU_ASSERT(strcmp(p[i].pub, sec[i]) != 0);
        for (int j = 0; j < i; j++)
            CU_ASSERT(strcmp(p[i].pub, p[j].pub) != 0 && strcmp(sec[i], sec[j]) != 0);
    }
    /* a key that is not Z85 is refused by name */
    memset(p[1].pub, '~', 40);
    strcpy(p[0].name, "c0");
    void *zctx = zmq_ctx_new();
    struct ldn_auth *a = ldn_auth_new(zctx, 3, 0, p, sec[0], 0, err, sizeof err);
    CU_ASSERT(a == NULL && strstr(err, "rank 1") != NULL);
    zmq_ctx_term(zctx);
}

/* A DEALER with routing id `id`, a CURVE client with key pair (pub, sec) of the server key
 * `server` when pub != NULL, connected to ep. */
static void *client(void *zctx, const char *id, const char *pub, const char *sec,
                    const char *server, const char *ep)
{
    void *d = ldn_net_socket(zctx, ZMQ_DEALER, id, NULL, 0);
    CU_ASSERT_FATAL(d != NULL);
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    if (pub) {
        zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, server, 40);
        zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    CU_ASSERT(zmq_connect(d, ep) == 0);
    return d;
}

/* Send a HELLO from d; receive on router within ms. 1 with *m filled when it arrived. */
static int hello(void *d, void *router, int ms, struct ldn_msg *m)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_HELLO, 1);
    ldn_net_send(d, NULL, 0, &h, NULL, NULL, 0);
    char err[LDN_ERRLEN];
    int rc = ldn_net_recv(router, 1, m, ms, err, sizeof err);
    if (rc == 0)
        ldn_msg_close(m);
    return rc == 0;
}

static void test_zap(void)
{
    /* a refused client's socket has no connection: its sends must not wait for ever */
    ldn_net_set_send_timeout(0.5);
    struct ldn_auth_peer p[N_RANKS], rogue;
    char sec[N_RANKS][LDN_AUTH_KEY_Z85], rogue_sec[LDN_AUTH_KEY_Z85], err[LDN_ERRLEN] = "";
    CU_ASSERT_FATAL(ldn_auth_keypairs(N_RANKS, p, sec, err, sizeof err) == 0);
    CU_ASSERT_FATAL(ldn_auth_keypairs(1, &rogue, &rogue_sec, err, sizeof err) == 0);
    strcpy(p[COORD].name, "c0");
    strcpy(p[WORKER].name, "w1");
    p[SERVER].name[0] = '\0'; /* a server never connects: its key is no client key */

    void *zctx = zmq_ctx_new();
    struct ldn_auth *a = ldn_auth_new(zctx, N_RANKS, COORD, p, sec[COORD], 1, err, sizeof err);
    CU_ASSERT_FATAL(a != NULL);
    /* one ZAP handler per context */
    struct ldn_auth *b = ldn_auth_new(zctx, N_RANKS, COORD, p, sec[COORD], 1, err, sizeof err);
    CU_ASSERT(b == NULL && strstr(err, "zeromq.zap.01") != NULL);
    ldn_net_use_auth(a);
    char ep[LDN_NET_ENDPOINT_MAX];
    void *router = ldn_net_listen(zctx, "lo", ep, sizeof ep, err, sizeof err);
    CU_ASSERT_FATAL(router != NULL);
    CU_ASSERT(ldn_auth_set_endpoint(a, COORD, ep, err, sizeof err) == 0);

    struct ldn_msg m;
    /* the job's worker key, its own routing id: admitted, named by its key */
    void *w = client(zctx, "w1", p[WORKER].pub, sec[WORKER], p[COORD].pub, ep);
    CU_ASSERT(hello(w, router, 3000, &m));
    CU_ASSERT(m.user_len == 2 && strcmp(m.user, "w1") == 0);
    CU_ASSERT(ldn_net_ident_is(&m, "w1"));
    /* the worker's key under another routing id: delivered, but it is no one else */
    void *w5 = client(zctx, "w5", p[WORKER].pub, sec[WORKER], p[COORD].pub, ep);
    CU_ASSERT(hello(w5, router, 3000, &m));
    CU_ASSERT(!ldn_net_ident_is(&m, "w5") && !ldn_net_ident_is(&m, "w1"));
    long admitted = ldn_auth_admitted(a);
    CU_ASSERT(admitted == 2);

    /* refused: a key not of the job, the server's key (not a client), no CURVE at all */
    void *r1 = client(zctx, "w1", rogue.pub, rogue_sec, p[COORD].pub, ep);
    void *r2 = client(zctx, "c0", p[SERVER].pub, sec[SERVER], p[COORD].pub, ep);
    void *r3 = client(zctx, "c0", NULL, NULL, NULL, ep);
    CU_ASSERT(!hello(r1, router, 1000, &m));
    CU_ASSERT(!hello(r2, router, 500, &m));
    CU_ASSERT(!hello(r3, router, 500, &m));
    CU_ASSERT(ldn_auth_refused(a) >= 2); /* the NULL client fails before ZAP */
    CU_ASSERT(ldn_auth_admitted(a) == admitted);
    /* the admitted worker still gets through */
    CU_ASSERT(hello(w, router, 3000, &m) && ldn_net_ident_is(&m, "w1"));

    /* ldn_net_connect makes a CURVE client from the registered authenticator */
    struct ldn_auth *c = ldn_auth_new(zctx, N_RANKS, WORKER, p, sec[WORKER], 0, err, sizeof err);
    CU_ASSERT_FATAL(c != NULL);
    CU_ASSERT(ldn_auth_set_endpoint(c, COORD, ep, err, sizeof err) == 0);
    ldn_net_use_auth(c);
    void *k = ldn_net_connect(zctx, "w1", ep, "the coordinator", err, sizeof err);
    CU_ASSERT(k != NULL);
    CU_ASSERT(ldn_net_connect(zctx, "w1", "tcp://127.0.0.1:1", "nobody", err, sizeof err) == NULL);
    CU_ASSERT(strstr(err, "net.curve") != NULL);
    ldn_net_use_auth(a);
    CU_ASSERT(k && hello(k, router, 3000, &m) && ldn_net_ident_is(&m, "w1"));

    ldn_net_close(&k);
    ldn_net_close(&w);
    ldn_net_close(&w5);
    ldn_net_close(&r1);
    ldn_net_close(&r2);
    ldn_net_close(&r3);
    ldn_net_close(&router);
    ldn_net_use_auth(NULL);
    ldn_auth_destroy(&c);
    ldn_auth_destroy(&a);
    CU_ASSERT(a == NULL);
    ldn_auth_destroy(&a); /* NULL accepted */
    zmq_ctx_term(zctx);
}

/* Fail closed: a CURVE server in a context without a ZAP handler admits no one, not even a
 * client with the job's keys (ZMQ_ZAP_ENFORCE_DOMAIN). */
static void test_no_handler(void)
{
    ldn_net_set_send_timeout(0.5);
    struct ldn_auth_peer p[2];
    char sec[2][LDN_AUTH_KEY_Z85], err[LDN_ERRLEN] = "";
    CU_ASSERT_FATAL(ldn_auth_keypairs(2, p, sec, err, sizeof err) == 0);
    strcpy(p[0].name, "c0");
    strcpy(p[1].name, "w1");
    void *zctx = zmq_ctx_new();
    struct ldn_auth *a = ldn_auth_new(zctx, 2, 0, p, sec[0], 0, err, sizeof err);
    CU_ASSERT_FATAL(a != NULL);
    void *router = ldn_net_socket(zctx, ZMQ_ROUTER, NULL, err, sizeof err);
    char ep[LDN_NET_ENDPOINT_MAX];
    CU_ASSERT_FATAL(router && ldn_auth_server(a, router, err, sizeof err) == 0 &&
                    ldn_net_bind(router, "127.0.0.1", ep, sizeof ep, err, sizeof err) == 0);
    void *w = client(zctx, "w1", p[1].pub, sec[1], p[0].pub, ep);
    struct ldn_msg m;
    CU_ASSERT(!hello(w, router, 1000, &m));
    ldn_net_close(&w);
    ldn_net_close(&router);
    ldn_auth_destroy(&a);
    zmq_ctx_term(zctx);
}

static const struct ldn_cu_test TESTS[] = {
    {"keypairs", test_keypairs},
    {"zap", test_zap},
    {"no ZAP handler: fail closed", test_no_handler},
    {NULL, NULL},
};

LDN_CU_MAIN("auth", TESTS)
