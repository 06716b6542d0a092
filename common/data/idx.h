/* Reading IDX files (the MNIST / Fashion-MNIST format), gzip-compressed or plain, with zlib.
 *
 * An IDX file is a 4-byte big-endian magic 0x0000TTDD (TT = element type, 0x08 for unsigned
 * bytes; DD = number of dimensions), DD big-endian uint32 sizes, then the elements. */
#ifndef LDN_IDX_H
#define LDN_IDX_H

#include <stddef.h>
#include <stdint.h>

#define LDN_IDX_MAX_DIMS 4
#define LDN_IDX_UBYTE 0x08

struct ldn_idx {
    int ndims;
    int64_t dims[LDN_IDX_MAX_DIMS];
    size_t size;   /* product of dims, in bytes */
    uint8_t *data; /* [size] (owned; free with ldn_idx_deinit) */
};

/* Read the whole unsigned-byte IDX file at path (gzip or plain), which must have ndims
 * dimensions. Checks the magic, that the file holds exactly the bytes the header promises
 * (no truncation, no trailing data) and, for gzip, the stream's CRC. Returns 0, or a
 * negative ldn_status with a one-line "data <path>: ..." message in err (idx is then empty). */
int ldn_idx_read(const char *path, int ndims, struct ldn_idx *idx, char *err, size_t errlen);

/* Free the data of idx (accepts a zeroed or already deinitialised idx). */
void ldn_idx_deinit(struct ldn_idx *idx);

#endif
