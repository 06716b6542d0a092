/* ZeroMQ sockets and multipart messages in the wire format (common/wire.h).
 *
 * Receiving always drains every part of a multipart message, even a malformed one, so a
 * bad peer cannot desynchronise a socket. All waits take a timeout in milliseconds and
 * return LDN_ERR_TIMEOUT when it runs out. */
#ifndef LDN_NET_H
#define LDN_NET_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "wire.h"

#define LDN_NET_IDENT_MAX 32
#define LDN_NET_ENDPOINT_MAX 96

/* A received message: routing identity (ROUTER sockets), decoded header, payload frames. */
struct ldn_msg {
    char ident[LDN_NET_IDENT_MAX];
    size_t ident_len;
    char user[LDN_NET_IDENT_MAX]; /* ZAP user id of the connection ("" without CURVE) */
    size_t user_len;
    struct ldn_wire_msg hdr;
    int nframes;
    zmq_msg_t frames[LDN_WIRE_MAX_FRAMES];
    size_t bytes; /* total bytes received, all parts */
};

#define LDN_NET_MAX_FRAME_DEFAULT (64ll << 20) /* until ldn_net_set_max_frame is called */
#define LDN_NET_QUEUE_DEFAULT 10000            /* until ldn_net_set_queue is called */

/* The largest frame (bytes) a socket made from now on accepts (ZMQ_MAXMSGSIZE; a peer that
 * sends a bigger one is disconnected by ZeroMQ, nothing of it is buffered; net.max_message_mb):
 * the job's largest legitimate frame plus headroom, set before the job's sockets are made.
 * ldn_net_send refuses to send a frame above it. Thread-safe. */
void ldn_net_set_max_frame(int64_t bytes);
int64_t ldn_net_max_frame(void);

/* How many messages the sockets made from now on queue per peer and direction
 * (net.queue_messages: ZMQ_SNDHWM and ZMQ_RCVHWM; >= 1). A send to a peer whose queue is full
 * waits for the send timeout, then fails naming net.queue_messages and the peer. Thread-safe. */
void ldn_net_set_queue(int messages);
int ldn_net_queue(void);

#define LDN_NET_SEND_TIMEOUT_MS_DEFAULT 60000 /* until ldn_net_set_send_timeout is called */
/* How long a send may wait for a connection to take it (ZMQ_SNDTIMEO of the sockets made from
 * now on): a send blocks only when the socket has no connection at all (the peer is gone, never
 * connected, or its handshake was refused); it then fails with LDN_ERR_TIMEOUT instead of
 * waiting for ever. Thread-safe. */
void ldn_net_set_send_timeout(double seconds);

struct ldn_auth;

/* Authenticate the sockets made from now on with a (common/net/auth.h; NULL switches CURVE
 * off, the default): ldn_net_listen makes CURVE servers, ldn_net_connect CURVE clients, and
 * ldn_net_ident_is also wants the connection's ZAP user id to be the identity asked for.
 * a is borrowed until it is switched off again. Set before the job's sockets are made. */
void ldn_net_use_auth(const struct ldn_auth *a);
const struct ldn_auth *ldn_net_auth(void);

/* For timeout messages about a peer that never answered: with CURVE on, a hint that a failed
 * handshake (a key not of this job) looks exactly like that; "" with CURVE off. */
const char *ldn_net_auth_hint(void);

/* The IPv4 address to bind on: of interface `iface` when given (and not "auto"), otherwise
 * the first non-loopback interface that is up, otherwise 127.0.0.1. Returns 0 or negative
 * status with err. */
int ldn_net_local_address(const char *iface, char *ip, size_t len, char *err, size_t errlen);

