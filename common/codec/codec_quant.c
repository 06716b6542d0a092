/* Codec quantizers: fp32, fp16, int8 per chunk, 1-bit sign, QSGD; each with an exact inverse. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "codec.h"
#include "codec_priv.h"
#include "status.h"

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline void put_u32(uint8_t *p, uint32_t u)
{
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static inline uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint16_t ldn_codec_f32_to_f16(float f)
{
    uint32_t x = f2u(f), ax = x & 0x7fffffffu;
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) /* NaN: quiet, keep the sign */
        return (uint16_t)(sign | 0x7e00u);
    if (ax >= 0x477ff000u) /* >= 65520 rounds to infinity: clamp to the largest half */
        return (uint16_t)(sign | 0x7bffu);
    if (ax >= 0x38800000u) { /* normal half */
        uint32_t h = (ax - 0x38000000u) >> 13, rem = ax & 0x1fffu;
        h += rem > 0x1000u || (rem == 0x1000u && (h & 1u));
        return (uint16_t)(sign | h);
    }
    uint32_t e = ax >> 23; /* subnormal half: round(|f| / 2^-24) */
    if (e < 102)           /* < 2^-25 rounds to zero */
        return sign;
    uint32_t mant = (ax & 0x7fffffu) | 0x800000u, shift = 126 - e;
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    h += rem > half || (rem == half && (h & 1u));
    return (uint16_t)(sign | h);
}

float ldn_codec_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;
        return sign ? -f : f;
    }
    if (e == 31)
        return u2f(sign | 0x7f800000u | (m << 13));
    return u2f(sign | ((e + 112) << 23) | (m << 13));
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define LDN_HAVE_F16C_PATH 1

/* x86 F16C: 8 values per instruction, round to nearest even like ldn_codec_f32_to_f16. Blocks
 * of 8 whose values are all finite and below 65520 in magnitude (which would round to
 * infinity, where the scalar code clamps) only; returns how many values were done, the rest
 * (and any block with such a value, and everything after it) is left to the scalar loop. */
__attribute__((target("avx,f16c"))) static int64_t fp16_f16c(const float *x, int64_t m,
                                                             uint8_t *out, float *deq)
{
    const __m256 lim = _mm256_set1_ps(65520.0f),
                 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 ok = _mm256_cmp_ps(_mm256_and_ps(v, absmask), lim, _CMP_LT_OQ); /* false for NaN */
        if (_mm256_movemask_ps(ok) != 0xff)
            break;
        __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(void *)(out + 2 * i), h); /* little-endian halves */
        _mm256_storeu_ps(deq + i, _mm256_cvtph_ps(h));
    }
    return i;
}

/* Decoding: blocks of 8 halves none of which is infinite or NaN (those are left to the
 * scalar loop, which rejects them). */
__attribute__((target("avx,f16c"))) static int64_t fp16_f16c_decode(const uint8_t *in, int64_t m,
                                                                    float *out)
{
    const __m128i expo = _mm_set1_epi16(0x7c00);
    int64_t i = 0;
    for (; i + 8 <= m; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(in + 2 * i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, expo), expo)) != 0)
            break;
        _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
    }
    return i;
}

static int have_f16c(void)
{
    static int have = -1; /* the same answer whichever thread computes it first */
    if (have < 0) {
        /* F16C from CPUID leaf 1 (clang 14's __builtin_cpu_supports does not know "f16c") */
        unsigned a, b, c = 0, d;
        const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
        __builtin_cpu_init();
        have = f16c && __builtin_cpu_supports("avx");
    }
    return have;
}

static int64_t fp16_fast(const float *x, int64_t m, uint8_t *out, float *deq)
{
    return have_f16c() ? fp16_f16c(x, m, out, deq) : 0;
}

