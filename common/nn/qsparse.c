/* Compressed weight matrices for prediction (qsparse.h, docs/export.md). */
#include "qsparse.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

/* The kernel keeps a tile of this many batch columns of one output row in registers. */
#define TILE 64
/* and loads the inputs of the weight this many entries ahead early (columns are irregular:
 * the hardware prefetcher cannot guess them) */
#define PREFETCH 8

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(LDN_NO_CLONES)
/* One copy of the kernel per vector width, picked at load time by the CPU (GCC ifunc). */
#define KERNEL_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define KERNEL_CLONES
#endif

static const char *const INDEX_NAMES[] = {"dense", "bitmap", "csr8", "csr16"};

const char *ldn_qs_index_name(int kind)
{
    return kind >= 0 && kind <= LDN_QS_CSR16 ? INDEX_NAMES[kind] : "?";
}

int ldn_qs_index_kind(const char *name)
{
    for (int k = 0; k <= LDN_QS_CSR16; k++)
        if (!strcmp(name, INDEX_NAMES[k]))
            return k;
    return -1;
}

/* ---------------------------------------------------------------- values */

uint16_t ldn_f16_from_f32(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t exp = (x >> 23) & 0xffu, man = x & 0x7fffffu;
    if (exp == 0xff) /* inf, nan (kept quiet) */
        return (uint16_t)(sign | 0x7c00u | (man ? 0x200u | (man >> 13) : 0u));
    int e = (int)exp - 127 + 15;
    if (e >= 31)
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal half (or zero) */
        if (e < -10)
            return sign;
        man |= 0x800000u;
        int shift = 14 - e; /* 14..24 */
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1u)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
        h++; /* a carry into the exponent is right, up to infinity */
    return (uint16_t)(sign | h);
}

float ldn_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    uint32_t x;
    if (exp == 0x1f)
        x = sign | 0x7f800000u | (man << 13);
    else if (exp == 0) {
        if (man == 0)
            x = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400u));
            x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else
        x = sign | ((exp - 15 + 127) << 23) | (man << 13);
    float f;
    memcpy(&f, &x, sizeof f);
    return f;
}

