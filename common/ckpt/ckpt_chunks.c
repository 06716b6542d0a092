/* The parallel checkpoint write (docs/checkpoint.md, "How a checkpoint is written"): HDF5
 * creates the file and every dataset collectively with the chunks' space allocated; each chunk
 * is then assembled by one rank, checksummed with HDF5's Fletcher-32 and written where HDF5
 * put it, with MPI-IO. Reading goes through HDF5's filter, which verifies every checksum. */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_priv.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "log.h"
#include "status.h"

int64_t ldn_ckpt_elsize(int type)
{
    return type == LDN_CKPT_F32 ? 4 : 8;
}

int64_t ldn_ckpt_chunk_len(const struct ckpt_part *d)
{
    if (d->dims[0] == 0 || d->dims[1] == 0)
        return 0;
    int64_t n = d->ndim == 2 ? LDN_CKPT_CHUNK_BYTES / 4 / d->dims[1] : LDN_CKPT_CHUNK_BYTES / 8;
    if (n < 1)
        n = 1;
    return n < d->dims[0] ? n : d->dims[0];
}

int64_t ldn_ckpt_n_chunks(const struct ckpt_part *d)
{
    int64_t len = ldn_ckpt_chunk_len(d);
    return len ? (d->dims[0] + len - 1) / len : 0;
}

/* Bytes of one row (2-D) or element (1-D), and of one whole chunk without its checksum. */
static int64_t row_bytes(const struct ckpt_part *d)
{
    return d->dims[1] * ldn_ckpt_elsize(d->type);
}

int ldn_ckpt_chunk_addrs(hid_t ds, const struct ckpt_part *d, uint64_t *addr)
{
    int64_t len = ldn_ckpt_chunk_len(d), nc = ldn_ckpt_n_chunks(d), want = len * row_bytes(d) + 4;
    int bad = want > INT_MAX; /* one MPI write per chunk (rows of over 2 GB: HDF5's path) */
    for (int64_t c = 0; c < nc; c++) {
        hsize_t off[2] = {(hsize_t)(c * len), 0}, size = 0;
        unsigned mask = 1;
        haddr_t a = HADDR_UNDEF;
        if (H5Dget_chunk_info_by_coord(ds, off, &mask, &a, &size) < 0 || a == HADDR_UNDEF ||
            mask != 0 || (int64_t)size != want)
            bad = 1; /* keep going: every rank makes the same calls */
        addr[c] = (uint64_t)a;
    }
    return bad;
}

/* Copy rows [r0, r1) of my item into dst (rows packed: row_bytes each). */
void ldn_ckpt_copy_rows(void *dst, int64_t dst_step, const void *src, int64_t src_step,
                        int64_t rows, int64_t row_bytes)
{
    char *d = dst;
    const char *s = src;
    if (dst_step == row_bytes && src_step == row_bytes) {
        memcpy(d, s, (size_t)(rows * row_bytes));
        return;
    }
    for (int64_t r = 0; r < rows; r++, d += dst_step, s += src_step)
        memcpy(d, s, (size_t)row_bytes);
}

static void pack_rows(char *dst, const struct ckpt_part *d, const struct ldn_ckpt_item *it,
                      int64_t r0, int64_t r1)
{
    const int64_t el = ldn_ckpt_elsize(d->type), rb = row_bytes(d);
    ldn_ckpt_copy_rows(dst, rb, (const char *)it->src + (r0 - it->row0) * it->stride * el,
                       it->stride * el, r1 - r0, rb);
}

static const struct ldn_ckpt_item *find_item(const struct ldn_ckpt_items *mine, const char *name)
{
    for (int k = 0; k < mine->n; k++)
        if (strcmp(mine->v[k].name, name) == 0)
            return &mine->v[k];
    return NULL;
}

