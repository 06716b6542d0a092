/* Reading IDX files with zlib (see idx.h). */
#include "idx.h"

#include "fs.h"
#include "status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* Largest payload accepted (the real Fashion-MNIST training images are 47 MB). */
#define IDX_MAX_BYTES ((uint64_t)1 << 34)
/* Largest single gzread request. */
#define IDX_READ_CHUNK (1u << 28)

/* zlib's message for the last error on gz, or NULL when there is none. */
static const char *gz_errmsg(gzFile gz)
{
    int errnum = Z_OK;
    const char *msg = gzerror(gz, &errnum);
    if (errnum == Z_OK || errnum == Z_STREAM_END)
        return NULL;
    if (errnum == Z_ERRNO)
        return strerror(errno);
    return msg && msg[0] ? msg : "unknown zlib error";
}

/* Read up to len bytes; returns the number read, or -1 on a zlib / OS error. */
static int64_t gz_read_full(gzFile gz, uint8_t *buf, uint64_t len)
{
    uint64_t got = 0;
    while (got < len) {
        uint64_t want = len - got;
        unsigned n = want > IDX_READ_CHUNK ? IDX_READ_CHUNK : (unsigned)want;
        int r = gzread(gz, buf + got, n);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (uint64_t)r;
    }
    if (got < len && gz_errmsg(gz))
        return -1;
    return (int64_t)got;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int gz_fail(char *err, size_t errlen, const char *path, gzFile gz)
{
    int errnum = Z_OK;
    gzerror(gz, &errnum);
    if (errnum == Z_ERRNO)
        return ldn_fail(err, errlen, LDN_ERR_IO, "data %s: read failed: %s", path, strerror(errno));
    const char *m = gz_errmsg(gz);
    size_t plen = strlen(path); /* zlib prefixes its messages with "<path>: " */
    if (m && strncmp(m, path, plen) == 0 && m[plen] == ':' && m[plen + 1] == ' ')
        m += plen + 2;
    return ldn_fail(err, errlen, LDN_ERR_FORMAT, "data %s: corrupt or truncated gzip data: %s",
                    path, m ? m : "read failed");
}

int ldn_idx_read(const char *path, int ndims, struct ldn_idx *idx, char *err, size_t errlen)
{
    memset(idx, 0, sizeof *idx);
    if (ndims < 1 || ndims > LDN_IDX_MAX_DIMS)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "data %s: bad dimension count %d", path, ndims);
    int fd = ldn_open_regular("data", path, err, errlen);
    if (fd < 0)
        return LDN_ERR_IO;
    errno = 0;
    gzFile gz = gzdopen(fd, "rb");
    if (!gz) {
        close(fd);
        return ldn_fail(err, errlen, LDN_ERR_IO, "data %s: cannot open: %s", path,
                        errno ? strerror(errno) : "out of memory");
    }
    gzbuffer(gz, 1u << 17);

    int rc = 0;
    uint8_t hdr[4 + 4 * LDN_IDX_MAX_DIMS];
    const int64_t hlen = 4 + 4 * (int64_t)ndims;
    const uint32_t magic = (uint32_t)LDN_IDX_UBYTE << 8 | (uint32_t)ndims;
    int64_t got = gz_read_full(gz, hdr, (uint64_t)hlen);
    if (got < 0) {
        rc = gz_fail(err, errlen, path, gz);
        goto out;
    }
    if (got >= 4 && be32(hdr) != magic) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: bad IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d "
                      "dimension%s)",
                      path, be32(hdr), magic, ndims, ndims == 1 ? "" : "s");
        goto out;
    }
    if (got < hlen) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: truncated: expected a %lld-byte IDX header, got %lld bytes", path,
                      (long long)hlen, (long long)got);
        goto out;
    }
    uint64_t size = 1;
    idx->ndims = ndims;
    for (int i = 0; i < ndims; i++) {
        idx->dims[i] = be32(hdr + 4 + 4 * i);
        size *= (uint64_t)idx->dims[i];
        if (size > IDX_MAX_BYTES) {
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "data %s: IDX header promises more than %llu bytes", path,
                          (unsigned long long)IDX_MAX_BYTES);
            goto out;
        }
    }
    idx->size = (size_t)size;
    /* The buffer grows with the bytes that arrive (doubling, from 1 MiB): a header that
     * promises gigabytes in a file of a few bytes costs no more than the file holds. */
    uint64_t cap = 0, have = 0;
    got = 0;
    do {
        uint64_t next = cap ? 2 * cap : (uint64_t)1 << 20;
        next = next < size ? next : size;
        uint8_t *p = realloc(idx->data, next > 0 ? (size_t)next : 1);
        if (!p) {
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "data %s: out of memory for %llu bytes", path,
                          (unsigned long long)size);
            goto out;
        }
        idx->data = p;
        cap = next;
        got = gz_read_full(gz, idx->data + have, cap - have);
        if (got < 0) {
            rc = gz_fail(err, errlen, path, gz);
            goto out;
        }
        have += (uint64_t)got;
    } while (have == cap && cap < size);
    got = (int64_t)have;
    if ((uint64_t)got < size) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: truncated: header promises %llu data bytes (%llu in all), got "
                      "%lld",
                      path, (unsigned long long)size, (unsigned long long)(size + (uint64_t)hlen),
                      (long long)got);
        goto out;
    }
    /* Reading past the end makes zlib check the gzip trailer (CRC-32 and length). */
    uint8_t extra[1];
    got = gz_read_full(gz, extra, 1);
    if (got < 0) {
        rc = gz_fail(err, errlen, path, gz);
        goto out;
    }
    if (got > 0) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "data %s: trailing data after the %llu bytes the IDX header promises", path,
                      (unsigned long long)(size + (uint64_t)hlen));
        goto out;
    }
out:
    if (gzclose_r(gz) != Z_OK && rc == 0)
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "data %s: close failed", path);
    if (rc < 0)
        ldn_idx_deinit(idx);
    return rc;
}

void ldn_idx_deinit(struct ldn_idx *idx)
{
    if (!idx)
        return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}
