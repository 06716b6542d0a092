/* The delta downlink: nothing before a worker holds a chunk, exactly the changed keys (fp32),
 * quantized differences whose rounding is carried into the next delta (int8), and change
 * tracking that looks only at the keys reported updated. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "cu_main.h"
#include "delta.h"
#include "status.h"
#include "store.h"

enum { N = 400 };
static const struct ldn_chunk CHUNKS[] = {{0, 200, 0, 0, 0, 1}, {200, 400, 0, 0, 1, 2}};

static struct ldn_store *make_store(void)
{
    static float init[N];
    for (int i = 0; i < N; i++)
        init[i] = (float)cos(i);
    struct ldn_store_opts o = {.rank = 1,
                               .lo = 0,
                               .hi = N,
                               .init = init,
                               .chunks = CHUNKS,
                               .n_chunks = 2,
                               .optim = {.kind = LDN_OPTIM_SGD, .lr = 0.1},
                               .timeout_s = 5};
    char err[LDN_ERRLEN];
    struct ldn_store *st = ldn_store_new(&o, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    return st;
}

static struct ldn_config config(int quant)
{
    struct ldn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.compress.downlink_quant = quant;
    cfg.compress.chunk = 64;
    cfg.compress.levels = 4;
    cfg.seed = 5;
    return cfg;
}

/* Decode the delta just coded for chunk k into idx/vals (count returned). */
static int64_t decode(const struct ldn_delta *dl, const void *buf, size_t len, const uint32_t **idx,
                      const float **vals)
{
    struct ldn_codec_desc d;
    CU_ASSERT_EQUAL_FATAL(ldn_codec_desc_unpack(ldn_delta_desc(dl), &d, NULL, 0), 0);
    struct ldn_codec_ctx *ctx = ldn_codec_ctx_new(1);
    static struct ldn_codec_ctx *keep;
    ldn_codec_ctx_destroy(&keep); /* idx/vals live in ctx until the next call */
    keep = ctx;
    int64_t cnt = -1;
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(
        ldn_codec_decode(ctx, &d, 0, buf, len, 200, idx, vals, &cnt, err, sizeof err), 0);
    return cnt;
}

static void test_exact_delta(void)
{
    struct ldn_store *st = make_store();
    struct ldn_config cfg = config(LDN_QUANT_FP32);
    struct ldn_delta *dl = ldn_delta_new(&cfg, st, 2, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl);
    const void *buf;
    size_t len;
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 0, 1, &buf, &len), 0); /* w0 holds nothing yet */
    ldn_delta_dense(dl, st, 0, 1);
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 0, 1, &buf, &len), 1);
    const uint32_t *idx;
    const float *vals;
    CU_ASSERT_EQUAL(decode(dl, buf, len, &idx, &vals), 0); /* nothing changed */
    float grad[N] = {0};
    grad[205] = 1.0f;
    grad[399] = -1.0f;
    CU_ASSERT_EQUAL(ldn_store_update(st, 1, grad, 0.5), 0);
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 1, 1, &buf, &len), 0); /* w1 still holds nothing */
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 0, 1, &buf, &len), 1);
    CU_ASSERT(len < 200 * sizeof(float));
    CU_ASSERT_EQUAL_FATAL(decode(dl, buf, len, &idx, &vals), 2);
    CU_ASSERT_EQUAL(idx[0], 5); /* chunk-relative */
    CU_ASSERT_EQUAL(idx[1], 199);
    CU_ASSERT_EQUAL(vals[0], st->params[205]); /* fp32: the new values */
    CU_ASSERT_EQUAL(vals[1], st->params[399]);
    ldn_delta_delivered(dl, 0, 1);
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 0, 1, &buf, &len), 1);
    CU_ASSERT_EQUAL(decode(dl, buf, len, &idx, &vals), 0); /* w0 is up to date */
    /* everything changed: dense is smaller */
    for (int i = 0; i < N; i++)
        grad[i] = 1.0f;
    CU_ASSERT_EQUAL(ldn_store_update(st, 1, grad, 0.5), 0);
    CU_ASSERT_EQUAL(ldn_delta_delta(dl, st, 0, 1, &buf, &len), 0);
    ldn_delta_destroy(&dl);
    CU_ASSERT_PTR_NULL(dl);
    ldn_store_destroy(&st);
}

