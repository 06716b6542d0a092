/* Task files in HDF5: loading a shard (ldn_dataset_load), reading the header
 * (ldn_dataset_probe), and the writing / staging helpers the builders share (data_priv.h).
 * The builders themselves are in data_fmnist.c and data_synth.c; the layout is in data.h
 * and docs/data.md. */
#define _POSIX_C_SOURCE 200809L

#include "data.h"

#include "data_priv.h"
#include "fs.h"
#include "h5util.h"
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rows converted per block when x is stored as uint8 (bounds the temporary buffer). */
#define READ_BLOCK_ROWS 4096
/* Target size of one chunk of a compressed uint8 x dataset. */
#define CHUNK_BYTES (1 << 20)

/* "data <path>: <what>: <innermost HDF5 message>" (the last part only when there is one). */
static int h5fail(char *err, size_t errlen, int status, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int h5fail(char *err, size_t errlen, int status, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ldn_h5_vfail(err, errlen, status, "data", path, fmt, ap);
    va_end(ap);
    return rc;
}

#define close_id ldn_h5_close

static int read_attr_str(hid_t obj, const char *name, const char *path, char **out, char *err,
                         size_t errlen)
{
    return ldn_h5_attr_str(obj, name, "data", path, out, err, errlen);
}

static int read_attr_num(hid_t obj, const char *name, int integer_only, const char *path,
                         double *out, char *err, size_t errlen)
{
    return ldn_h5_attr_num(obj, name, integer_only, "data", path, out, err, errlen);
}

/* Read an integer attribute that must lie in [lo, INT_MAX]. */
static int read_attr_int(hid_t obj, const char *name, int lo, int hi, const char *path, int *out,
                         char *err, size_t errlen)
{
    double v;
    int rc = read_attr_num(obj, name, 1, path, &v, err, errlen);
    if (rc == 1)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: %s attribute missing", path, name);
    if (rc < 0)
        return rc;
    if (v < lo || v > hi)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: %s must be in [%d, %d], got %.0f",
                        path, name, lo, hi, v);
    *out = (int)v;
    return 0;
}

/* ---------------------------------------------------------------- opening a task file */

struct task_file {
    const char *path;
    hid_t f;
    char task[64];
    int num_classes;
    int features;
    double x_scale;
};

struct split_info {
    hid_t x, y;
    int x_float; /* 1: float32, 0: uint8 */
    int64_t n;
};

static void task_close(struct task_file *tf)
{
    close_id(&tf->f, H5Fclose);
}

static void split_close(struct split_info *si)
{
    close_id(&si->x, H5Dclose);
    close_id(&si->y, H5Dclose);
}

/* Open path and validate the root attributes. On error tf->f is closed. */
static int task_open(const char *path, struct task_file *tf, char *err, size_t errlen)
{
    memset(tf, 0, sizeof *tf);
    tf->path = path;
    tf->f = H5I_INVALID_HID;

    int orc = ldn_h5_open_ro("data", path, &tf->f, err, errlen);
    if (orc)
        return orc;

    char *s = NULL;
    int rc = read_attr_str(tf->f, "format", path, &s, err, errlen);
    if (rc == 1)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: not a ladon task file (format attribute missing)", path);
    else if (rc == 0 && strcmp(s, LDN_DATA_FORMAT) != 0)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: not a ladon task file (format is \"%.40s\", expected \"%s\")", path,
                      s, LDN_DATA_FORMAT);
    free(s);
    s = NULL;
    int version = 0;
    if (rc == 0)
        rc = read_attr_int(tf->f, "format_version", 0, INT_MAX, path, &version, err, errlen);
    if (rc == 0 && version != LDN_DATA_FORMAT_VERSION)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: format_version %d is not supported (this build reads %d)", path,
                      version, LDN_DATA_FORMAT_VERSION);
    if (rc == 0) {
        rc = read_attr_str(tf->f, "task", path, &s, err, errlen);
        if (rc == 1)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: task attribute missing", path);
        else if (rc == 0 && (s[0] == '\0' || strlen(s) >= sizeof tf->task))
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "data %s: task name must be 1..%zu characters, got %zu", path,
                          sizeof tf->task - 1, strlen(s));
        else if (rc == 0)
            memcpy(tf->task, s, strlen(s) + 1);
        free(s);
    }
    if (rc == 0)
        rc = read_attr_int(tf->f, "num_classes", 2, LDN_DATA_MAX_CLASSES, path, &tf->num_classes,
                           err, errlen);
    if (rc == 0)
        rc = read_attr_int(tf->f, "features", 1, LDN_DATA_MAX_FEATURES, path, &tf->features, err,
                           errlen);
    if (rc == 0) {
        rc = read_attr_num(tf->f, "x_scale", 0, path, &tf->x_scale, err, errlen);
        if (rc == 1)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: x_scale attribute missing", path);
        else if (rc == 0 && !(isfinite(tf->x_scale) && tf->x_scale > 0))
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "data %s: x_scale must be a positive finite number, got %g", path,
                          tf->x_scale);
    }
    if (rc < 0)
        task_close(tf);
    return rc;
}