int ldn_q8_quantize_row(const float *w, int n, int8_t *q, float *scale)
{
    float amax = 0.0f;
    for (int i = 0; i < n; i++)
        amax = fabsf(w[i]) > amax ? fabsf(w[i]) : amax;
    /* the smallest float16 at or above amax / 127: every |w| / scale is then <= 127 */
    uint16_t h = ldn_f16_from_f32(amax / 127.0f);
    if (ldn_f16_to_f32(h) < amax / 127.0f)
        h++; /* one float16 step up (positive values order as their bits) */
    *scale = ldn_f16_to_f32(h);
    if (!isfinite(*scale)) {
        *scale = 0.0f;
        memset(q, 0, (size_t)n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        long v = *scale > 0.0f ? lroundf(w[i] / *scale) : 0;
        q[i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    return 0;
}

/* ---------------------------------------------------------------- index encodings */

void ldn_qs_enc_free(struct ldn_qs_enc *e)
{
    free(e->rowptr);
    free(e->col);
    free(e->delta);
    free(e->bits);
    free(e->pos);
    e->rowptr = NULL;
    e->col = NULL;
    e->delta = e->bits = NULL;
    e->pos = NULL;
    e->n = 0;
}

static int64_t bitmap_row_bytes(int cols)
{
    return ((int64_t)cols + 7) / 8;
}

int64_t ldn_qs_index_bytes(const struct ldn_qs_enc *e)
{
    switch (e->kind) {
    case LDN_QS_BITMAP: return (int64_t)e->rows * bitmap_row_bytes(e->cols);
    case LDN_QS_CSR8: return 4 * ((int64_t)e->rows + 1) + e->n;
    case LDN_QS_CSR16: return 4 * ((int64_t)e->rows + 1) + 2 * e->n;
    default: return 0;
    }
}

/* Entries a csr8 row needs for the non-zeros of w[0..cols): each non-zero, plus a padding
 * entry per 256 zero columns a gap holds beyond the first 255. */
static int64_t csr8_row_entries(const float *w, int cols)
{
    int64_t n = 0;
    int prev = -1;
    for (int c = 0; c < cols; c++) {
        if (w[c] == 0.0f)
            continue;
        n += 1 + (c - prev - 1) / 256;
        prev = c;
    }
    return n;
}

int ldn_qs_encode(int kind, const float *w, int rows, int cols, int64_t ld, struct ldn_qs_enc *e)
{
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->rows = rows;
    e->cols = cols;
    if (rows < 1 || cols < 1 || ld < cols || (kind == LDN_QS_CSR16 && cols > LDN_QS_CSR16_MAX_COLS))
        return LDN_ERR_ARG;
    if (kind != LDN_QS_BITMAP && kind != LDN_QS_CSR8 && kind != LDN_QS_CSR16)
        return LDN_ERR_ARG;
    int64_t n = 0;
    for (int r = 0; r < rows; r++) {
        const float *row = w + r * ld;
        if (kind == LDN_QS_CSR8)
            n += csr8_row_entries(row, cols);
        else
            for (int c = 0; c < cols; c++)
                n += row[c] != 0.0f;
    }
    e->n = n;
    e->pos = malloc(sizeof *e->pos * (size_t)(n > 0 ? n : 1));
    if (kind == LDN_QS_BITMAP)
        e->bits = calloc((size_t)(rows * bitmap_row_bytes(cols)), 1);
    else
        e->rowptr = malloc(sizeof *e->rowptr * ((size_t)rows + 1));
    if (kind == LDN_QS_CSR16)
        e->col = malloc(sizeof *e->col * (size_t)(n > 0 ? n : 1));
    if (kind == LDN_QS_CSR8)
        e->delta = malloc((size_t)(n > 0 ? n : 1));
    if (!e->pos || (kind == LDN_QS_BITMAP ? !e->bits : !e->rowptr) ||
        (kind == LDN_QS_CSR16 && !e->col) || (kind == LDN_QS_CSR8 && !e->delta)) {
        ldn_qs_enc_free(e);
        return LDN_ERR_NOMEM;
    }
    int64_t k = 0;
    for (int r = 0; r < rows; r++) {
        const float *row = w + r * ld;
        const int64_t base = (int64_t)r * cols;
        if (e->rowptr)
            e->rowptr[r] = (uint32_t)k;
        int prev = -1;
        for (int c = 0; c < cols; c++) {
            if (row[c] == 0.0f)
                continue;
            if (kind == LDN_QS_BITMAP)
                e->bits[r * bitmap_row_bytes(cols) + c / 8] |= (uint8_t)(1u << (c % 8));
            else if (kind == LDN_QS_CSR16)
                e->col[k] = (uint16_t)c;
            else {
                while (c - prev - 1 > 255) { /* padding: a zero 256 columns on */
                    prev += 256;
                    e->delta[k] = 255;
                    e->pos[k++] = base + prev;
                }
                e->delta[k] = (uint8_t)(c - prev - 1);
                prev = c;
            }
            e->pos[k++] = base + c;
        }
    }
    if (e->rowptr)
        e->rowptr[rows] = (uint32_t)k;
    return 0;
}

/* Row pointers: 0 first, never decreasing, n last. */
static int check_rowptr(const struct ldn_qs_enc *e, const char *what, char *err, size_t errlen)
{
    if (e->rowptr[0] != 0 || e->rowptr[e->rows] != (uint64_t)e->n)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "%s: row pointers run from %u to %u, expected 0 to %lld", what,
                        e->rowptr[0], e->rowptr[e->rows], (long long)e->n);
    for (int r = 0; r < e->rows; r++)
        if (e->rowptr[r + 1] < e->rowptr[r])
            return ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s: row pointer %d decreases (%u < %u)",
                            what, r + 1, e->rowptr[r + 1], e->rowptr[r]);
    return 0;
}

int ldn_qs_decode(struct ldn_qs_enc *e, const char *what, char *err, size_t errlen)
{
    if (e->rows < 1 || e->cols < 1 || e->n < 0 || e->n > (int64_t)e->rows * e->cols * 2 + 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s: %lld entries for a [%d, %d] matrix", what,
                        (long long)e->n, e->rows, e->cols);
    free(e->pos);
    if (!(e->pos = malloc(sizeof *e->pos * (size_t)(e->n > 0 ? e->n : 1))))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "%s: out of memory", what);
    int rc;
    int64_t k = 0;
    switch (e->kind) {
    case LDN_QS_BITMAP: {
        const int64_t bpr = bitmap_row_bytes(e->cols);
        for (int r = 0; r < e->rows; r++)
            for (int64_t b = 0; b < bpr; b++) {
                unsigned byte = e->bits[r * bpr + b];
                for (; byte; byte &= byte - 1) {
                    int64_t c = b * 8 + __builtin_ctz(byte);
                    if (c >= e->cols)
                        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                        "%s: bitmap row %d has a bit at column %lld of %d", what, r,
                                        (long long)c, e->cols);
                    if (k == e->n)
                        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                        "%s: the bitmap has more bits set than the %lld values",
                                        what, (long long)e->n);
                    e->pos[k++] = (int64_t)r * e->cols + c;
                }
            }
        if (k != e->n)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "%s: the bitmap has %lld bits set for %lld values", what, (long long)k,
                            (long long)e->n);
        return 0;
    }
    case LDN_QS_CSR16:
    case LDN_QS_CSR8:
        if ((rc = check_rowptr(e, what, err, errlen)))
            return rc;
        for (int r = 0; r < e->rows; r++) {
            int64_t prev = -1;
            for (k = e->rowptr[r]; k < e->rowptr[r + 1]; k++) {
                int64_t c = e->kind == LDN_QS_CSR16 ? e->col[k] : prev + 1 + e->delta[k];
                if (c <= prev || c >= e->cols)
                    return ldn_fail(
                        err, errlen, LDN_ERR_FORMAT,
                        "%s: entry %lld of row %d is at column %lld (after %lld, of %d)", what,
                        (long long)k, r, (long long)c, (long long)prev, e->cols);
                e->pos[k] = (int64_t)r * e->cols + c;
                prev = c;
            }
        }
        return 0;
    default:
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s: unknown index kind %d", what, e->kind);
    }
}

