/* Codec context, descriptor, payload encoding and validating decoding (docs/codec.md). */
#include "codec.h"
#include "codec_priv.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "status.h"

struct ldn_codec_ctx {
    struct ldn_rng rng;   /* threshold sample, QSGD rounding */
    struct ldn_rng pivot; /* quickselect pivots (do not change results) */
    uint32_t hist[LDN__CODEC_HIST_BUCKETS];
    void *buf[LDN__CODEC_NSLOTS];
    size_t cap[LDN__CODEC_NSLOTS];
};

struct ldn_rng *ldn_codec_ctx_rng(struct ldn_codec_ctx *ctx)
{
    return &ctx->rng;
}

struct ldn_codec_ctx *ldn_codec_ctx_new(uint64_t seed)
{
    struct ldn_codec_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return NULL;
    ldn_rng_init(&ctx->rng, seed, 0);
    ldn_rng_init(&ctx->pivot, seed, 1);
    return ctx;
}

void ldn_codec_ctx_destroy(struct ldn_codec_ctx **ctx)
{
    if (!ctx || !*ctx)
        return;
    for (int i = 0; i < LDN__CODEC_NSLOTS; i++)
        free((*ctx)->buf[i]);
    free(*ctx);
    *ctx = NULL;
}

void *ldn__codec_scratch(struct ldn_codec_ctx *ctx, enum ldn__codec_slot slot, size_t bytes)
{
    if (bytes == 0)
        bytes = 1;
    if (ctx->cap[slot] < bytes) {
        size_t want = ctx->cap[slot] + ctx->cap[slot] / 2;
        want = want > bytes ? want : bytes;
        free(ctx->buf[slot]);
        ctx->buf[slot] = malloc(want);
        ctx->cap[slot] = ctx->buf[slot] ? want : 0;
    }
    return ctx->buf[slot];
}

uint32_t *ldn__codec_hist(struct ldn_codec_ctx *ctx)
{
    return ctx->hist;
}

struct ldn_rng *ldn__codec_rng(struct ldn_codec_ctx *ctx)
{
    return &ctx->rng;
}

struct ldn_rng *ldn__codec_pivot_rng(struct ldn_codec_ctx *ctx)
{
    return &ctx->pivot;
}

/* --- descriptor --- */

const char *ldn_codec_kind_name(int kind)
{
    switch (kind) {
    case LDN_CODEC_DENSE: return "dense";
    case LDN_CODEC_TOPK: return "topk";
    case LDN_CODEC_RANDOMK: return "randomk";
    case LDN_CODEC_THRESHOLD: return "threshold";
    case LDN_CODEC_SPARSE: return "sparse";
    default: return "unknown";
    }
}

const char *ldn_codec_quant_name(int quant)
{
    switch (quant) {
    case LDN_QUANT_FP32: return "fp32";
    case LDN_QUANT_FP16: return "fp16";
    case LDN_QUANT_INT8: return "int8";
    case LDN_QUANT_SIGN: return "sign";
    case LDN_QUANT_QSGD: return "qsgd";
    default: return "unknown";
    }
}

static int chunked(enum ldn_codec_quant q)
{
    return q == LDN_QUANT_INT8 || q == LDN_QUANT_SIGN || q == LDN_QUANT_QSGD;
}

int ldn_codec_desc_check(const struct ldn_codec_desc *d, char *err, size_t errlen)
{
    if ((unsigned)d->kind > LDN_CODEC_SPARSE)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "codec descriptor: unknown kind %d",
                        (int)d->kind);
    if ((unsigned)d->quant > LDN_QUANT_QSGD)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "codec descriptor: unknown quantizer %d",
                        (int)d->quant);
    if (d->kind != LDN_CODEC_DENSE && (d->ratio_ppm < 1 || d->ratio_ppm > 1000000))
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "codec descriptor: %s ratio_ppm must be in [1, 1000000], got %u",
                        ldn_codec_kind_name(d->kind), d->ratio_ppm);
    if (chunked(d->quant) && (d->chunk < 1 || d->chunk > LDN_CODEC_MAX_CHUNK))
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "codec descriptor: %s chunk must be in [1, %u], got %u",
                        ldn_codec_quant_name(d->quant), LDN_CODEC_MAX_CHUNK, d->chunk);
    if (d->quant == LDN_QUANT_QSGD && (d->levels < 1 || d->levels > LDN_CODEC_MAX_LEVELS))
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "codec descriptor: qsgd levels must be in [1, %u], got %u",
                        LDN_CODEC_MAX_LEVELS, d->levels);
    return 0;
}