/* Rank and dims of dataset d (rank <= 2). Returns rank or -1. */
static int dset_dims(hid_t d, hsize_t dims[2])
{
    hid_t sp = H5Dget_space(d);
    int rank = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    if (rank >= 0 && rank <= 2)
        H5Sget_simple_extent_dims(sp, dims, NULL);
    close_id(&sp, H5Sclose);
    return rank;
}

/* Open /<split>/<name> as a dataset. Returns the id or -1 with err filled. */
static hid_t open_dset(const struct task_file *tf, const char *split, const char *name, char *err,
                       size_t errlen)
{
    char p[80];
    snprintf(p, sizeof p, "%s/%s", split, name);
    htri_t ex = H5Lexists(tf->f, split, H5P_DEFAULT);
    if (ex > 0)
        ex = H5Lexists(tf->f, p, H5P_DEFAULT);
    if (ex < 0) { /* the lookup itself failed: the group's index is damaged */
        h5fail(err, errlen, LDN_ERR_FORMAT, tf->path, "/%s: cannot look it up (damaged file?)", p);
        return -1;
    }
    if (ex == 0) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s: dataset missing", tf->path, p);
        return -1;
    }
    hid_t d = H5Dopen2(tf->f, p, H5P_DEFAULT);
    if (d < 0)
        h5fail(err, errlen, LDN_ERR_FORMAT, tf->path, "/%s: cannot open dataset", p);
    return d;
}

