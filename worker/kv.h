/* The worker's key-value client: pushes trunk-gradient chunks to and pulls trunk weights from
 * the parameter servers (ps-lite's KVWorker shape). One DEALER per server.
 *
 * A step is: ldn_kv_pull_begin(clock + 1) (the request goes out first, so each server can
 * answer chunk by chunk as it applies them), ldn_kv_push_range() for each block of gradients
 * as the backward pass finishes it, then ldn_kv_pull_end() to collect every chunk. */
#ifndef LDN_KV_H
#define LDN_KV_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "keyspace.h"
#include "net.h"
#include "plan.h"

struct ldn_kv {
    int rank;
    int n_servers;
    void **socks; /* DEALER per server */
    const struct ldn_range *ranges;
    const struct ldn_chunk *chunks;
    int n_chunks;
    int *server_ranks;
    double timeout_s;
    char *got;                      /* [n_chunks]: received in the open pull */
    int pull_left;                  /* chunks of the open pull still to come */
    int64_t pull_clock;             /* clock of the open pull, -1 when none */
    int64_t bytes_push, bytes_pull; /* cumulative, all parts */
    int64_t bytes_dense;            /* what the pushed chunks weigh as dense fp32 */
    int64_t last_version;           /* min over chunks of the version served by the last pull */
    void (*idle)(void *ud);         /* called about once a second while waiting (may be NULL) */
    /* compressed pushes (ldn_kv_set_codec): */
    int compressed;
    struct ldn_codec_desc desc; /* in force for the next pushes */
    uint32_t max_ratio_ppm;     /* the buffers fit descriptors up to this ratio */
    uint64_t cdesc[LDN_CODEC_DESC_WORDS];
    struct ldn_codec_ctx *codec;
    float *residual; /* [trunk keys], error feedback; NULL without */
    float *velocity; /* [trunk keys], DGC momentum correction; NULL without */
    float momentum;
    int nesterov;         /* send g + momentum * u (DGC's Nesterov momentum correction) */
    int masking;          /* zero the velocity where sent (DGC momentum factor masking) */
    int64_t min_elements; /* chunks smaller than this go dense */
    double clip_norm;     /* local gradient clipping bound over the whole trunk, 0 = off */
    int64_t trunk_keys;
    float *scratch; /* one chunk: clipped gradient, dense accumulation */
    /* compress.scope = global: the step's values gather here until the whole trunk is in */
    int64_t gkeys;              /* keys of the open step accumulated so far */
    float *gacc;                /* [trunk keys] without error feedback (else the residual) */
    uint32_t *gidx, *glocal;    /* [k] selected keys, global and chunk-relative */
    float *gvals, *gdeq;        /* [k] their values, and what the receiver will decode */
    struct ldn_codec_ctx *dctx; /* decodes pull deltas (compress.downlink = delta) */
    uint8_t *packed;            /* one encoded chunk */
    size_t packed_cap;
    void *idle_ud;
};

/* Connect to the servers (endpoints[s], server s holding ranges[s]); chunks is the job's
 * chunk table (borrowed for the client's lifetime). Returns NULL with err. */
struct ldn_kv *ldn_kv_new(void *zctx, int rank, int n_servers,
                          char (*endpoints)[LDN_NET_ENDPOINT_MAX], const struct ldn_range *ranges,
                          const struct ldn_chunk *chunks, int n_chunks, double timeout_s, char *err,
                          size_t errlen);
void ldn_kv_destroy(struct ldn_kv **kv);

/* Push every chunk inside keys [lo, hi) of grad (the whole trunk's gradient vector) for
 * `step`. With inflight == NULL the values are copied before return; otherwise ZeroMQ reads
 * them later and *inflight counts the frames it still holds (ldn_net_wait_sent), and grad
 * must not change until it is back to 0. */
int ldn_kv_push_range(struct ldn_kv *kv, int64_t step, const float *grad, int64_t lo, int64_t hi,
                      atomic_int *inflight, char *err, size_t errlen);

/* Compress every following push (error feedback when ef): allocates a residual of trunk_keys
 * floats and encoding buffers large enough for any descriptor of `biggest`'s kind and
 * quantizer with a ratio up to biggest->ratio_ppm. Returns 0 or a negative status with err. */
int ldn_kv_set_codec(struct ldn_kv *kv, const struct ldn_codec_desc *biggest, int ef,
                     int64_t trunk_keys, char *err, size_t errlen);
/* Chunks of fewer than min_elements keys are pushed dense (residual and velocity folded in and
 * cleared); clip_norm > 0 clips each chunk's gradient of n keys to clip_norm * sqrt(n /
 * trunk_keys) before it enters the velocity or the residual (DGC local gradient clipping, per
 * chunk since chunks leave before the whole gradient exists). Returns 0 or NOMEM. */
int ldn_kv_set_push_options(struct ldn_kv *kv, int64_t min_elements, double clip_norm,
                            int64_t trunk_keys, char *err, size_t errlen);
/* DGC momentum correction: keep a velocity u = momentum * u + g per key, compress u (plus
 * the residual) instead of g, or g + momentum * u with nesterov (train.nesterov), and with
 * masking zero u where an element was sent. Returns 0 or NOMEM. */
int ldn_kv_set_momentum_correction(struct ldn_kv *kv, float momentum, int nesterov, int masking,
                                   int64_t trunk_keys, char *err, size_t errlen);

/* The descriptor for the next pushes (same kind and quantizer, ratio <= the biggest). */
void ldn_kv_use_desc(struct ldn_kv *kv, const struct ldn_codec_desc *d);

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

#endif