/* w[0] = kind | quant << 8 | levels << 16 | chunk << 32; w[1] = ratio_ppm; w[2] = seed. */
void ldn_codec_desc_pack(const struct ldn_codec_desc *d, uint64_t w[LDN_CODEC_DESC_WORDS])
{
    w[0] = (uint64_t)(d->kind & 0xff) | (uint64_t)(d->quant & 0xff) << 8 |
           (uint64_t)(d->levels & 0xff) << 16 | (uint64_t)d->chunk << 32;
    w[1] = d->ratio_ppm;
    w[2] = d->seed;
}

int ldn_codec_desc_unpack(const uint64_t w[LDN_CODEC_DESC_WORDS], struct ldn_codec_desc *d,
                          char *err, size_t errlen)
{
    if ((w[0] & 0xff000000ull) || (w[1] >> 32))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec descriptor: unknown bits set (%#llx, %#llx)",
                        (unsigned long long)w[0], (unsigned long long)w[1]);
    struct ldn_codec_desc t = {.kind = (enum ldn_codec_kind)(w[0] & 0xff),
                               .quant = (enum ldn_codec_quant)((w[0] >> 8) & 0xff),
                               .levels = (uint32_t)((w[0] >> 16) & 0xff),
                               .chunk = (uint32_t)(w[0] >> 32),
                               .ratio_ppm = (uint32_t)w[1],
                               .seed = w[2]};
    if (ldn_codec_desc_check(&t, err, errlen))
        return LDN_ERR_FORMAT;
    *d = t;
    return 0;
}

int64_t ldn_codec_desc_k(const struct ldn_codec_desc *d, int64_t n)
{
    if (n <= 0)
        return 0;
    if (d->kind == LDN_CODEC_DENSE || d->kind == LDN_CODEC_SPARSE)
        return n;
    int64_t k = (int64_t)(((uint64_t)n * d->ratio_ppm + 999999) / 1000000);
    return k < 1 ? 1 : k > n ? n : k;
}

int64_t ldn_codec_max_count(const struct ldn_codec_desc *d, int64_t n)
{
    int64_t k = ldn_codec_desc_k(d, n);
    return d->kind == LDN_CODEC_THRESHOLD ? 13 * k / 10 : k;
}

size_t ldn_codec_max_bytes(const struct ldn_codec_desc *d, int64_t n)
{
    size_t ib =
        d->kind == LDN_CODEC_TOPK || d->kind == LDN_CODEC_THRESHOLD || d->kind == LDN_CODEC_SPARSE
            ? ((size_t)n + 7) / 8
            : 0;
    return LDN_CODEC_HEADER_BYTES + ib + ldn_codec_quant_bytes(d, ldn_codec_max_count(d, n));
}

/* --- encoding --- */

