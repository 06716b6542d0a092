/* The worker's compressor: the selection it returns is what the payload carries, error
 * feedback keeps exactly what was not sent, momentum correction and factor masking, clipping,
 * the min_elements dense fallback, and global top-k over chunks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "compressor.h"
#include "cu_main.h"
#include "status.h"

enum { TRUNK = 3000, CHUNK = 1000 };

static struct ldn_codec_desc desc(enum ldn_codec_kind kind, enum ldn_codec_quant q, uint32_t ppm)
{
    return (struct ldn_codec_desc){
        .kind = kind, .quant = q, .ratio_ppm = ppm, .chunk = 64, .levels = 4, .seed = 9};
}

static void fill_normal(float *v, int64_t n, struct ldn_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        v[i] = (float)ldn_rng_normal(r);
}

static struct ldn_compressor *make_for(const struct ldn_codec_desc *d,
                                       const struct ldn_compressor_opts *o, int64_t max_chunk)
{
    char err[LDN_ERRLEN];
    struct ldn_compressor *c = ldn_compressor_new(d, 1, TRUNK, max_chunk, o, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    return c;
}

static struct ldn_compressor *make(const struct ldn_codec_desc *d,
                                   const struct ldn_compressor_opts *o)
{
    return make_for(d, o, CHUNK);
}

/* The receiving end: decodes payloads as a server would. */
static struct ldn_codec_ctx *g_rx;

/* Decode out's payload of n keys into dense[0..n) (zeroed first); returns the count and leaves
 * the decoded indices in *idx (NULL for dense), valid until the next decode. */
static int64_t decode(const struct ldn_compressor *c, uint64_t step,
                      const struct ldn_compressed *out, int64_t n, const uint32_t **idx,
                      float *dense)
{
    char err[LDN_ERRLEN];
    if (!g_rx)
        g_rx = ldn_codec_ctx_new(0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(g_rx);
    const float *vals;
    int64_t count = -1;
    CU_ASSERT_EQUAL_FATAL(ldn_codec_decode(g_rx, ldn_compressor_desc(c), step, out->payload,
                                           out->len, n, idx, &vals, &count, err, sizeof err),
                          0);
    memset(dense, 0, sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < count; j++)
        dense[*idx ? (*idx)[j] : j] = vals[j];
    return count;
}

/* For every sparse kind and quantizer: the returned selection is what decoding the payload
 * gives, index for index. */
static void test_selection_is_the_payloads(void)
{
    static const enum ldn_codec_kind kinds[] = {LDN_CODEC_TOPK, LDN_CODEC_THRESHOLD,
                                                LDN_CODEC_RANDOMK, LDN_CODEC_DENSE};
    static const enum ldn_codec_quant quants[] = {LDN_QUANT_FP32, LDN_QUANT_INT8, LDN_QUANT_SIGN,
                                                  LDN_QUANT_QSGD};
    float *g = malloc(sizeof(float) * TRUNK), *dense = malloc(sizeof(float) * CHUNK);
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 0);
    char err[LDN_ERRLEN];
    for (size_t ki = 0; ki < LDN_ARRAY_LEN(kinds); ki++)
        for (size_t qi = 0; qi < LDN_ARRAY_LEN(quants); qi++) {
            struct ldn_codec_desc d = desc(kinds[ki], quants[qi], 20000);
            struct ldn_compressor_opts o = {.error_feedback = 1};
            struct ldn_compressor *c = make(&d, &o);
            for (uint64_t step = 0; step < 3; step++) {
                fill_normal(g, TRUNK, &r);
                for (int64_t lo = 0; lo < TRUNK; lo += CHUNK) {
                    struct ldn_compressed out;
                    CU_ASSERT_EQUAL_FATAL(ldn_compressor_compress(c, step * 7 + (uint64_t)lo, g, lo,
                                                                  lo + CHUNK, &out, err,
                                                                  sizeof err),
                                          0);
                    CU_ASSERT_FALSE(out.dense);
                    const uint32_t *idx;
                    int64_t count = decode(c, step * 7 + (uint64_t)lo, &out, CHUNK, &idx, dense);
                    CU_ASSERT_EQUAL(out.nsel, count);
                    if (kinds[ki] == LDN_CODEC_DENSE) {
                        CU_ASSERT_PTR_NULL(out.sel);
                        CU_ASSERT_EQUAL(out.nsel, CHUNK);
                        continue;
                    }
                    CU_ASSERT_PTR_NOT_NULL_FATAL(out.sel);
                    CU_ASSERT(count > 0 && count < CHUNK);
                    CU_ASSERT(memcmp(out.sel, idx, sizeof *idx * (size_t)count) == 0);
                }
            }
            ldn_compressor_destroy(&c);
            CU_ASSERT_PTR_NULL(c);
        }
    free(g);
    free(dense);
}

