/* Delta pulls: what each worker holds, and the changes since its last pull. */
#include "delta.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "status.h"

struct ldn_delta {
    int W, C;
    int64_t n;
    struct ldn_codec_desc desc; /* sparse, compress.downlink_quant */
    uint64_t desc_words[LDN_CODEC_DESC_WORDS];
    struct ldn_codec_ctx *ctx;
    int exact;       /* fp32: the new values, not differences */
    float *held;     /* [W][n]: what each worker holds of the range (valid where held_ok) */
    char *held_ok;   /* [W][C] */
    uint64_t *dirty; /* [W][words] with change tracking: keys changed since w's last pull */
    int64_t words;
    /* one chunk's delta: changed indices (chunk-relative), values, dequantized, coded */
    uint32_t *idx;
    float *vals, *deq;
    uint8_t *out;
    size_t cap;
    int64_t m;          /* entries of the last delta coded */
    int last_w, last_k; /* the chunk it was coded for */
    int64_t last_lo;
};

struct ldn_delta *ldn_delta_new(const struct ldn_config *cfg, const struct ldn_store *st, int W,
                                int track)
{
    struct ldn_delta *dl = calloc(1, sizeof *dl);
    if (!dl)
        return NULL;
    dl->W = W;
    dl->C = st->C;
    dl->n = st->n;
    dl->desc = (struct ldn_codec_desc){.kind = LDN_CODEC_SPARSE,
                                       .quant = cfg->compress.downlink_quant,
                                       .ratio_ppm = 1000000,
                                       .chunk = (uint32_t)cfg->compress.chunk,
                                       .levels = (uint32_t)cfg->compress.levels,
                                       .seed = cfg->seed};
    ldn_codec_desc_pack(&dl->desc, dl->desc_words);
    dl->exact = dl->desc.quant == LDN_QUANT_FP32;
    int64_t most = 0;
    for (int k = 0; k < st->C; k++)
        if (st->chunks[k].hi - st->chunks[k].lo > most)
            most = st->chunks[k].hi - st->chunks[k].lo;
    dl->cap = ldn_codec_max_bytes(&dl->desc, most);
    dl->held = malloc(sizeof(float) * (size_t)st->n * (size_t)W);
    dl->held_ok = calloc((size_t)W * (size_t)st->C, 1);
    dl->idx = malloc(sizeof *dl->idx * (size_t)most);
    dl->vals = malloc(sizeof(float) * (size_t)most);
    dl->deq = malloc(sizeof(float) * (size_t)most);
    dl->out = malloc(dl->cap);
    dl->ctx = ldn_codec_ctx_new(cfg->seed ^ 0x646f776e6c696e6bULL);
    int ok = dl->held && dl->held_ok && dl->idx && dl->vals && dl->deq && dl->out && dl->ctx;
    if (ok && track && dl->exact) { /* inexact deltas carry what rounding lost: no tracking */
        dl->words = (st->n + 63) / 64;
        ok = (dl->dirty = calloc((size_t)W * (size_t)dl->words, sizeof *dl->dirty)) != NULL;
    }
    if (!ok)
        ldn_delta_destroy(&dl);
    return dl;
}

void ldn_delta_destroy(struct ldn_delta **pdl)
{
    if (!pdl || !*pdl)
        return;
    struct ldn_delta *dl = *pdl;
    ldn_codec_ctx_destroy(&dl->ctx);
    free(dl->held);
    free(dl->held_ok);
    free(dl->dirty);
    free(dl->idx);
    free(dl->vals);
    free(dl->deq);
    free(dl->out);
    free(dl);
    *pdl = NULL;
}

/* The mask of chunk c's keys within bitmap word `word`. */
static uint64_t chunk_bits(const struct ldn_chunk *c, int64_t word)
{
    int64_t base = word * 64;
    uint64_t m = ~0ULL;
    if (base < c->lo)
        m &= ~0ULL << (c->lo - base);
    if (c->hi - base < 64)
        m &= ~(~0ULL << (c->hi - base));
    return m;
}

/* The keys of chunk c marked for worker w whose weights differ from what w holds, into
 * idx/vals in ascending order; their marks are cleared. */
