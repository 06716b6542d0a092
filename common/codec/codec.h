/* Gradient compression codecs for worker->server trunk-gradient pushes.
 *
 * A codec selects which elements of a float vector to send (all of them, exact top-k by
 * magnitude, a DGC sampled threshold, or random-k from a seed both sides share), quantizes the
 * selected values (fp32, fp16, int8 per chunk, 1-bit sign with a mean scale, QSGD with s levels)
 * and encodes indices and values into a little-endian byte payload that the receiver validates
 * completely before it touches any state. Error feedback keeps what was not sent in a residual
 * per tensor. docs/codec.md describes the byte layout, the descriptor and the guarantees.
 *
 * Nothing here is thread-safe per context: use one struct ldn_codec_ctx per thread. */
#ifndef LDN_CODEC_H
#define LDN_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

/* Scratch buffers (grown on demand, reused across calls) and the random streams of a codec user. */
struct ldn_codec_ctx;

/* Which elements are sent. */
enum ldn_codec_kind {
    LDN_CODEC_DENSE = 0,     /* every element, no indices on the wire */
    LDN_CODEC_TOPK = 1,      /* exactly k elements of largest magnitude */
    LDN_CODEC_RANDOMK = 2,   /* k elements drawn from (seed, step); indices do not travel */
    LDN_CODEC_THRESHOLD = 3, /* DGC sampled threshold: between 0.7k and 1.3k largest elements */
    LDN_CODEC_SPARSE = 4     /* any 0..n elements the sender chose (pull deltas); indices travel */
};

/* How the selected values are coded. */
enum ldn_codec_quant {
    LDN_QUANT_FP32 = 0, /* raw IEEE float */
    LDN_QUANT_FP16 = 1, /* IEEE half, round to nearest even, overflow clamped to +-65504 */
    LDN_QUANT_INT8 = 2, /* q = round(x / s), s = max|x| / 127 per chunk */
    LDN_QUANT_SIGN = 3, /* 1 bit per value, scale = mean |x| per chunk */
    LDN_QUANT_QSGD = 4  /* s levels of |x| / ||x||_2 per chunk, stochastic rounding, unbiased */
};

/* Index section format recorded in byte 1 of a payload. */
enum ldn_codec_index_fmt {
    LDN_CODEC_IDX_ALL = 0,    /* dense: no index section */
    LDN_CODEC_IDX_VARINT = 1, /* first index, then gaps (>= 1), each LEB128 */
    LDN_CODEC_IDX_BITMAP = 2, /* ceil(n / 8) bytes, bit i (LSB first) set when i is sent */
    LDN_CODEC_IDX_SEEDED = 3  /* random-k: the receiver derives the indices */
};

/* What a codec does; travels in the message header as LDN_CODEC_DESC_WORDS integers. */
struct ldn_codec_desc {
    enum ldn_codec_kind kind;
    enum ldn_codec_quant quant;
    uint32_t ratio_ppm; /* sparse kinds: k = ceil(n * ratio_ppm / 1e6), in [1, 1e6] */
    uint32_t chunk;     /* values per scale for int8, sign, qsgd: [1, LDN_CODEC_MAX_CHUNK] */
    uint32_t levels;    /* qsgd s: [1, LDN_CODEC_MAX_LEVELS] */
    uint64_t seed;      /* random-k seed shared by sender and receiver */
};

#define LDN_CODEC_VERSION 1
#define LDN_CODEC_HEADER_BYTES 12
#define LDN_CODEC_DESC_WORDS 3
#define LDN_CODEC_MAX_N ((int64_t)UINT32_MAX)
#define LDN_CODEC_MAX_CHUNK (1u << 20)
#define LDN_CODEC_MAX_LEVELS 127u
/* The sampled threshold looks at max(LDN_CODEC_SAMPLE_MIN, n / LDN_CODEC_SAMPLE_DIV) elements. */
#define LDN_CODEC_SAMPLE_MIN 512
#define LDN_CODEC_SAMPLE_DIV 200

/* A context with empty scratch buffers; seed drives the threshold sample and the QSGD rounding.
 * Returns NULL when out of memory. */
