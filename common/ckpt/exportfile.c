/* Exported model files (exportfile.h, docs/export.md). */
#define _POSIX_C_SOURCE 200809L
#include "exportfile.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "h5util.h"
#include "qsparse.h"
#include "status.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the export writer stores chunks in memory byte order, which must be little-endian"
#endif

#define KIND "export"
#define DEFLATE_LEVEL 9
#define MAX_TASKS_TEXT (LDN_MAX_TASKS * LDN_NAME_MAX)

static const char *const QUANT_NAMES[] = {"none", "fp16", "int8"};

const char *ldn_export_quant_name(int q)
{
    return q >= 0 && q <= LDN_EXPORT_INT8 ? QUANT_NAMES[q] : "?";
}

int ldn_export_quant_kind(const char *name)
{
    for (int q = 0; q <= LDN_EXPORT_INT8; q++)
        if (!strcmp(name, QUANT_NAMES[q]))
            return q;
    return -1;
}

void ldn_export_report_free(struct ldn_export_report *r)
{
    free(r->layers);
    memset(r, 0, sizeof *r);
}

static size_t quant_size(int quant)
{
    return quant == LDN_EXPORT_INT8 ? 1 : quant == LDN_EXPORT_FP16 ? 2 : 4;
}

/* IEEE half precision as HDF5 describes it (what numpy's float16 maps to). */
static hid_t half_type(void)
{
    hid_t t = H5Tcopy(H5T_IEEE_F32LE);
    if (t < 0)
        return t;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_size(t, 2) < 0 ||
        H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* ---------------------------------------------------------------- writing */

/* The filtered chunk of n elements of `size` bytes, as HDF5's filters would store it: byte
 * shuffle (for size > 1), a zlib stream (of the strategies tried, the shortest: Huffman
 * codes alone beat LZ77 on quantized weights and index gaps, which have no long repeats),
 * then the Fletcher-32 checksum. Any deflate reader decodes it. Returns the chunk's length
 * with the new buffer in *out (NULL out: the length only), or -1 when out of memory. */
static int64_t filtered_chunk(const void *buf, size_t size, int64_t n, unsigned char **out)
{
    if (out)
        *out = NULL;
    if (n <= 0)
        return 0;
    const size_t len = size * (size_t)n;
    const uLong cap = compressBound((uLong)len) + 4;
    unsigned char *sh = malloc(len), *best = malloc(cap), *cur = malloc(cap);
    int64_t blen = -1;
    if (sh && best && cur) {
        const unsigned char *b = buf;
        for (size_t i = 0; i < (size_t)n; i++) /* byte k of every element together */
            for (size_t k = 0; k < size; k++)
                sh[k * (size_t)n + i] = b[i * size + k];
        const int strategies[] = {Z_DEFAULT_STRATEGY, Z_FILTERED, Z_HUFFMAN_ONLY};
        for (size_t s = 0; s < sizeof strategies / sizeof *strategies; s++) {
            z_stream z;
            memset(&z, 0, sizeof z);
            if (deflateInit2(&z, DEFLATE_LEVEL, Z_DEFLATED, 15, 9, strategies[s]) != Z_OK)
                continue;
            z.next_in = sh;
            z.avail_in = (uInt)len;
            z.next_out = cur;
            z.avail_out = (uInt)(cap - 4);
            int zr = deflate(&z, Z_FINISH);
            int64_t got = (int64_t)z.total_out;
            deflateEnd(&z);
            if (zr == Z_STREAM_END && (blen < 0 || got < blen)) {
                unsigned char *t = best;
                best = cur;
                cur = t;
                blen = got;
            }
        }
    }
    if (blen >= 0) {
        uint32_t sum = ldn_h5_fletcher32(best, (size_t)blen);
        for (int k = 0; k < 4; k++) /* stored little-endian */
            best[blen + k] = (unsigned char)(sum >> (8 * k) & 0xffu);
        blen += 4;
    }
    free(sh);
    free(cur);
    if (out && blen >= 0)
        *out = best;
    else
        free(best);
    return blen;
}

static int64_t deflated(const void *buf, size_t size, int64_t n)
{
    return filtered_chunk(buf, size, n, NULL);
}

/* One layer's weights in the chosen number type: q (int8, with scale) or h (fp16 bits) or
 * w (fp32), each [rows, cols] contiguous, and pv: their fp32 values (zero exactly where the
 * stored value is zero), from which the index encodings are made. */
struct lvals {
    int rows, cols, quant;
    float *pv, *scale, *bias;
    int8_t *q;
    uint16_t *h;
};

static void lvals_free(struct lvals *v)
{
    free(v->pv);
    free(v->scale);
    free(v->bias);
    free(v->q);
    free(v->h);
    memset(v, 0, sizeof *v);
}

/* 0, LDN_ERR_NOMEM, or LDN_ERR_ARG for a weight that fp16 cannot hold. */
static int lvals_make(const struct ldn_layer *l, int quant, struct lvals *v)
{
    memset(v, 0, sizeof *v);
    const int rows = l->out_dim, cols = l->in_dim;
    const size_t n = (size_t)rows * (size_t)cols;
    v->rows = rows;
    v->cols = cols;
    v->quant = quant;
    v->pv = malloc(n * sizeof *v->pv);
    v->bias = malloc((size_t)rows * sizeof *v->bias);
    if (quant == LDN_EXPORT_INT8) {
        v->q = malloc(n);
        v->scale = malloc((size_t)rows * sizeof *v->scale);
    } else if (quant == LDN_EXPORT_FP16)
        v->h = malloc(n * sizeof *v->h);
    if (!v->pv || !v->bias || (quant == LDN_EXPORT_INT8 && (!v->q || !v->scale)) ||
        (quant == LDN_EXPORT_FP16 && !v->h)) {
        lvals_free(v);
        return LDN_ERR_NOMEM;
    }
    const float *w = l->tensors[0].data;
    for (int r = 0; r < rows; r++) {
        const float *row = w + r * l->row_len;
        float *pv = v->pv + (size_t)r * (size_t)cols;
        v->bias[r] = row[cols];
        if (quant == LDN_EXPORT_INT8) {
            int8_t *q = v->q + (size_t)r * (size_t)cols;
            if (ldn_q8_quantize_row(row, cols, q, &v->scale[r])) {
                lvals_free(v);
                return LDN_ERR_ARG; /* a scale beyond float16 */
            }
            for (int c = 0; c < cols; c++)
                pv[c] = (float)q[c];
        } else if (quant == LDN_EXPORT_FP16) {
            uint16_t *h = v->h + (size_t)r * (size_t)cols;
            for (int c = 0; c < cols; c++) {
                h[c] = ldn_f16_from_f32(row[c]);
                pv[c] = ldn_f16_to_f32(h[c]);
                if (!isfinite(pv[c])) { /* beyond 65504: fp16 cannot hold it */
                    lvals_free(v);
                    return LDN_ERR_ARG;
                }
            }
        } else
            memcpy(pv, row, sizeof *pv * (size_t)cols);
    }
    return 0;
}

/* Gather the stored values at e's positions (all of them when e is NULL) into a new array of
 * the layer's number type. NULL when out of memory. */
static void *gather(const struct lvals *v, const struct ldn_qs_enc *e)
{
    const int64_t n = e ? e->n : (int64_t)v->rows * v->cols;
    const size_t size = quant_size(v->quant);
    unsigned char *out = malloc(size * (size_t)(n > 0 ? n : 1));
    if (!out)
        return NULL;
    for (int64_t k = 0; k < n; k++) {
        int64_t p = e ? e->pos[k] : k;
        if (v->quant == LDN_EXPORT_INT8)
            memcpy(out + k, v->q + p, 1);
        else if (v->quant == LDN_EXPORT_FP16)
            memcpy(out + 2 * k, v->h + p, 2);
        else
            memcpy(out + 4 * k, v->pv + p, 4);
    }
    return out;
}

/* Deflated bytes of the index arrays and values of kind `kind` (e: its encoding, NULL for
 * dense). -1 when out of memory. */
static int64_t estimate(const struct lvals *v, const struct ldn_qs_enc *e)
{
    void *vals = gather(v, e);
    if (!vals)
        return -1;
    int64_t n = e ? e->n : (int64_t)v->rows * v->cols;
    int64_t total = deflated(vals, quant_size(v->quant), n), part = 0;
    free(vals);
    if (e && e->kind == LDN_QS_BITMAP)
        part = deflated(e->bits, 1, (int64_t)v->rows * ((v->cols + 7) / 8));
    else if (e) {
        part = deflated(e->rowptr, 4, (int64_t)v->rows + 1);
        int64_t more =
            e->kind == LDN_QS_CSR16 ? deflated(e->col, 2, e->n) : deflated(e->delta, 1, e->n);
        part = part < 0 || more < 0 ? -1 : part + more;
    }
    return total < 0 || part < 0 ? -1 : total + part;
}

/* A chunked dataset of one chunk with the shuffle (multi-byte types), deflate and Fletcher-32
 * filters, whose chunk ladon filters itself (filtered_chunk) and writes as it is. buf holds
 * the elements in the file type's (little-endian) byte order. */
static int write_ds(hid_t g, const char *name, hid_t ftype, int ndim, const hsize_t *dims,
                    const void *buf)
{
    hsize_t chunk[2], total = 1, zero[2] = {0, 0};
    for (int i = 0; i < ndim; i++) {
        chunk[i] = dims[i] > 0 ? dims[i] : 1;
        total *= dims[i];
    }
    const size_t size = H5Tget_size(ftype);
    hid_t sp = H5Screate_simple(ndim, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    /* no attributes on datasets: HDF5 then makes their object headers only as large as
     * their messages (about half the default) */
    int rc = sp < 0 || dcpl < 0 || size == 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ||
                     H5Pset_dset_no_attrs_hint(dcpl, 1) < 0 ||
                     H5Pset_chunk(dcpl, ndim, chunk) < 0 ||
                     (size > 1 && H5Pset_shuffle(dcpl) < 0) ||
                     H5Pset_deflate(dcpl, DEFLATE_LEVEL) < 0 || H5Pset_fletcher32(dcpl) < 0
                 ? -1
                 : 0;
    if (rc == 0 && (d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        rc = -1;
    unsigned char *c = NULL;
    int64_t clen = rc == 0 && total > 0 ? filtered_chunk(buf, size, (int64_t)total, &c) : 0;
    if (clen < 0 ||
        (rc == 0 && clen > 0 && H5Dwrite_chunk(d, H5P_DEFAULT, 0, zero, (size_t)clen, c) < 0))
        rc = -1;
    free(c);
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_close(&dcpl, H5Pclose);
    ldn_h5_close(&sp, H5Sclose);
    return rc;
}

static int attr_i32(hid_t obj, const char *name, int v)
{
    int32_t x = v;
    return ldn_h5_write_attr_scalar(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &x);
}

/* A group without modification times (so that two exports of one checkpoint are equal). */
static hid_t new_group(hid_t f, const char *name)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    ldn_h5_close(&gcpl, H5Pclose);
    return g;
}

/* The value dataset's file type. */
static hid_t value_type(int quant, hid_t half)
{
    return quant == LDN_EXPORT_INT8   ? H5T_STD_I8LE
           : quant == LDN_EXPORT_FP16 ? half
                                      : H5T_IEEE_F32LE;
}

/* The int8 scales of a layer as float16 (ldn_q8_quantize_row made each one exactly). */
static int write_scales(hid_t g, hid_t half, const struct lvals *v)
{
    uint16_t *h = malloc(sizeof *h * (size_t)(v->rows > 0 ? v->rows : 1));
    if (!h)
        return -1;
    for (int r = 0; r < v->rows; r++)
        h[r] = ldn_f16_from_f32(v->scale[r]);
    hsize_t rows = (hsize_t)v->rows;
    int rc = write_ds(g, "scale", half, 1, &rows, h);
    free(h);
    return rc;
}

/* Choose layer l's index kind by the deflated bytes of each and write its group `gname`. */
static int write_layer(hid_t f, hid_t half, const char *gname, const struct ldn_layer *l, int quant,
                       struct ldn_export_layer_report *rep, char *err, size_t errlen,
                       const char *out)
{
    struct lvals v;
    struct ldn_qs_enc enc[4];
    memset(enc, 0, sizeof enc);
    int mrc = lvals_make(l, quant, &v);
    if (mrc == LDN_ERR_ARG && quant == LDN_EXPORT_INT8)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "export %s: %s has a weight beyond int8's range (|w| > 127 x 65504, the "
                        "largest float16 scale): use --quantize none",
                        out, gname + 1);
    if (mrc == LDN_ERR_ARG)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "export %s: %s has a weight beyond fp16's range (65504): use --quantize "
                        "int8 or none",
                        out, gname + 1);
    if (mrc)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "export %s: out of memory", out);
    snprintf(rep->name, sizeof rep->name, "%s", gname + 1);
    rep->rows = v.rows;
    rep->cols = v.cols;
    rep->stored = 0;
    for (int64_t i = 0; i < (int64_t)v.rows * v.cols; i++)
        rep->stored += v.pv[i] != 0.0f;
    int rc = 0, best = LDN_QS_DENSE;
    rep->est_bytes[LDN_QS_DENSE] = estimate(&v, NULL);
    for (int k = LDN_QS_BITMAP; k <= LDN_QS_CSR16; k++) {
        rep->est_bytes[k] = -1;
        int erc = ldn_qs_encode(k, v.pv, v.rows, v.cols, v.cols, &enc[k]);
        if (erc == LDN_ERR_ARG) /* csr16 of a layer wider than 65536 */
            continue;
        if (erc || (rep->est_bytes[k] = estimate(&v, &enc[k])) < 0) {
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "export %s: out of memory", out);
            break;
        }
        if (rep->est_bytes[k] < rep->est_bytes[best])
            best = k;
    }
    if (rc == 0 && rep->est_bytes[LDN_QS_DENSE] < 0)
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "export %s: out of memory", out);
    rep->index = best;
    hid_t g = rc == 0 ? new_group(f, gname) : H5I_INVALID_HID;
    const hid_t ft = value_type(quant, half);
    const struct ldn_qs_enc *e = best == LDN_QS_DENSE ? NULL : &enc[best];
    void *vals = rc == 0 ? gather(&v, e) : NULL;
    hsize_t rows = (hsize_t)v.rows, rows1 = rows + 1, n = e ? (hsize_t)e->n : 0;
    hsize_t dd[2] = {rows, (hsize_t)v.cols}, bd[2] = {rows, (hsize_t)((v.cols + 7) / 8)};
    if (rc == 0 &&
        (g < 0 || !vals || ldn_h5_write_attr_str(g, "index", ldn_qs_index_name(best)) < 0 ||
         attr_i32(g, "rows", v.rows) < 0 || attr_i32(g, "cols", v.cols) < 0 ||
         write_ds(g, "bias", H5T_IEEE_F32LE, 1, &rows, v.bias) < 0 ||
         (quant == LDN_EXPORT_INT8 && write_scales(g, half, &v) < 0) ||
         (e ? write_ds(g, "values", ft, 1, &n, vals) : write_ds(g, "weight", ft, 2, dd, vals)) <
             0 ||
         (e && e->kind == LDN_QS_BITMAP &&
          write_ds(g, "bitmap", H5T_STD_U8LE, 2, bd, e->bits) < 0) ||
         (e && e->kind != LDN_QS_BITMAP &&
          write_ds(g, "rowptr", H5T_STD_U32LE, 1, &rows1, e->rowptr) < 0) ||
         (e && e->kind == LDN_QS_CSR16 && write_ds(g, "col", H5T_STD_U16LE, 1, &n, e->col) < 0) ||
         (e && e->kind == LDN_QS_CSR8 && write_ds(g, "delta", H5T_STD_U8LE, 1, &n, e->delta) < 0)))
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "write %s", gname);
    free(vals);
    ldn_h5_close(&g, H5Gclose);
    for (int k = 0; k < 4; k++)
        ldn_qs_enc_free(&enc[k]);
    lvals_free(&v);
    return rc;
}

