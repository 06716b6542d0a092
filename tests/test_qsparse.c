/* Compressed weights for prediction (common/nn/qsparse.h, qmodel.h): int8 per-row round trip,
 * fp16 conversion, bitmap/CSR encode and decode, the sparse kernel against a dense reference
 * on random sparse matrices, and the checks the decoder makes on damaged indices. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "qmodel.h"
#include "qsparse.h"
#include "rng.h"
#include "status.h"

/* w [rows, cols] with each entry non-zero with probability density (normal values). */
static float *random_sparse(struct ldn_rng *r, int rows, int cols, double density)
{
    float *w = malloc(sizeof *w * (size_t)rows * (size_t)cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        w[i] = ldn_rng_uniform(r) < density ? (float)ldn_rng_normal(r) : 0.0f;
    return w;
}

static void test_q8_round_trip(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 3, 1);
    enum { N = 300 };
    float w[N], s;
    int8_t q[N];
    for (int trial = 0; trial < 50; trial++) {
        double mag = pow(10.0, -6 + trial % 9); /* rows of very different magnitudes */
        for (int i = 0; i < N; i++)
            w[i] = (float)(mag * ldn_rng_normal(&r));
        CU_ASSERT_EQUAL(ldn_q8_quantize_row(w, N, q, &s), 0);
        float amax = 0;
        for (int i = 0; i < N; i++)
            amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
        /* the smallest float16 at or above amax / 127 (a float16 step: 2^-10 relative, or
         * 2^-24 absolute below float16's normal range) */
        CU_ASSERT_EQUAL(ldn_f16_to_f32(ldn_f16_from_f32(s)), s);
        CU_ASSERT(s >= amax / 127.0f);
        CU_ASSERT(s <= amax / 127.0f + fmaxf(amax / 127.0f * 0x1p-10f, 0x1p-24f));
        int saw_127 = 0;
        for (int i = 0; i < N; i++) {
            CU_ASSERT(q[i] >= -127 && q[i] <= 127);
            /* within half a step (and a float's rounding of the division) */
            CU_ASSERT(fabsf((float)q[i] * s - w[i]) <= 0.5f * s * (1 + 1e-5f));
            saw_127 |= q[i] == 127 || q[i] == -127;
        }
        if (s >= 0x1p-14f) /* float16 normal: the largest weight uses the whole range */
            CU_ASSERT(saw_127);
    }
    /* rounding: half away from zero (0.5 -> 1, -1.5 -> -2, 2.5 -> 3), scale 1 from 127 */
    float h[5] = {0.5f, -1.5f, 2.5f, 127.0f, -0.49f};
    int8_t hq[5];
    ldn_q8_quantize_row(h, 5, hq, &s);
    CU_ASSERT_EQUAL(s, 1.0f);
    CU_ASSERT_EQUAL(hq[0], 1);
    CU_ASSERT_EQUAL(hq[1], -2);
    CU_ASSERT_EQUAL(hq[2], 3);
    CU_ASSERT_EQUAL(hq[3], 127);
    CU_ASSERT_EQUAL(hq[4], 0);
    /* a zero-scale channel: all zero, scale 0, no division by zero */
    float z[4] = {0, 0, 0, 0};
    int8_t zq[4] = {9, 9, 9, 9};
    ldn_q8_quantize_row(z, 4, zq, &s);
    CU_ASSERT_EQUAL(s, 0.0f);
    for (int i = 0; i < 4; i++)
        CU_ASSERT_EQUAL(zq[i], 0);
    /* a scale beyond float16 (max |w| / 127 > 65504) is refused */
    float big[2] = {1e7f, -3.0f};
    CU_ASSERT_EQUAL(ldn_q8_quantize_row(big, 2, zq, &s), -1);
}