/* fp32 error feedback: per key of the chunk, residual + sent == gradient + old residual
 * bitwise (the sent keys' residual is 0, the others keep the sum); keys outside the chunk are
 * untouched. */
static void test_error_feedback_keeps_the_rest(void)
{
    struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, 50000);
    struct ldn_compressor_opts o = {.error_feedback = 1};
    struct ldn_compressor *c = make(&d, &o);
    float *g = malloc(sizeof(float) * TRUNK), *acc = malloc(sizeof(float) * TRUNK);
    float *sent = malloc(sizeof(float) * CHUNK), *res = ldn_compressor_residual(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(res);
    CU_ASSERT_PTR_NULL(ldn_compressor_velocity(c));
    struct ldn_rng r;
    ldn_rng_init(&r, 4, 0);
    char err[LDN_ERRLEN];
    for (uint64_t step = 0; step < 5; step++) {
        fill_normal(g, TRUNK, &r);
        const int64_t lo = (int64_t)(step % 3) * CHUNK;
        for (int64_t i = 0; i < TRUNK; i++)
            acc[i] = i >= lo && i < lo + CHUNK ? g[i] + res[i] : res[i];
        struct ldn_compressed out;
        CU_ASSERT_EQUAL_FATAL(
            ldn_compressor_compress(c, step, g, lo, lo + CHUNK, &out, err, sizeof err), 0);
        const uint32_t *idx;
        CU_ASSERT_EQUAL(decode(c, step, &out, CHUNK, &idx, sent), 50);
        int exact = 1, zero_where_sent = 1;
        for (int64_t i = 0; i < TRUNK; i++) {
            float s = i >= lo && i < lo + CHUNK ? sent[i - lo] : 0.0f;
            exact &= res[i] + s == acc[i];
        }
        for (int64_t j = 0; j < out.nsel; j++)
            zero_where_sent &= res[lo + out.sel[j]] == 0.0f;
        CU_ASSERT(exact);
        CU_ASSERT(zero_where_sent);
    }
    double ss = 0;
    for (int64_t i = 0; i < TRUNK; i++)
        ss += (double)res[i] * res[i];
    CU_ASSERT(ss > 0);
    CU_ASSERT_EQUAL(ldn_compressor_residual_norm(c), sqrt(ss));
    ldn_compressor_destroy(&c);
    ldn_compressor_destroy(&c); /* NULL is fine */
    ldn_compressor_destroy(NULL);
    free(g);
    free(acc);
    free(sent);
}

/* Momentum correction: u = m * u + g per key of the chunk; with masking u is exactly 0 at the
 * selected keys and only there; without, nothing is zeroed. */