/* Task names of cfg, one per line. NULL when out of memory. */
static char *task_lines(const struct ldn_config *cfg)
{
    size_t len = 1;
    for (int t = 0; t < cfg->n_tasks; t++)
        len += strlen(cfg->tasks[t].name) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (int t = 0; t < cfg->n_tasks; t++)
        p += sprintf(p, "%s%s", t ? "\n" : "", cfg->tasks[t].name);
    *p = '\0';
    return s;
}

static int write_file(const char *tmp, const char *out, const struct ldn_model *m,
                      const struct ldn_config *cfg, const struct ldn_export_meta *meta,
                      struct ldn_export_report *rep, char *err, size_t errlen)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST) < 0) {
        ldn_h5_close(&fapl, H5Pclose);
        return ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, out, "file access properties");
    }
    /* the root's dozen attributes in its object header, not in a heap of their own */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    hid_t f = fcpl < 0 || H5Pset_attr_phase_change(fcpl, 16, 12) < 0 ||
                      H5Pset_obj_track_times(fcpl, 0) < 0
                  ? H5I_INVALID_HID
                  : H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fapl);
    ldn_h5_close(&fcpl, H5Pclose);
    if (f < 0)
        return ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "cannot create %s", tmp);
    hid_t half = half_type();
    char *tasks = task_lines(cfg);
    int32_t features = m->features, version = LDN_EXPORT_FORMAT_VERSION;
    hsize_t config_len = strlen(cfg->resolved_yaml); /* the YAML text as bytes, deflated */
    int rc = 0;
    if (half < 0 || !tasks || ldn_h5_write_attr_str(f, "format", LDN_EXPORT_FORMAT) < 0 ||
        ldn_h5_write_attr_scalar(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT32, &version) <
            0 ||
        ldn_h5_write_attr_scalar(f, "features", H5T_STD_I32LE, H5T_NATIVE_INT32, &features) < 0 ||
        ldn_h5_write_attr_str(f, "activation", ldn_activation_name(cfg->activation)) < 0 ||
        ldn_h5_write_attr_str(f, "quantize", ldn_export_quant_name(meta->quant)) < 0 ||
        ldn_h5_write_attr_scalar(f, "prune", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &meta->prune) < 0 ||
        ldn_h5_write_attr_scalar(f, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &meta->step) < 0 ||
        ldn_h5_write_attr_scalar(f, "epoch", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &meta->epoch) < 0 ||
        ldn_h5_write_attr_str(f, "tasks", tasks) < 0 ||
        ldn_h5_write_attr_str(f, "source", meta->source ? meta->source : "") < 0 ||
        ldn_h5_write_attr_str(f, "ladon_version", LDN_VERSION) < 0 ||
        write_ds(f, "config", H5T_STD_U8LE, 1, &config_len, cfg->resolved_yaml) < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "write root attributes to %s", tmp);
    int nl = m->trunk->n_layers;
    for (int t = 0; t < m->n_heads; t++)
        nl += m->heads[t]->n_layers;
    if (rc == 0 && !(rep->layers = calloc((size_t)nl, sizeof *rep->layers)))
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "export %s: out of memory", out);
    char name[LDN_NAME_MAX + 32];
    hid_t g = H5I_INVALID_HID;
    if (rc == 0 && ((g = new_group(f, "trunk")) < 0 || H5Gclose(g) < 0 ||
                    (g = new_group(f, "heads")) < 0 || H5Gclose(g) < 0))
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "create groups in %s", tmp);
    for (int i = 0; rc == 0 && i < m->trunk->n_layers; i++) {
        snprintf(name, sizeof name, "/trunk/%d", i);
        rc = write_layer(f, half, name, &m->trunk->layers[i], meta->quant, &rep->layers[rep->n++],
                         err, errlen, out);
    }
    for (int t = 0; rc == 0 && t < m->n_heads; t++) {
        snprintf(name, sizeof name, "/heads/%s", cfg->tasks[t].name);
        if ((g = new_group(f, name)) < 0 || attr_i32(g, "classes", m->classes[t]) < 0 ||
            H5Gclose(g) < 0) {
            rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "write %s", name);
            break;
        }
        for (int i = 0; rc == 0 && i < m->heads[t]->n_layers; i++) {
            snprintf(name, sizeof name, "/heads/%s/%d", cfg->tasks[t].name, i);
            rc = write_layer(f, half, name, &m->heads[t]->layers[i], meta->quant,
                             &rep->layers[rep->n++], err, errlen, out);
        }
    }
    free(tasks);
    ldn_h5_close(&half, H5Tclose);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, KIND, out, "close %s", tmp);
    return rc;
}

