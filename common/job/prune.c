/* Gradual magnitude pruning: schedule, exact thresholds from histograms, masks. */
#include "prune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "wire.h"

_Static_assert(LDN_PRUNE_LEVELS == LDN_WIRE_PRUNE_LEVELS && LDN_PRUNE_BINS == LDN_WIRE_PRUNE_BINS,
               "the prune messages carry this module's passes");

static const int SHIFT[LDN_PRUNE_LEVELS] = {23, 15, 7, 0};
static const int WIDTH[LDN_PRUNE_LEVELS] = {8, 8, 8, 7};

bool ldn_prune_on(const struct ldn_prune_config *p)
{
    if (p->n_layers == 0)
        return p->sparsity > 0;
    for (int i = 0; i < p->n_layers; i++)
        if (p->layers[i] > 0)
            return true;
    return false;
}

int64_t ldn_prune_end(const struct ldn_prune_config *p, int64_t total_steps)
{
    int64_t end = p->end > 0 ? p->end : total_steps * 3 / 4;
    if (end > total_steps - 1)
        end = total_steps - 1;
    return end < p->start ? p->start : end;
}

double ldn_prune_sparsity_at(double s_i, double s_f, int64_t start, int64_t end, int64_t t)
{
    if (t < start)
        return s_i;
    if (t >= end)
        return s_f;
    double x = 1.0 - (double)(t - start) / (double)(end - start);
    return s_f + (s_i - s_f) * x * x * x;
}

bool ldn_prune_is_step(const struct ldn_prune_config *p, int64_t total_steps, int64_t t)
{
    if (!ldn_prune_on(p) || t < p->start || t >= total_steps)
        return false;
    int64_t end = ldn_prune_end(p, total_steps);
    return t == end || (t < end && (t - p->start) % p->every == 0);
}

void ldn_prune_units_init(struct ldn_prune_units *u, const struct ldn_prune_config *p,
                          const struct ldn_nn *trunk)
{
    memset(u, 0, sizeof *u);
    u->n_layers = trunk->n_layers;
    u->n = p->scope == LDN_PRUNE_GLOBAL ? 1 : trunk->n_layers;
    for (int l = 0; l < trunk->n_layers; l++) {
        const struct ldn_layer *L = &trunk->layers[l];
        int k = p->scope == LDN_PRUNE_GLOBAL ? 0 : l;
        u->unit_of_layer[l] = k;
        u->layer_weights[l] = (int64_t)L->in_dim * L->out_dim;
        u->weights[k] += u->layer_weights[l];
        u->target[k] = p->n_layers > 0 && l < p->n_layers ? p->layers[l] : p->sparsity;
    }
}

double ldn_prune_target_at(const struct ldn_prune_units *u, const struct ldn_prune_config *p,
                           int64_t total_steps, int64_t t)
{
    const int64_t end = ldn_prune_end(p, total_steps);
    double masked = 0, all = 0;
    for (int k = 0; k < u->n; k++) {
        double s = u->target[k] > 0
                       ? ldn_prune_sparsity_at(p->initial, u->target[k], p->start, end, t)
                       : 0;
        masked += s * (double)u->weights[k];
        all += (double)u->weights[k];
    }
    return all > 0 ? masked / all : 0;
}

void ldn_prune_select_start(struct ldn_prune_select *s, const struct ldn_prune_units *u,
                            const struct ldn_prune_config *p, int64_t total_steps, int64_t t)
{
    memset(s, 0, sizeof *s);
    s->n = u->n;
    const int64_t end = ldn_prune_end(p, total_steps);
    for (int k = 0; k < u->n; k++) {
        double sp = u->target[k] > 0
                        ? ldn_prune_sparsity_at(p->initial, u->target[k], p->start, end, t)
                        : 0;
        s->want[k] = llround(sp * (double)u->weights[k]);
    }
}

