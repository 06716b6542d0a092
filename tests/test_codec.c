/* Gradient codecs: selection against sorting, tolerances, error feedback, QSGD bias, payload
 * round trips, and rejection of malformed payloads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "codec_priv.h"
#include "cu_main.h"
#include "status.h"

static const enum ldn_codec_quant QUANTS[] = {LDN_QUANT_FP32, LDN_QUANT_FP16, LDN_QUANT_INT8,
                                              LDN_QUANT_SIGN, LDN_QUANT_QSGD};
static const enum ldn_codec_kind KINDS[] = {LDN_CODEC_DENSE, LDN_CODEC_TOPK, LDN_CODEC_RANDOMK,
                                            LDN_CODEC_THRESHOLD};

static struct ldn_codec_desc desc(enum ldn_codec_kind kind, enum ldn_codec_quant q, uint32_t ppm)
{
    return (struct ldn_codec_desc){
        .kind = kind, .quant = q, .ratio_ppm = ppm, .chunk = 64, .levels = 4, .seed = 42};
}

static uint32_t absbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x7fffffffu;
}

/* Reference order: magnitude descending, then index ascending. */
static const float *g_ref_v;
static int cmp_ref(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    uint32_t x = absbits(g_ref_v[i]), y = absbits(g_ref_v[j]);
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    return i < j ? -1 : i > j;
}

static void fill_normal(float *v, int64_t n, struct ldn_rng *r, double scale)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)(scale * ldn_rng_normal(r));
}

static void test_topk_exact(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(1);
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 0);
    const int64_t sizes[] = {1, 2, 7, 100, 1000, 4099, 60000};
    for (size_t si = 0; si < LDN_ARRAY_LEN(sizes); si++) {
        int64_t n = sizes[si];
        float *v = malloc((size_t)n * sizeof *v);
        uint32_t *got = malloc((size_t)n * sizeof *got), *ref = malloc((size_t)n * sizeof *ref);
        for (int variant = 0; variant < 3; variant++) {
            fill_normal(v, n, &r, 1.0);
            if (variant == 1) /* heavy ties: a few levels, both signs, +-0 */
                for (int64_t i = 0; i < n; i++)
                    v[i] = (float)((int)(v[i] * 2.0f)) * 0.5f;
            if (variant == 2) /* all equal magnitude, mixed signs */
                for (int64_t i = 0; i < n; i++)
                    v[i] = (i % 3) ? 1.0f : -1.0f;
            const int64_t ks[] = {0, 1, n / 100, n / 3, n - 1, n, n + 5};
            for (size_t ki = 0; ki < LDN_ARRAY_LEN(ks); ki++) {
                int64_t k = ks[ki], kk = k < n ? k : n;
                /* exactly kk slots, as the codec sizes them: ASan sees a write past them */
                uint32_t *out = malloc((size_t)(kk > 0 ? kk : 1) * sizeof *out);
                int64_t m = ldn_codec_topk(ctx, v, n, k, out);
                CU_ASSERT_EQUAL_FATAL(m, kk);
                memcpy(got, out, (size_t)kk * sizeof *out);
                free(out);
                for (int64_t i = 0; i < n; i++)
                    ref[i] = (uint32_t)i;
                g_ref_v = v;
                qsort(ref, (size_t)n, sizeof *ref, cmp_ref);
                qsort(ref, (size_t)kk, sizeof *ref, cmp_u32);
                CU_ASSERT(memcmp(got, ref, (size_t)kk * sizeof *ref) == 0);
            }
        }
        free(v);
        free(got);
        free(ref);
    }
    CU_ASSERT_EQUAL(ldn_codec_topk(ctx, NULL, -1, 1, NULL), LDN_ERR_ARG);
    ldn_codec_ctx_destroy(&ctx);
    CU_ASSERT_PTR_NULL(ctx);
}

/* Every selected magnitude >= every unselected one; indices ascending and in range. */
static int is_top_set(const float *v, int64_t n, const uint32_t *idx, int64_t m)
{
    char *sel = calloc((size_t)n, 1);
    uint32_t min_sel = UINT32_MAX, max_un = 0;
    int ok = 1;
    for (int64_t j = 0; j < m; j++) {
        if (idx[j] >= n || (j > 0 && idx[j] <= idx[j - 1]))
            ok = 0;
        else {
            sel[idx[j]] = 1;
            min_sel = absbits(v[idx[j]]) < min_sel ? absbits(v[idx[j]]) : min_sel;
        }
    }
    for (int64_t i = 0; i < n; i++)
        if (!sel[i] && absbits(v[i]) > max_un)
            max_un = absbits(v[i]);
    free(sel);
    return ok && (m == 0 || min_sel >= max_un);
}

static void test_threshold_tolerance(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(3);
    struct ldn_rng r;
    ldn_rng_init(&r, 11, 0);
    const int64_t n = 300000;
    float *v = malloc((size_t)n * sizeof *v);
    uint32_t *idx = malloc((size_t)n * sizeof *idx);
    int in_tol_not_exact = 0;
    for (int dist = 0; dist < 5; dist++) {
        for (int64_t i = 0; i < n; i++) {
            double u = ldn_rng_uniform(&r);
            switch (dist) {
            case 0: v[i] = (float)ldn_rng_normal(&r); break;
            case 1: v[i] = (float)tan(3.141592653589793 * (u - 0.5)); break; /* Cauchy */
            case 2: v[i] = (float)(u < 0.5 ? log(2 * u + 1e-300) : -log(2 - 2 * u)); break;
            case 3: v[i] = (float)(ldn_rng_normal(&r) * pow(u + 1e-9, -2.0)); break; /* wild */
            default: v[i] = (i % 7) ? 0.0f : 1.0f; break;                            /* ties */
            }
        }
        const int64_t ks[] = {n / 1000, n / 100, n / 20};
        for (size_t ki = 0; ki < LDN_ARRAY_LEN(ks); ki++) {
            int64_t k = ks[ki];
            for (int rep = 0; rep < 3; rep++) {
                int64_t m = ldn_codec_threshold(ctx, v, n, k, idx);
                CU_ASSERT(m >= (7 * k + 9) / 10 && m <= 13 * k / 10);
                CU_ASSERT(is_top_set(v, n, idx, m));
                in_tol_not_exact += m != k;
            }
        }
    }
    /* The sampled path itself is exercised (not only the exact fallback). */
    CU_ASSERT(in_tol_not_exact > 0);
    /* Small n: exact. */
    CU_ASSERT_EQUAL(ldn_codec_threshold(ctx, v, 1000, 10, idx), 10);
    free(v);
    free(idx);
    ldn_codec_ctx_destroy(&ctx);
}