int ldn_export_write(const char *out, const struct ldn_model *m, const struct ldn_config *cfg,
                     const struct ldn_export_meta *meta, struct ldn_export_report *rep, char *err,
                     size_t errlen)
{
    memset(rep, 0, sizeof *rep);
    char tmp[LDN_PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.part", out) >= (int)sizeof tmp)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "export %s: path too long", out);
    /* the OS's reason for an unwritable place, before HDF5 wraps it */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "export %s: cannot create %s: %s", out, tmp,
                        strerror(errno));
    close(fd);
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    int rc = write_file(tmp, out, m, cfg, meta, rep, err, errlen);
    ldn_h5_restore(&q);
    if (rc == 0) {
        fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0)
            rc = ldn_fail(err, errlen, LDN_ERR_IO, "export %s: fsync %s: %s", out, tmp,
                          strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && rename(tmp, out) != 0)
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "export %s: rename from %s: %s", out, tmp,
                      strerror(errno));
    if (rc) {
        unlink(tmp);
        ldn_export_report_free(rep);
        return rc;
    }
    struct stat st;
    rep->file_bytes = stat(out, &st) == 0 ? (int64_t)st.st_size : -1;
    const struct ldn_nn *nets[LDN_MAX_TASKS + 1];
    nets[0] = m->trunk;
    for (int t = 0; t < m->n_heads && t < LDN_MAX_TASKS; t++)
        nets[t + 1] = m->heads[t];
    for (int k = 0; k <= m->n_heads && k <= LDN_MAX_TASKS; k++)
        rep->dense_f32_bytes += 4 * nets[k]->n_params;
    return 0;
}