/* The part of dataset u held by rank me, or NULL. */
static const struct ckpt_part *my_part(const struct ckpt_part *parts, const struct ckpt_dset *u,
                                       int me)
{
    for (int k = u->first; k < u->first + u->count; k++)
        if (parts[k].rank == me && parts[k].rows > 0)
            return &parts[k];
    return NULL;
}

static int mpi_fail(char *err, size_t errlen, const char *path, const char *what, int code)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, msg, &len);
    return ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint %s: %s: %s", path, what, msg);
}

/* Send the rows of my part that lie in a chunk another rank assembles (only the first chunk
 * my rows touch can start before them). */
static int send_head(MPI_Comm xc, const struct ckpt_part *parts, const struct ckpt_dset *u,
                     const struct ckpt_part *p, const struct ldn_ckpt_item *it, char **buf,
                     MPI_Request *req, char *err, size_t errlen)
{
    int64_t len = ldn_ckpt_chunk_len(p), c0 = p->row0 / len;
    *req = MPI_REQUEST_NULL;
    if (c0 * len == p->row0)
        return 0;
    int64_t r1 = (c0 + 1) * len < p->row0 + p->rows ? (c0 + 1) * len : p->row0 + p->rows;
    int64_t bytes = (r1 - p->row0) * row_bytes(p);
    int owner = -1;
    for (int k = u->first; k < u->first + u->count; k++)
        if (parts[k].rows > 0 && parts[k].row0 <= c0 * len &&
            c0 * len < parts[k].row0 + parts[k].rows)
            owner = parts[k].rank;
    if (owner < 0 || bytes > INT_MAX)
        return ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                        "checkpoint: no rank assembles chunk %lld of %s", (long long)c0, p->name);
    if (!(*buf = malloc((size_t)bytes)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint: out of memory");
    pack_rows(*buf, p, it, p->row0, r1);
    MPI_Isend(*buf, (int)bytes, MPI_BYTE, owner, 0, xc, req);
    return 0;
}

/* Assemble, checksum and write the chunks whose first row is mine. Receives the rows of the
 * following parts that fall into my last chunk even after a failure, so no sender waits. */
static int write_own(MPI_Comm xc, MPI_File fh, const char *path, const struct ckpt_part *parts,
                     const struct ckpt_dset *u, const struct ckpt_part *p,
                     const struct ldn_ckpt_item *it, const uint64_t *addr, char **buf, size_t *cap,
                     int rc, char *err, size_t errlen)
{
    const int64_t len = ldn_ckpt_chunk_len(p), rb = row_bytes(p), cbytes = len * rb;
    const int64_t end = p->row0 + p->rows;
    if ((size_t)cbytes + 4 > *cap) {
        free(*buf);
        *cap = (size_t)cbytes + 4;
        if (!(*buf = malloc(*cap))) { /* one chunk: nothing sensible is left to do */
            LDN_ERROR("checkpoint %s: out of memory for a chunk of %lld bytes", path,
                      (long long)cbytes);
            MPI_Abort(xc, 1);
        }
    }
    for (int64_t c = (p->row0 + len - 1) / len; c * len < end; c++) {
        int64_t c0 = c * len, c1 = c0 + len < p->dims[0] ? c0 + len : p->dims[0];
        int64_t mine1 = c1 < end ? c1 : end;
        pack_rows(*buf, p, it, c0, mine1);
        /* rows of the chunk beyond mine: the next parts' heads, in row order */
        for (int k = u->first; k < u->first + u->count && mine1 < c1; k++) {
            const struct ckpt_part *q = &parts[k];
            if (q->rows == 0 || q->row0 < mine1 || q->row0 >= c1)
                continue;
            int64_t q1 = q->row0 + q->rows < c1 ? q->row0 + q->rows : c1;
            int n = (int)((q1 - q->row0) * rb), got = 0;
            MPI_Status st;
            MPI_Recv(*buf + (q->row0 - c0) * rb, n, MPI_BYTE, q->rank, 0, xc, &st);
            MPI_Get_count(&st, MPI_BYTE, &got);
            if (got != n && rc == 0)
                rc = ldn_fail(err, errlen, LDN_ERR_INTERNAL,
                              "checkpoint: rank %d sent %d bytes of %s, expected %d", q->rank, got,
                              p->name, n);
        }
        if (rc)
            continue;
        if (c1 - c0 < len) /* the last chunk: padding HDF5 also checksums */
            memset(*buf + (c1 - c0) * rb, 0, (size_t)((len - (c1 - c0)) * rb));
        uint32_t sum = ldn_h5_fletcher32(*buf, (size_t)cbytes);
        for (int b = 0; b < 4; b++) /* stored little-endian */
            (*buf)[cbytes + b] = (char)(sum >> (8 * b) & 0xff);
        MPI_Status st;
        int e = MPI_File_write_at(fh, (MPI_Offset)addr[c], *buf, (int)(cbytes + 4), MPI_BYTE, &st);
        if (e != MPI_SUCCESS)
            rc = mpi_fail(err, errlen, path, "write", e);
    }
    return rc;
}

int ldn_ckpt_write_chunks(MPI_Comm comm, const char *path, const struct ckpt_part *parts,
                          const struct ckpt_dset *dsets, int nd, uint64_t *const *addr,
                          const struct ldn_ckpt_items *mine, char *err, size_t errlen)
{
    int me = 0, rc = 0;
    MPI_Comm_rank(comm, &me);
    MPI_Comm xc;
    MPI_Comm_dup(comm, &xc); /* the row exchange cannot meet anybody else's messages */
    MPI_File fh = MPI_FILE_NULL;
    int e = MPI_File_open(xc, path, MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
    if (e != MPI_SUCCESS)
        rc = mpi_fail(err, errlen, path, "MPI_File_open", e);

    /* 1. post the rows other ranks' chunks need */
    char **sbuf = calloc((size_t)nd + 1, sizeof *sbuf);
    MPI_Request *req = malloc(sizeof *req * ((size_t)nd + 1));
    if (!sbuf || !req) { /* a few pointers: nothing sensible is left to do */
        LDN_ERROR("checkpoint %s: out of memory", path);
        MPI_Abort(comm, 1);
    }
    for (int i = 0; i < nd; i++) {
        const struct ckpt_part *p = my_part(parts, &dsets[i], me);
        const struct ldn_ckpt_item *it = p ? find_item(mine, p->name) : NULL;
        req[i] = MPI_REQUEST_NULL;
        if (p && it) {
            char why[LDN_ERRLEN];
            int r = send_head(xc, parts, &dsets[i], p, it, &sbuf[i], &req[i], why, sizeof why);
            if (r && rc == 0) {
                rc = r;
                snprintf(err, errlen, "%s", why);
            }
        }
    }
    /* 2. assemble and write my chunks */
    char *buf = NULL;
    size_t cap = 0;
    for (int i = 0; i < nd; i++) {
        const struct ckpt_part *p = my_part(parts, &dsets[i], me);
        const struct ldn_ckpt_item *it = p ? find_item(mine, p->name) : NULL;
        if (p && it)
            rc = write_own(xc, fh, path, parts, &dsets[i], p, it, addr[i], &buf, &cap, rc, err,
                           errlen);
    }
    free(buf);
    MPI_Waitall(nd, req, MPI_STATUSES_IGNORE);
    for (int i = 0; i < nd; i++)
        free(sbuf[i]);
    free(sbuf);
    free(req);
    /* 3. every rank's data on stable storage (each host flushes what it wrote) */
    if (fh != MPI_FILE_NULL) {
        if ((e = MPI_File_sync(fh)) != MPI_SUCCESS && rc == 0)
            rc = mpi_fail(err, errlen, path, "MPI_File_sync", e);
        if ((e = MPI_File_close(&fh)) != MPI_SUCCESS && rc == 0)
            rc = mpi_fail(err, errlen, path, "MPI_File_close", e);
    }
    MPI_Comm_free(&xc);
    return rc;
}