/* Open and validate the x and y datasets of split. */
static int split_open(const struct task_file *tf, const char *split, struct split_info *si,
                      char *err, size_t errlen)
{
    const char *path = tf->path;
    int rc = LDN_ERR_FORMAT;
    hsize_t xd[2] = {0, 0}, yd[2] = {0, 0};
    si->x = si->y = H5I_INVALID_HID;
    si->n = 0;
    if ((si->x = open_dset(tf, split, "x", err, errlen)) < 0 ||
        (si->y = open_dset(tf, split, "y", err, errlen)) < 0)
        goto fail;

    hid_t t = H5Dget_type(si->x);
    H5T_class_t cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    size_t sz = t >= 0 ? H5Tget_size(t) : 0;
    H5T_sign_t sign = cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_ERROR;
    close_id(&t, H5Tclose);
    if (cls == H5T_INTEGER && sz == 1 && sign == H5T_SGN_NONE) {
        si->x_float = 0;
    } else if (cls == H5T_FLOAT && sz == 4) {
        si->x_float = 1;
    } else {
        ldn_fail(err, errlen, LDN_ERR_FORMAT,
                 "data %s: /%s/x: type must be uint8 or float32, got a %zu-byte %s", path, split,
                 sz,
                 cls == H5T_INTEGER ? "integer"
                 : cls == H5T_FLOAT ? "float"
                                    : "non-number");
        goto fail;
    }
    int rank = dset_dims(si->x, xd);
    if (rank != 2) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s/x: must be 2-D [N, features], is %d-D",
                 path, split, rank);
        goto fail;
    }
    if (xd[1] != (hsize_t)tf->features) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT,
                 "data %s: /%s/x: has %llu columns but the features attribute is %d", path, split,
                 (unsigned long long)xd[1], tf->features);
        goto fail;
    }

    t = H5Dget_type(si->y);
    cls = t >= 0 ? H5Tget_class(t) : H5T_NO_CLASS;
    sz = t >= 0 ? H5Tget_size(t) : 0;
    sign = cls == H5T_INTEGER ? H5Tget_sign(t) : H5T_SGN_ERROR;
    close_id(&t, H5Tclose);
    if (!(cls == H5T_INTEGER && sz == 4 && sign == H5T_SGN_2)) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s/y: type must be int32", path, split);
        goto fail;
    }
    rank = dset_dims(si->y, yd);
    if (rank != 1) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s/y: must be 1-D [N], is %d-D", path,
                 split, rank);
        goto fail;
    }
    if (yd[0] != xd[0]) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s/y has %llu rows but /%s/x has %llu",
                 path, split, (unsigned long long)yd[0], split, (unsigned long long)xd[0]);
        goto fail;
    }
    if (xd[0] > (hsize_t)INT64_MAX / 65536) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: /%s: %llu rows is too many", path, split,
                 (unsigned long long)xd[0]);
        goto fail;
    }
    si->n = (int64_t)xd[0];
    return 0;
fail:
    split_close(si);
    return rc;
}

/* Read rows [first, first+count) of dataset d (rank 1, or rank 2 with cols columns) as
 * memtype into buf. */
static herr_t read_rows(hid_t d, hid_t memtype, int64_t first, int64_t count, int64_t cols,
                        void *buf)
{
    int rank = cols > 0 ? 2 : 1;
    hsize_t start[2] = {(hsize_t)first, 0}, cnt[2] = {(hsize_t)count, (hsize_t)cols};
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(rank, cnt, NULL);
    herr_t rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) >= 0)
        rc = H5Dread(d, memtype, ms, fs, H5P_DEFAULT, buf);
    close_id(&ms, H5Sclose);
    close_id(&fs, H5Sclose);
    return rc;
}

static int load_x(const struct task_file *tf, const char *split, const struct split_info *si,
                  struct ldn_dataset *ds, char *err, size_t errlen)
{
    const int64_t f = tf->features;
    if (si->x_float) {
        if (read_rows(si->x, H5T_NATIVE_FLOAT, ds->first, ds->n, f, ds->x) < 0)
            return h5fail(err, errlen, LDN_ERR_IO, tf->path, "/%s/x: read rows %lld..%lld", split,
                          (long long)ds->first, (long long)(ds->first + ds->n - 1));
        for (int64_t i = 0; i < ds->n * f; i++) {
            if (tf->x_scale != 1.0)
                ds->x[i] = (float)(ds->x[i] * tf->x_scale);
            if (!isfinite(ds->x[i])) /* checked as the model will see it: scaled */
                return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                "data %s: /%s/x: non-finite value at row %lld column %lld (after "
                                "x_scale %g)",
                                tf->path, split, (long long)(ds->first + i / f), (long long)(i % f),
                                tf->x_scale);
        }
        return 0;
    }
    int64_t block = ds->n < READ_BLOCK_ROWS ? ds->n : READ_BLOCK_ROWS;
    uint8_t *tmp = malloc((size_t)(block * f));
    if (!tmp)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", tf->path);
    float lut[256];
    for (int v = 0; v < 256; v++)
        lut[v] = (float)(v * tf->x_scale);
    if (!isfinite(lut[255])) {
        free(tmp);
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "data %s: x_scale %g makes the uint8 pixel 255 non-finite", tf->path,
                        tf->x_scale);
    }
    for (int64_t r = 0; r < ds->n; r += block) {
        int64_t cnt = ds->n - r < block ? ds->n - r : block;
        if (read_rows(si->x, H5T_NATIVE_UINT8, ds->first + r, cnt, f, tmp) < 0) {
            free(tmp);
            return h5fail(err, errlen, LDN_ERR_IO, tf->path, "/%s/x: read rows %lld..%lld", split,
                          (long long)(ds->first + r), (long long)(ds->first + r + cnt - 1));
        }
        float *dst = ds->x + r * f;
        for (int64_t i = 0; i < cnt * f; i++)
            dst[i] = lut[tmp[i]];
    }
    free(tmp);
    return 0;
}

