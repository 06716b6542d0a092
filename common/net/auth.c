/* CURVE key pairs, CURVE socket options and the ZAP handler (ZeroMQ RFC 27). */
#define _POSIX_C_SOURCE 200809L
#include "auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "status.h"

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_MAX_PARTS 8 /* a CURVE request has 7; more are drained and refused */
#define KEY_BYTES 32
#define WARN_FIRST 3
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93 /* a draft option in 4.3: refused by a build without drafts */
#endif                            /* refusals logged one by one; later ones only counted */

struct ldn_auth {
    int n, self;
    struct ldn_auth_peer *peers;             /* [n] */
    uint8_t (*bin)[KEY_BYTES];               /* [n]: client keys decoded, for ZAP */
    char (*endpoints)[LDN_NET_ENDPOINT_MAX]; /* [n]: where each rank listens, "" = nowhere */
    char secret[LDN_AUTH_KEY_Z85];
    void *zap, *ctl_in, *ctl_out; /* REP (thread), stop pipe (thread end, owner end) */
    pthread_t thread;
    int running;
    atomic_long admitted, refused;
};

int ldn_auth_keypairs(int n, struct ldn_auth_peer *peers, char (*sec)[LDN_AUTH_KEY_Z85], char *err,
                      size_t errlen)
{
    if (!zmq_has("curve"))
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "net.curve: this ZeroMQ was built without CURVE (zmq_has(\"curve\") is "
                        "0); rebuild it with libsodium or set net.curve: false on a trusted "
                        "network");
    for (int r = 0; r < n; r++)
        if (zmq_curve_keypair(peers[r].pub, sec[r]) != 0)
            return ldn_fail(err, errlen, LDN_ERR_IO, "zmq_curve_keypair: %s", zmq_strerror(errno));
    return LDN_OK;
}

/* One part of the request into buf (NUL-terminated, cut at len - 1); its size, -1 on error. */
static long recv_part(void *sock, char *buf, size_t len, int *more)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    size_t n = zmq_msg_size(&m);
    size_t keep = n < len ? n : len - 1;
    memcpy(buf, zmq_msg_data(&m), keep);
    buf[keep] = '\0';
    *more = zmq_msg_more(&m);
    zmq_msg_close(&m);
    return (long)n;
}

/* The client rank whose public key is key (KEY_BYTES), or -1. */
static int client_of_key(const struct ldn_auth *a, const char *key)
{
    for (int r = 0; r < a->n; r++)
        if (a->peers[r].name[0] && memcmp(a->bin[r], key, KEY_BYTES) == 0)
            return r;
    return -1;
}

/* Answer one ZAP request: 200 with the client rank's name as user id when the mechanism is
 * CURVE and the key is a client key of this job, else 400. Every request gets a reply (the
 * REP socket's turn), however malformed. */
static void zap_answer(struct ldn_auth *a)
{
    enum { VERSION, REQUEST_ID, DOMAIN, ADDRESS, IDENTITY, MECHANISM, KEY };
    char part[ZAP_MAX_PARTS][64];
    long size[ZAP_MAX_PARTS] = {0};
    int n = 0, more = 1;
    while (more) {
        char skip[8];
        long got = n < ZAP_MAX_PARTS ? recv_part(a->zap, part[n], sizeof part[n], &more)
                                     : recv_part(a->zap, skip, sizeof skip, &more);
        if (got < 0)
            return; /* context ending: no reply possible */
        if (n < ZAP_MAX_PARTS)
            size[n] = got;
        n++;
    }
    const char *why = NULL;
    int r = -1;
    if (n != KEY + 1 || strcmp(part[VERSION], "1.0") != 0)
        why = "malformed ZAP request";
    else if (strcmp(part[MECHANISM], "CURVE") != 0)
        why = "not a CURVE client";
    else if (size[KEY] != KEY_BYTES || (r = client_of_key(a, part[KEY])) < 0)
        why = "public key is not one of this job's";
    if (why) {
        long k = atomic_fetch_add(&a->refused, 1) + 1;
        if (k <= WARN_FIRST)
            LDN_WARN("net.curve: refused a connection from %s: %s%s",
                     n > ADDRESS && part[ADDRESS][0] ? part[ADDRESS] : "an unknown address", why,
                     k == WARN_FIRST ? " (further refusals are only counted)" : "");
    } else
        atomic_fetch_add(&a->admitted, 1);
    const char *reply[6] = {"1.0",
                            n > REQUEST_ID ? part[REQUEST_ID] : "",
                            why ? "400" : "200",
                            why ? why : "OK",
                            why ? "" : a->peers[r].name,
                            ""};
    size_t rlen[6];
    for (int i = 0; i < 6; i++)
        rlen[i] = strlen(reply[i]);
    if (n > REQUEST_ID) /* echoed as received (binary), cut at the buffer */
        rlen[1] = size[REQUEST_ID] < (long)sizeof part[REQUEST_ID] ? (size_t)size[REQUEST_ID]
                                                                   : sizeof part[REQUEST_ID] - 1;
    for (int i = 0; i < 6; i++)
        if (zmq_send(a->zap, reply[i], rlen[i], i < 5 ? ZMQ_SNDMORE : 0) < 0)
            return;
}