static void test_randomk(void)
{
    struct ldn_codec_ctx *a = ldn_codec_ctx_new(1), *b = ldn_codec_ctx_new(99);
    const int64_t n = 10007, k = 333;
    uint32_t *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    CU_ASSERT_EQUAL(ldn_codec_randomk(a, 5, 17, n, n * 2, x), n); /* k > n: everything */
    for (int64_t j = 0; j < n; j++)
        CU_ASSERT_EQUAL_FATAL(x[j], (uint32_t)j);
    for (uint64_t step = 0; step < 20; step++) {
        CU_ASSERT_EQUAL(ldn_codec_randomk(a, 5, step, n, k, x), k);
        CU_ASSERT_EQUAL(ldn_codec_randomk(b, 5, step, n, k, y), k);
        CU_ASSERT(memcmp(x, y, (size_t)k * sizeof *x) == 0);
        for (int64_t j = 0; j < k; j++)
            CU_ASSERT_FATAL(x[j] < n && (j == 0 || x[j] > x[j - 1]));
    }
    ldn_codec_randomk(a, 5, 1, n, k, x);
    ldn_codec_randomk(a, 5, 2, n, k, y);
    CU_ASSERT(memcmp(x, y, (size_t)k * sizeof *x) != 0);
    ldn_codec_randomk(a, 6, 1, n, k, y);
    CU_ASSERT(memcmp(x, y, (size_t)k * sizeof *x) != 0);
    /* Uniform: each of 100 indices chosen 10% of 20000 steps, sd ~ 42; allow 6 sd. */
    int hits[100] = {0};
    for (uint64_t step = 0; step < 20000; step++) {
        ldn_codec_randomk(a, 9, step, 100, 10, x);
        for (int j = 0; j < 10; j++)
            hits[x[j]]++;
    }
    for (int i = 0; i < 100; i++)
        CU_ASSERT(abs(hits[i] - 2000) < 255);
    free(x);
    free(y);
    ldn_codec_ctx_destroy(&a);
    ldn_codec_ctx_destroy(&b);
}

/* sent + new residual == grad + old residual, as floats, element by element. For sign and QSGD
 * a float identity cannot hold when |acc| is far below the chunk scale (acc = 1e-8 sent as 1.0
 * leaves a residual that float cannot hold exactly), so there the test checks: residual is
 * the one rounded difference acc - sent, exact wherever sent/2 <= acc <= 2 sent or sent == 0
 * (Sterbenz), and within half an ulp of the residual elsewhere. */
