/* CURVE authentication of the data plane: the job's key pairs, the CURVE options of the
 * socket factory's sockets, and a ZAP handler (ZeroMQ RFC 27) that admits only the job's own
 * clients.
 *
 * Rank 0 makes one key pair per rank (ldn_auth_keypairs) and hands them out over MPI (the
 * caller's part: nothing here knows MPI, nothing is written to disk). Each rank then builds
 * its ldn_auth from every rank's public key, the name (routing id) each client rank connects
 * with, and its own secret key. A listening rank runs the ZAP handler: a CURVE client whose
 * public key belongs to one of the job's client ranks is answered 200 with that rank's name
 * as the ZAP user id, which ZeroMQ attaches to every message of the connection ("User-Id",
 * read by ldn_net_recv and checked by ldn_net_ident_is); any other key or mechanism is
 * answered 400 and ZeroMQ drops the connection before delivering a message of it. */
#ifndef LDN_AUTH_H
#define LDN_AUTH_H

#include <stddef.h>

#include "net.h"

struct ldn_auth;

#define LDN_AUTH_KEY_Z85 41 /* a key as Z85 text (40 characters) with its NUL */
#define LDN_AUTH_DOMAIN "ladon"

/* What every rank knows of rank r: its public key and the routing id it connects with ("" for
 * a rank that never connects: its key is refused as a client). Plain bytes, for MPI_Bcast. */
struct ldn_auth_peer {
    char pub[LDN_AUTH_KEY_Z85];
    char name[LDN_NET_IDENT_MAX];
};

/* n fresh key pairs (zmq_curve_keypair): public keys into peers[0..n).pub, secret keys into
 * sec[0..n). Returns 0 or a negative status with err (ZeroMQ built without CURVE, say). */
int ldn_auth_keypairs(int n, struct ldn_auth_peer *peers, char (*sec)[LDN_AUTH_KEY_Z85], char *err,
                      size_t errlen);

/* The authenticator of rank `self` of n ranks, peers[r] as above, secret this rank's secret
 * key; everything is copied. With serve != 0 the ZAP
 * handler starts on zctx (a thread with a REP socket on inproc://zeromq.zap.01): make the
 * authenticator before any CURVE server socket of zctx is bound. Returns the authenticator
 * (destroy it before zmq_ctx_term of zctx) or NULL with err. */
struct ldn_auth *ldn_auth_new(void *zctx, int n, int self, const struct ldn_auth_peer *peers,
                              const char *secret, int serve, char *err, size_t errlen);

/* Stop the ZAP handler (joins its thread), free *a and set it to NULL; NULL accepted. */
void ldn_auth_destroy(struct ldn_auth **a);

/* Rank `rank` listens at endpoint (after the endpoint exchange): ldn_auth_client finds the
 * server's public key by the endpoint it connects to. Returns 0 or a negative status. */
int ldn_auth_set_endpoint(struct ldn_auth *a, int rank, const char *endpoint, char *err,
                          size_t errlen);

/* Make sock a CURVE server with this rank's key pair, in ZAP domain LDN_AUTH_DOMAIN, failing
 * closed (a connection no ZAP handler accepted is refused). Call before zmq_bind. */
int ldn_auth_server(const struct ldn_auth *a, void *sock, char *err, size_t errlen);

/* Make sock a CURVE client with this rank's key pair of the rank listening at endpoint (set by
 * ldn_auth_set_endpoint). Call before zmq_connect. Returns 0 or a negative status with err. */
int ldn_auth_client(const struct ldn_auth *a, void *sock, const char *endpoint, char *err,
                    size_t errlen);

/* Connections the ZAP handler admitted and refused so far. Thread-safe. */
long ldn_auth_admitted(const struct ldn_auth *a);
long ldn_auth_refused(const struct ldn_auth *a);

#endif