static int64_t fp16_fast_decode(const uint8_t *in, int64_t m, float *out)
{
    return have_f16c() ? fp16_f16c_decode(in, m, out) : 0;
}
#else
static int64_t fp16_fast(const float *x, int64_t m, uint8_t *out, float *deq)
{
    (void)x, (void)m, (void)out, (void)deq;
    return 0;
}

static int64_t fp16_fast_decode(const uint8_t *in, int64_t m, float *out)
{
    (void)in, (void)m, (void)out;
    return 0;
}
#endif

static size_t nchunks(const struct ldn_codec_desc *d, int64_t m)
{
    return d->chunk ? (size_t)((m + d->chunk - 1) / d->chunk) : 0;
}

size_t ldn_codec_quant_bytes(const struct ldn_codec_desc *d, int64_t m)
{
    size_t um = (size_t)m;
    switch (d->quant) {
    case LDN_QUANT_FP32: return 4 * um;
    case LDN_QUANT_FP16: return 2 * um;
    case LDN_QUANT_INT8: return 4 * nchunks(d, m) + um;
    case LDN_QUANT_SIGN: return 4 * nchunks(d, m) + (um + 7) / 8;
    case LDN_QUANT_QSGD: return 4 * nchunks(d, m) + um;
    }
    return 0;
}

static int not_finite(char *err, size_t errlen, int64_t chunk)
{
    return ldn_fail(err, errlen, LDN_ERR_ARG, "codec quantize: non-finite value in chunk %lld",
                    (long long)chunk);
}

/* int8: s = max|x| / 127, q = round(x / s) in [-127, 127], deq = q * s. The residual x - deq
 * is exact, so deq + (x - deq) == x bitwise: q = 0 gives deq = 0; |q| >= 2 puts x within
 * [deq / 2, 2 deq] (Sterbenz); q = +-1 gives deq = s and |x| in [s / 2, 3s / 2] up to one rounding
 * of x / s, where s - |x| lies in the binade below s and is a multiple of ulp(|x|). */
static int quant_int8(const struct ldn_codec_desc *d, const float *x, int64_t m, uint8_t *out,
                      float *deq, char *err, size_t errlen)
{
    size_t nch = nchunks(d, m);
    uint8_t *codes = out + 4 * nch;
    for (size_t c = 0; c < nch; c++) {
        size_t lo = c * d->chunk, hi = lo + d->chunk < (size_t)m ? lo + d->chunk : (size_t)m;
        uint32_t mb = 0;
        for (size_t i = lo; i < hi; i++) {
            uint32_t b = f2u(x[i]) & 0x7fffffffu;
            mb = b > mb ? b : mb;
        }
        if (mb >= 0x7f800000u)
            return not_finite(err, errlen, (long long)c);
        float s = u2f(mb) / 127.0f, inv = s > 0 ? 1.0f / s : 0.0f;
        if (inv > FLT_MAX)
            inv = FLT_MAX;
        put_u32(out + 4 * c, f2u(s));
        for (size_t i = lo; i < hi; i++) {
            float t = x[i] * inv;
            t = t > 127.0f ? 127.0f : t < -127.0f ? -127.0f : t;
            int q = (int)((t + 0x1.8p23f) - 0x1.8p23f); /* round half to even, |t| <= 127 */
            codes[i] = (uint8_t)(int8_t)q;
            deq[i] = (float)q * s;
        }
    }
    return 0;
}

static int quant_sign(const struct ldn_codec_desc *d, const float *x, int64_t m, uint8_t *out,
                      float *deq, char *err, size_t errlen)
{
    size_t nch = nchunks(d, m);
    uint8_t *bits = out + 4 * nch;
    memset(bits, 0, ((size_t)m + 7) / 8);
    for (size_t c = 0; c < nch; c++) {
        size_t lo = c * d->chunk, hi = lo + d->chunk < (size_t)m ? lo + d->chunk : (size_t)m;
        double sum = 0;
        for (size_t i = lo; i < hi; i++)
            sum += fabsf(x[i]);
        if (!isfinite(sum))
            return not_finite(err, errlen, (long long)c);
        float mean = (float)(sum / (double)(hi - lo));
        put_u32(out + 4 * c, f2u(mean));
        for (size_t i = lo; i < hi; i++) {
            uint32_t neg = f2u(x[i]) >> 31;
            bits[i >> 3] |= (uint8_t)(neg << (i & 7));
            deq[i] = neg ? -mean : mean;
        }
    }
    return 0;
}