static void test_f16(void)
{
    /* exact values, rounding to nearest even, subnormals, overflow, signs */
    CU_ASSERT_EQUAL(ldn_f16_from_f32(1.0f), 0x3c00);
    CU_ASSERT_EQUAL(ldn_f16_from_f32(-2.0f), 0xc000);
    CU_ASSERT_EQUAL(ldn_f16_from_f32(65504.0f), 0x7bff);
    CU_ASSERT_EQUAL(ldn_f16_from_f32(70000.0f), 0x7c00);
    CU_ASSERT_EQUAL(ldn_f16_from_f32(1.0f + 1.0f / 2048), 0x3c00);     /* tie: to even */
    CU_ASSERT_EQUAL(ldn_f16_from_f32(1.0f + 3.0f / 2048), 0x3c02);     /* tie: to even, up */
    CU_ASSERT_EQUAL(ldn_f16_from_f32(5.960464477539063e-08f), 0x0001); /* smallest subnormal */
    CU_ASSERT_EQUAL(ldn_f16_from_f32(1e-9f), 0x0000);
    CU_ASSERT_EQUAL(ldn_f16_to_f32(0x0001), 5.960464477539063e-08f);
    CU_ASSERT_EQUAL(ldn_f16_to_f32(0x3555), 0.333251953125f);
    /* every finite half survives the round trip */
    for (uint32_t h = 0; h < 0x10000; h++)
        if ((h & 0x7c00) != 0x7c00)
            CU_ASSERT_EQUAL(ldn_f16_from_f32(ldn_f16_to_f32((uint16_t)h)), h);
    /* relative error of a random value within 2^-11 */
    struct ldn_rng r;
    ldn_rng_init(&r, 5, 1);
    for (int i = 0; i < 10000; i++) {
        float x = (float)ldn_rng_normal(&r);
        CU_ASSERT(fabsf(ldn_f16_to_f32(ldn_f16_from_f32(x)) - x) <= fabsf(x) / 2048 + 6e-8f);
    }
}

/* Encode w as kind, decode the arrays alone, and compare positions and what they name. */
static void round_trip(int kind, const float *w, int rows, int cols)
{
    struct ldn_qs_enc e, d;
    CU_ASSERT_EQUAL_FATAL(ldn_qs_encode(kind, w, rows, cols, cols, &e), 0);
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.rows = rows;
    d.cols = cols;
    d.n = e.n;
    d.rowptr = e.rowptr, e.rowptr = NULL;
    d.col = e.col, e.col = NULL;
    d.delta = e.delta, e.delta = NULL;
    d.bits = e.bits, e.bits = NULL;
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(ldn_qs_decode(&d, "test", err, sizeof err), 0);
    int64_t nz = 0, k = 0;
    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
        nz += w[i] != 0.0f;
    for (int64_t j = 0; j < d.n; j++) {
        CU_ASSERT_EQUAL(d.pos[j], e.pos[j]);
        k += w[d.pos[j]] != 0.0f;
        if (j > 0)
            CU_ASSERT(d.pos[j] > d.pos[j - 1]);
    }
    CU_ASSERT_EQUAL(k, nz); /* every non-zero, and (csr8) only padding besides */
    if (kind != LDN_QS_CSR8)
        CU_ASSERT_EQUAL(d.n, nz);
    ldn_qs_enc_free(&e);
    ldn_qs_enc_free(&d);
}

