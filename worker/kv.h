/* The worker's key-value client: pushes trunk-gradient chunks to and pulls trunk weights from
 * the parameter servers (ps-lite's KVWorker shape). One DEALER per server. It is the transport
 * only: what a compressed push carries is made by the worker's struct ldn_compressor
 * (common/codec/compressor.h), which the client borrows; the client cuts pushes at chunk
 * boundaries, frames them, decodes pull deltas and counts bytes.
 *
 * A step is: ldn_kv_pull_begin(clock + 1) (the request goes out first, so each server can
 * answer chunk by chunk as it applies them), ldn_kv_push_range() for each block of gradients
 * as the backward pass finishes it, then ldn_kv_pull_end() to collect every chunk. */
#ifndef LDN_KV_H
#define LDN_KV_H

#include <stddef.h>
#include <stdint.h>

#include "keyspace.h"
#include "net.h"
#include "plan.h"

/* One worker's client of every server (opaque). */
struct ldn_kv;
struct ldn_compressor;

/* Connect to the servers (endpoints[s], server s holding ranges[s]); chunks is the job's
 * chunk table (borrowed for the client's lifetime). Returns NULL with err. */
struct ldn_kv *ldn_kv_new(void *zctx, int rank, int n_servers,
                          char (*endpoints)[LDN_NET_ENDPOINT_MAX], const struct ldn_range *ranges,
                          const struct ldn_chunk *chunks, int n_chunks, double timeout_s, char *err,
                          size_t errlen);
/* Close the sockets and free the client; accepts NULL and *kv == NULL. */
void ldn_kv_destroy(struct ldn_kv **kv);
/* Keys of the job's largest chunk (what one push may carry). */
int64_t ldn_kv_biggest_chunk(const struct ldn_kv *kv);

/* Compress every following push with comp (borrowed: it must outlive kv's pushes; NULL: dense
 * fp32 again). Its buffers must fit ldn_kv_biggest_chunk keys. */
void ldn_kv_set_compressor(struct ldn_kv *kv, struct ldn_compressor *comp);
/* Called about once a second while a pull waits for the servers (e.g. a heartbeat); NULL for
 * none. ud is passed back and borrowed for kv's lifetime. */
void ldn_kv_set_idle(struct ldn_kv *kv, void (*idle)(void *ud), void *ud);

/* Push every chunk inside keys [lo, hi) of grad (the whole trunk's gradient vector) for
 * `step`: each chunk as the compressor made it (a codec payload, or dense fp32 below
 * compress.min_elements; with compress.scope = global nothing leaves until the range that
 * completes the trunk arrives, then every chunk does), or plain fp32 without a compressor.
 * Uncompressed, with inflight == NULL the values are copied before return; otherwise ZeroMQ
 * reads them later and *inflight counts the frames it still holds (ldn_net_wait_sent), and
 * grad must not change until it is back to 0. Compressed pushes are always copied. */
int ldn_kv_push_range(struct ldn_kv *kv, int64_t step, const float *grad, int64_t lo, int64_t hi,
                      atomic_int *inflight, char *err, size_t errlen);

/* Tell every server that this worker has no gradient for `step` (its group sat it out). */
int ldn_kv_clock(struct ldn_kv *kv, int64_t step, char *err, size_t errlen);

/* Ask every server for the trunk as of clock `clock`. */
int ldn_kv_pull_begin(struct ldn_kv *kv, int64_t clock, char *err, size_t errlen);
/* Receive every chunk of the open pull into params (at most timeout_s between answers). An
 * ERROR answer or a chunk that is not in the table is an error naming the server. */
int ldn_kv_pull_end(struct ldn_kv *kv, float *params, char *err, size_t errlen);
/* Receive chunks of the open pull until every chunk of trunk layer `layer` that holds rows
 * of [row_lo, row_hi) is in (a forward pass calls it block by block, so later blocks keep
 * arriving while earlier ones compute). Returns 0 at once when no pull is open. */
int ldn_kv_wait_rows(struct ldn_kv *kv, int layer, int row_lo, int row_hi, float *params, char *err,
                     size_t errlen);

/* pull_begin + pull_end. */
int ldn_kv_pull(struct ldn_kv *kv, int64_t clock, float *params, char *err, size_t errlen);

/* Cumulative figures since ldn_kv_new: bytes sent (every part of every message), bytes
 * received, what the pushed chunks weigh as dense fp32, and the oldest version (server clock)
 * any chunk of the last complete pull was served at. */
int64_t ldn_kv_bytes_push(const struct ldn_kv *kv);
int64_t ldn_kv_bytes_pull(const struct ldn_kv *kv);
int64_t ldn_kv_bytes_dense(const struct ldn_kv *kv);
int64_t ldn_kv_last_version(const struct ldn_kv *kv);

#endif