/* The ZAP thread: answers requests until the stop pipe speaks or the context ends. */
static void *zap_main(void *arg)
{
    struct ldn_auth *a = arg;
    for (;;) {
        zmq_pollitem_t it[2] = {{a->zap, 0, ZMQ_POLLIN, 0}, {a->ctl_in, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, 2, 1000) < 0) { /* a service loop: woken by a request or the pipe */
            if (errno == EINTR)
                continue;
            break;
        }
        if (it[1].revents & ZMQ_POLLIN)
            break;
        if (it[0].revents & ZMQ_POLLIN)
            zap_answer(a);
    }
    zmq_close(a->zap);
    zmq_close(a->ctl_in);
    a->zap = a->ctl_in = NULL;
    return NULL;
}

/* The ZAP socket and the stop pipe, then the thread. */
static int start_zap(struct ldn_auth *a, void *zctx, char *err, size_t errlen)
{
    char pipe_ep[64];
    snprintf(pipe_ep, sizeof pipe_ep, "inproc://ldn-auth-stop-%p", (void *)a);
    int zero = 0;
    if (!(a->zap = zmq_socket(zctx, ZMQ_REP)) || !(a->ctl_in = zmq_socket(zctx, ZMQ_PAIR)) ||
        !(a->ctl_out = zmq_socket(zctx, ZMQ_PAIR)))
        return ldn_fail(err, errlen, LDN_ERR_IO, "ZAP handler: zmq_socket: %s",
                        zmq_strerror(errno));
    zmq_setsockopt(a->zap, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(a->ctl_in, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(a->ctl_out, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(a->zap, ZAP_ENDPOINT) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO,
                        "ZAP handler: bind %s: %s (another handler in this ZeroMQ context?)",
                        ZAP_ENDPOINT, zmq_strerror(errno));
    if (zmq_bind(a->ctl_out, pipe_ep) != 0 || zmq_connect(a->ctl_in, pipe_ep) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "ZAP handler: stop pipe %s: %s", pipe_ep,
                        zmq_strerror(errno));
    int rc = pthread_create(&a->thread, NULL, zap_main, a);
    if (rc != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "ZAP handler: pthread_create: %s", strerror(rc));
    a->running = 1;
    return LDN_OK;
}

struct ldn_auth *ldn_auth_new(void *zctx, int n, int self, const struct ldn_auth_peer *peers,
                              const char *secret, int serve, char *err, size_t errlen)
{
    if (n < 1 || self < 0 || self >= n) {
        ldn_fail(err, errlen, LDN_ERR_CONFIG, "auth: rank %d of %d ranks", self, n);
        return NULL;
    }
    struct ldn_auth *a = calloc(1, sizeof *a);
    if (a) {
        a->peers = calloc((size_t)n, sizeof *a->peers);
        a->bin = calloc((size_t)n, sizeof *a->bin);
        a->endpoints = calloc((size_t)n, sizeof *a->endpoints);
    }
    if (!a || !a->peers || !a->bin || !a->endpoints) {
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "auth: out of memory");
        ldn_auth_destroy(&a);
        return NULL;
    }
    a->n = n;
    a->self = self;
    atomic_init(&a->admitted, 0);
    atomic_init(&a->refused, 0);
    for (int r = 0; r < n; r++) {
        memcpy(&a->peers[r], &peers[r], sizeof peers[r]);
        a->peers[r].pub[LDN_AUTH_KEY_Z85 - 1] = '\0';
        a->peers[r].name[LDN_NET_IDENT_MAX - 1] = '\0';
        if (strlen(a->peers[r].pub) != LDN_AUTH_KEY_Z85 - 1 ||
            !zmq_z85_decode(a->bin[r], a->peers[r].pub)) {
            ldn_fail(err, errlen, LDN_ERR_FORMAT, "auth: the public key of rank %d is not Z85", r);
            ldn_auth_destroy(&a);
            return NULL;
        }
    }
    snprintf(a->secret, sizeof a->secret, "%s", secret);
    if (strlen(a->secret) != LDN_AUTH_KEY_Z85 - 1) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "auth: the secret key of rank %d is not Z85", self);
        ldn_auth_destroy(&a);
        return NULL;
    }
    if (serve && start_zap(a, zctx, err, errlen) != 0)
        ldn_auth_destroy(&a);
    return a;
}