static _Atomic int64_t max_memory = 0; /* 0: automatic */
static _Atomic int64_t memory_held = 0;

/* Half the host's physical memory, or 1 TiB when sysconf does not know. */
static int64_t auto_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (int64_t)pages * page / 2 : (int64_t)1 << 40;
}

void ldn_data_set_max_memory(int64_t bytes)
{
    atomic_store(&max_memory, bytes > 0 ? bytes : 0);
}

int64_t ldn_data_max_memory(void)
{
    int64_t m = atomic_load(&max_memory);
    return m > 0 ? m : auto_memory();
}

int64_t ldn_data_memory_held(void)
{
    return atomic_load(&memory_held);
}

/* Count `bytes` of a shard of rows x features against the bound: 0, or LDN_ERR_NOMEM with err
 * naming the file, the split, what it needs and data.max_memory_mb. */
static int reserve(const char *path, const char *split, int shard, int nshards, int64_t rows,
                   int features, int64_t bytes, char *err, size_t errlen)
{
    const int64_t most = ldn_data_max_memory();
    int64_t held = atomic_load(&memory_held);
    while (bytes <= most - held)
        if (atomic_compare_exchange_weak(&memory_held, &held, held + bytes))
            return 0;
    char how[96] = "";
    if (atomic_load(&max_memory) == 0)
        snprintf(how, sizeof how, " (automatic: half of this host's %.1f GiB)",
                 (double)most * 2 / (1 << 30));
    return ldn_fail(err, errlen, LDN_ERR_NOMEM,
                    "data %s: /%s: shard %d of %d needs %.1f MiB (%lld rows x %d features as "
                    "float32, and labels); with the %.1f MiB of splits this process holds already "
                    "that is above data.max_memory_mb = %.1f MiB%s",
                    path, split, shard, nshards, (double)bytes / (1 << 20), (long long)rows,
                    features, (double)held / (1 << 20), (double)most / (1 << 20), how);
}

