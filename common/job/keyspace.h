/* The trunk's key space: the trunk's tensors flattened in layer order into one float32 vector,
 * range-partitioned over the servers on whole rows, and cut into chunks (the unit of one push
 * and one pull answer). Every rank derives the same ranges and chunk table from the trunk's
 * shape, so none of it travels. */
#ifndef LDN_KEYSPACE_H
#define LDN_KEYSPACE_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/* A contiguous key range [lo, hi) of the flattened trunk. */
struct ldn_range {
    int64_t lo, hi;
};

/* Split the trunk's keys over n servers on whole-row boundaries, balanced by bytes.
 * out[n] receives the ranges; *imbalance = max range / mean range - 1. Returns 0, or
 * LDN_ERR_CONFIG with err when the trunk has fewer rows than servers. */
int ldn_keyspace_partition(const struct ldn_nn *trunk, int n, struct ldn_range *out,
                           double *imbalance, char *err, size_t errlen);

/* A chunk: the unit of one push or pull message. Each trunk layer is cut into blocks of
 * about ps.chunk_kb (whole rows, blocks of equal size), and each block at server boundaries;
 * chunks are in key order, and both ends of the wire compute the same table. */
struct ldn_chunk {
    int64_t lo, hi;     /* keys [lo, hi) */
    int server;         /* index 0..S-1 of the server holding it */
    int layer;          /* trunk layer */
    int row_lo, row_hi; /* rows of that layer */
};

/* Build the chunk table of trunk over the S server ranges; *out is allocated (free()).
 * Returns the number of chunks, or a negative status with err. */
int ldn_keyspace_chunks(const struct ldn_nn *trunk, const struct ldn_range *ranges, int S,
                        int64_t chunk_bytes, struct ldn_chunk **out, char *err, size_t errlen);

/* Index of the chunk that starts at key lo, or -1 (binary search). */
int ldn_keyspace_find_chunk(const struct ldn_chunk *chunks, int n, int64_t lo);

/* A trunk's whole key layout for n_servers servers: its layer geometry (and a parameter vector,
 * which servers initialise from the seed), the server ranges and the chunk table. A job builds
 * one at start-up and a new one whenever the trunk changes shape between phases. */
struct ldn_keyspace {
    struct ldn_nn *trunk;
    int n_servers;
    struct ldn_range *ranges; /* [n_servers] */
    struct ldn_chunk *chunks; /* [n_chunks], key order */
    int n_chunks;
    double imbalance; /* largest range / mean range - 1 */
};

/* The key layout of an MLP trunk features -> widths[0] -> ... -> widths[n_widths - 1] over
 * n_servers servers in chunks of about chunk_bytes. Returns a new keyspace or NULL with err
 * (out of memory, or fewer rows than servers). */
struct ldn_keyspace *ldn_keyspace_new(int features, const int *widths, int n_widths,
                                      enum ldn_activation act, int n_servers, int64_t chunk_bytes,
                                      char *err, size_t errlen);
/* Free k and set *k to NULL; accepts NULL. */
void ldn_keyspace_destroy(struct ldn_keyspace **k);

#endif