/* ---------------------------------------------------------------- the kernel's matrices */

void ldn_qmat_free(struct ldn_qmat *m)
{
    free(m->rowptr);
    free(m->col);
    free(m->q);
    free(m->v);
    free(m->scale);
    free(m->dense);
    memset(m, 0, sizeof *m);
}

int ldn_qmat_build(struct ldn_qmat *m, int rows, int cols, int64_t n, const int64_t *pos,
                   const int8_t *q, const float *scale, const float *v, int sparse)
{
    memset(m, 0, sizeof *m);
    if (rows < 1 || cols < 1 || (sparse && cols > LDN_QS_CSR16_MAX_COLS))
        return LDN_ERR_ARG;
    m->rows = rows;
    m->cols = cols;
    m->sparse = sparse;
    if (!sparse) {
        if (!(m->dense = calloc((size_t)rows * (size_t)cols, sizeof *m->dense)))
            return LDN_ERR_NOMEM;
        for (int64_t k = 0; k < n; k++)
            if (pos[k] >= 0)
                m->dense[pos[k]] = q ? (float)q[k] * scale[pos[k] / cols] : v[k];
        return 0;
    }
    int64_t nnz = 0;
    for (int64_t k = 0; k < n; k++)
        nnz += pos[k] >= 0 && (q ? q[k] != 0 : v[k] != 0.0f);
    m->nnz = nnz;
    size_t cap = (size_t)(nnz > 0 ? nnz : 1);
    m->rowptr = calloc((size_t)rows + 1, sizeof *m->rowptr);
    m->col = malloc(cap * sizeof *m->col);
    if (q) {
        m->q = malloc(cap);
        m->scale = malloc(sizeof *m->scale * (size_t)rows);
    } else
        m->v = malloc(cap * sizeof *m->v);
    if (!m->rowptr || !m->col || (q ? !m->q || !m->scale : !m->v)) {
        ldn_qmat_free(m);
        return LDN_ERR_NOMEM;
    }
    if (q)
        memcpy(m->scale, scale, sizeof *m->scale * (size_t)rows);
    int64_t j = 0;
    for (int64_t k = 0; k < n; k++) {
        if (pos[k] < 0 || (q ? q[k] == 0 : v[k] == 0.0f))
            continue;
        int r = (int)(pos[k] / cols);
        m->rowptr[r + 1]++;
        m->col[j] = (uint16_t)(pos[k] % cols);
        if (q)
            m->q[j] = q[k];
        else
            m->v[j] = v[k];
        j++;
    }
    for (int r = 0; r < rows; r++)
        m->rowptr[r + 1] += m->rowptr[r];
    return 0;
}