static void test_encode_decode(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 9, 1);
    const int shapes[][2] = {{1, 1}, {7, 13}, {64, 784}, {3, 2000}, {16, 9}};
    const double dens[] = {0.0, 0.001, 0.05, 0.3, 1.0};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (size_t k = 0; k < sizeof dens / sizeof *dens; k++) {
            float *w = random_sparse(&r, shapes[s][0], shapes[s][1], dens[k]);
            if (shapes[s][0] > 2) /* an all-zero row amid the others */
                memset(w + shapes[s][1], 0, sizeof *w * (size_t)shapes[s][1]);
            for (int kind = LDN_QS_BITMAP; kind <= LDN_QS_CSR16; kind++)
                round_trip(kind, w, shapes[s][0], shapes[s][1]);
            free(w);
        }
    /* csr8 gaps: exactly 256 and 257 apart, and a last column after a long run */
    float g[1000] = {0};
    g[0] = g[256] = g[513] = g[999] = 1.0f;
    struct ldn_qs_enc e;
    CU_ASSERT_EQUAL(ldn_qs_encode(LDN_QS_CSR8, g, 1, 1000, 1000, &e), 0);
    /* 0: delta 0; 256: gap 255, delta 255; 513: gap 256, padding at 512 then delta 0; 999: gap
     * 485, padding at 769 then delta 229 */
    CU_ASSERT_EQUAL(e.n, 6);
    CU_ASSERT_EQUAL(e.delta[1], 255);
    CU_ASSERT_EQUAL(e.pos[2], 512);
    CU_ASSERT_EQUAL(e.delta[3], 0);
    CU_ASSERT_EQUAL(e.pos[4], 769);
    CU_ASSERT_EQUAL(e.delta[5], 229);
    ldn_qs_enc_free(&e);
    round_trip(LDN_QS_CSR8, g, 1, 1000);
    /* csr16 refuses a matrix wider than its columns reach */
    float *wide = calloc(70000, sizeof *wide);
    CU_ASSERT_EQUAL(ldn_qs_encode(LDN_QS_CSR16, wide, 1, 70000, 70000, &e), LDN_ERR_ARG);
    ldn_qs_enc_free(&e);
    free(wide);
}

static void test_decode_rejects(void)
{
    float w[12] = {1, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0, 5};
    char err[LDN_ERRLEN];
    struct ldn_qs_enc e;
    /* a column out of order */
    CU_ASSERT_EQUAL(ldn_qs_encode(LDN_QS_CSR16, w, 3, 4, 4, &e), 0);
    e.col[1] = 0;
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "column"));
    e.col[1] = 4; /* past the end */
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    e.col[1] = 2;
    e.rowptr[1] = 3; /* row pointers that decrease */
    e.rowptr[2] = 2;
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "decreases"));
    ldn_qs_enc_free(&e);
    /* csr8: a delta running past the row */
    CU_ASSERT_EQUAL(ldn_qs_encode(LDN_QS_CSR8, w, 3, 4, 4, &e), 0);
    e.delta[0] = 200;
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    ldn_qs_enc_free(&e);
    /* bitmap: a bit past cols, or more bits than values */
    CU_ASSERT_EQUAL(ldn_qs_encode(LDN_QS_BITMAP, w, 3, 4, 4, &e), 0);
    e.bits[0] |= 0x80;
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "bit at column 7"));
    e.bits[0] &= 0x7f;
    e.n = 4;
    CU_ASSERT_EQUAL(ldn_qs_decode(&e, "L", err, sizeof err), LDN_ERR_FORMAT);
    ldn_qs_enc_free(&e);
}

/* Dense reference: y [rows, batch] (transposed) = act(W x + b) in double. */
static void reference(const float *w, const float *bias, int rows, int cols, const float *xt,
                      int batch, int64_t ld, enum ldn_activation act, double *y)
{
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < batch; b++) {
            double s = bias[r];
            for (int c = 0; c < cols; c++)
                s += (double)w[(int64_t)r * cols + c] * xt[c * ld + b];
            y[(int64_t)r * batch + b] = act == LDN_ACT_RELU   ? (s > 0 ? s : 0)
                                        : act == LDN_ACT_TANH ? tanh(s)
                                                              : s;
        }
}