static void test_error_feedback(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(5), *rx = ldn_codec_ctx_new(6);
    struct ldn_rng r;
    ldn_rng_init(&r, 13, 0);
    const int64_t n = 5000;
    float *grad = malloc(n * sizeof *grad), *res = malloc(n * sizeof *res);
    float *old = malloc(n * sizeof *old), *sent = malloc(n * sizeof *sent);
    char err[LDN_ERRLEN];
    for (size_t qi = 0; qi < LDN_ARRAY_LEN(QUANTS); qi++) {
        for (size_t ki = 0; ki < LDN_ARRAY_LEN(KINDS); ki++) {
            struct ldn_codec_desc d = desc(KINDS[ki], QUANTS[qi], 20000);
            size_t cap = ldn_codec_max_bytes(&d, n);
            uint8_t *out = malloc(cap);
            fill_normal(res, n, &r, 0.1);
            for (uint64_t step = 0; step < 4; step++) {
                fill_normal(grad, n, &r, 1.0);
                grad[3] = 1e-30f; /* tiny and subnormal-ish values next to large ones */
                grad[4] = -3e3f;
                memcpy(old, res, n * sizeof *res);
                size_t len = 0;
                int rc = ldn_codec_compress(ctx, &d, step, grad, res, n, out, cap, &len, NULL, NULL,
                                            err, sizeof err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
                memset(sent, 0, n * sizeof *sent);
                rc = ldn_codec_decode_add(rx, &d, step, out, len, n, 1.0f, sent, err, sizeof err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
                int exact_quant = d.quant == LDN_QUANT_FP32 || d.quant == LDN_QUANT_FP16 ||
                                  d.quant == LDN_QUANT_INT8;
                int64_t bad = 0;
                for (int64_t i = 0; i < n; i++) {
                    float acc = grad[i] + old[i];
                    if (res[i] != acc - sent[i])
                        bad++; /* the residual is the rounded difference, always */
                    else if (sent[i] + res[i] == acc)
                        continue;
                    else if (exact_quant)
                        bad++;
                    else {
                        float s = fabsf(sent[i]), a = fabsf(acc);
                        int sterbenz = s / 2 <= a && a <= 2 * s && (acc < 0) == (sent[i] < 0);
                        double gap = fabs((double)sent[i] + (double)res[i] - (double)acc);
                        if (sterbenz ||
                            gap > 0.5 * (nextafterf(fabsf(res[i]), INFINITY) - fabsf(res[i])))
                            bad++;
                    }
                }
                CU_ASSERT_EQUAL(bad, 0);
                if (bad)
                    fprintf(stderr, "EF %s/%s step %llu: %lld bad\n", ldn_codec_kind_name(d.kind),
                            ldn_codec_quant_name(d.quant), (unsigned long long)step,
                            (long long)bad);
            }
            free(out);
        }
    }
    free(grad);
    free(res);
    free(old);
    free(sent);
    ldn_codec_ctx_destroy(&ctx);
    ldn_codec_ctx_destroy(&rx);
}

/* Pruning: masked keys have a gradient and a residual of exactly 0. A top-k push spends none of
 * its k on them, even when k is larger than the live keys (the count is then what is live), and
 * the decoder accepts the shorter payload; with error feedback their residual stays 0. */
static void test_topk_skips_masked(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(5), *rx = ldn_codec_ctx_new(6);
    struct ldn_rng r;
    ldn_rng_init(&r, 17, 0);
    const int64_t n = 2000;
    float *grad = calloc(n, sizeof *grad), *res = calloc(n, sizeof *res);
    uint8_t *keep = calloc(n, 1);
    char err[LDN_ERRLEN];
    int64_t live = 0;
    for (int64_t i = 0; i < n; i++)
        live += keep[i] = ldn_rng_below(&r, 10) == 0; /* 90% masked */
    const uint32_t ppms[] = {50000, 200000};          /* k below and above the live keys */
    for (size_t pi = 0; pi < LDN_ARRAY_LEN(ppms); pi++) {
        struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, ppms[pi]);
        const int64_t k = ldn_codec_desc_k(&d, n);
        size_t cap = ldn_codec_max_bytes(&d, n), len = 0;
        uint8_t *out = malloc(cap);
        for (uint64_t step = 0; step < 3; step++) {
            fill_normal(grad, n, &r, 1.0);
            for (int64_t i = 0; i < n; i++)
                grad[i] = keep[i] ? grad[i] : 0.0f;
            const uint32_t *sel;
            int64_t nsel = -1;
            CU_ASSERT_EQUAL_FATAL(ldn_codec_compress(ctx, &d, step, grad, res, n, out, cap, &len,
                                                     &sel, &nsel, err, sizeof err),
                                  0);
            CU_ASSERT_EQUAL(nsel, k < live ? k : live);
            int64_t on_masked = 0;
            for (int64_t j = 0; j < nsel; j++)
                on_masked += !keep[sel[j]];
            CU_ASSERT_EQUAL(on_masked, 0);
            for (int64_t i = 0; i < n; i++)
                if (!keep[i])
                    CU_ASSERT_EQUAL(res[i], 0.0f);
            const uint32_t *idx;
            const float *vals;
            int64_t count = -1;
            CU_ASSERT_EQUAL_FATAL(
                ldn_codec_decode(rx, &d, step, out, len, n, &idx, &vals, &count, err, sizeof err),
                0);
            CU_ASSERT_EQUAL(count, nsel);
        }
        free(out);
    }
    free(grad);
    free(res);
    free(keep);
    ldn_codec_ctx_destroy(&ctx);
    ldn_codec_ctx_destroy(&rx);
}

/* Each quantizer's error bound per element, chunk by chunk: fp16 half an ulp (relative 2^-11
 * or 2^-25 absolute), int8 s / 2, sign gives +-mean|x| with the sign of x, QSGD less than one
 * level unit ||x|| / s with the sign of x. */
static void test_quant_error(void)
{
    struct ldn_rng r, q;
    ldn_rng_init(&r, 41, 0);
    ldn_rng_init(&q, 42, 0);
    enum { M = 1000, C = 64 };
    float x[M], deq[M];
    uint8_t out[8 * M];
    char err[LDN_ERRLEN];
    fill_normal(x, M, &r, 3.0);
    x[5] = 0.0f;
    x[6] = -0.0f;
    x[7] = 1e-7f;
    for (size_t qi = 0; qi < LDN_ARRAY_LEN(QUANTS); qi++) {
        struct ldn_codec_desc d = desc(LDN_CODEC_DENSE, QUANTS[qi], 0);
        CU_ASSERT_EQUAL_FATAL(ldn_codec_quantize(&d, &q, x, M, out, deq, err, sizeof err), 0);
        int64_t bad = 0;
        for (int c = 0; c < M; c += C) {
            int hi = c + C < M ? c + C : M;
            double mx = 0, sum = 0, ss = 0;
            for (int i = c; i < hi; i++) {
                mx = fmax(mx, fabs(x[i]));
                sum += fabs(x[i]);
                ss += (double)x[i] * x[i];
            }
            for (int i = c; i < hi; i++) {
                double e = fabs((double)deq[i] - x[i]);
                switch (d.quant) {
                case LDN_QUANT_FP32: bad += e != 0; break;
                case LDN_QUANT_FP16: bad += e > fmax(fabs(x[i]) * 0x1p-11, 0x1p-25); break;
                case LDN_QUANT_INT8: bad += e > mx / 254 * (1 + 1e-6); break;
                case LDN_QUANT_SIGN:
                    bad += fabs(fabs(deq[i]) - sum / (hi - c)) > 1e-6 * sum ||
                           signbit(deq[i]) != signbit(x[i]);
                    break;
                case LDN_QUANT_QSGD:
                    bad += e >= sqrt(ss) / d.levels * (1 + 1e-6) ||
                           (deq[i] != 0 && signbit(deq[i]) != signbit(x[i]));
                    break;
                }
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
    }
}

/* int8 values at the rounding boundary x ~ s / 2: q = 1 would leave a residual x - s that
 * float cannot hold, so the identity deq + (x - deq) == x needs the quantizer's care. */
static void test_int8_boundary_exact(void)
{
    struct ldn_codec_desc d = desc(LDN_CODEC_DENSE, LDN_QUANT_INT8, 0);
    struct ldn_rng r;
    ldn_rng_init(&r, 31, 0);
    float x[64], deq[64], back[64];
    uint8_t out[4 + 64];
    char err[LDN_ERRLEN];
    int64_t bad = 0;
    for (int t = 0; t < 2000; t++) {
        x[0] = (float)(0.5 + ldn_rng_uniform(&r)) * (t % 2 ? 1e-3f : 7.0f);
        float s = x[0] / 127.0f;
        for (int i = 1; i < 64; i++) {
            float h = (i % 2 ? 0.5f : -0.5f) * s;
            for (int u = (int)ldn_rng_below(&r, 8); u > 0; u--)
                h = nextafterf(h, i % 4 < 2 ? 0.0f : h * 2);
            x[i] = h;
        }
        CU_ASSERT_EQUAL_FATAL(ldn_codec_quantize(&d, NULL, x, 64, out, deq, err, sizeof err), 0);
        CU_ASSERT_EQUAL_FATAL(ldn_codec_dequantize(&d, out, 64, back, err, sizeof err), 0);
        for (int i = 0; i < 64; i++)
            bad += deq[i] + (x[i] - deq[i]) != x[i] || back[i] != deq[i] ||
                   fabsf(x[i] - deq[i]) > 0.5f * s * 1.001f;
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* QSGD is unbiased: E[deq] = x. Per chunk of C values with s levels, QSGD (Alistarh et al.,
 * Lemma 3.1) bounds the variance: sum_i Var[deq_i] <= min(C / s^2, sqrt(C) / s) * ||x||^2.
 * Each element's variance is at most unit^2 / 4 (unit = ||x|| / s), so the mean of M draws is
 * within 6 * unit / (2 sqrt(M)) of x (6 sd), and the summed squared error of the mean is, in
 * expectation, below bound / M (checked against 3 * bound / M). */
static void test_qsgd_unbiased(void)
{
    const int C = 256, M = 4000;
    struct ldn_codec_desc d = desc(LDN_CODEC_DENSE, LDN_QUANT_QSGD, 0);
    d.chunk = (uint32_t)C;
    d.levels = 4;
    struct ldn_rng r, q;
    ldn_rng_init(&r, 21, 0);
    ldn_rng_init(&q, 22, 0);
    float x[256], deq[256], dq2[256];
    double mean[256] = {0}, var_sum = 0;
    uint8_t out[4 + 256];
    fill_normal(x, C, &r, 1.0);
    x[0] = 0.0f;
    x[1] = -1e-3f;
    double nx2 = 0;
    for (int i = 0; i < C; i++)
        nx2 += (double)x[i] * x[i];
    char err[LDN_ERRLEN];
    for (int t = 0; t < M; t++) {
        CU_ASSERT_EQUAL_FATAL(ldn_codec_quantize(&d, &q, x, C, out, deq, err, sizeof err), 0);
        CU_ASSERT_EQUAL_FATAL(ldn_codec_dequantize(&d, out, C, dq2, err, sizeof err), 0);
        CU_ASSERT_FATAL(memcmp(deq, dq2, sizeof deq) == 0);
        for (int i = 0; i < C; i++) {
            mean[i] += deq[i];
            var_sum += ((double)deq[i] - x[i]) * ((double)deq[i] - x[i]);
        }
    }
    double unit = sqrt(nx2) / d.levels, s = d.levels;
    double bound = fmin(C / (s * s), sqrt((double)C) / s) * nx2, sq = 0;
    int far = 0;
    for (int i = 0; i < C; i++) {
        mean[i] /= M;
        double e = mean[i] - x[i];
        sq += e * e;
        far += fabs(e) > 6 * unit / (2 * sqrt((double)M)) + 1e-6;
    }
    CU_ASSERT_EQUAL(far, 0);
    CU_ASSERT(sq <= 3 * bound / M);
    CU_ASSERT(var_sum / M <= bound * 1.05); /* the variance bound itself */
    CU_ASSERT_EQUAL(mean[0], 0.0);
}

static void test_fp16(void)
{
    struct {
        float f;
        uint16_t h;
    } cases[] = {
        {0.0f, 0x0000},         {-0.0f, 0x8000},           {1.0f, 0x3c00},
        {-2.0f, 0xc000},        {65504.0f, 0x7bff},        {65519.0f, 0x7bff},
        {65520.0f, 0x7bff},     {1e10f, 0x7bff},           {-1e30f, 0xfbff},
        {INFINITY, 0x7bff},     {0x1p-24f, 0x0001},        {0x1p-25f, 0x0000},
        {0x1.8p-25f, 0x0001},   {0x1.8p-24f, 0x0002},      {0x1p-14f, 0x0400},
        {0x1.ff8p-15f, 0x03ff}, {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02},
        {0x1.004p-14f, 0x0401}, {1e-10f, 0x0000},          {0x1.ffcp-15f, 0x0400},
    };
    for (size_t i = 0; i < LDN_ARRAY_LEN(cases); i++) {
        uint16_t h = ldn_codec_f32_to_f16(cases[i].f);
        CU_ASSERT_EQUAL(h, cases[i].h);
        if (h != cases[i].h)
            fprintf(stderr, "fp16(%a) = %#x, expected %#x\n", cases[i].f, h, cases[i].h);
    }
    CU_ASSERT((ldn_codec_f32_to_f16(NAN) & 0x7c00) == 0x7c00);
    /* Every finite half survives half -> float -> half. */
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00)
            CU_ASSERT_EQUAL_FATAL(ldn_codec_f32_to_f16(ldn_codec_f16_to_f32((uint16_t)h)), h);
#ifdef __FLT16_MAX__
    /* Against the compiler's conversion on random finite floats within range. */
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 0);
    for (int i = 0; i < 1000000; i++) {
        uint32_t u = (uint32_t)ldn_rng_u64(&r);
        float f;
        memcpy(&f, &u, sizeof f);
        if (!isfinite(f) || fabsf(f) >= 65520.0f)
            continue;
        __extension__ _Float16 ref = (_Float16)f;
        uint16_t rh;
        memcpy(&rh, &ref, sizeof rh);
        CU_ASSERT_EQUAL_FATAL(ldn_codec_f32_to_f16(f), rh);
    }
#endif
}

static void test_roundtrip(void)
{
    struct ldn_codec_ctx *tx = ldn_codec_ctx_new(1), *rx = ldn_codec_ctx_new(2);
    struct ldn_rng r;
    ldn_rng_init(&r, 17, 0);
    const int64_t n = 3001;
    float *v = malloc(n * sizeof *v), *deq = malloc(n * sizeof *deq), *dense = malloc(n * 4);
    uint32_t *sel = malloc(n * sizeof *sel);
    char err[LDN_ERRLEN];
    fill_normal(v, n, &r, 1.0);
    const uint32_t ratios[] = {10000, 500000};
    for (size_t qi = 0; qi < LDN_ARRAY_LEN(QUANTS); qi++) {
        for (size_t ki = 0; ki < LDN_ARRAY_LEN(KINDS); ki++) {
            for (size_t ri = 0; ri < LDN_ARRAY_LEN(ratios); ri++) {
                struct ldn_codec_desc d = desc(KINDS[ki], QUANTS[qi], ratios[ri]);
                int64_t k = ldn_codec_desc_k(&d, n), m = n;
                uint64_t step = 3;
                if (d.kind == LDN_CODEC_TOPK)
                    m = ldn_codec_topk(tx, v, n, k, sel);
                else if (d.kind == LDN_CODEC_THRESHOLD)
                    m = ldn_codec_threshold(tx, v, n, k, sel);
                else if (d.kind == LDN_CODEC_RANDOMK)
                    m = ldn_codec_randomk(tx, d.seed, step, n, k, sel);
                else
                    for (int64_t i = 0; i < n; i++)
                        sel[i] = (uint32_t)i;
                float *vals = malloc((size_t)m * sizeof *vals);
                for (int64_t j = 0; j < m; j++)
                    vals[j] = v[sel[j]];
                size_t cap = ldn_codec_max_bytes(&d, n), len = 0;
                uint8_t *out = malloc(cap);
                int rc = ldn_codec_encode(&d, n, sel, m, vals, ldn__codec_rng(tx), out, cap, &len,
                                          deq, err, sizeof err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
                if (d.kind == LDN_CODEC_TOPK) /* 1%: varint, 50%: bitmap */
                    CU_ASSERT_EQUAL(out[1], ratios[ri] == 10000 ? LDN_CODEC_IDX_VARINT
                                                                : LDN_CODEC_IDX_BITMAP);
                const uint32_t *idx;
                const float *got;
                int64_t count;
                rc = ldn_codec_decode(rx, &d, step, out, len, n, &idx, &got, &count, err,
                                      sizeof err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
                CU_ASSERT_EQUAL_FATAL(count, m);
                CU_ASSERT((idx == NULL) == (d.kind == LDN_CODEC_DENSE));
                if (idx)
                    CU_ASSERT(memcmp(idx, sel, (size_t)m * sizeof *idx) == 0);
                CU_ASSERT(memcmp(got, deq, (size_t)m * sizeof *got) == 0);
                if (d.quant == LDN_QUANT_FP32)
                    CU_ASSERT(memcmp(got, vals, (size_t)m * sizeof *got) == 0);
                /* decode + apply with a factor */
                for (int64_t i = 0; i < n; i++)
                    dense[i] = 1.0f;
                rc = ldn_codec_decode_add(rx, &d, step, out, len, n, -0.5f, dense, err, sizeof err);
                CU_ASSERT_EQUAL_FATAL(rc, 0);
                int64_t wrong = 0;
                for (int64_t j = 0; j < m; j++)
                    wrong += dense[sel[j]] != 1.0f + -0.5f * deq[j];
                CU_ASSERT_EQUAL(wrong, 0);
                free(vals);
                free(out);
            }
        }
    }
    free(v);
    free(deq);
    free(dense);
    free(sel);
    ldn_codec_ctx_destroy(&tx);
    ldn_codec_ctx_destroy(&rx);
}

static void test_desc_pack(void)
{
    char err[LDN_ERRLEN];
    struct ldn_codec_desc d = desc(LDN_CODEC_RANDOMK, LDN_QUANT_QSGD, 12345), e;
    d.chunk = 1u << 20;
    d.levels = 127;
    d.seed = 0xfedcba9876543210ull;
    uint64_t w[LDN_CODEC_DESC_WORDS];
    ldn_codec_desc_pack(&d, w);
    CU_ASSERT_EQUAL(ldn_codec_desc_unpack(w, &e, err, sizeof err), 0);
    CU_ASSERT(d.kind == e.kind && d.quant == e.quant && d.ratio_ppm == e.ratio_ppm &&
              d.chunk == e.chunk && d.levels == e.levels && d.seed == e.seed);
    uint64_t bad[LDN_CODEC_DESC_WORDS] = {w[0] | (1ull << 24), w[1], w[2]};
    CU_ASSERT_EQUAL(ldn_codec_desc_unpack(bad, &e, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown bits"));
    bad[0] = (w[0] & ~0xffull) | 9;
    CU_ASSERT_EQUAL(ldn_codec_desc_unpack(bad, &e, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "kind"));
    bad[0] = w[0] & ~(0xffull << 16); /* levels 0 */
    CU_ASSERT_EQUAL(ldn_codec_desc_unpack(bad, &e, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "levels"));
    bad[0] = w[0];
    bad[1] = 0; /* ratio 0 */
    CU_ASSERT_EQUAL(ldn_codec_desc_unpack(bad, &e, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ratio"));
    d = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, 10000);
    CU_ASSERT_EQUAL(ldn_codec_desc_k(&d, 0), 0);
    CU_ASSERT_EQUAL(ldn_codec_desc_k(&d, 1), 1);
    CU_ASSERT_EQUAL(ldn_codec_desc_k(&d, 1000), 10);
    CU_ASSERT_EQUAL(ldn_codec_desc_k(&d, 1001), 11);
}

/* --- malformed payloads --- */

static size_t header(uint8_t *b, unsigned fmt, unsigned quant, uint32_t count, uint32_t ib)
{
    const uint8_t h[LDN_CODEC_HEADER_BYTES] = {
        LDN_CODEC_VERSION, (uint8_t)fmt,          (uint8_t)quant,         0,
        (uint8_t)count,    (uint8_t)(count >> 8), (uint8_t)(count >> 16), (uint8_t)(count >> 24),
        (uint8_t)ib,       (uint8_t)(ib >> 8),    (uint8_t)(ib >> 16),    (uint8_t)(ib >> 24)};
    memcpy(b, h, sizeof h);
    return sizeof h;
}

static void put_f32(uint8_t *p, float f)
{
    memcpy(p, &f, 4); /* little-endian hosts only, as the test builds */
}

/* Decode must fail with LDN_ERR_FORMAT, an error containing want, and leave dense untouched. */
static void expect_reject(struct ldn_codec_ctx *ctx, const struct ldn_codec_desc *d,
                          const uint8_t *b, size_t len, int64_t n, const char *want)
{
    char err[LDN_ERRLEN] = "";
    float dense[64];
    for (int i = 0; i < 64; i++)
        dense[i] = 7.0f;
    int rc = ldn_codec_decode_add(ctx, d, 0, b, len, n, 1.0f, dense, err, sizeof err);
    CU_ASSERT_EQUAL(rc, LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    if (!strstr(err, want))
        fprintf(stderr, "expected \"%s\", got rc %d \"%s\"\n", want, rc, err);
    for (int i = 0; i < 64; i++)
        CU_ASSERT_EQUAL(dense[i], 7.0f);
}

static void test_malformed(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(1);
    const int64_t n = 64;
    uint8_t b[256], good[256];
    struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, 50000); /* k = 4 of 64 */
    CU_ASSERT_EQUAL_FATAL(ldn_codec_desc_k(&d, n), 4);
    /* A valid payload: indices 1, 5, 6, 40; values 1..4. */
    size_t h = header(good, LDN_CODEC_IDX_VARINT, LDN_QUANT_FP32, 4, 4);
    const uint8_t gaps[] = {1, 4, 1, 34};
    memcpy(good + h, gaps, 4);
    for (int j = 0; j < 4; j++)
        put_f32(good + h + 4 + 4 * j, (float)(j + 1));
    size_t glen = h + 4 + 16;
    float dense[64] = {0};
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(ldn_codec_decode_add(ctx, &d, 0, good, glen, n, 1.0f, dense, err, 512),
                          0);
    CU_ASSERT(dense[1] == 1.0f && dense[5] == 2.0f && dense[6] == 3.0f && dense[40] == 4.0f);

    expect_reject(ctx, &d, good, glen - 1, n, "truncated");
    expect_reject(ctx, &d, good, 5, n, "truncated");
    memcpy(b, good, glen);
    b[glen] = 0;
    expect_reject(ctx, &d, b, glen + 1, n, "trailing");
    memcpy(b, good, glen);
    b[0] = 2;
    expect_reject(ctx, &d, b, glen, n, "version");
    memcpy(b, good, glen);
    b[2] = LDN_QUANT_INT8;
    expect_reject(ctx, &d, b, glen, n, "quantizer");
    memcpy(b, good, glen);
    b[3] = 1;
    expect_reject(ctx, &d, b, glen, n, "reserved");
    memcpy(b, good, glen);
    b[1] = LDN_CODEC_IDX_SEEDED;
    expect_reject(ctx, &d, b, glen, n, "index format");
    /* count in the header differs from k */
    memcpy(b, good, glen);
    b[4] = 3;
    expect_reject(ctx, &d, b, glen - 4, n, "count mismatch");
    /* index out of range: the last gap goes past n; the first index past n */
    memcpy(b, good, glen);
    b[h + 3] = 60;
    expect_reject(ctx, &d, b, glen, n, "out of range");
    memcpy(b, good, glen);
    b[h] = 64;
    expect_reject(ctx, &d, b, glen, n, "out of range");
    /* not strictly increasing: a zero gap */
    memcpy(b, good, glen);
    b[h + 2] = 0;
    expect_reject(ctx, &d, b, glen, n, "not strictly increasing");
    /* varints: 11 bytes long; 10 bytes overflowing 64 bits; a huge first index */
    {
        uint8_t v[LDN_CODEC_HEADER_BYTES + 14 + 16];
        size_t o = header(v, LDN_CODEC_IDX_VARINT, LDN_QUANT_FP32, 4, 14);
        memset(v + o, 0x80, 10);
        v[o + 10] = 0x00;
        memcpy(v + o + 11, "\x01\x01\x01", 3);
        memset(v + o + 14, 0, 16);
        expect_reject(ctx, &d, v, sizeof v, n, "longer than 10 bytes");
        memset(v + o, 0xff, 9);
        v[o + 9] = 0x02;
        memcpy(v + o + 10, "\x01\x01\x01\x01", 4);
        expect_reject(ctx, &d, v, sizeof v, n, "overflows 64 bits");
        v[o + 9] = 0x01; /* 2^64 - 1: fits, out of range */
        expect_reject(ctx, &d, v, sizeof v, n, "out of range");
    }
    /* fewer varints than count; more bytes than count varints */
    memcpy(b, good, glen);
    b[h + 3] = 0x80;
    expect_reject(ctx, &d, b, glen, n, "ends after 3 of 4");
    {
        uint8_t v[LDN_CODEC_HEADER_BYTES + 5 + 16];
        size_t o = header(v, LDN_CODEC_IDX_VARINT, LDN_QUANT_FP32, 4, 5);
        memcpy(v + o, "\x01\x04\x01\x22\x01", 5);
        memset(v + o + 5, 0, 16);
        expect_reject(ctx, &d, v, sizeof v, n, "count mismatch");
    }
    /* bitmap: wrong popcount, wrong size */
    {
        uint8_t v[LDN_CODEC_HEADER_BYTES + 8 + 16];
        size_t o = header(v, LDN_CODEC_IDX_BITMAP, LDN_QUANT_FP32, 4, 8);
        memset(v + o, 0, 8 + 16);
        v[o] = 0x07;
        expect_reject(ctx, &d, v, sizeof v, n, "bitmap has 3 bits set");
        header(v, LDN_CODEC_IDX_BITMAP, LDN_QUANT_FP32, 4, 7);
        expect_reject(ctx, &d, v, sizeof v - 1, n, "index section");
        header(v, LDN_CODEC_IDX_BITMAP, LDN_QUANT_FP32, 4, 8);
        v[o] = 0x0f;
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &d, 0, v, sizeof v, n, 1, dense, err, 512), 0);
        /* n = 60: bits 60..63 lie beyond n */
        struct ldn_codec_desc d60 = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, 50000); /* k = 3 */
        header(v, LDN_CODEC_IDX_BITMAP, LDN_QUANT_FP32, 3, 8);
        v[o] = 0x03;
        v[o + 7] = 0x80;
        expect_reject(ctx, &d60, v, sizeof v - 4, 60, "index out of range");
    }
    /* fp32 / fp16 values that are not finite */
    memcpy(b, good, glen);
    put_f32(b + h + 4 + 8, NAN);
    expect_reject(ctx, &d, b, glen, n, "fp32 value 2 is not finite");
    put_f32(b + h + 4 + 8, INFINITY);
    expect_reject(ctx, &d, b, glen, n, "not finite");
    {
        struct ldn_codec_desc d16 = desc(LDN_CODEC_TOPK, LDN_QUANT_FP16, 50000);
        uint8_t v[LDN_CODEC_HEADER_BYTES + 4 + 8] = {0};
        size_t o = header(v, LDN_CODEC_IDX_VARINT, LDN_QUANT_FP16, 4, 4);
        memcpy(v + o, gaps, 4);
        v[o + 4 + 7] = 0x7c; /* value 3 = +inf */
        expect_reject(ctx, &d16, v, sizeof v, n, "fp16 value 3 is not finite");
        v[o + 4 + 7] = 0x3c;
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &d16, 0, v, sizeof v, n, 1, dense, err, 512), 0);
    }
    /* scales: non-finite, negative; codes out of range; sign padding */
    {
        struct ldn_codec_desc d8 = desc(LDN_CODEC_TOPK, LDN_QUANT_INT8, 50000);
        uint8_t v[LDN_CODEC_HEADER_BYTES + 4 + 4 + 4] = {0};
        size_t o = header(v, LDN_CODEC_IDX_VARINT, LDN_QUANT_INT8, 4, 4);
        memcpy(v + o, gaps, 4);
        put_f32(v + o + 4, NAN);
        expect_reject(ctx, &d8, v, sizeof v, n, "non-finite scale");
        put_f32(v + o + 4, INFINITY);
        expect_reject(ctx, &d8, v, sizeof v, n, "non-finite scale");
        put_f32(v + o + 4, -1.0f);
        expect_reject(ctx, &d8, v, sizeof v, n, "negative scale");
        put_f32(v + o + 4, 0.5f);
        v[o + 8 + 2] = 0x80; /* -128 */
        expect_reject(ctx, &d8, v, sizeof v, n, "code -128");
        v[o + 8 + 2] = 0x81; /* -127: fine */
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &d8, 0, v, sizeof v, n, 1, dense, err, 512), 0);

        struct ldn_codec_desc dq = desc(LDN_CODEC_TOPK, LDN_QUANT_QSGD, 50000); /* s = 4 */
        v[2] = LDN_QUANT_QSGD;
        v[o + 8 + 2] = 5;
        expect_reject(ctx, &dq, v, sizeof v, n, "outside [-4, 4]");
        v[o + 8 + 2] = 0xfc; /* -4 */
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &dq, 0, v, sizeof v, n, 1, dense, err, 512), 0);

        struct ldn_codec_desc ds = desc(LDN_CODEC_TOPK, LDN_QUANT_SIGN, 50000);
        uint8_t s[LDN_CODEC_HEADER_BYTES + 4 + 4 + 1] = {0};
        o = header(s, LDN_CODEC_IDX_VARINT, LDN_QUANT_SIGN, 4, 4);
        memcpy(s + o, gaps, 4);
        put_f32(s + o + 4, 0.25f);
        s[o + 8] = 0x15; /* bit 4 is padding */
        expect_reject(ctx, &ds, s, sizeof s, n, "padding");
        s[o + 8] = 0x05;
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &ds, 0, s, sizeof s, n, 1, dense, err, 512), 0);
    }
    /* dense: count must be n */
    {
        struct ldn_codec_desc dd = desc(LDN_CODEC_DENSE, LDN_QUANT_FP16, 0);
        uint8_t v[LDN_CODEC_HEADER_BYTES + 2 * 64] = {0};
        header(v, LDN_CODEC_IDX_ALL, LDN_QUANT_FP16, 63, 0);
        expect_reject(ctx, &dd, v, sizeof v - 2, n, "count mismatch");
        header(v, LDN_CODEC_IDX_ALL, LDN_QUANT_FP16, 64, 0);
        CU_ASSERT_EQUAL(ldn_codec_decode_add(ctx, &dd, 0, v, sizeof v, n, 1, dense, err, 512), 0);
    }
    ldn_codec_ctx_destroy(&ctx);
}