static void put_u32(uint8_t *p, uint32_t u)
{
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t varint_len(uint32_t x)
{
    return x < (1u << 7) ? 1 : x < (1u << 14) ? 2 : x < (1u << 21) ? 3 : x < (1u << 28) ? 4 : 5;
}

static uint8_t *put_varint(uint8_t *p, uint32_t x)
{
    while (x >= 0x80) {
        *p++ = (uint8_t)(x | 0x80);
        x >>= 7;
    }
    *p++ = (uint8_t)x;
    return p;
}

int ldn_codec_encode(const struct ldn_codec_desc *d, int64_t n, const uint32_t *idx, int64_t m,
                     const float *vals, struct ldn_rng *rng, uint8_t *out, size_t cap, size_t *len,
                     float *deq, char *err, size_t errlen)
{
    int rc = ldn_codec_desc_check(d, err, errlen);
    if (rc)
        return rc;
    if (n < 0 || n > LDN_CODEC_MAX_N || m < 0 || m > n)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "codec encode: bad sizes n=%lld m=%lld",
                        (long long)n, (long long)m);
    int64_t k = ldn_codec_desc_k(d, n);
    enum ldn_codec_index_fmt fmt = LDN_CODEC_IDX_VARINT;
    size_t ib = 0;
    if (d->kind == LDN_CODEC_DENSE || d->kind == LDN_CODEC_RANDOMK) {
        fmt = d->kind == LDN_CODEC_DENSE ? LDN_CODEC_IDX_ALL : LDN_CODEC_IDX_SEEDED;
        if (m != k)
            return ldn_fail(err, errlen, LDN_ERR_ARG,
                            "codec encode: %s sends %lld values, got %lld",
                            ldn_codec_kind_name(d->kind), (long long)k, (long long)m);
    } else {
        if (m > ldn_codec_max_count(d, n))
            return ldn_fail(err, errlen, LDN_ERR_ARG, "codec encode: %lld values, at most %lld",
                            (long long)m, (long long)ldn_codec_max_count(d, n));
        for (int64_t j = 0; j < m; j++) {
            if (idx[j] >= (uint64_t)n || (j > 0 && idx[j] <= idx[j - 1]))
                return ldn_fail(err, errlen, LDN_ERR_ARG,
                                "codec encode: index %lld (%u) out of range or not increasing",
                                (long long)j, idx[j]);
            ib += varint_len(j ? idx[j] - idx[j - 1] : idx[j]);
        }
        size_t bitmap = ((size_t)n + 7) / 8;
        if (bitmap < ib) {
            fmt = LDN_CODEC_IDX_BITMAP;
            ib = bitmap;
        }
    }
    size_t vb = ldn_codec_quant_bytes(d, m), total = LDN_CODEC_HEADER_BYTES + ib + vb;
    if (total > cap)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "codec encode: output buffer too small: need %zu bytes, have %zu", total,
                        cap);
    out[0] = LDN_CODEC_VERSION;
    out[1] = (uint8_t)fmt;
    out[2] = (uint8_t)d->quant;
    out[3] = 0;
    put_u32(out + 4, (uint32_t)m);
    put_u32(out + 8, (uint32_t)ib);
    uint8_t *p = out + LDN_CODEC_HEADER_BYTES;
    if (fmt == LDN_CODEC_IDX_VARINT) {
        for (int64_t j = 0; j < m; j++)
            p = put_varint(p, j ? idx[j] - idx[j - 1] : idx[j]);
    } else if (fmt == LDN_CODEC_IDX_BITMAP) {
        memset(p, 0, ib);
        for (int64_t j = 0; j < m; j++)
            p[idx[j] >> 3] |= (uint8_t)(1u << (idx[j] & 7));
        p += ib;
    }
    rc = ldn_codec_quantize(d, rng, vals, m, p, deq, err, errlen);
    if (rc)
        return rc;
    *len = total;
    return 0;
}