static void test_momentum_factor_masking(void)
{
    for (int masking = 0; masking <= 1; masking++) {
        struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_INT8, 10000);
        struct ldn_compressor_opts o = {
            .error_feedback = 1, .momentum_correction = 1, .momentum = 0.9f, .masking = masking};
        struct ldn_compressor *c = make(&d, &o);
        float *u = ldn_compressor_velocity(c), *want = malloc(sizeof(float) * TRUNK);
        float *g = malloc(sizeof(float) * TRUNK);
        char *picked = calloc(TRUNK, 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(u);
        struct ldn_rng r;
        ldn_rng_init(&r, 5, 0);
        char err[LDN_ERRLEN];
        for (uint64_t step = 0; step < 4; step++) {
            fill_normal(g, TRUNK, &r);
            for (int64_t i = 0; i < TRUNK; i++)
                want[i] = i >= CHUNK && i < 2 * CHUNK ? 0.9f * u[i] + g[i] : u[i];
            struct ldn_compressed out;
            CU_ASSERT_EQUAL_FATAL(
                ldn_compressor_compress(c, step, g, CHUNK, 2 * CHUNK, &out, err, sizeof err), 0);
            CU_ASSERT_EQUAL(out.nsel, 10);
            memset(picked, 0, TRUNK);
            for (int64_t j = 0; j < out.nsel; j++)
                picked[CHUNK + out.sel[j]] = 1;
            int ok = 1;
            for (int64_t i = 0; i < TRUNK; i++)
                ok &= u[i] == (masking && picked[i] ? 0.0f : want[i]);
            CU_ASSERT(ok);
        }
        ldn_compressor_destroy(&c);
        free(want);
        free(g);
        free(picked);
    }
}

/* Nesterov momentum correction at ratio 1, fp32, no error feedback: the chunk sends
 * g + m * u with the updated velocity u = m * u + g. Clipping first scales the gradient to
 * clip_norm * sqrt(n / trunk keys). */
static void test_nesterov_and_clipping(void)
{
    for (int clip = 0; clip <= 1; clip++) {
        struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_FP32, 1000000);
        struct ldn_compressor_opts o = {.momentum_correction = 1,
                                        .momentum = 0.5f,
                                        .nesterov = 1,
                                        .clip_norm = clip ? 2.0 : 0.0};
        struct ldn_compressor *c = make(&d, &o);
        CU_ASSERT_PTR_NULL(ldn_compressor_residual(c));
        CU_ASSERT_EQUAL(ldn_compressor_residual_norm(c), 0.0);
        float *g = malloc(sizeof(float) * TRUNK), *sent = malloc(sizeof(float) * CHUNK);
        float *u = ldn_compressor_velocity(c), *u0 = malloc(sizeof(float) * CHUNK);
        struct ldn_rng r;
        ldn_rng_init(&r, 6, 0);
        char err[LDN_ERRLEN];
        for (uint64_t step = 0; step < 3; step++) {
            fill_normal(g, TRUNK, &r);
            memcpy(u0, u, sizeof(float) * CHUNK);
            struct ldn_compressed out;
            CU_ASSERT_EQUAL_FATAL(
                ldn_compressor_compress(c, step, g, 0, CHUNK, &out, err, sizeof err), 0);
            const uint32_t *idx;
            CU_ASSERT_EQUAL(decode(c, step, &out, CHUNK, &idx, sent), CHUNK);
            double ss = 0, bound = 2.0 * sqrt((double)CHUNK / TRUNK);
            for (int64_t i = 0; i < CHUNK; i++)
                ss += (double)g[i] * g[i];
            float f = clip && ss > bound * bound ? (float)(bound / sqrt(ss)) : 1.0f;
            CU_ASSERT(!clip || f < 1.0f); /* N(0, 1) values are far over the bound */
            int ok = 1;
            for (int64_t i = 0; i < CHUNK; i++) {
                float gi = clip ? g[i] * f : g[i], ui = 0.5f * u0[i] + gi;
                ok &= u[i] == ui && sent[i] == gi + 0.5f * ui;
            }
            CU_ASSERT(ok);
        }
        ldn_compressor_destroy(&c);
        free(g);
        free(sent);
        free(u0);
    }
}

