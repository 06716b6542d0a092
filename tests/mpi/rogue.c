/* A rogue client, started outside the job (no MPI): until SIGTERM it connects to a server's
 * and the coordinator's port under the job's own identities (routing ids w<rank> and c0), once
 * without CURVE and once as a CURVE client with keys of its own, and sends well-formed
 * messages: pulls of the weights, pushes of 1e30 gradients, STOP and STATS_REQUEST to the
 * server; HELLO, ERROR and DONE to the coordinator. It counts every reply and prints
 *   rogue: R replies to S messages sent
 * exiting 0 when no reply came (nothing read, no answer at all), 1 otherwise.
 *
 *   rogue SERVER_ENDPOINT COORD_ENDPOINT WORKER_RANK
 *
 * With `big BYTES` instead of the last two arguments it connects once without CURVE, sends one
 * frame of BYTES bytes (tests/mpi/bounds.sh: above net.max_message_mb), waits a second and
 * exits 0. */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "net.h"
#include "status.h"
#include "wire.h"

#define KEYS 64 /* keys pushed and pulled: inside any server's range */

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

/* A DEALER with routing id id, a CURVE client with fresh keys (and a server key it had to
 * guess) when curve != 0, connected to ep. */
static void *dealer(void *ctx, const char *id, int curve, const char *ep)
{
    void *d = ldn_net_socket(ctx, ZMQ_DEALER, id, NULL, 0);
    if (!d)
        return NULL;
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    if (curve) {
        char pub[41], sec[41], spub[41], ssec[41];
        zmq_curve_keypair(pub, sec);
        zmq_curve_keypair(spub, ssec);
        zmq_setsockopt(d, ZMQ_CURVE_SERVERKEY, spub, 40);
        zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, sec, 40);
    }
    zmq_connect(d, ep);
    return d;
}

static long sent;

/* Send header (+ one frame) without blocking: a DEALER whose handshake failed has no peer,
 * and a blocking send would wait for one forever. */
static void send_msg(void *sock, struct ldn_wire_msg *h, const void *frame)
{
    char buf[LDN_WIRE_HDR_MAX];
    int n = ldn_wire_encode(h, buf, sizeof buf);
    if (n < 0)
        return;
    int more = frame ? ZMQ_SNDMORE : 0;
    if (zmq_send(sock, buf, (size_t)n, ZMQ_DONTWAIT | more) < 0)
        return;
    if (frame && zmq_send(sock, frame, h->lens[0], ZMQ_DONTWAIT) < 0)
        return;
    sent++;
}

/* One round of messages to the server from "w<w>" and "c0". */
static void to_server(void *as_worker, void *as_coord, int w, int64_t step)
{
    static float grad[KEYS];
    for (int i = 0; i < KEYS; i++)
        grad[i] = 1e30f;
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PULL, w);
    h.pull.step = step;
    h.pull.lo = 0;
    h.pull.hi = KEYS;
    send_msg(as_worker, &h, NULL);
    ldn_wire_msg_init(&h, LDN_OP_PUSH, w);
    h.push.step = step;
    h.push.lo = 0;
    h.push.hi = KEYS;
    h.nframes = 1;
    h.lens[0] = sizeof grad;
    send_msg(as_worker, &h, grad);
    ldn_wire_msg_init(&h, LDN_OP_PULL, 0);
    h.pull.lo = 0;
    h.pull.hi = KEYS;
    send_msg(as_coord, &h, NULL);
    ldn_wire_msg_init(&h, LDN_OP_STATS_REQUEST, 0);
    send_msg(as_coord, &h, NULL);
    ldn_wire_msg_init(&h, LDN_OP_STOP, 0);
    send_msg(as_coord, &h, NULL);
}

/* One round to the coordinator from "w<w>": check in, an error that would abort the job, done. */
static void to_coord(void *as_worker, int w, int64_t step)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_HELLO, w);
    send_msg(as_worker, &h, NULL);
    ldn_wire_msg_init(&h, LDN_OP_ERROR, w);
    h.error.status = LDN_ERR_IO;
    h.error.step = step;
    snprintf(h.error.msg, sizeof h.error.msg, "rogue: worker %d failed", w);
    send_msg(as_worker, &h, NULL);
    ldn_wire_msg_init(&h, LDN_OP_DONE, w);
    h.done.step = step;
    send_msg(as_worker, &h, NULL);
}

/* Replies waiting on any of socks (drained). */
static long replies(void **socks, int n)
{
    long got = 0;
    for (int i = 0; i < n; i++) {
        struct ldn_msg m;
        char err[LDN_ERRLEN];
        int rc;
        while ((rc = ldn_net_recv(socks[i], 0, &m, 0, err, sizeof err)) != LDN_ERR_TIMEOUT) {
            if (rc == 0) {
                printf("rogue: got %s from rank %d\n", ldn_wire_op_name(m.hdr.op), m.hdr.from);
                ldn_msg_close(&m);
            }
            got++;
        }
    }
    return got;
}

/* One frame of `bytes` to ep from a plain DEALER (raw: ldn_net_send refuses a frame above its
 * own limit). */
static int send_big(const char *ep, long bytes)
{
    void *ctx = zmq_ctx_new();
    void *d = dealer(ctx, "w1", 0, ep);
    char *buf = bytes > 0 ? calloc(1, (size_t)bytes) : NULL;
    int rc = d && buf && zmq_send(d, buf, (size_t)bytes, 0) == (int)bytes ? 0 : 1;
    const struct timespec second = {1, 0};
    nanosleep(&second, NULL);
    printf("rogue: sent a frame of %ld bytes to %s: %s\n", bytes, ep, rc ? "failed" : "ok");
    free(buf);
    ldn_net_close(&d);
    zmq_ctx_term(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[2], "big"))
        return send_big(argv[1], atol(argv[3]));
    if (argc != 4) {
        fprintf(stderr, "usage: rogue SERVER_ENDPOINT COORD_ENDPOINT WORKER_RANK\n");
        return 2;
    }
    const char *sep = argv[1], *cep = argv[2];
    const int w = atoi(argv[3]);
    char wid[16];
    snprintf(wid, sizeof wid, "w%d", w);
    signal(SIGTERM, on_term);
    void *ctx = zmq_ctx_new();
    long got = 0;
    const struct timespec pause = {0, 100 * 1000 * 1000};
    for (int64_t round = 0; !stop; round++) {
        /* fresh connections each round: each is a new handshake */
        void *s[6] = {dealer(ctx, wid, 0, sep), dealer(ctx, "c0", 0, sep),
                      dealer(ctx, wid, 1, sep), dealer(ctx, "c0", 1, sep),
                      dealer(ctx, wid, 0, cep), dealer(ctx, wid, 1, cep)};
        for (int k = 0; k < 10 && !stop; k++) {
            to_server(s[0], s[1], w, round);
            to_server(s[2], s[3], w, round);
            to_coord(s[4], w, round);
            to_coord(s[5], w, round);
            nanosleep(&pause, NULL);
            got += replies(s, 6);
        }
        for (int i = 0; i < 6; i++)
            ldn_net_close(&s[i]);
    }
    zmq_ctx_term(ctx);
    printf("rogue: %ld replies to %ld messages sent\n", got, sent);
    return got != 0;
}