/* ---------------------------------------------------------------- reading */

int ldn_export_is(const char *path)
{
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    hid_t f;
    char err[LDN_ERRLEN], *format = NULL;
    int is = 0;
    if (ldn_h5_open_ro(KIND, path, &f, err, sizeof err) == 0) {
        is = ldn_h5_attr_str(f, "format", KIND, path, &format, err, sizeof err) == 0 &&
             strcmp(format, LDN_EXPORT_FORMAT) == 0;
        free(format);
        H5Fclose(f);
    }
    ldn_h5_restore(&q);
    return is;
}

void ldn_export_close(struct ldn_export *x)
{
    free(x->config);
    free(x->source);
    free(x->tasks);
    ldn_qmodel_destroy(&x->qm);
    memset(x, 0, sizeof *x);
}

/* Reading context: the file and its path for messages. */
struct rd {
    hid_t f;
    int version; /* the file's format_version */
    const char *path;
    char *err;
    size_t errlen;
};

static int rd_fail(const struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rd_fail(const struct rd *r, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ldn_fail(r->err, r->errlen, LDN_ERR_FORMAT, "export %s: %s", r->path, what);
}

/* Integer attribute `name` of obj (object path opath) in [lo, hi]. */
static int rd_int(const struct rd *r, hid_t obj, const char *opath, const char *name, int64_t lo,
                  int64_t hi, int64_t *out)
{
    double v;
    int rc = ldn_h5_attr_num(obj, name, 1, KIND, r->path, &v, r->err, r->errlen);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return rd_fail(r, "%s attribute %s is missing", opath, name);
    if (!(v >= (double)lo && v <= (double)hi))
        return rd_fail(r, "%s attribute %s is %g, expected %lld..%lld", opath, name, v,
                       (long long)lo, (long long)hi);
    *out = (int64_t)v;
    return 0;
}

static int rd_str(const struct rd *r, hid_t obj, const char *opath, const char *name, char **out)
{
    int rc = ldn_h5_attr_str(obj, name, KIND, r->path, out, r->err, r->errlen);
    if (rc == 1)
        return rd_fail(r, "%s attribute %s is missing", opath, name);
    return rc;
}

/* Read dataset `name` (under object g named gpath) of number class cls and element size, with
 * ndim dims equal to dims (dims[0] < 0: any length, returned in *n) into a new buffer *out in
 * memory type mt (NULL: the file's own type). */
static int rd_ds(const struct rd *r, hid_t g, const char *gpath, const char *name, H5T_class_t cls,
                 size_t size, int ndim, const int64_t *dims, hid_t mt, int64_t *n, void **out);

/* A layer's int8 scales: float16 (format_version 2) or float32 (version 1), as float32 in *out. */
static int rd_scales(const struct rd *r, hid_t g, const char *gpath, const int64_t *d1, void **out)
{
    if (r->version < 2)
        return rd_ds(r, g, gpath, "scale", H5T_FLOAT, 4, 1, d1, H5T_NATIVE_FLOAT, NULL, out);
    void *h = NULL;
    int rc = rd_ds(r, g, gpath, "scale", H5T_FLOAT, 2, 1, d1, H5I_INVALID_HID, NULL, &h);
    float *f = rc == 0 ? malloc(sizeof *f * (size_t)(d1[0] > 0 ? d1[0] : 1)) : NULL;
    if (rc == 0 && !f)
        rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
    for (int64_t i = 0; rc == 0 && i < d1[0]; i++)
        f[i] = ldn_f16_to_f32(((const uint16_t *)h)[i]);
    free(h);
    *out = rc == 0 ? f : NULL;
    return rc;
}

static int rd_ds(const struct rd *r, hid_t g, const char *gpath, const char *name, H5T_class_t cls,
                 size_t size, int ndim, const int64_t *dims, hid_t mt, int64_t *n, void **out)
{
    *out = NULL;
    if (H5Lexists(g, name, H5P_DEFAULT) <= 0)
        return rd_fail(r, "%s/%s is missing", gpath, name);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT), ft = d >= 0 ? H5Dget_type(d) : H5I_INVALID_HID;
    hid_t sp = d >= 0 ? H5Dget_space(d) : H5I_INVALID_HID;
    hsize_t got[2] = {0, 0};
    int rc = 0;
    if (d < 0 || ft < 0 || sp < 0)
        rc = ldn_h5_fail(r->err, r->errlen, LDN_ERR_FORMAT, KIND, r->path,
                         "cannot open %s/%s (damaged file?)", gpath, name);
    else if (H5Tget_class(ft) != cls || H5Tget_size(ft) != size)
        rc = rd_fail(r, "%s/%s has another number type than %s of %zu bytes", gpath, name,
                     cls == H5T_FLOAT ? "float" : "integer", size);
    else if (H5Sget_simple_extent_ndims(sp) != ndim || H5Sget_simple_extent_dims(sp, got, NULL) < 0)
        rc = rd_fail(r, "%s/%s is not %d-D", gpath, name, ndim);
    for (int i = 0; rc == 0 && i < ndim; i++)
        if (dims[i] >= 0 && got[i] != (hsize_t)dims[i])
            rc = rd_fail(r, "%s/%s has %llu in dimension %d, expected %lld", gpath, name,
                         (unsigned long long)got[i], i, (long long)dims[i]);
    hsize_t total = ndim == 2 ? got[0] * got[1] : got[0];
    if (rc == 0 && total > ((hsize_t)1 << 34))
        rc = rd_fail(r, "%s/%s is too large (%llu elements)", gpath, name,
                     (unsigned long long)total);
    if (rc == 0 && !(*out = malloc(size * (size_t)(total > 0 ? total : 1))))
        rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory for %s/%s",
                      r->path, gpath, name);
    if (rc == 0 && total > 0 &&
        H5Dread(d, mt >= 0 ? mt : ft, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) < 0)
        rc = ldn_h5_fail(r->err, r->errlen, LDN_ERR_FORMAT, KIND, r->path, "read %s/%s", gpath,
                         name);
    if (rc) {
        free(*out);
        *out = NULL;
    } else if (n)
        *n = (int64_t)got[0];
    ldn_h5_close(&sp, H5Sclose);
    ldn_h5_close(&ft, H5Tclose);
    ldn_h5_close(&d, H5Dclose);
    return rc;
}

