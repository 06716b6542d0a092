/* HDF5 helpers (h5util.h). */
#define _POSIX_C_SOURCE 200809L
#include "h5util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "status.h"

void ldn_h5_quiet(struct ldn_h5quiet *q)
{
    q->fn = NULL;
    q->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ldn_h5_restore(const struct ldn_h5quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

struct errwalk {
    char *buf;
    size_t len;
};

static herr_t errwalk_cb(unsigned n, const H5E_error2_t *e, void *ud)
{
    struct errwalk *w = ud;
    if (n == 0 && e->desc)
        snprintf(w->buf, w->len, "%s", e->desc);
    return 0;
}

const char *ldn_h5_errmsg(char *buf, size_t len)
{
    struct errwalk w = {buf, len};
    if (len == 0)
        return buf;
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, errwalk_cb, &w);
    for (char *p = buf; *p; p++) /* some HDF5 messages contain newlines */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return buf;
}

int ldn_h5_vfail(char *err, size_t errlen, int status, const char *kind, const char *path,
                 const char *fmt, va_list ap)
{
    char what[256], h5msg[256];
    vsnprintf(what, sizeof what, fmt, ap);
    ldn_h5_errmsg(h5msg, sizeof h5msg);
    if (h5msg[0])
        return ldn_fail(err, errlen, status, "%s %s: %s: %s", kind, path, what, h5msg);
    return ldn_fail(err, errlen, status, "%s %s: %s", kind, path, what);
}

int ldn_h5_fail(char *err, size_t errlen, int status, const char *kind, const char *path,
                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = ldn_h5_vfail(err, errlen, status, kind, path, fmt, ap);
    va_end(ap);
    return rc;
}

void ldn_h5_close(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0)
        fn(*id);
    *id = H5I_INVALID_HID;
}

/* Open scalar (or one-element) attribute `name` of obj. Returns the attribute id, 0 when it
 * does not exist (*missing set), or -1 with err filled. */
static hid_t open_attr(hid_t obj, const char *name, const char *kind, const char *path,
                       int *missing, char *err, size_t errlen)
{
    *missing = 0;
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0) {
        ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "attribute %s", name);
        return -1;
    }
    if (ex == 0) {
        *missing = 1;
        return 0;
    }
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) {
        ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "attribute %s", name);
        return -1;
    }
    hid_t sp = H5Aget_space(a);
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    ldn_h5_close(&sp, H5Sclose);
    if (np != 1) {
        H5Aclose(a);
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s %s: attribute %s must hold one value", kind, path,
                 name);
        return -1;
    }
    return a;
}

/* Read string attribute `name` (fixed or variable length) into a new string (*out, owned
 * by the caller). Returns 0, 1 when missing, or a negative status. */
int ldn_h5_attr_str(hid_t obj, const char *name, const char *kind, const char *path, char **out,
                    char *err, size_t errlen)
{
    int missing, rc = LDN_ERR_FORMAT;
    *out = NULL;
    hid_t a = open_attr(obj, name, kind, path, &missing, err, errlen);
    if (a < 0)
        return LDN_ERR_FORMAT;
    if (missing)
        return 1;
    hid_t ft = H5Aget_type(a), mt = H5I_INVALID_HID;
    if (ft < 0 || H5Tget_class(ft) != H5T_STRING) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s %s: attribute %s is not a string", kind, path,
                 name);
        goto done;
    }
    mt = H5Tcopy(H5T_C_S1);
    if (mt < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
        ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, kind, path, "attribute %s", name);
        goto done;
    }
    htri_t vlen = H5Tis_variable_str(ft);
    if (vlen > 0) {
        char *s = NULL;
        if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Aread(a, mt, &s) < 0) {
            ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "read attribute %s", name);
            goto done;
        }
        *out = strdup(s ? s : "");
        H5free_memory(s);
    } else {
        size_t sz = H5Tget_size(ft);
        char *s = sz > 0 && sz < (1u << 20) ? calloc(1, sz + 1) : NULL;
        if (!s) {
            ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s %s: attribute %s: bad string size %zu", kind,
                     path, name, sz);
            goto done;
        }
        if (H5Tset_size(mt, sz + 1) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
            H5Aread(a, mt, s) < 0) {
            free(s);
            ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "read attribute %s", name);
            goto done;
        }
        s[sz] = '\0';
        *out = s;
    }
    if (!*out) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "%s %s: out of memory", kind, path);
        goto done;
    }
    rc = 0;
done:
    ldn_h5_close(&mt, H5Tclose);
    ldn_h5_close(&ft, H5Tclose);
    H5Aclose(a);
    return rc;
}

/* Read numeric attribute `name` as double (integer_only: must be an integer type). Returns 0,
 * 1 when missing, or a negative status. */
