/* Gradual magnitude pruning of the trunk (Zhu & Gupta 2017), shared by the local trainer and the
 * parameter servers (docs/architecture.md, "Pruning").
 *
 * Schedule: from prune.start to prune.end the target sparsity of a unit rises as
 *   s_t = s_f + (s_i - s_f) (1 - (t - start) / (end - start))^3,
 * and the masks are recomputed at start, every prune.every steps after it and at end. A unit is
 * one trunk layer (scope layer; its target prune.layers[l] or prune.sparsity) or the whole
 * trunk (scope global). Only weights are ranked and masked, never biases.
 *
 * Threshold: the magnitude of the k-th smallest weight of a unit (k = round(s_t * weights)),
 * found exactly from histograms: |w| as IEEE bits (31 bits, monotone in |w|) is resolved in
 * LDN_PRUNE_LEVELS passes of at most LDN_PRUNE_BINS bins (bits 30..23, 22..15, 14..7, 6..0),
 * each pass counting only the weights whose higher bits equal the prefix found so far. The
 * counts of disjoint key ranges add, so servers holding parts of a unit find the same threshold
 * as one process holding it all, by summing their histograms. A weight is masked when its |w|
 * is <= the threshold: exactly k weights, more only when weights tie at the threshold. Masks
 * only grow (a masked key stays masked; masked weights are zero and rank first). */
#ifndef LDN_PRUNE_H
#define LDN_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "ckpt.h"
#include "config.h"
#include "nn.h"

#define LDN_PRUNE_LEVELS 4
#define LDN_PRUNE_BINS 256

/* What is ranked together: units of trunk layers. */
struct ldn_prune_units {
    int n;        /* units: the trunk's layers, or 1 (global) */
    int n_layers; /* trunk layers */
    int unit_of_layer[LDN_MAX_LAYERS];
    int64_t weights[LDN_MAX_LAYERS]; /* weights (not biases) of each unit */
    int64_t layer_weights[LDN_MAX_LAYERS];
    double target[LDN_MAX_LAYERS]; /* s_f of each unit */
};

/* The state of one threshold search (the coordinator's, or the local trainer's). */
struct ldn_prune_select {
    int n, level;                    /* units; passes done */
    int64_t want[LDN_MAX_LAYERS];    /* weights to mask in each unit */
    int64_t below[LDN_MAX_LAYERS];   /* weights known to lie below the prefix */
    uint64_t prefix[LDN_MAX_LAYERS]; /* the threshold's bits found so far */
};

/* True when cfg prunes (a target above zero). */
bool ldn_prune_on(const struct ldn_prune_config *p);
/* prune.end for a run of total_steps steps: 0 means 3/4 of the run; clamped to total_steps - 1
 * so that the target is reached by a mask update inside the run. */
int64_t ldn_prune_end(const struct ldn_prune_config *p, int64_t total_steps);
/* The cubic schedule's sparsity at step t for initial s_i and final s_f over [start, end]
 * (s_i before start, s_f from end on). */
double ldn_prune_sparsity_at(double s_i, double s_f, int64_t start, int64_t end, int64_t t);
/* True when the masks are recomputed before step t trains. */
bool ldn_prune_is_step(const struct ldn_prune_config *p, int64_t total_steps, int64_t t);

/* The units of cfg's prune section over trunk (its layer geometry). */
void ldn_prune_units_init(struct ldn_prune_units *u, const struct ldn_prune_config *p,
                          const struct ldn_nn *trunk);
/* The overall sparsity target at step t (weights masked over trunk weights, the units'
 * targets weighted by their sizes): the figure of the progress line and metrics. */
double ldn_prune_target_at(const struct ldn_prune_units *u, const struct ldn_prune_config *p,
                           int64_t total_steps, int64_t t);

/* Start the search of step t's thresholds. */
void ldn_prune_select_start(struct ldn_prune_select *s, const struct ldn_prune_units *u,
                            const struct ldn_prune_config *p, int64_t total_steps, int64_t t);
