/* The worker's gradient compressor: what turns a trunk-gradient chunk into the bytes of one
 * push, and the state that carries over between steps. It owns the error-feedback residual,
 * the DGC velocity (momentum correction, its Nesterov variant, momentum factor masking), local
 * gradient clipping, the dense fallback for small chunks, the codec context and its random
 * stream, the descriptor in force, and the buffers of compress.scope = global (one exact top-k
 * over the whole trunk once every chunk of the step is in).
 *
 * It knows key ranges [lo, hi) of the flattened trunk and nothing of sockets, servers or chunk
 * tables; every call returns what it selected, so nobody decodes their own payload.
 * docs/codec.md ("The compressor") describes the arithmetic. Not thread-safe: one per worker. */
#ifndef LDN_COMPRESSOR_H
#define LDN_COMPRESSOR_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "rng.h"

struct ldn_compressor;

/* What a compressor does besides the codec (the config's compress section, and train.momentum
 * and train.nesterov when the momentum lives on the workers). */
struct ldn_compressor_opts {
    int error_feedback;      /* keep what was not sent in a residual */
    int64_t min_elements;    /* chunks of fewer keys go dense, residual and velocity folded in */
    double clip_norm;        /* > 0: clip a chunk of n keys to clip_norm * sqrt(n / trunk keys) */
    int momentum_correction; /* DGC: keep a velocity u = momentum * u + g, compress u */
    float momentum;
    int nesterov; /* compress g + momentum * u instead of u */
    int masking;  /* zero u where an element was sent (momentum factor masking) */
};

/* One chunk's push, as the compressor produced it; every pointer belongs to the compressor and
 * stays valid until its next compress, global_add or global_take call. */
struct ldn_compressed {
    int dense;              /* 1: send vals[0..n) as plain fp32 (the min_elements fallback) */
    const float *vals;      /* dense: the chunk's n values; NULL otherwise */
    const uint8_t *payload; /* !dense: the codec payload of len bytes, for the descriptor in
                               force (ldn_compressor_desc) */
    size_t len;
    const uint32_t *sel; /* what was sent, chunk-relative and ascending; NULL when all n were */
    int64_t nsel;        /* how many elements were sent */
};

/* A compressor for a trunk of trunk_keys keys pushed in chunks of at most max_chunk keys, with
 * buffers large enough for any descriptor of biggest's kind and quantizer up to its ratio
 * (biggest is in force until ldn_compressor_use_desc). rng_seed seeds the codec context (the
 * threshold sample, QSGD rounding). Returns NULL with err: LDN_ERR_ARG for an invalid
 * descriptor, LDN_ERR_NOMEM. */
struct ldn_compressor *ldn_compressor_new(const struct ldn_codec_desc *biggest, uint64_t rng_seed,
                                          int64_t trunk_keys, int64_t max_chunk,
                                          const struct ldn_compressor_opts *opts, char *err,
                                          size_t errlen);
/* Free everything and set *c to NULL; accepts NULL and *c == NULL. */
void ldn_compressor_destroy(struct ldn_compressor **c);

/* The descriptor for the following compressions (DGC warm-up changes the ratio per step): the
 * same kind and quantizer, a ratio no larger than the biggest (asserted). */
void ldn_compressor_use_desc(struct ldn_compressor *c, const struct ldn_codec_desc *d);
/* The descriptor in force: the one the payloads were encoded with. */
const struct ldn_codec_desc *ldn_compressor_desc(const struct ldn_compressor *c);
/* 1 when the compressor selects over the whole trunk (compress.scope = global, a descriptor of
 * kind sparse): use ldn_compressor_global_add / _take instead of ldn_compressor_compress. */
int ldn_compressor_is_global(const struct ldn_compressor *c);

/* Compress keys [lo, hi) of grad (the whole trunk's gradient vector, read only in [lo, hi);
 * borrowed for the call): clip, fold into the velocity, add the residual, select, encode, keep
 * what was not sent. step is the codec step (random-k draws both ends make). Fills *out.
 * Returns 0 or a negative status with err (then nothing is to be sent). */
int ldn_compressor_compress(struct ldn_compressor *c, uint64_t step, const float *grad, int64_t lo,
                            int64_t hi, struct ldn_compressed *out, char *err, size_t errlen);

/* compress.scope = global: add keys [lo, hi) of grad (clipped and folded into the velocity as
 * above) to the step's accumulation. Returns 1 once every trunk key of the step is in (the
 * exact top-k over the trunk is then taken: collect every chunk with ldn_compressor_global_take),
 * 0 while keys are missing, or a negative status with err. */
int ldn_compressor_global_add(struct ldn_compressor *c, const float *grad, int64_t lo, int64_t hi,
                              char *err, size_t errlen);
/* The payload of keys [lo, hi) of the completed step: the elements of the global selection in
 * it (0..n, sparse payload). Call it for consecutive ranges in ascending key order that cover
 * the trunk. Returns 0 or a negative status with err. */
int ldn_compressor_global_take(struct ldn_compressor *c, int64_t lo, int64_t hi,
                               struct ldn_compressed *out, char *err, size_t errlen);

/* The state checkpoints keep, trunk_keys floats each (NULL when the option is off; writable so
 * a resume can read into them), and the codec context's random stream. */
float *ldn_compressor_residual(struct ldn_compressor *c);
float *ldn_compressor_velocity(struct ldn_compressor *c);
struct ldn_rng *ldn_compressor_rng(struct ldn_compressor *c);
/* L2 norm of the residual, summed in double in key order (0 without error feedback). */
double ldn_compressor_residual_norm(const struct ldn_compressor *c);

#endif
