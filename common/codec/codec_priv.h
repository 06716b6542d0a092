/* Internals shared by common/codec*.c (scratch buffers, random streams); not part of the API. */
#ifndef LDN_CODEC_PRIV_H
#define LDN_CODEC_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "rng.h"

enum ldn__codec_slot {
    LDN__CODEC_KEYS,
    LDN__CODEC_CAND,
    LDN__CODEC_CKEYS,
    LDN__CODEC_IDX,
    LDN__CODEC_VALS,
    LDN__CODEC_DEQ,
    LDN__CODEC_BITS,
    LDN__CODEC_NSLOTS
};
#define LDN__CODEC_HIST_BUCKETS 2048 /* top-k histogram over magnitude bits >> 20 */
/* A scratch buffer of at least bytes bytes (contents undefined), or NULL when out of memory. */
void *ldn__codec_scratch(struct ldn_codec_ctx *ctx, enum ldn__codec_slot slot, size_t bytes);
uint32_t *ldn__codec_hist(struct ldn_codec_ctx *ctx);
struct ldn_rng *ldn__codec_rng(struct ldn_codec_ctx *ctx);
struct ldn_rng *ldn__codec_pivot_rng(struct ldn_codec_ctx *ctx);

#endif