/* Pass `level`'s histogram of the weights among trunk keys [lo, hi) (base[0] is key lo, whole
 * rows or not) whose higher bits match prefix[unit]: hist[unit * LDN_PRUNE_BINS + bin] += count.
 * hist must hold units * LDN_PRUNE_BINS counts (zeroed by the caller). */
void ldn_prune_hist(const struct ldn_nn *trunk, const struct ldn_prune_units *u, int level,
                    const uint64_t *prefix, const float *base, int64_t lo, int64_t hi,
                    uint64_t *hist);
/* Take one pass's summed histogram: extend each prefix by the bin where the want-th weight
 * lies. Returns false when the counts cannot be right (fewer weights than wanted). */
bool ldn_prune_select_refine(struct ldn_prune_select *s, const uint64_t *hist);
/* After LDN_PRUNE_LEVELS passes: thr[unit] = 0 (mask nothing) or 1 + the threshold's bits. */
void ldn_prune_thresholds(const struct ldn_prune_select *s, uint64_t *thr);
/* Mask the weights of keys [lo, hi) at or under their unit's threshold: keep[i] = 0 (keep and
 * base indexed from key lo; keep only ever goes from 1 to 0; the caller zeroes the weights).
 * masked_per_layer (may be NULL) receives each layer's masked weights in [lo, hi). */
void ldn_prune_mask(const struct ldn_nn *trunk, const struct ldn_prune_units *u,
                    const uint64_t *thr, const float *base, int64_t lo, int64_t hi, uint8_t *keep,
                    int64_t *masked_per_layer);
/* The whole search and mask over one process's keys [lo, hi) holding every weight (the local
 * trainer), masked weights set to zero; masked_per_layer as above. Returns 0 or LDN_ERR_NOMEM. */
int ldn_prune_local(const struct ldn_nn *trunk, const struct ldn_prune_units *u,
                    const struct ldn_prune_config *p, int64_t total_steps, int64_t t, float *base,
                    int64_t lo, int64_t hi, uint8_t *keep, int64_t *masked_per_layer);

/* Zero grad[i] where keep[i] == 0 (n keys): what a masked key's optimizer sees, so its weight
 * and state stay exactly zero. keep NULL: nothing masked. */
void ldn_prune_zero(const uint8_t *keep, float *v, int64_t n);

/* Checkpoint items of the masks of keys [lo, hi): /prune/trunk/<layer>/weight float32 [out, in]
 * (1 kept, 0 pruned) and /prune/trunk/<layer>/bias (always 1), written from buf[hi - lo], which
 * this fills from keep and which must live until the write. Returns 0 or LDN_ERR_NOMEM. */
int ldn_prune_ckpt_add(struct ldn_ckpt_items *it, const struct ldn_nn *trunk, const uint8_t *keep,
                       float *buf, int64_t lo, int64_t hi);
/* Read the masks of keys [lo, hi) back into keep (buf: [hi - lo] scratch). Returns 1 when the
 * checkpoint has masks, 0 when it has none (keep untouched), or a negative status with err
 * (unreadable, or a value other than 0 and 1). */
int ldn_prune_ckpt_read(const struct ldn_ckpt *ck, const struct ldn_nn *trunk, uint8_t *keep,
                        float *buf, int64_t lo, int64_t hi, char *err, size_t errlen);
/* Masked weights of each layer of the trunk among keys [lo, hi) (keep indexed from lo). */
void ldn_prune_count(const struct ldn_nn *trunk, const uint8_t *keep, int64_t lo, int64_t hi,
                     int64_t *masked_per_layer);
/* "0.900 (0: 0.900, 1: 0.900, ...)": the overall and per-layer shares of masked weights, into
 * buf; returns the overall share. */
double ldn_prune_describe(const struct ldn_prune_units *u, const int64_t *masked_per_layer,
                          char *buf, size_t cap);

#endif