int ldn_codec_compress(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                       const float *grad, float *residual, int64_t n, uint8_t *out, size_t cap,
                       size_t *len, const uint32_t **sel, int64_t *nsel, char *err, size_t errlen)
{
    int rc = ldn_codec_desc_check(d, err, errlen);
    if (rc)
        return rc;
    if (d->kind == LDN_CODEC_SPARSE)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "codec compress: sparse takes an explicit selection (ldn_codec_encode)");
    if (n < 0 || n > LDN_CODEC_MAX_N)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "codec compress: n=%lld out of range",
                        (long long)n);
    const float *acc = grad;
    if (residual) {
        for (int64_t i = 0; i < n; i++)
            residual[i] += grad[i];
        acc = residual;
    }
    int64_t k = ldn_codec_desc_k(d, n), m = n;
    uint32_t *idx = NULL;
    if (d->kind != LDN_CODEC_DENSE) {
        idx = ldn__codec_scratch(ctx, LDN__CODEC_IDX,
                                 (size_t)ldn_codec_max_count(d, n) * sizeof *idx);
        if (!idx)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "codec compress: out of memory");
        switch (d->kind) {
        case LDN_CODEC_TOPK:
            m = ldn_codec_topk(ctx, acc, n, k, idx);
            m = m < 0 ? m : ldn_codec_drop_zeros(acc, idx, m);
            break;
        case LDN_CODEC_THRESHOLD: m = ldn_codec_threshold(ctx, acc, n, k, idx); break;
        default: m = ldn_codec_randomk(ctx, d->seed, step, n, k, idx); break;
        }
        if (m < 0)
            return ldn_fail(err, errlen, (int)m, "codec compress: %s selection: %s",
                            ldn_codec_kind_name(d->kind), ldn_status_str((int)m));
    }
    const float *vals = acc;
    float *deq = ldn__codec_scratch(ctx, LDN__CODEC_DEQ, (size_t)m * sizeof *deq);
    if (idx) {
        float *g = ldn__codec_scratch(ctx, LDN__CODEC_VALS, (size_t)m * sizeof *g);
        if (!g)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "codec compress: out of memory");
        for (int64_t j = 0; j < m; j++)
            g[j] = acc[idx[j]];
        vals = g;
    }
    if (!deq)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "codec compress: out of memory");
    rc = ldn_codec_encode(d, n, idx, m, vals, &ctx->rng, out, cap, len, deq, err, errlen);
    if (rc)
        return rc;
    if (residual) {
        if (idx) {
            for (int64_t j = 0; j < m; j++)
                residual[idx[j]] -= deq[j];
        } else {
            for (int64_t i = 0; i < n; i++)
                residual[i] -= deq[i];
        }
    }
    if (sel) {
        *sel = idx;
        *nsel = m;
    }
    return 0;
}

/* --- decoding --- */

static int decode_varint_idx(const uint8_t *p, size_t ib, uint32_t count, int64_t n, uint32_t *idx,
                             char *err, size_t errlen)
{
    const uint8_t *end = p + ib;
    uint64_t prev = 0;
    for (uint32_t j = 0; j < count; j++) {
        uint64_t val = 0;
        for (unsigned nb = 0;; nb++) {
            if (p == end)
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "codec payload: index section ends after %u of %u indices (count "
                                "mismatch or truncated varint)",
                                j, count);
            uint8_t byte = *p++;
            if (nb == 9 && (byte & 0x80))
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "codec payload: varint of index %u longer than 10 bytes", j);
            if (nb == 9 && byte > 1)
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "codec payload: varint of index %u overflows 64 bits", j);
            val |= (uint64_t)(byte & 0x7f) << (7 * nb);
            if (!(byte & 0x80))
                break;
        }
        if (j > 0 && val == 0)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "codec payload: index %u not strictly increasing (gap 0 after %llu)", j,
                            (unsigned long long)prev);
        uint64_t cur = j == 0 ? val : val >= (uint64_t)n ? (uint64_t)n : prev + val;
        if (cur >= (uint64_t)n)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "codec payload: index %u out of range [0, %lld)", j, (long long)n);
        idx[j] = (uint32_t)cur;
        prev = cur;
    }
    if (p != end)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: count mismatch: %td index bytes left after %u indices",
                        end - p, count);
    return 0;
}

static int decode_bitmap_idx(const uint8_t *p, size_t ib, uint32_t count, int64_t n, uint32_t *idx,
                             char *err, size_t errlen)
{
    if (n & 7 && p[ib - 1] >> (n & 7))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: bitmap index out of range: bits set at or beyond n=%lld",
                        (long long)n);
    uint64_t set = 0;
    for (size_t b = 0; b < ib; b++)
        set += (uint64_t)__builtin_popcount(p[b]);
    if (set != count)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: count mismatch: bitmap has %llu bits set, header count %u",
                        (unsigned long long)set, count);
    size_t c = 0;
    for (size_t b = 0; b < ib; b++)
        for (unsigned x = p[b]; x; x &= x - 1)
            idx[c++] = (uint32_t)(8 * b + (size_t)__builtin_ctz(x));
    return 0;
}