static void test_kernel_matches_dense(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 11, 1);
    const double dens[] = {0.0, 0.02, 0.1, 0.3, 0.7, 1.0};
    const int batches[] = {1, 63, 64, 130, 256};
    const int rows = 37, cols = 300;
    for (size_t k = 0; k < sizeof dens / sizeof *dens; k++)
        for (size_t bi = 0; bi < sizeof batches / sizeof *batches; bi++) {
            const int batch = batches[bi];
            const int64_t ld = batch + 5; /* a stride other than the batch */
            float *w = random_sparse(&r, rows, cols, dens[k]);
            memset(w + 3 * cols, 0, sizeof *w * cols); /* an all-zero row: scale 0 */
            float *bias = malloc(sizeof *bias * rows), *xt = malloc(sizeof *xt * cols * ld);
            float *yt = malloc(sizeof *yt * rows * ld), *wq = malloc(sizeof *wq * rows * cols);
            double *ref = malloc(sizeof *ref * rows * batch);
            int8_t *q = malloc((size_t)rows * cols);
            float *scale = malloc(sizeof *scale * rows);
            int64_t *pos = malloc(sizeof *pos * rows * cols);
            for (int i = 0; i < rows; i++)
                bias[i] = (float)ldn_rng_normal(&r);
            for (int64_t i = 0; i < (int64_t)cols * ld; i++)
                xt[i] = (float)ldn_rng_normal(&r);
            for (int i = 0; i < rows; i++)
                ldn_q8_quantize_row(w + i * cols, cols, q + i * cols, &scale[i]);
            CU_ASSERT_EQUAL(scale[3], 0.0f);
            for (int64_t i = 0; i < (int64_t)rows * cols; i++) {
                wq[i] = (float)q[i] * scale[i / cols];
                pos[i] = i;
            }
            for (int variant = 0; variant < 3; variant++) {
                /* 0: CSR int8, 1: CSR fp32, 2: dense (sgemm) of the int8 values */
                struct ldn_qmat m;
                const float *wref = variant == 1 ? w : wq;
                CU_ASSERT_EQUAL_FATAL(ldn_qmat_build(&m, rows, cols, (int64_t)rows * cols, pos,
                                                     variant == 1 ? NULL : q, scale,
                                                     variant == 1 ? w : NULL, variant < 2 ? 1 : 0),
                                      0);
                if (variant < 2) { /* only the non-zeros are stored */
                    int64_t nz = 0;
                    for (int64_t i = 0; i < (int64_t)rows * cols; i++)
                        nz += wref[i] != 0.0f;
                    CU_ASSERT_EQUAL(m.nnz, nz);
                    CU_ASSERT_EQUAL(m.rowptr[4] - m.rowptr[3], 0);
                }
                enum ldn_activation act = (enum ldn_activation)(variant - 1); /* none/relu/tanh */
                reference(wref, bias, rows, cols, xt, batch, ld, act, ref);
                ldn_qmat_apply(&m, bias, act, xt, yt, batch, ld);
                double worst = 0;
                for (int i = 0; i < rows; i++)
                    for (int b = 0; b < batch; b++) {
                        double d = fabs(yt[i * ld + b] - ref[(int64_t)i * batch + b]);
                        worst = d > worst ? d : worst;
                    }
                CU_ASSERT(worst < 1e-3);
                /* back to dense: the values it holds */
                float *back = malloc(sizeof *back * rows * cols);
                ldn_qmat_to_dense(&m, back, cols);
                int same = 1;
                for (int64_t i = 0; i < (int64_t)rows * cols; i++)
                    same &= fabsf(back[i] - wref[i]) <= 1e-6f * fabsf(wref[i]);
                CU_ASSERT(same);
                free(back);
                ldn_qmat_free(&m);
            }
            free(w);
            free(bias);
            free(xt);
            free(yt);
            free(wq);
            free(ref);
            free(q);
            free(scale);
            free(pos);
        }
}