static inline uint32_t mag_bits(float w)
{
    uint32_t b;
    memcpy(&b, &w, sizeof b);
    return b & 0x7fffffffu;
}

/* Call fn for every weight key of [lo, hi): its layer and its offset from lo. */
#define FOR_WEIGHTS(trunk, lo, hi, l, i)                                                           \
    for (int l = 0; l < (trunk)->n_layers; l++)                                                    \
        for (int64_t i = ((trunk)->layers[l].offset > (lo) ? (trunk)->layers[l].offset : (lo)),    \
                     i##_end = ((trunk)->layers[l].offset + (trunk)->layers[l].n_params < (hi)     \
                                    ? (trunk)->layers[l].offset + (trunk)->layers[l].n_params      \
                                    : (hi));                                                       \
             i < i##_end; i++)                                                                     \
            if ((i - (trunk)->layers[l].offset) % (trunk)->layers[l].row_len <                     \
                (trunk)->layers[l].in_dim)

void ldn_prune_hist(const struct ldn_nn *trunk, const struct ldn_prune_units *u, int level,
                    const uint64_t *prefix, const float *base, int64_t lo, int64_t hi,
                    uint64_t *hist)
{
    const int sh = SHIFT[level], top = SHIFT[level] + WIDTH[level];
    const uint32_t bins = (1u << WIDTH[level]) - 1;
    FOR_WEIGHTS(trunk, lo, hi, l, i)
    {
        const int k = u->unit_of_layer[l];
        const uint32_t b = mag_bits(base[i - lo]);
        if (top < 31 && (b >> top) != (uint32_t)(prefix[k] >> top))
            continue;
        hist[(size_t)k * LDN_PRUNE_BINS + ((b >> sh) & bins)]++;
    }
}

bool ldn_prune_select_refine(struct ldn_prune_select *s, const uint64_t *hist)
{
    LDN_ASSERT(s->level < LDN_PRUNE_LEVELS);
    bool ok = true;
    for (int k = 0; k < s->n; k++) {
        if (s->want[k] == 0)
            continue;
        const uint64_t *h = hist + (size_t)k * LDN_PRUNE_BINS;
        const int64_t need = s->want[k] - s->below[k];
        int64_t cum = 0;
        int b = 0;
        for (; b < (1 << WIDTH[s->level]); b++) {
            if (cum + (int64_t)h[b] >= need)
                break;
            cum += (int64_t)h[b];
        }
        if (b == 1 << WIDTH[s->level]) { /* fewer weights than wanted: damaged counts */
            ok = false;
            b--;
        }
        s->prefix[k] |= (uint64_t)b << SHIFT[s->level];
        s->below[k] += cum;
    }
    s->level++;
    return ok;
}

void ldn_prune_thresholds(const struct ldn_prune_select *s, uint64_t *thr)
{
    for (int k = 0; k < s->n; k++)
        thr[k] = s->want[k] > 0 ? s->prefix[k] + 1 : 0;
}

void ldn_prune_mask(const struct ldn_nn *trunk, const struct ldn_prune_units *u,
                    const uint64_t *thr, const float *base, int64_t lo, int64_t hi, uint8_t *keep,
                    int64_t *masked_per_layer)
{
    if (masked_per_layer)
        memset(masked_per_layer, 0, sizeof(int64_t) * (size_t)trunk->n_layers);
    FOR_WEIGHTS(trunk, lo, hi, l, i)
    {
        const uint64_t t = thr[u->unit_of_layer[l]];
        if (t > 0 && mag_bits(base[i - lo]) <= t - 1)
            keep[i - lo] = 0;
        if (!keep[i - lo] && masked_per_layer)
            masked_per_layer[l]++;
    }
}