int ldn_codec_decode(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                     const uint8_t *buf, size_t len, int64_t n, const uint32_t **idx_out,
                     const float **vals_out, int64_t *count_out, char *err, size_t errlen)
{
    int rc = ldn_codec_desc_check(d, err, errlen);
    if (rc)
        return rc;
    if (n < 0 || n > LDN_CODEC_MAX_N)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "codec decode: n=%lld out of range",
                        (long long)n);
    if (len < LDN_CODEC_HEADER_BYTES)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload truncated: %zu bytes, the header alone has %d", len,
                        LDN_CODEC_HEADER_BYTES);
    if (buf[0] != LDN_CODEC_VERSION)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: version %u, this build reads version %d", buf[0],
                        LDN_CODEC_VERSION);
    unsigned fmt = buf[1];
    if (buf[2] != (unsigned)d->quant)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: quantizer %u does not match the descriptor's %s", buf[2],
                        ldn_codec_quant_name(d->quant));
    if (buf[3] != 0)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "codec payload: reserved byte is %u, not 0",
                        buf[3]);
    uint32_t count = get_u32(buf + 4), ib = get_u32(buf + 8);
    int fmt_ok = d->kind == LDN_CODEC_DENSE ? fmt == LDN_CODEC_IDX_ALL
                 : d->kind == LDN_CODEC_RANDOMK
                     ? fmt == LDN_CODEC_IDX_SEEDED
                     : fmt == LDN_CODEC_IDX_VARINT || fmt == LDN_CODEC_IDX_BITMAP;
    if (!fmt_ok)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: index format %u is not valid for codec %s", fmt,
                        ldn_codec_kind_name(d->kind));
    int64_t k = ldn_codec_desc_k(d, n);
    int64_t lo = d->kind == LDN_CODEC_THRESHOLD                             ? (7 * k + 9) / 10
                 : d->kind == LDN_CODEC_SPARSE || d->kind == LDN_CODEC_TOPK ? 0
                                                                            : k;
    int64_t hi = ldn_codec_max_count(d, n);
    if (count < lo || count > hi)
        return ldn_fail(
            err, errlen, LDN_ERR_FORMAT,
            "codec payload: count mismatch: %u values, %s expects %lld..%lld for n=%lld", count,
            ldn_codec_kind_name(d->kind), (long long)lo, (long long)hi, (long long)n);
    size_t want_ib = fmt == LDN_CODEC_IDX_BITMAP ? ((size_t)n + 7) / 8 : 0;
    if (fmt == LDN_CODEC_IDX_VARINT ? ib == 0 && count > 0 : ib != want_ib)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: index section of %u bytes, expected %zu for format %u", ib,
                        want_ib, fmt);
    /* in size_t: header + a 32-bit ib near 2^32 wrapped in unsigned int, and a 12-byte
     * payload announcing 4294967288 index bytes passed as complete (found by fuzzing) */
    size_t vb = ldn_codec_quant_bytes(d, count),
           total = (size_t)LDN_CODEC_HEADER_BYTES + (size_t)ib + vb;
    if (len < total)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload truncated: %zu bytes, header announces %zu", len, total);
    if (len > total)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "codec payload: %zu trailing bytes after the %zu announced", len - total,
                        total);

    uint32_t *idx = NULL;
    if (fmt != LDN_CODEC_IDX_ALL) {
        idx = ldn__codec_scratch(ctx, LDN__CODEC_IDX, (size_t)count * sizeof *idx);
        if (!idx)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "codec decode: out of memory");
    }
    const uint8_t *p = buf + LDN_CODEC_HEADER_BYTES;
    if (fmt == LDN_CODEC_IDX_VARINT)
        rc = decode_varint_idx(p, ib, count, n, idx, err, errlen);
    else if (fmt == LDN_CODEC_IDX_BITMAP)
        rc = decode_bitmap_idx(p, ib, count, n, idx, err, errlen);
    else if (fmt == LDN_CODEC_IDX_SEEDED) {
        int64_t got = ldn_codec_randomk(ctx, d->seed, step, n, count, idx);
        rc = got < 0 ? ldn_fail(err, errlen, (int)got, "codec decode: random-k: %s",
                                ldn_status_str((int)got))
                     : 0;
    }
    if (rc)
        return rc;
    float *vals = ldn__codec_scratch(ctx, LDN__CODEC_VALS, (size_t)count * sizeof *vals);
    if (!vals)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "codec decode: out of memory");
    rc = ldn_codec_dequantize(d, p + ib, count, vals, err, errlen);
    if (rc)
        return rc;
    *idx_out = idx;
    *vals_out = vals;
    *count_out = count;
    return 0;
}