/* QSGD: unit = ||x||_2 / s per chunk, l = floor(|x| / unit) + Bernoulli(frac), so that
 * E[l * unit] = |x|; code = sign * l in [-s, s]. The Bernoulli draws compare a 24-bit uniform
 * (two per 64-bit random word, drawn a block at a time) with frac: the probability is frac
 * rounded up to a multiple of 2^-24, a bias below 6e-8 of a level. Branch-free, so the loop
 * vectorizes: |x| <= norm keeps |x| / unit within a rounding of s, and truncation is floor. */
#define QSGD_BLOCK 256
static int quant_qsgd(const struct ldn_codec_desc *d, struct ldn_rng *rng, const float *x,
                      int64_t m, uint8_t *out, float *deq, char *err, size_t errlen)
{
    size_t nch = nchunks(d, m);
    uint8_t *codes = out + 4 * nch;
    const int s = (int)d->levels;
    uint32_t rnd[QSGD_BLOCK];
    for (size_t c = 0; c < nch; c++) {
        size_t lo = c * d->chunk, hi = lo + d->chunk < (size_t)m ? lo + d->chunk : (size_t)m;
        double ss = 0;
        for (size_t i = lo; i < hi; i++)
            ss += (double)x[i] * (double)x[i];
        float norm = (float)sqrt(ss);
        if (!isfinite(norm))
            return not_finite(err, errlen, (long long)c);
        put_u32(out + 4 * c, f2u(norm));
        const float unit = norm / (float)s;
        if (!(unit > 0)) { /* an all-zero chunk (or one whose unit underflows) */
            memset(codes + lo, 0, hi - lo);
            memset(deq + lo, 0, sizeof(float) * (hi - lo));
            continue;
        }
        for (size_t b = lo; b < hi; b += QSGD_BLOCK) {
            const size_t e = b + QSGD_BLOCK < hi ? b + QSGD_BLOCK : hi;
            ldn_rng_fill_u32(rng, rnd, (int64_t)(e - b));
            for (size_t i = b; i < e; i++) {
                const float r = fabsf(x[i]) / unit;
                int l = (int)r;
                const float u = (float)(rnd[i - b] >> 8) * 0x1.0p-24f;
                l += u < r - (float)l;
                l = l > s ? s : l;
                const int q = (f2u(x[i]) >> 31) ? -l : l;
                codes[i] = (uint8_t)(int8_t)q;
                deq[i] = (float)q * unit;
            }
        }
    }
    return 0;
}

int ldn_codec_quantize(const struct ldn_codec_desc *d, struct ldn_rng *rng, const float *x,
                       int64_t m, uint8_t *out, float *deq, char *err, size_t errlen)
{
    switch (d->quant) {
    case LDN_QUANT_FP32:
        for (int64_t i = 0; i < m; i++) {
            if (!isfinite(x[i]))
                return ldn_fail(err, errlen, LDN_ERR_ARG,
                                "codec quantize: value %lld is not finite", (long long)i);
            put_u32(out + 4 * i, f2u(x[i]));
            deq[i] = x[i];
        }
        return 0;
    case LDN_QUANT_FP16:
        for (int64_t i = fp16_fast(x, m, out, deq); i < m; i++) {
            if (!isfinite(x[i]))
                return ldn_fail(err, errlen, LDN_ERR_ARG,
                                "codec quantize: value %lld is not finite", (long long)i);
            uint16_t h = ldn_codec_f32_to_f16(x[i]);
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
            deq[i] = ldn_codec_f16_to_f32(h);
        }
        return 0;
    case LDN_QUANT_INT8: return quant_int8(d, x, m, out, deq, err, errlen);
    case LDN_QUANT_SIGN: return quant_sign(d, x, m, out, deq, err, errlen);
    case LDN_QUANT_QSGD: LDN_ASSERT(rng); return quant_qsgd(d, rng, x, m, out, deq, err, errlen);
    }
    return ldn_fail(err, errlen, LDN_ERR_ARG, "codec quantize: unknown quantizer %d",
                    (int)d->quant);
}

