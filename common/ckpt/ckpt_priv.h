/* Checkpoint internals shared by ckpt.c (files, datasets, reading) and ckpt_chunks.c (the
 * parallel write of checksummed chunks). Not part of the public interface. */
#ifndef LDN_CKPT_PRIV_H
#define LDN_CKPT_PRIV_H

#include <hdf5.h>
#include <mpi.h>
#include <stdint.h>

#include "ckpt.h"

#define LDN_CKPT_CHUNK_BYTES (1 << 20) /* target size of one dataset chunk */

/* One rank's part of one dataset, as every rank learns it before the file is created. */
struct ckpt_part {
    char name[LDN_CKPT_NAME_MAX];
    int32_t type, ndim;
    int64_t dims[2];    /* the whole dataset; dims[1] == 1 when ndim == 1 */
    int64_t row0, rows; /* rows [row0, row0 + rows) held by `rank` */
    int32_t rank, pad;
};

/* A dataset: parts[first .. first + count) of the sorted part list, which tile its rows. */
struct ckpt_dset {
    int first, count;
};

/* Bytes of one element of an enum ldn_ckpt_type. */
int64_t ldn_ckpt_elsize(int type);
/* Rows (2-D) or elements (1-D) per chunk of d; 0 for an empty dataset (no chunks). */
int64_t ldn_ckpt_chunk_len(const struct ckpt_part *d);
/* Copy `rows` rows of row_bytes each from src (rows src_step bytes apart) to dst (dst_step
 * apart): one memcpy when both are packed. */
void ldn_ckpt_copy_rows(void *dst, int64_t dst_step, const void *src, int64_t src_step,
                        int64_t rows, int64_t row_bytes);
/* Chunks of d (0 for an empty dataset). */
int64_t ldn_ckpt_n_chunks(const struct ckpt_part *d);

/* The file address of every chunk of dataset ds (described by d) into addr[], after it was
 * created with its space allocated: 0, or 1 when a chunk is not laid out as the direct write
 * needs (allocated, unfiltered size + 4 bytes of Fletcher-32, filter mask 0). Every rank makes
 * the same calls (metadata reads are collective). */
int ldn_ckpt_chunk_addrs(hid_t ds, const struct ckpt_part *d, uint64_t *addr);

/* Write the chunks of every dataset into the closed file `path`, collectively over comm: the
 * rank holding a chunk's first row assembles it (receiving the rows that other ranks hold),
 * appends its Fletcher-32 and writes it at addr[i][c] with MPI-IO; then every rank syncs.
 * Returns 0 or a status with err set (this rank's failure; the caller combines them). */
int ldn_ckpt_write_chunks(MPI_Comm comm, const char *path, const struct ckpt_part *parts,
                          const struct ckpt_dset *dsets, int nd, uint64_t *const *addr,
                          const struct ldn_ckpt_items *mine, char *err, size_t errlen);

#endif