static int all_finite(const struct rd *r, const char *gpath, const char *name, const float *v,
                      int64_t n, int nonneg)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i]) || (nonneg && v[i] < 0))
            return rd_fail(r, "%s/%s[%lld] is %g (must be finite%s)", gpath, name, (long long)i,
                           (double)v[i], nonneg ? " and >= 0" : "");
    return 0;
}

/* Read layer group gpath into l. */
static int rd_layer(const struct rd *r, const char *gpath, int quant, enum ldn_activation act,
                    struct ldn_qlayer *l)
{
    hid_t g = H5Gopen2(r->f, gpath, H5P_DEFAULT);
    if (g < 0)
        return ldn_h5_fail(r->err, r->errlen, LDN_ERR_FORMAT, KIND, r->path,
                           "cannot open %s (damaged file?)", gpath);
    int64_t rows = 0, cols = 0, n = 0;
    char *index = NULL;
    void *vals = NULL, *scale = NULL;
    struct ldn_qs_enc e;
    memset(&e, 0, sizeof e);
    int rc = rd_int(r, g, gpath, "rows", 1, 1 << 24, &rows);
    if (rc == 0)
        rc = rd_int(r, g, gpath, "cols", 1, 1 << 24, &cols);
    if (rc == 0 && (rows * cols > ((int64_t)1 << 32)))
        rc = rd_fail(r, "%s is [%lld, %lld]: too large", gpath, (long long)rows, (long long)cols);
    if (rc == 0)
        rc = rd_str(r, g, gpath, "index", &index);
    int kind = rc == 0 ? ldn_qs_index_kind(index) : -1;
    if (rc == 0 && kind < 0)
        rc = rd_fail(r, "%s attribute index is '%s', expected dense, bitmap, csr8 or csr16", gpath,
                     index);
    const int64_t d1[1] = {rows}, d2[2] = {rows, cols}, any[1] = {-1}, rows1[1] = {rows + 1};
    const int64_t bd[2] = {rows, (cols + 7) / 8};
    if (rc == 0 && (rc = rd_ds(r, g, gpath, "bias", H5T_FLOAT, 4, 1, d1, H5T_NATIVE_FLOAT, NULL,
                               (void **)&l->bias)) == 0)
        rc = all_finite(r, gpath, "bias", l->bias, rows, 0);
    if (rc == 0 && quant == LDN_EXPORT_INT8 && (rc = rd_scales(r, g, gpath, d1, &scale)) == 0)
        rc = all_finite(r, gpath, "scale", scale, rows, 1);
    const H5T_class_t vcls = quant == LDN_EXPORT_INT8 ? H5T_INTEGER : H5T_FLOAT;
    const size_t vsize = quant_size(quant);
    const hid_t vmt = quant == LDN_EXPORT_INT8   ? H5T_NATIVE_INT8
                      : quant == LDN_EXPORT_FP16 ? H5I_INVALID_HID
                                                 : H5T_NATIVE_FLOAT;
    if (rc == 0 && kind == LDN_QS_DENSE) {
        rc = rd_ds(r, g, gpath, "weight", vcls, vsize, 2, d2, vmt, NULL, &vals);
        n = rows * cols;
    } else if (rc == 0)
        rc = rd_ds(r, g, gpath, "values", vcls, vsize, 1, any, vmt, &n, &vals);
    e.kind = kind;
    e.rows = (int)rows;
    e.cols = (int)cols;
    e.n = n;
    if (rc == 0 && kind == LDN_QS_BITMAP)
        rc = rd_ds(r, g, gpath, "bitmap", H5T_INTEGER, 1, 2, bd, H5T_NATIVE_UINT8, NULL,
                   (void **)&e.bits);
    if (rc == 0 && (kind == LDN_QS_CSR8 || kind == LDN_QS_CSR16))
        rc = rd_ds(r, g, gpath, "rowptr", H5T_INTEGER, 4, 1, rows1, H5T_NATIVE_UINT32, NULL,
                   (void **)&e.rowptr);
    const int64_t nd[1] = {n};
    if (rc == 0 && kind == LDN_QS_CSR16)
        rc = rd_ds(r, g, gpath, "col", H5T_INTEGER, 2, 1, nd, H5T_NATIVE_UINT16, NULL,
                   (void **)&e.col);
    if (rc == 0 && kind == LDN_QS_CSR8)
        rc = rd_ds(r, g, gpath, "delta", H5T_INTEGER, 1, 1, nd, H5T_NATIVE_UINT8, NULL,
                   (void **)&e.delta);
    if (rc == 0 && kind != LDN_QS_DENSE) {
        char what[LDN_PATH_MAX + 64];
        snprintf(what, sizeof what, "export %s: %s", r->path, gpath);
        rc = ldn_qs_decode(&e, what, r->err, r->errlen);
    } else if (rc == 0 && !(e.pos = malloc(sizeof *e.pos * (size_t)n)))
        rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
    else if (rc == 0)
        for (int64_t k = 0; k < n; k++)
            e.pos[k] = k;
    float *fv = NULL; /* fp32 values of fp16 or fp32 files */
    if (rc == 0 && quant != LDN_EXPORT_INT8) {
        if (quant == LDN_EXPORT_FP16) {
            if (!(fv = malloc(sizeof *fv * (size_t)(n > 0 ? n : 1))))
                rc =
                    ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
            for (int64_t k = 0; rc == 0 && k < n; k++)
                fv[k] = ldn_f16_to_f32(((const uint16_t *)vals)[k]);
        } else
            fv = vals, vals = NULL;
        if (rc == 0)
            rc = all_finite(r, gpath, kind == LDN_QS_DENSE ? "weight" : "values", fv, n, 0);
    }
    if (rc == 0) {
        double density = (double)n / ((double)rows * (double)cols);
        int sparse = kind != LDN_QS_DENSE && density <= LDN_EXPORT_SPARSE_MAX_DENSITY &&
                     cols <= LDN_QS_CSR16_MAX_COLS;
        if (ldn_qmat_build(&l->w, (int)rows, (int)cols, n, e.pos,
                           quant == LDN_EXPORT_INT8 ? vals : NULL, scale, fv, sparse))
            rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory for %s",
                          r->path, gpath);
        l->act = act;
    }
    if (quant != LDN_EXPORT_INT8 && fv != vals)
        free(fv);
    free(vals);
    free(scale);
    free(index);
    ldn_qs_enc_free(&e);
    H5Gclose(g);
    return rc;
}