static int64_t marked_changes(struct ldn_delta *dl, int w, const struct ldn_chunk *c,
                              const float *p, const float *held)
{
    uint64_t *bits = dl->dirty + (size_t)w * (size_t)dl->words;
    int64_t m = 0;
    for (int64_t wd = c->lo / 64; wd * 64 < c->hi; wd++) {
        uint64_t mine = bits[wd] & chunk_bits(c, wd);
        bits[wd] &= ~mine;
        while (mine) {
            int64_t i = wd * 64 + __builtin_ctzll(mine) - c->lo; /* chunk-relative */
            mine &= mine - 1;
            if (memcmp(&p[i], &held[i], sizeof(float)) != 0) {
                dl->idx[m] = (uint32_t)i;
                dl->vals[m++] = p[i];
            }
        }
    }
    return m;
}

int ldn_delta_delta(struct ldn_delta *dl, const struct ldn_store *st, int w, int k,
                    const void **out, size_t *len)
{
    const struct ldn_chunk *c = &st->chunks[k];
    const int64_t n = c->hi - c->lo;
    const float *held = dl->held + (size_t)w * (size_t)dl->n + c->lo;
    const float *p = st->params + c->lo;
    dl->m = 0;
    dl->last_w = -1;
    if (!dl->held_ok[(size_t)w * (size_t)dl->C + (size_t)k])
        return 0;
    int64_t m = 0;
    if (dl->dirty) /* only the keys changed since this worker's last pull can differ */
        m = marked_changes(dl, w, c, p, held);
    else
        for (int64_t i = 0; i < n; i++) {
            if (memcmp(&p[i], &held[i], sizeof(float)) == 0) /* bitwise: -0.0 and 0.0 differ */
                continue;
            dl->idx[m] = (uint32_t)i;
            dl->vals[m++] = dl->exact ? p[i] : p[i] - held[i];
        }
    char err[LDN_ERRLEN];
    if (ldn_codec_encode(&dl->desc, n, dl->idx, m, dl->vals, NULL, dl->out, dl->cap, len, dl->deq,
                         err, sizeof err) != 0 ||
        *len >= (size_t)n * sizeof(float))
        return 0; /* dense is smaller (or a delta does not code: send the weights) */
    dl->m = m;
    dl->last_w = w;
    dl->last_k = k;
    dl->last_lo = c->lo;
    *out = dl->out;
    return 1;
}

void ldn_delta_delivered(struct ldn_delta *dl, int w, int k)
{
    if (dl->last_w != w || dl->last_k != k)
        return;
    float *held = dl->held + (size_t)w * (size_t)dl->n + dl->last_lo;
    for (int64_t j = 0; j < dl->m; j++) /* what the worker has now */
        held[dl->idx[j]] = dl->exact ? dl->vals[j] : held[dl->idx[j]] + dl->deq[j];
    dl->last_w = -1;
}

void ldn_delta_dense(struct ldn_delta *dl, const struct ldn_store *st, int w, int k)
{
    const struct ldn_chunk *c = &st->chunks[k];
    memcpy(dl->held + (size_t)w * (size_t)dl->n + c->lo, st->params + c->lo,
           sizeof(float) * (size_t)(c->hi - c->lo));
    dl->held_ok[(size_t)w * (size_t)dl->C + (size_t)k] = 1;
    if (!dl->dirty)
        return;
    uint64_t *bits = dl->dirty + (size_t)w * (size_t)dl->words; /* nothing pending for w */
    for (int64_t wd = c->lo / 64; wd * 64 < c->hi; wd++)
        bits[wd] &= ~chunk_bits(c, wd);
}

void ldn_delta_changed(struct ldn_delta *dl, const uint32_t *keys, int64_t m)
{
    if (!dl->dirty)
        return;
    for (int w = 0; w < dl->W; w++) {
        uint64_t *bits = dl->dirty + (size_t)w * (size_t)dl->words;
        for (int64_t j = 0; j < m; j++)
            bits[keys[j] / 64] |= 1ULL << (keys[j] % 64);
    }
}

const uint64_t *ldn_delta_desc(const struct ldn_delta *dl)
{
    return dl->desc_words;
}
