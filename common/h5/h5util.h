/* HDF5 helpers shared by the task-file code (data.c) and checkpoints (ckpt.c): silencing
 * HDF5's automatic error printing, one-line errors with HDF5's innermost message, and scalar
 * attributes read and written with type checks. Messages read "<kind> <path>: <what>". */
#ifndef LDN_H5UTIL_H
#define LDN_H5UTIL_H

#include <hdf5.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* Save the current HDF5 automatic error handler and silence it; restore it afterwards. */
struct ldn_h5quiet {
    H5E_auto2_t fn;
    void *data;
};
void ldn_h5_quiet(struct ldn_h5quiet *q);
void ldn_h5_restore(const struct ldn_h5quiet *q);
/* The innermost message on HDF5's default error stack ("" when empty), copied to buf. */
const char *ldn_h5_errmsg(char *buf, size_t len);

/* "<kind> <path>: <what>: <innermost HDF5 message>" into err; returns status. */
int ldn_h5_fail(char *err, size_t errlen, int status, const char *kind, const char *path,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int ldn_h5_vfail(char *err, size_t errlen, int status, const char *kind, const char *path,
                 const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));

/* Open an existing file read-only into *f. Errors: "<kind> <path>: cannot open: <why>" (the
 * OS's reason, or "not a regular file"), or "<kind> <path>: cannot open as HDF5 (damaged or
 * truncated?): <HDF5's>". Returns 0 or a status (HDF5's error printing is the caller's). */
int ldn_h5_open_ro(const char *kind, const char *path, hid_t *f, char *err, size_t errlen);

/* For the fuzz targets only (tests/fuzz/fuzz_h5.h, docs/fuzzing.md): from now on
 * ldn_h5_open_ro opens exactly `path` from the HDF5 file image buf[0..len) held in memory (the
 * core driver, no backing store), not from the file system, so a harness that builds a file per
 * input need not write it out and read it back. The image is copied; path NULL goes back to the
 * file system. Returns 0 or -1 (HDF5 refused the image). Not thread-safe; tools never call it. */
int ldn_h5_set_image(const char *path, const void *buf, size_t len);

/* Close *id with fn when it is valid, and invalidate it. */
void ldn_h5_close(hid_t *id, herr_t (*fn)(hid_t));

/* Read string attribute `name` of obj (fixed or variable length, one value) into a new
 * string (*out, the caller frees). Returns 0, 1 when missing, or a negative status. */
int ldn_h5_attr_str(hid_t obj, const char *name, const char *kind, const char *path, char **out,
                    char *err, size_t errlen);
/* Read numeric attribute `name` as a double (integer_only: it must have an integer type).
 * Returns 0, 1 when missing, or a negative status. */
int ldn_h5_attr_num(hid_t obj, const char *name, int integer_only, const char *kind,
                    const char *path, double *out, char *err, size_t errlen);

/* Create scalar attributes (fixed-length NUL-terminated string / one value). 0 or -1. */
int ldn_h5_write_attr_str(hid_t obj, const char *name, const char *value);
int ldn_h5_write_attr_scalar(hid_t obj, const char *name, hid_t filetype, hid_t memtype,
                             const void *value);

/* The Fletcher-32 checksum HDF5's filter (H5Pset_fletcher32) stores after a chunk's bytes
 * (little-endian), for chunks that ladon checksums itself (docs/checkpoint.md). */
uint32_t ldn_h5_fletcher32(const void *buf, size_t len);

#endif