/* Random corruptions of valid payloads of every codec: decode either succeeds with in-range
 * indices or fails with a message; never crashes (run under the sanitizer build too). */
static void test_fuzz(void)
{
    struct ldn_codec_ctx *tx = ldn_codec_ctx_new(1), *rx = ldn_codec_ctx_new(2);
    struct ldn_rng r;
    ldn_rng_init(&r, 23, 0);
    const int64_t n = 300;
    float v[300], dense[300];
    fill_normal(v, n, &r, 1.0);
    char err[LDN_ERRLEN];
    int rejected = 0;
    for (size_t qi = 0; qi < LDN_ARRAY_LEN(QUANTS); qi++) {
        for (size_t ki = 0; ki < LDN_ARRAY_LEN(KINDS); ki++) {
            struct ldn_codec_desc d = desc(KINDS[ki], QUANTS[qi], 30000);
            d.chunk = 16;
            size_t cap = ldn_codec_max_bytes(&d, n) + 8, len = 0;
            uint8_t *out = malloc(cap), *bad = malloc(cap);
            CU_ASSERT_EQUAL_FATAL(ldn_codec_compress(tx, &d, 1, v, NULL, n, out, cap, &len, NULL,
                                                     NULL, err, sizeof err),
                                  0);
            for (int it = 0; it < 2000; it++) {
                memcpy(bad, out, len);
                size_t blen = len;
                int what = (int)ldn_rng_below(&r, 4);
                if (what == 0)
                    blen = (size_t)ldn_rng_below(&r, len);
                else if (what == 1)
                    blen = len + 1 + (size_t)ldn_rng_below(&r, cap - len - 1);
                int flips = 1 + (int)ldn_rng_below(&r, 3);
                for (int f = 0; f < flips && blen; f++)
                    bad[ldn_rng_below(&r, blen)] ^= (uint8_t)(1u << ldn_rng_below(&r, 8));
                err[0] = 0;
                int rc =
                    ldn_codec_decode_add(rx, &d, 1, bad, blen, n, 1.0f, dense, err, sizeof err);
                if (rc) {
                    rejected++;
                    CU_ASSERT_FATAL(rc == LDN_ERR_FORMAT && err[0]);
                }
            }
            free(out);
            free(bad);
        }
    }
    CU_ASSERT(rejected > 0);
    ldn_codec_ctx_destroy(&tx);
    ldn_codec_ctx_destroy(&rx);
}

