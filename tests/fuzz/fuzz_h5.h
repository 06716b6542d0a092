/* Structure-aware inputs for the HDF5 fuzz targets (taskfile, ckpt): the fuzz input is read as
 * a stream of choices (types, shapes, attribute values, element bytes) and a well-formed HDF5
 * file is written from them through the HDF5 library; ladon's reader then opens that file.
 * This fuzzes what ladon checks (attributes, types, shapes, values) rather than HDF5's own
 * parser, whose bugs on damaged bytes (HDF5 1.10) ladon cannot fix: LDN_FUZZ_RAW=1 writes the
 * input bytes as the file instead (docs/fuzzing.md). */
#ifndef LDN_FUZZ_H5_H
#define LDN_FUZZ_H5_H

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"

/* The input, consumed from the front; reads past the end give zeros. */
struct fz {
    const uint8_t *p;
    size_t n;
};

static inline uint64_t fz_bytes(struct fz *z, int k)
{
    uint64_t v = 0;
    for (int i = 0; i < k; i++) {
        uint8_t b = z->n ? *z->p : 0;
        if (z->n) {
            z->p++;
            z->n--;
        }
        v |= (uint64_t)b << (8 * i);
    }
    return v;
}

static inline unsigned fz_u8(struct fz *z)
{
    return (unsigned)fz_bytes(z, 1);
}

/* One of the HDF5 element types a reader may meet; its size in *size. */
static inline hid_t fz_type(struct fz *z, size_t *size)
{
    hid_t t;
    switch (fz_u8(z) % 8) {
    case 0: t = H5T_NATIVE_FLOAT; break;
    case 1: t = H5T_NATIVE_DOUBLE; break;
    case 2: t = H5T_NATIVE_UINT8; break;
    case 3: t = H5T_NATIVE_INT32; break;
    case 4: t = H5T_NATIVE_INT64; break;
    case 5: t = H5T_NATIVE_UINT64; break;
    case 6: t = H5T_NATIVE_INT8; break;
    default: t = H5T_NATIVE_UINT32; break;
    }
    *size = H5Tget_size(t);
    return t;
}

/* A number attribute of a chosen type and raw value (any bits: NaN, huge, negative). Most
 * of the time (3 in 4) the given plausible value, else a fuzzed one. A whole plausible value
 * is written as ladon writes it, an integer (3 in 4; else a double, which the readers of
 * integer attributes refuse: before, a task file's format_version, num_classes and features
 * were always doubles then, and the task-file target rarely got past its root attributes). */
static inline void fz_attr_num(struct fz *z, hid_t obj, const char *name, double plausible)
{
    unsigned how = fz_u8(z);
    if (how % 16 == 15)
        return; /* absent */
    size_t size;
    hid_t t = fz_type(z, &size);
    uint8_t raw[8];
    uint64_t bits = fz_bytes(z, 8);
    memcpy(raw, &bits, 8);
    if (how % 4 != 0 && (how / 4) % 4 != 0 && plausible >= -9e15 && plausible <= 9e15 &&
        plausible == (double)(int64_t)plausible) {
        int64_t v = (int64_t)plausible;
        t = H5T_NATIVE_INT64;
        memcpy(raw, &v, 8);
    } else if (how % 4 != 0) {
        t = H5T_NATIVE_DOUBLE;
        memcpy(raw, &plausible, 8);
    }
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, t, raw);
        H5Aclose(a);
    }
    H5Sclose(sp);
}

/* A string attribute: the given value, or (1 in 4) up to 32 input bytes, or absent. */
static inline void fz_attr_str(struct fz *z, hid_t obj, const char *name, const char *plausible)
{
    unsigned how = fz_u8(z);
    if (how % 16 == 15)
        return;
    char buf[33];
    const char *v = plausible;
    if (how % 4 == 0) {
        size_t len = fz_u8(z) % 33;
        for (size_t i = 0; i < len; i++)
            buf[i] = (char)fz_u8(z);
        buf[len] = '\0';
        v = buf;
    }
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) {
        H5Awrite(a, t, v);
        H5Aclose(a);
    }
    H5Sclose(sp);
    H5Tclose(t);
}

/* A dataset at path (intermediate groups created) of rank 1 or 2 (or the one given when
 * shape[0] >= 0), dims from shape or (1 in 4) fuzzed up to 40, a fuzzed element type
 * (1 in 4; else `type`), elements from the input (cycled), chunked with Fletcher-32 or
 * contiguous. */