/* The socket factory: every socket of the job is made here, so that what every socket needs
 * (limits, linger, and later authentication) is set in one place. A socket of `type` (ZMQ_DEALER,
 * ZMQ_ROUTER, ...) with linger 2 s, send and receive high-water marks of ldn_net_queue()
 * messages, frames of at most ldn_net_max_frame() bytes and, when ident != NULL,
 * that routing identity; a ROUTER reports unroutable sends (ZMQ_ROUTER_MANDATORY) and hands a
 * routing identity over to a newer connection that uses it (ZMQ_ROUTER_HANDOVER: a worker
 * reconnects with new sockets after a plan switch while its old connection may still be closing).
 * Returns the socket (close it with ldn_net_close) or NULL with err. */
void *ldn_net_socket(void *zctx, int type, const char *ident, char *err, size_t errlen);

/* A ROUTER bound to tcp://ip:* of interface iface (ldn_net_local_address), a CURVE server
 * when ldn_net_use_auth is on; the actual endpoint (tcp://ip:port) goes to endpoint. Returns
 * the socket or NULL with err. */
void *ldn_net_listen(void *zctx, const char *iface, char *endpoint, size_t len, char *err,
                     size_t errlen);

/* A DEALER with identity ident connected to endpoint, a CURVE client of the rank listening
 * there when ldn_net_use_auth is on; `peer` names the other end in errors ("server rank 2").
 * Returns the socket or NULL with err. */
void *ldn_net_connect(void *zctx, const char *ident, const char *endpoint, const char *peer,
                      char *err, size_t errlen);

/* Bind sock to tcp://ip:* and return the actual endpoint (tcp://ip:port) in endpoint. */
int ldn_net_bind(void *sock, const char *ip, char *endpoint, size_t len, char *err, size_t errlen);

/* Close *sock (NULL accepted) and set it to NULL. */
void ldn_net_close(void **sock);

/* Send header + frames (lengths from h->lens, count h->nframes), prefixed by a routing
 * identity when ident != NULL (ROUTER sockets). Returns bytes sent or negative status: a frame
 * above ldn_net_max_frame() is not sent (LDN_ERR_ARG, naming net.max_message_mb); a send that
 * no connection takes within the send timeout (the peer's queue is full, or there is no
 * connection) is LDN_ERR_TIMEOUT naming net.queue_messages and the peer (its routing identity,
 * or the endpoint a DEALER is connected to). */
long ldn_net_send(void *sock, const char *ident, size_t ident_len, const struct ldn_wire_msg *h,
                  const void *const *frames, char *err, size_t errlen);

/* As ldn_net_send, but the payload frames are not copied: ZeroMQ reads
 * them from the caller's memory later, from its I/O thread. *inflight is incremented per
 * frame here and decremented when ZeroMQ is done with it; the caller must not change the
 * frames until it is back to its earlier value (ldn_net_wait_sent). */
long ldn_net_send_zc(void *sock, const char *ident, size_t ident_len, const struct ldn_wire_msg *h,
                     const void *const *frames, atomic_int *inflight, char *err, size_t errlen);

/* Wait (sleeping in short steps, at most timeout_s) until *inflight is 0. Returns 0 or
 * LDN_ERR_TIMEOUT. */
int ldn_net_wait_sent(atomic_int *inflight, double timeout_s);

/* Receive one message within timeout_ms (-1 = forever). router != 0 reads an identity part
 * first. On LDN_ERR_FORMAT / LDN_ERR_PEER the message was consumed, m->ident is valid (to
 * answer with an error) and err says what was wrong. Close with ldn_msg_close. */
int ldn_net_recv(void *sock, int router, struct ldn_msg *m, int timeout_ms, char *err,
                 size_t errlen);
void ldn_msg_close(struct ldn_msg *m);

/* 1 when m's routing identity is exactly `want` (same length, same bytes: an identity of "c0"
 * followed by a NUL and anything else is not "c0") and, with CURVE on (ldn_net_use_auth),
 * the ZAP user id of the connection it came on is exactly `want` too (the key it
 * authenticated with is that peer's), else 0. */
int ldn_net_ident_is(const struct ldn_msg *m, const char *want);

/* Answer the sender of m (on a ROUTER) with an ERROR carrying status and text. */
void ldn_net_reply_error(void *sock, const struct ldn_msg *m, int from, int status,
                         const char *text);

#endif