/* The vectorised fp16 path (F16C where the CPU has it) codes exactly like the scalar
 * conversion: random magnitudes over the whole half range, subnormals, zeros of both signs,
 * the clamp region near 65504..65520 and beyond, in blocks that mix them. */
static void test_fp16_vector_matches_scalar(void)
{
    enum { N = 1 << 16 };
    float *x = malloc(sizeof(float) * N), *deq = malloc(sizeof(float) * N);
    uint8_t *out = malloc(2 * N);
    struct ldn_rng r;
    ldn_rng_init(&r, 77, 1);
    for (int i = 0; i < N; i++) {
        double e = -30.0 + 47.0 * ldn_rng_uniform(&r); /* 2^-30 .. 2^17 */
        x[i] = (float)(pow(2.0, e) * (ldn_rng_uniform(&r) < 0.5 ? -1 : 1));
    }
    const float special[] = {0.0f,     -0.0f,    65504.0f, 65519.0f, 65520.0f, -65520.0f,      1e9f,
                             5.96e-8f, 2.98e-8f, 2.99e-8f, 6.1e-5f,  -6.1e-5f, 1.0f + 0x1p-11f};
    for (size_t k = 0; k < LDN_ARRAY_LEN(special); k++)
        x[1000 + 37 * k] = special[k];
    struct ldn_codec_desc d = desc(LDN_CODEC_DENSE, LDN_QUANT_FP16, 1000000);
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(ldn_codec_quantize(&d, NULL, x, N, out, deq, err, sizeof err), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        uint16_t want = ldn_codec_f32_to_f16(x[i]),
                 got = (uint16_t)(out[2 * i] | out[2 * i + 1] << 8);
        float wd = ldn_codec_f16_to_f32(want);
        if (got != want || memcmp(&wd, &deq[i], sizeof wd) != 0)
            bad++;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* and back: the decoder gives the scalar conversion of every code */
    float *back = malloc(sizeof(float) * N);
    CU_ASSERT_EQUAL_FATAL(ldn_codec_dequantize(&d, out, N, back, err, sizeof err), 0);
    CU_ASSERT(memcmp(back, deq, sizeof(float) * N) == 0);
    out[2 * 4001 + 1] = 0x7c; /* an infinity inside a vector block is still refused */
    out[2 * 4001] = 0;
    CU_ASSERT_EQUAL(ldn_codec_dequantize(&d, out, N, back, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "fp16 value 4001 is not finite"));
    free(back);
    free(x);
    free(deq);
    free(out);
}

/* Found by fuzzing: a 12-byte payload announcing 4294967288 index bytes. The header + index
 * length wrapped in 32 bits to exactly the payload's length, and the varint decoder read the
 * 30 indices past its end (here from the bytes that follow it in memory). It is truncated. */
static void test_decode_index_length_wrap(void)
{
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(1);
    struct ldn_codec_desc d = {.kind = LDN_CODEC_THRESHOLD,
                               .quant = LDN_QUANT_SIGN,
                               .ratio_ppm = 100000,
                               .chunk = 64,
                               .levels = 4,
                               .seed = 42};
    uint8_t buf[12 + 64];
    const uint8_t hdr[12] = {
        1, LDN_CODEC_IDX_VARINT, LDN_QUANT_SIGN, 0, 30, 0, 0, 0, 0xf8, 0xff, 0xff, 0xff};
    memcpy(buf, hdr, sizeof hdr);
    memset(buf + 12, 1, sizeof buf - 12); /* well-formed gaps, not part of the payload */
    const uint32_t *idx;
    const float *vals;
    int64_t count;
    char err[LDN_ERRLEN] = "";
    CU_ASSERT_EQUAL(
        ldn_codec_decode(ctx, &d, 0, buf, 12, 300, &idx, &vals, &count, err, sizeof err),
        LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "truncated: 12 bytes, header announces 4294967308"));
    if (!strstr(err, "truncated"))
        fprintf(stderr, "\n  got: %s\n", err);
    ldn_codec_ctx_destroy(&ctx);
}

static const struct ldn_cu_test TESTS[] = {
    {"decode: an index length near 2^32 is truncation", test_decode_index_length_wrap},
    {"fp16 vector path equals scalar", test_fp16_vector_matches_scalar},
    {"exact top-k equals sorting", test_topk_exact},
    {"sampled threshold within tolerance", test_threshold_tolerance},
    {"random-k shared by sender and receiver", test_randomk},
    {"error feedback keeps every element", test_error_feedback},
    {"top-k spends no k on masked (zero) keys", test_topk_skips_masked},
    {"quantizer error bounds", test_quant_error},
    {"int8 exact at the rounding boundary", test_int8_boundary_exact},
    {"qsgd unbiased within its variance bound", test_qsgd_unbiased},
    {"fp16 conversion", test_fp16},
    {"every codec round-trips", test_roundtrip},
    {"descriptor pack and unpack", test_desc_pack},
    {"malformed payloads rejected", test_malformed},
    {"corrupted payloads never crash", test_fuzz},
    {NULL, NULL}};

LDN_CU_MAIN("codec", TESTS)
