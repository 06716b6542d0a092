/* Compressed weight matrices for prediction: int8 per-output-row symmetric quantization,
 * fp16 values, sparse index encodings (bitmap, CSR with uint8 column deltas, CSR with uint16
 * columns) and the sparse x dense kernel that predicts from them (docs/export.md).
 *
 * Quantization: row j of W gets scale_j = max_i |W[j,i]| / 127 and q = round(W / scale_j)
 * clamped to [-127, 127], rounding half away from zero (C's lroundf); W' = q * scale_j is
 * within scale_j / 2 of W. A row of zeros has scale 0 and q = 0.
 *
 * Index encodings name the stored entries of a [rows, cols] matrix in row-major order:
 *   bitmap: uint8 [rows, ceil(cols / 8)], entry (r, c) is stored when bit c % 8 (LSB first) of
 *           byte r * ceil(cols / 8) + c / 8 is set;
 *   csr16:  rowptr uint32 [rows + 1], col uint16 [entries] (cols <= 65536);
 *   csr8:   rowptr uint32 [rows + 1], delta uint8 [entries]: in each row, column = previous
 *           column + 1 + delta (previous = -1 at the start of a row); a gap of more than 256
 *           is bridged by padding entries (delta 255, value 0).
 * An encoding's positions are the flat indices r * cols + c of its entries (a csr8 padding
 * entry names the zero column it lands on, so its value is 0 in any case).
 *
 * The kernel works on activations stored transposed ([features, batch], each feature's batch
 * contiguous) so that one stored weight updates a whole run of the batch, and the output of a
 * layer is the next layer's input in the same layout. Nothing here is thread-safe per
 * matrix; different matrices may be used from different threads. */
#ifndef LDN_QSPARSE_H
#define LDN_QSPARSE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum ldn_qs_index { LDN_QS_DENSE = 0, LDN_QS_BITMAP = 1, LDN_QS_CSR8 = 2, LDN_QS_CSR16 = 3 };

#define LDN_QS_CSR16_MAX_COLS 65536

/* An index encoding of the stored entries of a [rows, cols] matrix (owned arrays; those the
 * kind does not use are NULL). */
struct ldn_qs_enc {
    int kind; /* enum ldn_qs_index */
    int rows, cols;
    int64_t n;        /* stored entries (csr8: padding included) */
    uint32_t *rowptr; /* csr8, csr16: [rows + 1] */
    uint16_t *col;    /* csr16: [n] */
    uint8_t *delta;   /* csr8: [n] */
    uint8_t *bits;    /* bitmap: [rows * ((cols + 7) / 8)] */
    int64_t *pos;     /* [n]: flat index of each entry */
};

/* A matrix ready for the kernel: dense fp32 [rows, cols], or CSR (uint16 columns) with int8
 * values times a per-row scale or with fp32 values. */
struct ldn_qmat {
    int rows, cols;
    int sparse;       /* 1: CSR below; 0: dense */
    int64_t nnz;      /* sparse: stored entries */
    uint32_t *rowptr; /* [rows + 1] */
    uint16_t *col;    /* [nnz] */
    int8_t *q;        /* [nnz] int8 values (with scale), or NULL */
    float *v;         /* [nnz] fp32 values (when q == NULL) */
    float *scale;     /* [rows] (with q) */
    float *dense;     /* [rows, cols] (dense) */
};

/* Name of an index kind ("dense", "bitmap", "csr8", "csr16"), and the kind of a name (-1). */
const char *ldn_qs_index_name(int kind);
int ldn_qs_index_kind(const char *name);

/* IEEE half precision from/to float, rounding to nearest even (overflow gives infinity). */
uint16_t ldn_f16_from_f32(float f);
float ldn_f16_to_f32(uint16_t h);

/* Quantize the n values of one row: *scale = max |w| / 127 rounded up to a float16 (exports
 * store scales as float16; every |w[i]| / scale is then at most 127) and q[i] = w[i] / scale
 * rounded half away from zero (all zero, scale 0, for a row of zeros). Returns 0, or -1 when
 * max |w| / 127 is beyond float16 (above 65504: q all zero). */
int ldn_q8_quantize_row(const float *w, int n, int8_t *q, float *scale);

/* Encode the non-zero entries of w [rows, cols] (row stride ld) as `kind` (not dense) into
 * e. Returns 0, LDN_ERR_ARG (csr16 with cols > 65536, bad sizes) or LDN_ERR_NOMEM. */
int ldn_qs_encode(int kind, const float *w, int rows, int cols, int64_t ld, struct ldn_qs_enc *e);
/* Bytes the index arrays of e take (not the values). */
int64_t ldn_qs_index_bytes(const struct ldn_qs_enc *e);
/* Decode the arrays in e (kind, rows, cols, n and that kind's arrays, as read from a file)
 * into e->pos, checking them: row pointers that start at 0, never decrease and end at n,
 * columns inside the row and increasing, a bitmap with no bit past cols and exactly n set.
 * Returns 0, LDN_ERR_FORMAT with err ("<what>: ...") or LDN_ERR_NOMEM. */
int ldn_qs_decode(struct ldn_qs_enc *e, const char *what, char *err, size_t errlen);
void ldn_qs_enc_free(struct ldn_qs_enc *e);

/* Build m from the entries pos[0..n) (flat indices, increasing, -1 skipped) of a [rows, cols]
 * matrix with values q (int8, per-row scale[rows]) or v (fp32, when q is NULL). sparse = 0
 * expands them into a dense fp32 matrix (once). Copies everything it keeps. Returns 0,
 * LDN_ERR_ARG (a sparse matrix wider than 65536 columns) or LDN_ERR_NOMEM. */
int ldn_qmat_build(struct ldn_qmat *m, int rows, int cols, int64_t n, const int64_t *pos,
                   const int8_t *q, const float *scale, const float *v, int sparse);
void ldn_qmat_free(struct ldn_qmat *m);
/* m as a dense fp32 matrix into out (row r at out + r * ld; zeros where nothing is stored). */
void ldn_qmat_to_dense(const struct ldn_qmat *m, float *out, int64_t ld);

/* yt[rows, batch] = act(W xt + bias) for xt [cols, batch] (both transposed, row stride ld >=
 * batch; a stride that is not a multiple of 4 KiB keeps the rows out of each other's cache
 * sets): the CSR kernel for a sparse m (int8 values are converted on the fly and the row's
 * scale applied once per output), sgemm for a dense one. act LDN_ACT_NONE: no activation. */
void ldn_qmat_apply(const struct ldn_qmat *m, const float *bias, enum ldn_activation act,
                    const float *xt, float *yt, int batch, int64_t ld);

/* out[c * ld_out + r] = in[r * ld_in + c] for r < rows, c < cols. */
void ldn_qs_transpose(const float *in, int rows, int cols, int64_t ld_in, float *out,
                      int64_t ld_out);

#endif