/* int8 differences: what w0 ends up holding after each delivered delta approaches the weights,
 * because the next delta carries what rounding lost. */
static void test_quantized_delta_carries_rounding(void)
{
    struct ldn_store *st = make_store();
    struct ldn_config cfg = config(LDN_QUANT_INT8);
    struct ldn_delta *dl = ldn_delta_new(&cfg, st, 1, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl);
    float held[200];
    memcpy(held, st->params, sizeof held);
    ldn_delta_dense(dl, st, 0, 0);
    float grad[N];
    for (int i = 0; i < N; i++)
        grad[i] = i % 7 == 0 ? (float)sin(3.0 * i) : 0.0f;
    CU_ASSERT_EQUAL(ldn_store_update(st, 0, grad, 1.0), 0);
    double first = 0, last = 0;
    for (int round = 0; round < 4; round++) {
        const void *buf;
        size_t len;
        CU_ASSERT_EQUAL_FATAL(ldn_delta_delta(dl, st, 0, 0, &buf, &len), 1);
        const uint32_t *idx;
        const float *vals;
        int64_t m = decode(dl, buf, len, &idx, &vals);
        for (int64_t j = 0; j < m; j++)
            held[idx[j]] += vals[j]; /* as the worker adds them */
        ldn_delta_delivered(dl, 0, 0);
        double err = 0;
        for (int i = 0; i < 200; i++)
            err = fmax(err, fabs(held[i] - st->params[i]));
        if (round == 0)
            first = err;
        last = err;
    }
    CU_ASSERT(first > 0);         /* int8 is not exact */
    CU_ASSERT(last < first / 10); /* the remainder is sent again */
    ldn_delta_destroy(&dl);
    ldn_store_destroy(&st);
}

/* With change tracking only the keys reported changed are looked at. */
static void test_change_tracking(void)
{
    struct ldn_store *st = make_store();
    struct ldn_config cfg = config(LDN_QUANT_FP32);
    struct ldn_delta *dl = ldn_delta_new(&cfg, st, 2, 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dl);
    ldn_delta_dense(dl, st, 0, 0);
    ldn_delta_dense(dl, st, 1, 0);
    float grad[N] = {0};
    grad[3] = grad[70] = 1.0f;
    const uint32_t keys[] = {3, 70};
    CU_ASSERT_EQUAL(ldn_store_update_keys(st, 0, grad, keys, 2, 0.1), 0);
    ldn_delta_changed(dl, keys, 1); /* only key 3 reported */
    const void *buf;
    size_t len;
    const uint32_t *idx;
    const float *vals;
    CU_ASSERT_EQUAL_FATAL(ldn_delta_delta(dl, st, 0, 0, &buf, &len), 1);
    CU_ASSERT_EQUAL_FATAL(decode(dl, buf, len, &idx, &vals), 1);
    CU_ASSERT_EQUAL(idx[0], 3);
    ldn_delta_delivered(dl, 0, 0);
    CU_ASSERT_EQUAL_FATAL(ldn_delta_delta(dl, st, 0, 0, &buf, &len), 1);
    CU_ASSERT_EQUAL(decode(dl, buf, len, &idx, &vals), 0); /* its mark was cleared */
    ldn_delta_changed(dl, keys + 1, 1);
    CU_ASSERT_EQUAL_FATAL(ldn_delta_delta(dl, st, 1, 0, &buf, &len), 1); /* w1: both */
    CU_ASSERT_EQUAL(decode(dl, buf, len, &idx, &vals), 2);
    ldn_delta_dense(dl, st, 1, 0); /* a dense send clears w1's marks */
    CU_ASSERT_EQUAL_FATAL(ldn_delta_delta(dl, st, 1, 0, &buf, &len), 1);
    CU_ASSERT_EQUAL(decode(dl, buf, len, &idx, &vals), 0);
    ldn_delta_destroy(&dl);
    ldn_store_destroy(&st);
}

static const struct ldn_cu_test TESTS[] = {
    {"exact delta", test_exact_delta},
    {"quantized delta carries rounding", test_quantized_delta_carries_rounding},
    {"change tracking", test_change_tracking},
    {NULL, NULL},
};

LDN_CU_MAIN("delta", TESTS)