struct ldn_codec_ctx *ldn_codec_ctx_new(uint64_t seed);
/* Free the context and its buffers and set *ctx to NULL; accepts NULL and *ctx == NULL. */
void ldn_codec_ctx_destroy(struct ldn_codec_ctx **ctx);
/* The context's random stream (threshold sample, QSGD rounding): saved in checkpoints. */
struct ldn_rng *ldn_codec_ctx_rng(struct ldn_codec_ctx *ctx);

/* --- descriptor --- */

/* 0 when d is valid, else LDN_ERR_ARG with the offending field in err. */
int ldn_codec_desc_check(const struct ldn_codec_desc *d, char *err, size_t errlen);
/* Write the descriptor as LDN_CODEC_DESC_WORDS integers (kind, quant, levels, chunk | ratio |
 * seed). */
void ldn_codec_desc_pack(const struct ldn_codec_desc *d, uint64_t w[LDN_CODEC_DESC_WORDS]);
/* Read a packed descriptor; 0 on success, LDN_ERR_FORMAT on unknown bits or invalid fields. */
int ldn_codec_desc_unpack(const uint64_t w[LDN_CODEC_DESC_WORDS], struct ldn_codec_desc *d,
                          char *err, size_t errlen);
struct ldn_compress_config;
/* The descriptor of the config's compress section (seed: the run's seed). Returns 1 when the
 * pushes are compressed, 0 for plain dense fp32 (d is still filled). */
int ldn_codec_desc_from_config(const struct ldn_compress_config *c, uint64_t seed,
                               struct ldn_codec_desc *d);
/* Where the momentum lives, decided once for servers, workers and checkpoints: 1 when the
 * pushes are compressed with compress.momentum_correction (DGC: the workers keep a velocity,
 * the servers apply plain SGD), 0 when the servers' optimizer keeps it. The config refuses
 * momentum correction with any optimizer but sgd. */
int ldn_codec_momentum_on_workers(const struct ldn_compress_config *c);

/* The descriptor in force at global step `step` (epochs of steps_per_epoch steps): during
 * compress.warmup_epochs the sparse ratio is max(ratio, 0.25^(epoch + 1)) (DGC warm-up:
 * 75%, 93.75%, 98.4%... of the elements dropped), then `ratio`. Both ends call it. */
void ldn_codec_desc_at(const struct ldn_compress_config *c, uint64_t seed, int64_t step,
                       int64_t steps_per_epoch, struct ldn_codec_desc *d);

/* Short name of a kind or quantizer ("topk", "int8"...); never NULL. */
const char *ldn_codec_kind_name(int kind);
const char *ldn_codec_quant_name(int quant);
/* Target number of elements for a vector of n: n for dense, else ceil(n * ratio / 1e6) in
 * [1, n] (0 when n == 0). */
int64_t ldn_codec_desc_k(const struct ldn_codec_desc *d, int64_t n);
/* Largest number of elements a payload for n may carry (1.3k rounded down for threshold). */
int64_t ldn_codec_max_count(const struct ldn_codec_desc *d, int64_t n);
/* Upper bound on the encoded size of any payload for a vector of n: size the output with it. */
size_t ldn_codec_max_bytes(const struct ldn_codec_desc *d, int64_t n);

/* --- selection: all write indices in ascending order and return how many, or a negative
 * status (LDN_ERR_ARG for n outside [0, LDN_CODEC_MAX_N] or k < 0, LDN_ERR_NOMEM) --- */

/* Exact top-k of |v[0..n)|: min(k, n) indices. Ties are broken towards the lower index, and a
 * NaN counts as larger than any number. Linear expected time (a histogram of the magnitude bits,
 * then quickselect inside one bucket). idx must hold min(k, n) entries. */
int64_t ldn_codec_topk(struct ldn_codec_ctx *ctx, const float *v, int64_t n, int64_t k,
                       uint32_t *idx);
/* Drop the selected indices idx[0..m) whose element of v is exactly 0 (a pruned key: its
 * gradient and residual are held at 0), keeping the order; returns how many are left. Top-k
 * pushes send only what is left (at most k values), so no k is spent on a masked key. */
int64_t ldn_codec_drop_zeros(const float *v, uint32_t *idx, int64_t m);
/* DGC sampled threshold: the threshold is the top-k' magnitude of a random sample; all
 * |v_i| >= threshold are selected when that is between ceil(0.7k) and floor(1.3k) elements;
 * more are cut to the exact top-k of the candidates, fewer fall back to the exact top-k.
 * Always returns a count in [ceil(0.7k), floor(1.3k)] (k clamped to n), and every selected
 * magnitude is >= every unselected one. idx must hold floor(1.3k) entries. */