/* Read the layers 0, 1, ... of group gpath into net (the last without activation when
 * last_plain). */
static int rd_net(const struct rd *r, const char *gpath, int quant, enum ldn_activation act,
                  int last_plain, struct ldn_qnet *net)
{
    char name[LDN_NAME_MAX + 32];
    int n = 0;
    for (; n <= LDN_MAX_LAYERS; n++) {
        snprintf(name, sizeof name, "%s/%d", gpath, n);
        if (H5Lexists(r->f, name, H5P_DEFAULT) <= 0)
            break;
    }
    if (n == 0 || n > LDN_MAX_LAYERS)
        return rd_fail(r, "%s has %s layers (groups %s/0, %s/1, ...)", gpath, n ? "too many" : "no",
                       gpath, gpath);
    if (ldn_qnet_alloc(net, n))
        return ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s/%d", gpath, i);
        int rc = rd_layer(r, name, quant, last_plain && i == n - 1 ? LDN_ACT_NONE : act,
                          &net->layers[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int rd_activation(const char *s, enum ldn_activation *a)
{
    if (!strcmp(s, "relu"))
        *a = LDN_ACT_RELU;
    else if (!strcmp(s, "tanh"))
        *a = LDN_ACT_TANH;
    else
        return -1;
    return 0;
}

static int rd_file(struct rd *r, int max_batch, struct ldn_export *x)
{
    char *format = NULL, *act_s = NULL, *quant_s = NULL, *tasks = NULL;
    int64_t v = 0;
    double prune = 0;
    enum ldn_activation act = LDN_ACT_RELU;
    int rc = rd_str(r, r->f, "root", "format", &format);
    if (rc == 0 && strcmp(format, LDN_EXPORT_FORMAT) != 0)
        rc = rd_fail(r, "not a ladon export file (root attribute format is '%s')", format);
    if (rc == 0 && (rc = rd_int(r, r->f, "root", "format_version", 0, 1 << 30, &v)) == 0 &&
        (v < 1 || v > LDN_EXPORT_FORMAT_VERSION))
        rc = rd_fail(r, "format_version %lld, this ladon reads 1 to %d", (long long)v,
                     LDN_EXPORT_FORMAT_VERSION);
    x->format_version = r->version = (int)v;
    if (rc == 0 && (rc = rd_int(r, r->f, "root", "features", 1, 1 << 24, &v)) == 0)
        x->features = (int)v;
    if (rc == 0 && (rc = rd_int(r, r->f, "root", "step", 0, INT64_MAX / 2, &x->step)) == 0 &&
        (rc = ldn_h5_attr_num(r->f, "epoch", 0, KIND, r->path, &x->epoch, r->err, r->errlen)) == 1)
        x->epoch = 0, rc = 0;
    if (rc == 0 &&
        (rc = ldn_h5_attr_num(r->f, "prune", 0, KIND, r->path, &prune, r->err, r->errlen)) == 1)
        rc = 0;
    x->prune = prune;
    if (rc == 0 && (rc = rd_str(r, r->f, "root", "activation", &act_s)) == 0 &&
        rd_activation(act_s, &act))
        rc = rd_fail(r, "root attribute activation is '%s', expected relu or tanh", act_s);
    if (rc == 0 && (rc = rd_str(r, r->f, "root", "quantize", &quant_s)) == 0 &&
        (x->quant = ldn_export_quant_kind(quant_s)) < 0)
        rc = rd_fail(r, "root attribute quantize is '%s', expected none, fp16 or int8", quant_s);
    int64_t config_len = 0;
    if (rc == 0 && (rc = rd_ds(r, r->f, "", "config", H5T_INTEGER, 1, 1, (const int64_t[]){-1},
                               H5T_NATIVE_UCHAR, &config_len, (void **)&x->config)) == 0) {
        char *c = realloc(x->config, (size_t)config_len + 1);
        if (!c)
            rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
        else {
            c[config_len] = '\0';
            x->config = c;
            if (strlen(c) != (size_t)config_len)
                rc = rd_fail(r, "/config holds a NUL byte: not YAML text");
        }
    }
    if (rc == 0 &&
        ldn_h5_attr_str(r->f, "source", KIND, r->path, &x->source, r->err, r->errlen) < 0)
        rc = LDN_ERR_FORMAT;
    if (rc == 0)
        rc = rd_str(r, r->f, "root", "tasks", &tasks);
    /* tasks: names, one per line */
    int nt = 0;
    if (rc == 0 && strlen(tasks) > MAX_TASKS_TEXT)
        rc = rd_fail(r, "root attribute tasks is too long");
    for (const char *p = tasks; rc == 0 && p && *p;
         p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        nt++;
    if (rc == 0 && (nt < 1 || nt > LDN_MAX_TASKS))
        rc = rd_fail(r, "root attribute tasks names %d tasks, expected 1..%d", nt, LDN_MAX_TASKS);
    if (rc == 0 && (!(x->tasks = calloc((size_t)nt, sizeof *x->tasks)) ||
                    !(x->qm = ldn_qmodel_new(x->features, act, nt))))
        rc = ldn_fail(r->err, r->errlen, LDN_ERR_NOMEM, "export %s: out of memory", r->path);
    x->n_tasks = rc == 0 ? nt : 0;
    const char *p = tasks;
    for (int t = 0; rc == 0 && t < nt; t++) {
        size_t len = strcspn(p, "\n");
        if (len == 0 || len >= LDN_NAME_MAX || memchr(p, '/', len))
            rc = rd_fail(r, "root attribute tasks: task %d has an empty, too long or bad name", t);
        else {
            memcpy(x->tasks[t], p, len);
            p += len + (p[len] == '\n');
        }
    }
    if (rc == 0)
        rc = rd_net(r, "/trunk", x->quant, act, 0, &x->qm->trunk);
    for (int t = 0; rc == 0 && t < nt; t++) {
        char name[LDN_NAME_MAX + 16];
        snprintf(name, sizeof name, "/heads/%s", x->tasks[t]);
        rc = rd_net(r, name, x->quant, act, 1, &x->qm->heads[t]);
    }
    if (rc == 0) {
        char why[LDN_ERRLEN];
        if ((rc = ldn_qmodel_finish(x->qm, max_batch, why, sizeof why)))
            rc = rc == LDN_ERR_NOMEM
                     ? ldn_fail(r->err, r->errlen, rc, "export %s: %s", r->path, why)
                     : rd_fail(r, "%s", why);
    }
    free(format);
    free(act_s);
    free(quant_s);
    free(tasks);
    return rc;
}

int ldn_export_open(const char *path, int max_batch, struct ldn_export *x, char *err, size_t errlen)
{
    memset(x, 0, sizeof *x);
    snprintf(x->path, sizeof x->path, "%s", path);
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    struct rd r = {.f = H5I_INVALID_HID, .version = 0, .path = path, .err = err, .errlen = errlen};
    int rc = ldn_h5_open_ro(KIND, path, &r.f, err, errlen);
    if (rc == 0)
        rc = rd_file(&r, max_batch < 1 ? 1 : max_batch, x);
    ldn_h5_close(&r.f, H5Fclose);
    ldn_h5_restore(&q);
    if (rc)
        ldn_export_close(x);
    return rc;
}

static int fill_net(const struct ldn_export *x, const struct ldn_qnet *q, struct ldn_nn *net,
                    const char *what, char *err, size_t errlen)
{
    if (q->n_layers != net->n_layers)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "export %s: %s has %d layers, its config says %d", x->path, what,
                        q->n_layers, net->n_layers);
    for (int i = 0; i < q->n_layers; i++) {
        const struct ldn_qlayer *ql = &q->layers[i];
        struct ldn_layer *l = &net->layers[i];
        if (ql->w.rows != l->out_dim || ql->w.cols != l->in_dim)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "export %s: %s layer %d is [%d, %d], its config says [%d, %d]", x->path,
                            what, i, ql->w.rows, ql->w.cols, l->out_dim, l->in_dim);
        float *w = l->tensors[0].data;
        ldn_qmat_to_dense(&ql->w, w, l->row_len);
        for (int r = 0; r < l->out_dim; r++)
            w[r * l->row_len + l->in_dim] = ql->bias[r];
    }
    return 0;
}

int ldn_export_fill_model(const struct ldn_export *x, const int *heads, struct ldn_model *m,
                          char *err, size_t errlen)
{
    int rc = fill_net(x, &x->qm->trunk, m->trunk, "the trunk", err, errlen);
    for (int t = 0; rc == 0 && t < m->n_heads; t++)
        rc = fill_net(x, &x->qm->heads[heads[t]], m->heads[t], x->tasks[heads[t]], err, errlen);
    return rc;
}