static inline void fz_dataset(struct fz *z, hid_t f, const char *path, hid_t type, int rank,
                              const int64_t shape[2])
{
    unsigned how = fz_u8(z);
    if (how % 32 == 31)
        return; /* absent */
    hsize_t dims[2] = {(hsize_t)shape[0], (hsize_t)(rank == 2 ? shape[1] : 1)};
    if (how % 4 == 0) {
        rank = 1 + (int)(fz_u8(z) % 2);
        dims[0] = fz_u8(z) % 41;
        dims[1] = fz_u8(z) % 41;
    }
    size_t size = H5Tget_size(type);
    if (how % 8 == 1)
        type = fz_type(z, &size);
    size_t count = (size_t)dims[0] * (rank == 2 ? (size_t)dims[1] : 1);
    uint8_t *buf = calloc(count ? count : 1, size);
    if (!buf)
        return;
    /* the values: mostly small numbers of the type, some raw input bytes (NaN, huge) */
    unsigned fill = fz_u8(z);
    for (size_t i = 0; i < count; i++) {
        if (fill % 4 == 0) {
            uint64_t v = fz_bytes(z, (int)size);
            memcpy(buf + i * size, &v, size);
        } else if (H5Tget_class(type) == H5T_FLOAT) {
            double d = (double)(i % 7) * 0.25 - 0.5;
            if (size == 4) {
                float x = (float)d;
                memcpy(buf + i * size, &x, 4);
            } else {
                memcpy(buf + i * size, &d, 8);
            }
        } else {
            uint64_t v = (uint64_t)(i % (fill % 5 + 1));
            memcpy(buf + i * size, &v, size);
        }
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    if (how % 2 == 0 && count > 0) {
        hsize_t chunk[2] = {dims[0] > 4 ? 4 : dims[0], rank == 2 ? dims[1] : 1};
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_fletcher32(dcpl);
    }
    hid_t sp = H5Screate_simple(rank, dims, NULL);
    hid_t d = H5Dcreate2(f, path, type, sp, lcpl, dcpl, H5P_DEFAULT);
    if (d >= 0) {
        if (count > 0)
            H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        H5Dclose(d);
    }
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    free(buf);
}

/* Create the file that will stand for path, in memory (the core driver, no backing store);
 * H5I_INVALID_HID on failure. Finish it with fz_finish. The first call also raises HDF5's
 * free-list limits: every H5Fcreate and H5Fopen allocates a 512 KiB metadata cache (H5C_t),
 * more than the 64 KiB HDF5 keeps on a free list by default, so each one came from mmap
 * under ASan and cost 128 fresh pages; kept on the free list it is reused (docs/fuzzing.md). */
static inline hid_t fz_create(const char *path)
{
    static hid_t fapl = H5I_INVALID_HID;
    if (fapl < 0) {
        H5set_free_list_limits(16 << 20, 16 << 20, 16 << 20, 16 << 20, 16 << 20, 16 << 20);
        fapl = H5Pcreate(H5P_FILE_ACCESS);
        if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0)
            return H5I_INVALID_HID;
    }
    return H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
}

/* Close f (from fz_create) and make its bytes what ladon's readers find at path
 * (ldn_h5_set_image): the same bytes a file on disk would hold, without the file system.
 * Returns path. No input can make this fail, and a harness that cannot hand its file over
 * would test nothing while passing: it aborts, so that the replay tests fail too. */
static inline const char *fz_finish(hid_t f, const char *path)
{
    static void *img;
    static size_t cap;
    ssize_t n = H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(f, NULL, 0);
    if (n > 0 && (size_t)n > cap) {
        void *b = realloc(img, (size_t)n);
        if (b) {
            img = b;
            cap = (size_t)n;
        }
    }
    if (n > 0 && (size_t)n <= cap && H5Fget_file_image(f, img, (size_t)n) != n)
        n = -1;
    H5Fclose(f);
    if (n <= 0 || (size_t)n > cap || ldn_h5_set_image(path, img, (size_t)n) != 0) {
        fprintf(stderr, "fuzz_h5.h: cannot take the file image of %s\n", path);
        abort();
    }
    return path;
}

#endif