int ldn_h5_attr_num(hid_t obj, const char *name, int integer_only, const char *kind,
                    const char *path, double *out, char *err, size_t errlen)
{
    int missing, rc = LDN_ERR_FORMAT;
    hid_t a = open_attr(obj, name, kind, path, &missing, err, errlen);
    if (a < 0)
        return LDN_ERR_FORMAT;
    if (missing)
        return 1;
    hid_t ft = H5Aget_type(a);
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (cls != H5T_INTEGER && (integer_only || cls != H5T_FLOAT)) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s %s: attribute %s must be %s", kind, path, name,
                 integer_only ? "an integer" : "a number");
    } else if (cls == H5T_INTEGER) {
        long long v = 0;
        if (H5Aread(a, H5T_NATIVE_LLONG, &v) < 0)
            ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "read attribute %s", name);
        else {
            *out = (double)v;
            rc = 0;
        }
    } else if (H5Aread(a, H5T_NATIVE_DOUBLE, out) < 0) {
        ldn_h5_fail(err, errlen, LDN_ERR_IO, kind, path, "read attribute %s", name);
    } else {
        rc = 0;
    }
    ldn_h5_close(&ft, H5Tclose);
    H5Aclose(a);
    return rc;
}

int ldn_h5_write_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    herr_t rc = -1;
    if (t >= 0 && sp >= 0 && H5Tset_size(t, strlen(value) + 1) >= 0 &&
        H5Tset_strpad(t, H5T_STR_NULLTERM) >= 0 &&
        (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        rc = H5Awrite(a, t, value);
    ldn_h5_close(&a, H5Aclose);
    ldn_h5_close(&sp, H5Sclose);
    ldn_h5_close(&t, H5Tclose);
    return rc < 0 ? -1 : 0;
}

int ldn_h5_write_attr_scalar(hid_t obj, const char *name, hid_t filetype, hid_t memtype,
                             const void *value)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    herr_t rc = -1;
    if (sp >= 0 && (a = H5Acreate2(obj, name, filetype, sp, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        rc = H5Awrite(a, memtype, value);
    ldn_h5_close(&a, H5Aclose);
    ldn_h5_close(&sp, H5Sclose);
    return rc < 0 ? -1 : 0;
}

/* Fletcher-32 as HDF5's filter defines it: 16-bit words read most significant byte first, two
 * running sums folded back into 16 bits (end-around carry) every 360 words, the last odd byte as
 * the high half of a word. Within a block the sums are exact in 32 bits (360 is the longest
 * run that cannot overflow), so a block can be summed in closed form: for words w_0..w_{n-1},
 * s1 += sum w_i and s2 += n*s1 + sum (n - i) w_i. The block sums below are written so that the
 * compiler can vectorize them; the result is the same as adding word by word. */
uint32_t ldn_h5_fletcher32(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t s1 = 0, s2 = 0;
    size_t words = len / 2;
    while (words) {
        uint32_t n = words > 360 ? 360 : (uint32_t)words, sum = 0, wsum = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t w = (uint32_t)p[2 * i] << 8 | p[2 * i + 1];
            sum += w;
            wsum += (n - i) * w;
        }
        s2 += n * s1 + wsum;
        s1 += sum;
        p += 2 * (size_t)n;
        words -= n;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    if (len % 2) {
        s1 += (uint32_t)*p << 8;
        s2 += s1;
        s1 = (s1 & 0xffff) + (s1 >> 16);
        s2 = (s2 & 0xffff) + (s2 >> 16);
    }
    s1 = (s1 & 0xffff) + (s1 >> 16);
    s2 = (s2 & 0xffff) + (s2 >> 16);
    return s2 << 16 | s1;
}

/* The image ldn_h5_set_image installed: the path it stands for and a core-driver access
 * property list holding a copy of it. */
static struct {
    char path[4096];
    hid_t fapl;
} image = {"", H5I_INVALID_HID};

int ldn_h5_set_image(const char *path, const void *buf, size_t len)
{
    image.path[0] = '\0';
    if (!path) {
        ldn_h5_close(&image.fapl, H5Pclose);
        return 0;
    }
    if (strlen(path) >= sizeof image.path)
        return -1;
    if (image.fapl < 0) { /* once; the increment is unused: the image is opened read-only */
        image.fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (image.fapl < 0 || H5Pset_fapl_core(image.fapl, 1 << 16, 0) < 0) {
            ldn_h5_close(&image.fapl, H5Pclose);
            return -1;
        }
    }
    if (H5Pset_file_image(image.fapl, (void *)buf, len) < 0)
        return -1;
    memcpy(image.path, path, strlen(path) + 1);
    return 0;
}

int ldn_h5_open_ro(const char *kind, const char *path, hid_t *f, char *err, size_t errlen)
{
    struct stat st; /* the OS names a missing or unreadable path better than HDF5 */
    *f = H5I_INVALID_HID;
    if (image.path[0] && strcmp(path, image.path) == 0) {
        if ((*f = H5Fopen(path, H5F_ACC_RDONLY, image.fapl)) < 0)
            return ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, kind, path,
                               "cannot open as HDF5 (damaged or truncated?)");
        return 0;
    }
    if (stat(path, &st) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "%s %s: cannot open: %s", kind, path,
                        strerror(errno));
    if (!S_ISREG(st.st_mode))
        return ldn_fail(err, errlen, LDN_ERR_ARG, "%s %s: cannot open: not a regular file", kind,
                        path);
    if ((*f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        return ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, kind, path,
                           "cannot open as HDF5 (damaged or truncated?)");
    return 0;
}