void ldn_qmat_to_dense(const struct ldn_qmat *m, float *out, int64_t ld)
{
    for (int r = 0; r < m->rows; r++) {
        float *o = out + r * ld;
        if (!m->sparse) {
            memcpy(o, m->dense + (int64_t)r * m->cols, sizeof *o * (size_t)m->cols);
            continue;
        }
        memset(o, 0, sizeof *o * (size_t)m->cols);
        for (uint32_t p = m->rowptr[r]; p < m->rowptr[r + 1]; p++)
            o[m->col[p]] = m->q ? (float)m->q[p] * m->scale[r] : m->v[p];
    }
}

static inline float act1(enum ldn_activation act, float x)
{
    switch (act) {
    case LDN_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case LDN_ACT_TANH: return tanhf(x);
    default: return x;
    }
}

/* Output rows over the batch columns [b0, b0 + nb) (any nb), one at a time: scalar code for
 * the last, partial tile. */
static void csr_rows_tail(const struct ldn_qmat *m, const float *bias, enum ldn_activation act,
                          const float *xt, float *yt, int64_t ld, int b0, int nb)
{
    float acc[TILE];
    for (int r = 0; r < m->rows; r++) {
        for (int b = 0; b < nb; b++)
            acc[b] = 0.0f;
        for (uint32_t p = m->rowptr[r]; p < m->rowptr[r + 1]; p++) {
            const float w = m->q ? (float)m->q[p] : m->v[p], *x = xt + m->col[p] * ld + b0;
            for (int b = 0; b < nb; b++)
                acc[b] += w * x[b];
        }
        const float s = m->q ? m->scale[r] : 1.0f;
        float *out = yt + r * ld + b0;
        for (int b = 0; b < nb; b++)
            out[b] = act1(act, acc[b] * s + bias[r]);
    }
}

#if defined(__GNUC__)
/* 8 floats: one ymm register (AVX2, AVX-512) or two xmm. A tile's 64 outputs are eight of
 * them, which fit the 16 vector registers of AVX2 with room for the loads; 64-byte vectors
 * spilled to the stack on every weight in the AVX2 clone (GCC 12), a fifth of the speed. */
typedef float v8f __attribute__((vector_size(32)));

/* a0..a7 += w * x[0..64) (unaligned loads; a macro, as a function returning a vector changes
 * the ABI between the clones) */
#define FMA_TILE(w, x)                                                                             \
    do {                                                                                           \
        v8f x_[8];                                                                                 \
        memcpy(x_, (x), sizeof x_);                                                                \
        a0 += (w)*x_[0];                                                                           \
        a1 += (w)*x_[1];                                                                           \
        a2 += (w)*x_[2];                                                                           \
        a3 += (w)*x_[3];                                                                           \
        a4 += (w)*x_[4];                                                                           \
        a5 += (w)*x_[5];                                                                           \
        a6 += (w)*x_[6];                                                                           \
        a7 += (w)*x_[7];                                                                           \
    } while (0)