/* A two-layer trunk and two heads: ldn_qmodel_forward equals the layers applied one by one. */
static void test_qmodel_forward(void)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 13, 1);
    const int F = 20, H = 16, C[2] = {3, 5}, B = 70;
    struct ldn_qmodel *m = ldn_qmodel_new(F, LDN_ACT_RELU, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    float *ws[4];
    const int shapes[4][2] = {{H, F}, {H, H}, {C[0], H}, {C[1], H}};
    CU_ASSERT_EQUAL(ldn_qnet_alloc(&m->trunk, 2), 0);
    CU_ASSERT_EQUAL(ldn_qnet_alloc(&m->heads[0], 1), 0);
    CU_ASSERT_EQUAL(ldn_qnet_alloc(&m->heads[1], 1), 0);
    struct ldn_qlayer *ls[4] = {&m->trunk.layers[0], &m->trunk.layers[1], &m->heads[0].layers[0],
                                &m->heads[1].layers[0]};
    for (int i = 0; i < 4; i++) {
        int rr = shapes[i][0], cc = shapes[i][1];
        ws[i] = random_sparse(&r, rr, cc, 0.4);
        int64_t *pos = malloc(sizeof *pos * rr * cc);
        for (int64_t k = 0; k < (int64_t)rr * cc; k++)
            pos[k] = k;
        CU_ASSERT_EQUAL(
            ldn_qmat_build(&ls[i]->w, rr, cc, (int64_t)rr * cc, pos, NULL, NULL, ws[i], i != 1), 0);
        ls[i]->bias = calloc((size_t)rr, sizeof(float));
        ls[i]->act = i < 2 ? LDN_ACT_RELU : LDN_ACT_NONE;
        free(pos);
    }
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(ldn_qmodel_finish(m, B, err, sizeof err), 0);
    CU_ASSERT_EQUAL(m->classes[1], 5);
    float *x = malloc(sizeof *x * B * F);
    for (int i = 0; i < B * F; i++)
        x[i] = (float)ldn_rng_normal(&r);
    for (int t = 0; t < 2; t++) {
        const float *z = ldn_qmodel_forward(m, t, x, B);
        double worst = 0;
        for (int b = 0; b < B; b++) {
            double h1[16], h2[16];
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int c = 0; c < F; c++)
                    s += ws[0][j * F + c] * x[b * F + c];
                h1[j] = s > 0 ? s : 0;
            }
            for (int j = 0; j < H; j++) {
                double s = 0;
                for (int c = 0; c < H; c++)
                    s += ws[1][j * H + c] * h1[c];
                h2[j] = s > 0 ? s : 0;
            }
            for (int j = 0; j < C[t]; j++) {
                double s = 0;
                for (int c = 0; c < H; c++)
                    s += ws[2 + t][j * H + c] * h2[c];
                double d = fabs(z[b * C[t] + j] - s);
                worst = d > worst ? d : worst;
            }
        }
        CU_ASSERT(worst < 1e-4);
    }
    /* a head that does not take the trunk's width is refused */
    struct ldn_qmodel *bad = ldn_qmodel_new(F, LDN_ACT_RELU, 1);
    ldn_qnet_alloc(&bad->trunk, 1);
    ldn_qnet_alloc(&bad->heads[0], 1);
    int64_t p0 = 0;
    float one = 1;
    ldn_qmat_build(&bad->trunk.layers[0].w, H, F, 1, &p0, NULL, NULL, &one, 0);
    ldn_qmat_build(&bad->heads[0].layers[0].w, 2, H + 1, 1, &p0, NULL, NULL, &one, 0);
    CU_ASSERT_EQUAL(ldn_qmodel_finish(bad, 4, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "head 0 layer 0 takes 17 inputs"));
    ldn_qmodel_destroy(&bad);
    CU_ASSERT_PTR_NULL(bad);
    for (int i = 0; i < 4; i++)
        free(ws[i]);
    free(x);
    ldn_qmodel_destroy(&m);
    ldn_qmodel_destroy(&m); /* NULL is fine */
}

static const struct ldn_cu_test TESTS[] = {
    {"int8 per-row round trip within half a step, rounding, zero scale", test_q8_round_trip},
    {"fp16 conversion", test_f16},
    {"bitmap, csr8 and csr16 encode/decode round trips", test_encode_decode},
    {"decoding refuses damaged indices", test_decode_rejects},
    {"sparse kernel equals dense on random sparse matrices", test_kernel_matches_dense},
    {"compressed model forward", test_qmodel_forward},
    {NULL, NULL}};

LDN_CU_MAIN("qsparse", TESTS)