/* A chunk under min_elements goes dense: the values are gradient + residual, the residual is
 * cleared there (and the velocity with masking); every key counts as sent. */
static void test_min_elements_dense(void)
{
    struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_INT8, 10000);
    struct ldn_compressor_opts o = {.error_feedback = 1,
                                    .min_elements = 600,
                                    .momentum_correction = 1,
                                    .momentum = 0.9f,
                                    .masking = 1};
    struct ldn_compressor *c = make(&d, &o);
    float *g = malloc(sizeof(float) * TRUNK), *res = ldn_compressor_residual(c);
    float *u = ldn_compressor_velocity(c);
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 0);
    char err[LDN_ERRLEN];
    struct ldn_compressed out;
    fill_normal(g, TRUNK, &r);
    /* a big chunk first leaves a residual and a velocity in [0, 1000) */
    CU_ASSERT_EQUAL_FATAL(ldn_compressor_compress(c, 0, g, 0, CHUNK, &out, err, sizeof err), 0);
    CU_ASSERT_FALSE(out.dense);
    CU_ASSERT(res[500] != 0.0f || res[501] != 0.0f);
    fill_normal(g, TRUNK, &r);
    float want[500];
    for (int i = 0; i < 500; i++)
        want[i] = (0.9f * u[500 + i] + g[500 + i]) + res[500 + i];
    CU_ASSERT_EQUAL_FATAL(ldn_compressor_compress(c, 1, g, 500, 1000, &out, err, sizeof err), 0);
    CU_ASSERT_TRUE(out.dense);
    CU_ASSERT_PTR_NULL(out.sel);
    CU_ASSERT_EQUAL(out.nsel, 500);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out.vals);
    int ok = 1;
    for (int i = 0; i < 500; i++)
        ok &= out.vals[i] == want[i] && res[500 + i] == 0.0f && u[500 + i] == 0.0f;
    CU_ASSERT(ok);
    ldn_compressor_destroy(&c);
    free(g);
}

/* The warm-up's descriptor change: the same compressor sends k of the ratio in force. */
static void test_use_desc(void)
{
    struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_INT8, 250000);
    struct ldn_compressor_opts o = {.error_feedback = 1};
    struct ldn_compressor *c = make(&d, &o);
    float *g = malloc(sizeof(float) * TRUNK);
    struct ldn_rng r;
    ldn_rng_init(&r, 8, 0);
    fill_normal(g, TRUNK, &r);
    char err[LDN_ERRLEN];
    struct ldn_compressed out;
    CU_ASSERT_EQUAL_FATAL(ldn_compressor_compress(c, 0, g, 0, CHUNK, &out, err, sizeof err), 0);
    CU_ASSERT_EQUAL(out.nsel, 250);
    d.ratio_ppm = 10000;
    ldn_compressor_use_desc(c, &d);
    CU_ASSERT_EQUAL(ldn_compressor_desc(c)->ratio_ppm, 10000);
    CU_ASSERT_EQUAL_FATAL(ldn_compressor_compress(c, 1, g, 0, CHUNK, &out, err, sizeof err), 0);
    CU_ASSERT_EQUAL(out.nsel, 10);
    ldn_compressor_destroy(&c);
    free(g);
}