void ldn_auth_destroy(struct ldn_auth **pa)
{
    if (!pa || !*pa)
        return;
    struct ldn_auth *a = *pa;
    if (a->running) {
        zmq_send(a->ctl_out, "", 0, 0);
        pthread_join(a->thread, NULL);
    }
    /* sockets the thread never got (start_zap failed half way) */
    if (a->zap)
        zmq_close(a->zap);
    if (a->ctl_in)
        zmq_close(a->ctl_in);
    if (a->ctl_out)
        zmq_close(a->ctl_out);
    memset(a->secret, 0, sizeof a->secret);
    free(a->peers);
    free(a->bin);
    free(a->endpoints);
    free(a);
    *pa = NULL;
}

int ldn_auth_set_endpoint(struct ldn_auth *a, int rank, const char *endpoint, char *err,
                          size_t errlen)
{
    if (rank < 0 || rank >= a->n)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG, "auth: no rank %d", rank);
    snprintf(a->endpoints[rank], sizeof a->endpoints[rank], "%s", endpoint);
    return LDN_OK;
}

int ldn_auth_server(const struct ldn_auth *a, void *sock, char *err, size_t errlen)
{
    int one = 1;
    const char *dom = LDN_AUTH_DOMAIN;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, a->secret, LDN_AUTH_KEY_Z85 - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, dom, strlen(dom)) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "CURVE server options: %s", zmq_strerror(errno));
    /* Fail closed where ZeroMQ can (a connection no ZAP handler answered is refused). Without
     * it ZeroMQ admits every CURVE client while no handler is bound: ours is bound before the
     * first server socket and unbound only after the last is closed (ldn_auth_destroy). */
    if (zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one) != 0 && errno != EINVAL)
        return ldn_fail(err, errlen, LDN_ERR_IO, "ZMQ_ZAP_ENFORCE_DOMAIN: %s", zmq_strerror(errno));
    return LDN_OK;
}

int ldn_auth_client(const struct ldn_auth *a, void *sock, const char *endpoint, char *err,
                    size_t errlen)
{
    int r = 0;
    while (r < a->n && strcmp(a->endpoints[r], endpoint) != 0)
        r++;
    if (!endpoint[0] || r == a->n)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "net.curve: no rank of this job listens at %s, so there is no server "
                        "key to connect with",
                        endpoint);
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, a->peers[r].pub, LDN_AUTH_KEY_Z85 - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, a->peers[a->self].pub, LDN_AUTH_KEY_Z85 - 1) !=
            0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, a->secret, LDN_AUTH_KEY_Z85 - 1) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "CURVE client options: %s", zmq_strerror(errno));
    return LDN_OK;
}

long ldn_auth_admitted(const struct ldn_auth *a)
{
    return atomic_load(&a->admitted);
}

long ldn_auth_refused(const struct ldn_auth *a)
{
    return atomic_load(&a->refused);
}