struct ldn_dataset *ldn_dataset_load(const char *path, const char *split, int shard, int nshards,
                                     char *err, size_t errlen)
{
    if (!path || !split || (strcmp(split, "train") != 0 && strcmp(split, "test") != 0)) {
        ldn_fail(err, errlen, LDN_ERR_ARG,
                 "data %s: split must be \"train\" or \"test\", got %s%s%s", path ? path : "(null)",
                 split ? "\"" : "", split ? split : "(null)", split ? "\"" : "");
        return NULL;
    }
    if (nshards < 1 || shard < 0 || shard >= nshards) {
        ldn_fail(err, errlen, LDN_ERR_ARG, "data %s: shard %d of %d is out of range", path, shard,
                 nshards);
        return NULL;
    }
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    struct task_file tf;
    struct split_info si = {H5I_INVALID_HID, H5I_INVALID_HID, 0, 0};
    struct ldn_dataset *ds = NULL;
    int rc = task_open(path, &tf, err, errlen);
    if (rc < 0)
        goto out;
    if ((rc = split_open(&tf, split, &si, err, errlen)) < 0)
        goto out;

    /* shard*N/nshards without overflow: N = q*nshards + rem. */
    const int64_t q_rows = si.n / nshards, rem = si.n % nshards;
    int64_t first = shard * q_rows + shard * rem / nshards;
    int64_t end = (shard + 1) * q_rows + (shard + 1) * rem / nshards;
    if (end <= first) {
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "data %s: /%s: shard %d of %d is empty (the split has %lld rows)", path,
                      split, shard, nshards, (long long)si.n);
        goto out;
    }
    const int64_t n = end - first;
    if ((uint64_t)n > (uint64_t)INT64_MAX / sizeof(float) / ((uint64_t)tf.features + 1)) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: /%s: shard too large", path, split);
        goto out;
    }
    const int64_t bytes = n * ((int64_t)tf.features + 1) * (int64_t)sizeof(float);
    if ((rc = reserve(path, split, shard, nshards, n, tf.features, bytes, err, errlen)) < 0)
        goto out;
    ds = calloc(1, sizeof *ds);
    if (!ds)
        atomic_fetch_sub(&memory_held, bytes);
    else {
        ds->bytes = bytes;
        ds->x = malloc((size_t)n * (size_t)tf.features * sizeof(float));
        ds->y = malloc((size_t)n * sizeof(int32_t));
    }
    if (!ds || !ds->x || !ds->y) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory for %lld rows", path,
                      (long long)n);
        goto out;
    }
    memcpy(ds->task, tf.task, sizeof ds->task);
    ds->n = n;
    ds->n_total = si.n;
    ds->first = first;
    ds->features = tf.features;
    ds->num_classes = tf.num_classes;

    if (read_rows(si.y, H5T_NATIVE_INT32, first, n, 0, ds->y) < 0) {
        rc = h5fail(err, errlen, LDN_ERR_IO, path, "/%s/y: read rows %lld..%lld", split,
                    (long long)first, (long long)(end - 1));
        goto out;
    }
    for (int64_t i = 0; i < n; i++) {
        if (ds->y[i] < 0 || ds->y[i] >= tf.num_classes) {
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "data %s: /%s/y: label %d at row %lld is outside [0, %d)", path, split,
                          (int)ds->y[i], (long long)(first + i), tf.num_classes);
            goto out;
        }
    }
    rc = load_x(&tf, split, &si, ds, err, errlen);
out:
    split_close(&si);
    if (tf.f >= 0)
        task_close(&tf);
    ldn_h5_restore(&q);
    if (rc < 0)
        ldn_dataset_destroy(&ds);
    return ds;
}

void ldn_dataset_destroy(struct ldn_dataset **ds)
{
    if (!ds || !*ds)
        return;
    atomic_fetch_sub(&memory_held, (*ds)->bytes);
    free((*ds)->x);
    free((*ds)->y);
    free(*ds);
    *ds = NULL;
}

int ldn_dataset_probe(const char *path, char *task, size_t tasklen, int *num_classes, int *features,
                      int64_t *n_train, int64_t *n_test, char *err, size_t errlen)
{
    if (!path)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "data: probe: path is NULL");
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    struct task_file tf;
    struct split_info tr = {H5I_INVALID_HID, H5I_INVALID_HID, 0, 0}, te = tr;
    int rc = task_open(path, &tf, err, errlen);
    if (rc == 0)
        rc = split_open(&tf, "train", &tr, err, errlen);
    if (rc == 0)
        rc = split_open(&tf, "test", &te, err, errlen);
    if (rc == 0 && task && tasklen > 0) {
        if (strlen(tf.task) >= tasklen)
            rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                          "data %s: task name \"%s\" does not fit the caller's %zu-byte buffer",
                          path, tf.task, tasklen);
        else
            memcpy(task, tf.task, strlen(tf.task) + 1);
    }
    if (rc == 0) {
        if (num_classes)
            *num_classes = tf.num_classes;
        if (features)
            *features = tf.features;
        if (n_train)
            *n_train = tr.n;
        if (n_test)
            *n_test = te.n;
    }
    split_close(&tr);
    split_close(&te);
    if (tf.f >= 0)
        task_close(&tf);
    ldn_h5_restore(&q);
    return rc;
}

/* ---------------------------------------------------------------- writing a task file */