int64_t ldn_codec_threshold(struct ldn_codec_ctx *ctx, const float *v, int64_t n, int64_t k,
                            uint32_t *idx);
/* min(k, n) distinct indices, uniform over k-subsets, a pure function of (seed, step, n, k):
 * sender and receiver call it with the same arguments (mix a tensor id into seed when several
 * tensors share a step). idx must hold min(k, n) entries. */
int64_t ldn_codec_randomk(struct ldn_codec_ctx *ctx, uint64_t seed, uint64_t step, int64_t n,
                          int64_t k, uint32_t *idx);

/* --- quantization of a list of m values (chunks of d->chunk consecutive values) --- */

/* IEEE half conversion: round to nearest even, finite overflow clamped to +-65504, NaN kept. */
uint16_t ldn_codec_f32_to_f16(float f);
float ldn_codec_f16_to_f32(uint16_t h);
/* Bytes of the value section for m values. */
size_t ldn_codec_quant_bytes(const struct ldn_codec_desc *d, int64_t m);
/* Code x[0..m) into out (ldn_codec_quant_bytes(d, m) bytes) and write into deq[0..m) exactly
 * what ldn_codec_dequantize will produce. rng (QSGD only, may be NULL otherwise) advances.
 * Returns 0, or LDN_ERR_ARG when a value or a chunk scale is not finite. */
int ldn_codec_quantize(const struct ldn_codec_desc *d, struct ldn_rng *rng, const float *x,
                       int64_t m, uint8_t *out, float *deq, char *err, size_t errlen);
/* Decode m values from in (exactly ldn_codec_quant_bytes(d, m) bytes) into out, validating
 * scales (finite, >= 0), codes and padding. Returns 0 or LDN_ERR_FORMAT. */
int ldn_codec_dequantize(const struct ldn_codec_desc *d, const uint8_t *in, int64_t m, float *out,
                         char *err, size_t errlen);

/* --- payloads --- */

/* Encode a selection of a vector of n: idx[0..m) ascending (ignored for dense, where m == n,
 * and for random-k, where m == k) with values vals[0..m). Writes *len bytes into out (cap
 * bytes) and the dequantized values into deq[0..m) (caller-owned). Picks varint or bitmap
 * indices, whichever is smaller. Returns 0 or LDN_ERR_ARG (bad input, buffer too small). */
int ldn_codec_encode(const struct ldn_codec_desc *d, int64_t n, const uint32_t *idx, int64_t m,
                     const float *vals, struct ldn_rng *rng, uint8_t *out, size_t cap, size_t *len,
                     float *deq, char *err, size_t errlen);
/* Compress grad[0..n) for step into out with error feedback when residual is non-NULL:
 * acc = grad + residual, select from acc, send, then residual = acc - dequantized for the sent
 * elements and acc for the others. On failure nothing was sent and residual holds acc. out
 * needs ldn_codec_max_bytes(d, n) bytes at most; returns 0 or a negative status. When sel is
 * non-NULL, *sel and *nsel say what was sent: the indices in ascending order (an array of ctx,
 * valid until its next call), or *sel = NULL for dense (every index, *nsel = n). */
int ldn_codec_compress(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                       const float *grad, float *residual, int64_t n, uint8_t *out, size_t cap,
                       size_t *len, const uint32_t **sel, int64_t *nsel, char *err, size_t errlen);
/* Validate and decode a payload for a vector of n. On success *idx (NULL for dense: element j is
 * index j), *vals and *count describe the elements; both arrays belong to ctx and stay valid until
 * its next call. Returns 0, LDN_ERR_FORMAT for a malformed payload, LDN_ERR_ARG, LDN_ERR_NOMEM. */
int ldn_codec_decode(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                     const uint8_t *buf, size_t len, int64_t n, const uint32_t **idx,
                     const float **vals, int64_t *count, char *err, size_t errlen);
/* Decode and apply: dense[i] += alpha * value for every element, only after the whole payload
 * was validated (dense is untouched on failure). Same returns as ldn_codec_decode. */
int ldn_codec_decode_add(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                         const uint8_t *buf, size_t len, int64_t n, float alpha, float *dense,
                         char *err, size_t errlen);

#endif