/* Full tiles of TILE = 64 batch columns: each output row's tile is eight v8f accumulators,
 * and each stored weight adds w times the 64 inputs of its column. */
KERNEL_CLONES
static void csr_tiles(const struct ldn_qmat *m, const float *bias, enum ldn_activation act,
                      const float *xt, float *yt, int64_t ld, int n_tiles)
{
    for (int t = 0; t < n_tiles; t++) { /* a tile of every input row stays in cache */
        const float *x0 = xt + (int64_t)t * TILE;
        for (int r = 0; r < m->rows; r++) {
            v8f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
            const uint32_t p0 = m->rowptr[r], p1 = m->rowptr[r + 1];
            float s = 1.0f;
            if (m->q) {
                for (uint32_t p = p0; p < p1; p++) {
                    const float w = (float)m->q[p], *x = x0 + m->col[p] * ld;
                    if (p + PREFETCH < p1) {
                        const float *n = x0 + m->col[p + PREFETCH] * ld;
                        __builtin_prefetch(n);
                        __builtin_prefetch(n + 16);
                        __builtin_prefetch(n + 32);
                        __builtin_prefetch(n + 48);
                    }
                    FMA_TILE(w, x);
                }
                s = m->scale[r];
            } else
                for (uint32_t p = p0; p < p1; p++) {
                    const float w = m->v[p], *x = x0 + m->col[p] * ld;
                    if (p + PREFETCH < p1) {
                        const float *n = x0 + m->col[p + PREFETCH] * ld;
                        __builtin_prefetch(n);
                        __builtin_prefetch(n + 16);
                        __builtin_prefetch(n + 32);
                        __builtin_prefetch(n + 48);
                    }
                    FMA_TILE(w, x);
                }
            float *out = yt + r * ld + (int64_t)t * TILE;
            const float b = bias[r];
            const v8f y[8] = {a0 * s + b, a1 * s + b, a2 * s + b, a3 * s + b,
                              a4 * s + b, a5 * s + b, a6 * s + b, a7 * s + b};
            memcpy(out, y, sizeof y);
            if (act == LDN_ACT_RELU)
                for (int k = 0; k < TILE; k++)
                    out[k] = out[k] > 0.0f ? out[k] : 0.0f;
            else if (act == LDN_ACT_TANH)
                for (int k = 0; k < TILE; k++)
                    out[k] = tanhf(out[k]);
        }
    }
}
#else
static void csr_tiles(const struct ldn_qmat *m, const float *bias, enum ldn_activation act,
                      const float *xt, float *yt, int64_t ld, int n_tiles)
{
    for (int t = 0; t < n_tiles; t++)
        csr_rows_tail(m, bias, act, xt, yt, ld, t * TILE, TILE);
}
#endif

void ldn_qmat_apply(const struct ldn_qmat *m, const float *bias, enum ldn_activation act,
                    const float *xt, float *yt, int batch, int64_t ld)
{
    if (m->sparse) {
        const int full = batch / TILE;
        csr_tiles(m, bias, act, xt, yt, ld, full);
        if (full * TILE < batch)
            csr_rows_tail(m, bias, act, xt, yt, ld, full * TILE, batch - full * TILE);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m->rows, batch, m->cols, 1.0f, m->dense,
                m->cols, xt, (int)ld, 0.0f, yt, (int)ld);
    for (int r = 0; r < m->rows; r++) {
        float *y = yt + r * ld;
        for (int b = 0; b < batch; b++)
            y[b] = act1(act, y[b] + bias[r]);
    }
}

void ldn_qs_transpose(const float *in, int rows, int cols, int64_t ld_in, float *out,
                      int64_t ld_out)
{
    enum { B = 32 }; /* blocks of B x B stay in cache both ways */
    for (int r0 = 0; r0 < rows; r0 += B)
        for (int c0 = 0; c0 < cols; c0 += B) {
            int r1 = r0 + B < rows ? r0 + B : rows, c1 = c0 + B < cols ? c0 + B : cols;
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                    out[c * ld_out + r] = in[r * ld_in + c];
        }
}
