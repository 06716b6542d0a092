/* compress.downlink = delta: a server's pull answers as what changed since that worker's last
 * pull. The downlink remembers what each worker holds of the server's range; a chunk's delta
 * is the keys whose weights differ from it (bitwise), coded sparse with compress.downlink_quant:
 * fp32 sends the new values of those keys (the worker stores them), fp16/int8 quantized
 * differences (the worker adds them; what rounding lost is in the next difference). With
 * change tracking (exact deltas of sparse pushes) it keeps, per worker, a bitmap of the keys
 * updated since its last pull, so a delta costs the keys changed rather than the keys held.
 * The wire format is in docs/wire.md. */
#ifndef LDN_DELTA_H
#define LDN_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

struct ldn_delta;

/* Delta state for W workers over st's range; `track`: keep change bitmaps (only when every
 * update is reported with ldn_delta_changed). NULL when out of memory. */
struct ldn_delta *ldn_delta_new(const struct ldn_config *cfg, const struct ldn_store *st, int W,
                                int track);
void ldn_delta_destroy(struct ldn_delta **dl);

/* Chunk k for worker w as a delta: 1 with the coded bytes in *out, *len (valid until the next
 * call) when they are fewer than the dense chunk's; 0 when dense is smaller, or w holds nothing
 * of the chunk yet. After sending the delta, call ldn_delta_delivered. */
int ldn_delta_delta(struct ldn_delta *dl, const struct ldn_store *st, int w, int k,
                    const void **out, size_t *len);
/* The delta just coded for (w, k) was sent: w now holds what it adds up to. */
void ldn_delta_delivered(struct ldn_delta *dl, int w, int k);
/* Chunk k's current weights were sent whole to worker w. */
void ldn_delta_dense(struct ldn_delta *dl, const struct ldn_store *st, int w, int k);
/* Keys (store-relative) just updated: with change tracking, pending for every worker. */
void ldn_delta_changed(struct ldn_delta *dl, const uint32_t *keys, int64_t m);
/* The delta codec's packed descriptor (LDN_CODEC_DESC_WORDS words), for the message header. */
const uint64_t *ldn_delta_desc(const struct ldn_delta *dl);

#endif