#define write_attr_str ldn_h5_write_attr_str
#define write_attr_scalar ldn_h5_write_attr_scalar

/* Write a dataset [rows] or [rows, cols] (cols 0 means 1-D); compress uint8 data. */
static int write_dset(hid_t g, const char *name, hid_t filetype, hid_t memtype, int64_t rows,
                      int64_t cols, const void *data)
{
    int rank = cols > 0 ? 2 : 1;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    hid_t sp = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    herr_t rc = -1;
    /* No object timestamps: the same inputs give byte-identical files. */
    if (sp < 0 || dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
        goto done;
    if (rank == 2 && H5Tget_size(filetype) == 1 && rows > 0 &&
        H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        hsize_t crow = (hsize_t)(CHUNK_BYTES / cols);
        if (crow < 1)
            crow = 1;
        if (crow > (hsize_t)rows)
            crow = (hsize_t)rows;
        hsize_t chunk[2] = {crow, (hsize_t)cols};
        if (H5Pset_chunk(dcpl, 2, chunk) < 0 || H5Pset_deflate(dcpl, 1) < 0)
            goto done;
    }
    d = H5Dcreate2(g, name, filetype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0)
        goto done;
    rc = rows > 0 ? H5Dwrite(d, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
done:
    close_id(&d, H5Dclose);
    close_id(&dcpl, H5Pclose);
    close_id(&sp, H5Sclose);
    return rc < 0 ? -1 : 0;
}

static int write_split(hid_t f, const char *path, const char *name, const struct ldn__split_out *s,
                       int features, char *err, size_t errlen)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE), g = H5I_INVALID_HID;
    if (gcpl >= 0 && H5Pset_obj_track_times(gcpl, 0) >= 0)
        g = H5Gcreate2(f, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    close_id(&gcpl, H5Pclose);
    if (g < 0)
        return h5fail(err, errlen, LDN_ERR_IO, path, "create group /%s", name);
    const char *what = "x";
    int bad = write_dset(g, "x", s->x_float ? H5T_IEEE_F32LE : H5T_STD_U8LE,
                         s->x_float ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8, s->n, features, s->x);
    if (!bad) {
        what = "y";
        bad = write_dset(g, "y", H5T_STD_I32LE, H5T_NATIVE_INT32, s->n, 0, s->y);
    }
    if (!bad && s->source_index) {
        what = "source_index";
        bad = write_dset(g, "source_index", H5T_STD_I32LE, H5T_NATIVE_INT32, s->n, 0,
                         s->source_index);
    }
    int rc = bad ? h5fail(err, errlen, LDN_ERR_IO, path, "write /%s/%s", name, what) : 0;
    H5Gclose(g);
    return rc;
}

int ldn__data_write_task(const char *path, const struct ldn__task_out *t, char *err, size_t errlen)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), f = H5I_INVALID_HID;
    if (fcpl >= 0 && H5Pset_obj_track_times(fcpl, 0) >= 0)
        f = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    close_id(&fcpl, H5Pclose);
    if (f < 0)
        return h5fail(err, errlen, LDN_ERR_IO, path, "cannot create");
    const int version = LDN_DATA_FORMAT_VERSION;
    int rc = 0;
    if (write_attr_str(f, "format", LDN_DATA_FORMAT) < 0 ||
        write_attr_scalar(f, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &version) < 0 ||
        write_attr_str(f, "task", t->task) < 0 ||
        write_attr_scalar(f, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT, &t->num_classes) < 0 ||
        write_attr_scalar(f, "features", H5T_STD_I32LE, H5T_NATIVE_INT, &t->features) < 0 ||
        write_attr_scalar(f, "x_scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &t->x_scale) < 0 ||
        write_attr_str(f, "description", t->description ? t->description : "") < 0 ||
        write_attr_str(f, "classes", t->classes ? t->classes : "") < 0)
        rc = h5fail(err, errlen, LDN_ERR_IO, path, "write attributes");
    if (rc == 0)
        rc = write_split(f, path, "train", &t->train, t->features, err, errlen);
    if (rc == 0)
        rc = write_split(f, path, "test", &t->test, t->features, err, errlen);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = h5fail(err, errlen, LDN_ERR_IO, path, "close (flush) failed");
    return rc;
}