static const float *g_ref;
static int by_magnitude(const void *a, const void *b)
{
    uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
    float x = fabsf(g_ref[i]), y = fabsf(g_ref[j]);
    if (x != y)
        return x > y ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* compress.scope = global: chunks of unequal size accumulate; only the last completes the
 * step; the chunks' selections are disjoint, each is what its payload decodes to, and their
 * union is the exact top-k over the trunk. fp32 error feedback then holds 0 at the sent keys
 * and the gradient elsewhere. */
static void test_global_scope(void)
{
    static const int64_t cuts[] = {0, 700, 1000, 2400, TRUNK};
    struct ldn_codec_desc d = desc(LDN_CODEC_SPARSE, LDN_QUANT_FP32, 10000); /* k = 30 */
    struct ldn_compressor_opts o = {.error_feedback = 1};
    struct ldn_compressor *c = make_for(&d, &o, 1400);
    CU_ASSERT_TRUE(ldn_compressor_is_global(c));
    float *g = malloc(sizeof(float) * TRUNK), *dense = malloc(sizeof(float) * CHUNK * 2);
    float *res = ldn_compressor_residual(c);
    uint32_t *order = malloc(sizeof *order * TRUNK);
    char *got = malloc(TRUNK);
    struct ldn_rng r;
    ldn_rng_init(&r, 10, 0);
    char err[LDN_ERRLEN];
    fill_normal(g, TRUNK, &r);
    for (size_t i = 0; i + 1 < LDN_ARRAY_LEN(cuts); i++) {
        int rc = ldn_compressor_global_add(c, g, cuts[i], cuts[i + 1], err, sizeof err);
        CU_ASSERT_EQUAL(rc, i + 2 == LDN_ARRAY_LEN(cuts));
    }
    memset(got, 0, TRUNK);
    int64_t total = 0;
    for (size_t i = 0; i + 1 < LDN_ARRAY_LEN(cuts); i++) {
        const int64_t lo = cuts[i], n = cuts[i + 1] - lo;
        struct ldn_compressed out;
        CU_ASSERT_EQUAL_FATAL(ldn_compressor_global_take(c, lo, lo + n, &out, err, sizeof err), 0);
        const uint32_t *idx;
        int64_t count = decode(c, 0, &out, n, &idx, dense);
        CU_ASSERT_EQUAL(count, out.nsel);
        CU_ASSERT(count == 0 || memcmp(out.sel, idx, sizeof *idx * (size_t)count) == 0);
        for (int64_t j = 0; j < out.nsel; j++) {
            CU_ASSERT(out.sel[j] < n && !got[lo + out.sel[j]]);
            got[lo + out.sel[j]] = 1;
            CU_ASSERT(dense[out.sel[j]] == g[lo + out.sel[j]]);
        }
        total += out.nsel;
    }
    CU_ASSERT_EQUAL(total, 30);
    for (uint32_t i = 0; i < TRUNK; i++)
        order[i] = i;
    g_ref = g;
    qsort(order, TRUNK, sizeof *order, by_magnitude);
    int top = 1, ef = 1;
    for (int64_t q = 0; q < TRUNK; q++)
        top &= got[order[q]] == (q < 30);
    for (int64_t i = 0; i < TRUNK; i++)
        ef &= res[i] == (got[i] ? 0.0f : g[i]);
    CU_ASSERT(top);
    CU_ASSERT(ef);
    ldn_compressor_destroy(&c);
    free(g);
    free(dense);
    free(order);
    free(got);
}

/* Invalid descriptors are refused with a message. */
static void test_bad_desc(void)
{
    struct ldn_codec_desc d = desc(LDN_CODEC_TOPK, LDN_QUANT_INT8, 0);
    struct ldn_compressor_opts o = {0};
    char err[LDN_ERRLEN] = "";
    CU_ASSERT_PTR_NULL(ldn_compressor_new(&d, 1, TRUNK, CHUNK, &o, err, sizeof err));
    CU_ASSERT(strstr(err, "ratio") != NULL);
    ldn_codec_ctx_destroy(&g_rx); /* the last test: nothing leaks */
}

static const struct ldn_cu_test TESTS[] = {
    {"selection is the payload's", test_selection_is_the_payloads},
    {"error feedback keeps the rest", test_error_feedback_keeps_the_rest},
    {"momentum factor masking", test_momentum_factor_masking},
    {"nesterov and clipping", test_nesterov_and_clipping},
    {"min_elements dense", test_min_elements_dense},
    {"use_desc", test_use_desc},
    {"global scope", test_global_scope},
    {"bad descriptor", test_bad_desc},
    {NULL, NULL}};

LDN_CU_MAIN("compressor", TESTS)