/* Read and check the scale of chunk c: finite and >= 0. */
static int get_scale(const uint8_t *in, size_t c, float *s, char *err, size_t errlen)
{
    float f = u2f(get_u32(in + 4 * c));
    if (!isfinite(f))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "codec payload: non-finite scale in chunk %zu",
                        c);
    if (f < 0 || (f2u(f) >> 31))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "codec payload: negative scale in chunk %zu",
                        c);
    *s = f;
    return 0;
}

int ldn_codec_dequantize(const struct ldn_codec_desc *d, const uint8_t *in, int64_t m, float *out,
                         char *err, size_t errlen)
{
    size_t um = (size_t)m, nch = nchunks(d, m);
    const uint8_t *codes = in + 4 * nch;
    switch (d->quant) {
    case LDN_QUANT_FP32:
        for (size_t i = 0; i < um; i++) {
            float f = u2f(get_u32(in + 4 * i));
            if (!isfinite(f))
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "codec payload: fp32 value %zu is not finite", i);
            out[i] = f;
        }
        return 0;
    case LDN_QUANT_FP16:
        for (size_t i = (size_t)fp16_fast_decode(in, m, out); i < um; i++) {
            uint16_t h = (uint16_t)(in[2 * i] | in[2 * i + 1] << 8);
            if ((h & 0x7c00u) == 0x7c00u)
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "codec payload: fp16 value %zu is not finite", i);
            out[i] = ldn_codec_f16_to_f32(h);
        }
        return 0;
    case LDN_QUANT_INT8:
    case LDN_QUANT_QSGD: {
        int lim = d->quant == LDN_QUANT_INT8 ? 127 : (int)d->levels;
        for (size_t c = 0; c < nch; c++) {
            float s = 0;
            int rc = get_scale(in, c, &s, err, errlen);
            if (rc)
                return rc;
            if (d->quant == LDN_QUANT_QSGD)
                s = s / (float)d->levels; /* the same unit as the encoder */
            size_t lo = c * d->chunk, hi = lo + d->chunk < um ? lo + d->chunk : um;
            for (size_t i = lo; i < hi; i++) {
                int q = (int8_t)codes[i];
                if (q > lim || q < -lim)
                    return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                    "codec payload: %s code %d of value %zu outside [-%d, %d]",
                                    ldn_codec_quant_name(d->quant), q, i, lim, lim);
                out[i] = (float)q * s;
            }
        }
        return 0;
    }
    case LDN_QUANT_SIGN: {
        if ((um & 7) && (codes[um >> 3] >> (um & 7)))
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "codec payload: nonzero padding bits after %zu sign bits", um);
        for (size_t c = 0; c < nch; c++) {
            float s = 0;
            int rc = get_scale(in, c, &s, err, errlen);
            if (rc)
                return rc;
            size_t lo = c * d->chunk, hi = lo + d->chunk < um ? lo + d->chunk : um;
            for (size_t i = lo; i < hi; i++)
                out[i] = (codes[i >> 3] >> (i & 7)) & 1 ? -s : s;
        }
        return 0;
    }
    }
    return ldn_fail(err, errlen, LDN_ERR_ARG, "codec dequantize: unknown quantizer %d",
                    (int)d->quant);
}