/* ---------------------------------------------------------------- staging output files */

static char *path_join(const char *dir, const char *prefix, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(prefix) + strlen(name) + strlen(suffix) + 32;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s%s%s", dir, prefix, name, suffix);
    return s;
}

int ldn__stage_init(struct ldn__stage *s, const char *dir, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!dir || !dir[0])
        return ldn_fail(err, errlen, LDN_ERR_ARG, "data: output directory is empty");
    int rc = ldn_mkdir_p(dir, err, errlen);
    if (rc < 0)
        return rc;
    s->dir = strdup(dir);
    if (!s->dir)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", dir);
    return 0;
}

const char *ldn__stage_add(struct ldn__stage *s, const char *name, char *err, size_t errlen)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        char **t = realloc(s->tmp, (size_t)cap * sizeof *t);
        if (t)
            s->tmp = t;
        char **f = t ? realloc(s->final, (size_t)cap * sizeof *f) : NULL;
        if (f)
            s->final = f;
        if (!t || !f) {
            ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", s->dir);
            return NULL;
        }
        s->cap = cap;
    }
    char suffix[40];
    snprintf(suffix, sizeof suffix, ".tmp.%ld", (long)getpid());
    char *tmp = path_join(s->dir, ".", name, suffix);
    char *fin = path_join(s->dir, "", name, "");
    if (!tmp || !fin) {
        free(tmp);
        free(fin);
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", s->dir);
        return NULL;
    }
    s->tmp[s->n] = tmp;
    s->final[s->n] = fin;
    s->n++;
    return tmp;
}

int ldn__stage_commit(struct ldn__stage *s, char *err, size_t errlen)
{
    char **bak = calloc((size_t)(s->n > 0 ? s->n : 1), sizeof *bak);
    if (!bak)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory", s->dir);
    char suffix[40];
    snprintf(suffix, sizeof suffix, ".bak.%ld", (long)getpid());
    /* Keep a hard link to every file we replace so that a failed rename can be undone. */
    for (int i = 0; i < s->n; i++) {
        struct stat st;
        if (lstat(s->final[i], &st) != 0)
            continue;
        const char *base = strrchr(s->final[i], '/') + 1;
        bak[i] = path_join(s->dir, ".", base, suffix);
        if (bak[i]) {
            unlink(bak[i]);
            if (link(s->final[i], bak[i]) != 0) {
                free(bak[i]);
                bak[i] = NULL;
            }
        }
    }
    int rc = 0;
    for (int i = 0; i < s->n; i++) {
        if (rename(s->tmp[i], s->final[i]) == 0)
            continue;
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "data %s: cannot rename %s into place: %s", s->dir,
                      s->final[i], strerror(errno));
        for (int j = 0; j < i; j++) {
            if (bak[j])
                rename(bak[j], s->final[j]); /* on failure the backup stays on disk */
            else
                unlink(s->final[j]);
            free(bak[j]);
            bak[j] = NULL;
        }
        break;
    }
    for (int i = 0; i < s->n; i++) {
        if (bak[i])
            unlink(bak[i]);
        free(bak[i]);
    }
    free(bak);
    if (rc == 0) { /* the temporaries are gone: nothing for deinit to delete */
        for (int i = 0; i < s->n; i++) {
            free(s->tmp[i]);
            s->tmp[i] = NULL;
        }
    }
    return rc;
}

void ldn__stage_deinit(struct ldn__stage *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->tmp[i]) {
            unlink(s->tmp[i]);
            free(s->tmp[i]);
        }
        free(s->final[i]);
    }
    free(s->tmp);
    free(s->final);
    free(s->dir);
    memset(s, 0, sizeof *s);
}
