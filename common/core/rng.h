/* Seedable, reproducible random numbers with independent streams.
 *
 * xoshiro256** seeded through splitmix64 from (seed, stream): every rank or task
 * gets its own stream id, so results do not depend on how work is distributed.
 * The state is a plain struct (embed it, copy it, store it in a checkpoint). */
#ifndef LDN_RNG_H
#define LDN_RNG_H

#include <stdint.h>

struct ldn_rng {
    uint64_t s[4];
};

/* Initialise the stream `stream` of seed `seed`. */
void ldn_rng_init(struct ldn_rng *r, uint64_t seed, uint64_t stream);
uint64_t ldn_rng_u64(struct ldn_rng *r);
/* n uniform 32-bit words, two from each 64-bit output (low half first). */
void ldn_rng_fill_u32(struct ldn_rng *r, uint32_t *out, int64_t n);
/* Uniform in [0, 1) with 53 bits. */
double ldn_rng_uniform(struct ldn_rng *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
uint64_t ldn_rng_below(struct ldn_rng *r, uint64_t n);
/* Standard normal (Box-Muller; no cached second value, so the state alone is the state). */
double ldn_rng_normal(struct ldn_rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void ldn_rng_shuffle(struct ldn_rng *r, int64_t *idx, int64_t n);

#endif