int ldn_codec_decode_add(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d, uint64_t step,
                         const uint8_t *buf, size_t len, int64_t n, float alpha, float *dense,
                         char *err, size_t errlen)
{
    const uint32_t *idx;
    const float *vals;
    int64_t count;
    int rc = ldn_codec_decode(ctx, d, step, buf, len, n, &idx, &vals, &count, err, errlen);
    if (rc)
        return rc;
    if (idx) {
        for (int64_t j = 0; j < count; j++)
            dense[idx[j]] += alpha * vals[j];
    } else {
        for (int64_t j = 0; j < count; j++)
            dense[j] += alpha * vals[j];
    }
    return 0;
}

_Static_assert((int)LDN_COMPRESS_DENSE == (int)LDN_CODEC_DENSE &&
                   (int)LDN_COMPRESS_TOPK == (int)LDN_CODEC_TOPK &&
                   (int)LDN_COMPRESS_RANDOMK == (int)LDN_CODEC_RANDOMK &&
                   (int)LDN_COMPRESS_THRESHOLD == (int)LDN_CODEC_THRESHOLD,
               "compress.codec values are codec kinds");
_Static_assert((int)LDN_COMPRESS_FP32 == (int)LDN_QUANT_FP32 &&
                   (int)LDN_COMPRESS_FP16 == (int)LDN_QUANT_FP16 &&
                   (int)LDN_COMPRESS_INT8 == (int)LDN_QUANT_INT8 &&
                   (int)LDN_COMPRESS_SIGN == (int)LDN_QUANT_SIGN &&
                   (int)LDN_COMPRESS_QSGD == (int)LDN_QUANT_QSGD,
               "compress.quant values are codec quantizers");

int ldn_codec_desc_from_config(const struct ldn_compress_config *c, uint64_t seed,
                               struct ldn_codec_desc *d)
{
    memset(d, 0, sizeof *d);
    d->kind = (enum ldn_codec_kind)c->codec;
    d->quant = (enum ldn_codec_quant)c->quant;
    double ppm = c->ratio * 1e6;
    d->ratio_ppm = ppm < 1 ? 1u : ppm > 1e6 ? 1000000u : (uint32_t)(ppm + 0.5);
    d->chunk = (uint32_t)c->chunk;
    d->levels = (uint32_t)c->levels;
    d->seed = seed;
    if (c->scope == LDN_SCOPE_GLOBAL &&
        d->kind == LDN_CODEC_TOPK)  /* global: sparse payloads per chunk, the */
        d->kind = LDN_CODEC_SPARSE; /* ratio applies to the whole trunk */
    return !(d->kind == LDN_CODEC_DENSE && d->quant == LDN_QUANT_FP32);
}

int ldn_codec_momentum_on_workers(const struct ldn_compress_config *c)
{
    struct ldn_codec_desc d;
    return c->momentum_correction && ldn_codec_desc_from_config(c, 0, &d);
}

void ldn_codec_desc_at(const struct ldn_compress_config *c, uint64_t seed, int64_t step,
                       int64_t steps_per_epoch, struct ldn_codec_desc *d)
{
    ldn_codec_desc_from_config(c, seed, d);
    if (c->warmup_epochs <= 0 || steps_per_epoch <= 0)
        return;
    double epoch = (double)step / (double)steps_per_epoch;
    if (epoch >= c->warmup_epochs)
        return;
    double ratio = pow(0.25, floor(epoch) + 1.0);
    if (ratio > c->ratio) {
        double ppm = ratio * 1e6;
        d->ratio_ppm = ppm > 1e6 ? 1000000u : (uint32_t)(ppm + 0.5);
    }
}