int ldn_prune_local(const struct ldn_nn *trunk, const struct ldn_prune_units *u,
                    const struct ldn_prune_config *p, int64_t total_steps, int64_t t, float *base,
                    int64_t lo, int64_t hi, uint8_t *keep, int64_t *masked_per_layer)
{
    struct ldn_prune_select s;
    uint64_t thr[LDN_MAX_LAYERS];
    uint64_t *hist = malloc(sizeof(uint64_t) * LDN_PRUNE_BINS * (size_t)u->n);
    if (!hist)
        return LDN_ERR_NOMEM;
    ldn_prune_select_start(&s, u, p, total_steps, t);
    for (int level = 0; level < LDN_PRUNE_LEVELS; level++) {
        memset(hist, 0, sizeof(uint64_t) * LDN_PRUNE_BINS * (size_t)u->n);
        ldn_prune_hist(trunk, u, level, s.prefix, base, lo, hi, hist);
        ldn_prune_select_refine(&s, hist);
    }
    free(hist);
    ldn_prune_thresholds(&s, thr);
    ldn_prune_mask(trunk, u, thr, base, lo, hi, keep, masked_per_layer);
    ldn_prune_zero(keep, base, hi - lo);
    return LDN_OK;
}

void ldn_prune_zero(const uint8_t *keep, float *v, int64_t n)
{
    if (keep)
        for (int64_t i = 0; i < n; i++)
            if (!keep[i])
                v[i] = 0.0f;
}

#define MASK_PREFIX "/prune/trunk"

int ldn_prune_ckpt_add(struct ldn_ckpt_items *it, const struct ldn_nn *trunk, const uint8_t *keep,
                       float *buf, int64_t lo, int64_t hi)
{
    for (int64_t i = 0; i < hi - lo; i++)
        buf[i] = keep[i] ? 1.0f : 0.0f;
    return ldn_ckpt_add_net(it, trunk, MASK_PREFIX, buf, lo, hi);
}

int ldn_prune_ckpt_read(const struct ldn_ckpt *ck, const struct ldn_nn *trunk, uint8_t *keep,
                        float *buf, int64_t lo, int64_t hi, char *err, size_t errlen)
{
    if (!ldn_ckpt_has(ck, MASK_PREFIX "/0/weight"))
        return 0;
    int rc = ldn_ckpt_read_net(ck, trunk, MASK_PREFIX, buf, lo, hi, err, errlen);
    if (rc)
        return rc;
    for (int64_t i = 0; i < hi - lo; i++) {
        if (buf[i] != 0.0f && buf[i] != 1.0f)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "%s: " MASK_PREFIX ": key %lld has mask value %g, not 0 or 1", ck->path,
                            (long long)(lo + i), (double)buf[i]);
        keep[i] = buf[i] != 0.0f;
    }
    return 1;
}

void ldn_prune_count(const struct ldn_nn *trunk, const uint8_t *keep, int64_t lo, int64_t hi,
                     int64_t *masked_per_layer)
{
    memset(masked_per_layer, 0, sizeof(int64_t) * (size_t)trunk->n_layers);
    FOR_WEIGHTS(trunk, lo, hi, l, i)
    masked_per_layer[l] += !keep[i - lo];
}

double ldn_prune_describe(const struct ldn_prune_units *u, const int64_t *masked_per_layer,
                          char *buf, size_t cap)
{
    int64_t m = 0, all = 0;
    for (int l = 0; l < u->n_layers; l++) {
        m += masked_per_layer[l];
        all += u->layer_weights[l];
    }
    const double s = all > 0 ? (double)m / (double)all : 0;
    int off = snprintf(buf, cap, "%.4f (", s);
    for (int l = 0; l < u->n_layers && off > 0 && (size_t)off < cap; l++)
        off += snprintf(
            buf + off, cap - (size_t)off, "%s%d: %.4f", l ? ", " : "", l,
            u->layer_weights[l] ? (double)masked_per_layer[l] / (double)u->layer_weights[l] : 0.0);
    if (off > 0 && (size_t)off < cap)
        snprintf(buf + off, cap - (size_t)off, ")");
    return s;
}
