/* Watching a listening socket for connections that ZeroMQ closes without a word.
 *
 * ZeroMQ drops a connection whose peer breaks the protocol, in particular one that sends a frame
 * above ZMQ_MAXMSGSIZE (net.max_message_mb): the receiver never sees the message, and nothing
 * is returned to anyone. A watch reads the socket's monitor events (zmq_socket_monitor:
 * ZMQ_EVENT_DISCONNECTED and the handshake failures) and makes such a drop visible: one warning
 * line naming the socket and the limit, and a count.
 *
 * The events say neither why a connection closed nor whose it was, and the job's own peers
 * close connections too (workers at the end of a job, their old sockets after a plan switch, a
 * lost worker). So a disconnect is held for `grace` seconds: when the owner announces departures
 * in time (ldn_net_watch_expect) or the end of the job (ldn_net_watch_quiet), it is forgotten;
 * otherwise it is reported. A connection that failed its handshake is counted as refused, not
 * as dropped (the ZAP handler logs refused keys). Not thread-safe: one thread polls a watch. */
#ifndef LDN_NET_WATCH_H
#define LDN_NET_WATCH_H

#include <stddef.h>
#include <stdint.h>

struct ldn_net_watch;

/* Watch sock (a bound ROUTER of context zctx; borrowed: destroy the watch before closing it),
 * `name` naming it in messages ("ps 2", "the coordinator"). Returns the watch or NULL with
 * err. */
struct ldn_net_watch *ldn_net_watch_new(void *zctx, void *sock, const char *name, double grace_s,
                                        char *err, size_t errlen);
/* Stop monitoring and free *w (NULL accepted); sets *w to NULL. */
void ldn_net_watch_destroy(struct ldn_net_watch **w);

/* Read the events that are there (never waits) as of time now (ldn_clock_now) and report every
 * disconnect held longer than the grace: one warning line each (the first 10; the rest are
 * counted). Returns how many were reported by this call. NULL w: 0. */
int ldn_net_watch_poll(struct ldn_net_watch *w, double now);

/* n of the job's own connections are about to close or just closed (a plan switch: every
 * worker's old sockets; a lost worker): that many disconnects held or arriving within the grace
 * are not reported. NULL w: nothing. */
void ldn_net_watch_expect(struct ldn_net_watch *w, int n, double now);

/* The job is ending: no disconnect from now on (or held now) is reported. NULL w: nothing. */
void ldn_net_watch_quiet(struct ldn_net_watch *w);

/* Disconnects reported so far, and connections that failed their handshake. NULL w: 0. */
int64_t ldn_net_watch_dropped(const struct ldn_net_watch *w);
int64_t ldn_net_watch_refused(const struct ldn_net_watch *w);

#endif
