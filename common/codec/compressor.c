/* The worker's gradient compressor: error feedback, DGC momentum correction, clipping, dense
 * fallback and global top-k around the codec. */
#include "compressor.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

struct ldn_compressor {
    struct ldn_codec_desc desc; /* in force for the next compressions */
    uint32_t max_ratio_ppm;     /* the buffers fit descriptors up to this ratio */
    struct ldn_codec_ctx *codec;
    int64_t trunk_keys;
    float *residual; /* [trunk keys], error feedback; NULL without */
    float *velocity; /* [trunk keys], DGC momentum correction; NULL without */
    float momentum;
    int nesterov;
    int masking;
    int64_t min_elements;
    double clip_norm;
    float *scratch;  /* one chunk: clipped gradient, Nesterov values, dense accumulation */
    uint8_t *packed; /* one encoded chunk */
    size_t packed_cap;
    /* compress.scope = global: the step's values gather here until the whole trunk is in */
    int64_t gkeys;           /* keys of the open step accumulated so far */
    int64_t gsel, gnext;     /* the step's selection: how many, and the next one to take */
    float *gacc;             /* [trunk keys] without error feedback (else the residual) */
    uint32_t *gidx, *glocal; /* [k] selected keys, global and chunk-relative */
    float *gvals, *gdeq;     /* [k] their values, and what the receiver will decode */
};

struct ldn_compressor *ldn_compressor_new(const struct ldn_codec_desc *d, uint64_t rng_seed,
                                          int64_t trunk_keys, int64_t max_chunk,
                                          const struct ldn_compressor_opts *o, char *err,
                                          size_t errlen)
{
    if (ldn_codec_desc_check(d, err, errlen))
        return NULL;
    struct ldn_compressor *c = calloc(1, sizeof *c);
    if (!c)
        goto nomem;
    c->desc = *d;
    c->max_ratio_ppm = d->ratio_ppm;
    c->trunk_keys = trunk_keys;
    c->min_elements = o->min_elements;
    c->clip_norm = o->clip_norm;
    c->packed_cap = ldn_codec_max_bytes(d, max_chunk);
    c->packed = malloc(c->packed_cap);
    c->codec = ldn_codec_ctx_new(rng_seed);
    c->scratch = malloc(sizeof(float) * (size_t)(max_chunk > 0 ? max_chunk : 1));
    if (!c->packed || !c->codec || !c->scratch)
        goto nomem;
    if (o->error_feedback && !(c->residual = calloc((size_t)trunk_keys, sizeof(float))))
        goto nomem;
    if (o->momentum_correction) {
        c->momentum = o->momentum;
        c->nesterov = o->nesterov;
        c->masking = o->masking;
        if (!(c->velocity = calloc((size_t)trunk_keys, sizeof(float))))
            goto nomem;
    }
    if (d->kind == LDN_CODEC_SPARSE) { /* compress.scope = global */
        if (!c->residual && !(c->gacc = malloc(sizeof(float) * (size_t)trunk_keys)))
            goto nomem;
        int64_t k = (int64_t)(((uint64_t)trunk_keys * d->ratio_ppm + 999999) / 1000000);
        k = k < 1 ? 1 : k > trunk_keys ? trunk_keys : k;
        c->gidx = malloc(sizeof *c->gidx * (size_t)k);
        c->glocal = malloc(sizeof *c->glocal * (size_t)k);
        c->gvals = malloc(sizeof(float) * (size_t)k);
        c->gdeq = malloc(sizeof(float) * (size_t)k);
        if (!c->gidx || !c->glocal || !c->gvals || !c->gdeq)
            goto nomem;
    }
    return c;
nomem:
    ldn_compressor_destroy(&c);
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "compressor: out of memory for a trunk of %lld keys",
             (long long)trunk_keys);
    return NULL;
}

void ldn_compressor_destroy(struct ldn_compressor **pc)
{
    if (!pc || !*pc)
        return;
    struct ldn_compressor *c = *pc;
    ldn_codec_ctx_destroy(&c->codec);
    free(c->residual);
    free(c->velocity);
    free(c->scratch);
    free(c->packed);
    free(c->gacc);
    free(c->gidx);
    free(c->glocal);
    free(c->gvals);
    free(c->gdeq);
    free(c);
    *pc = NULL;
}

void ldn_compressor_use_desc(struct ldn_compressor *c, const struct ldn_codec_desc *d)
{
    LDN_ASSERT(d->ratio_ppm <= c->max_ratio_ppm);
    c->desc = *d;
}

const struct ldn_codec_desc *ldn_compressor_desc(const struct ldn_compressor *c)
{
    return &c->desc;
}

int ldn_compressor_is_global(const struct ldn_compressor *c)
{
    return c->desc.kind == LDN_CODEC_SPARSE;
}

/* The values keys [lo, hi) contribute to the step: the gradient, clipped (compress.clip_norm),
 * and with momentum correction folded into the velocity u, which is returned instead; with
 * Nesterov momentum, g + momentum * u (DGC's Nesterov momentum correction, the increment
 * dense Nesterov SGD would apply), in the scratch buffer. */
static const float *chunk_values(struct ldn_compressor *c, const float *grad, int64_t lo,
                                 int64_t hi)
{
    const int64_t n = hi - lo;
    const float *g = grad + lo;
    if (c->clip_norm > 0) { /* DGC local gradient clipping, per chunk */
        double ss = 0;
        for (int64_t i = 0; i < n; i++)
            ss += (double)g[i] * g[i];
        double bound = c->clip_norm * sqrt((double)n / (double)c->trunk_keys);
        if (ss > bound * bound) {
            float f = (float)(bound / sqrt(ss));
            for (int64_t i = 0; i < n; i++)
                c->scratch[i] = g[i] * f;
            g = c->scratch;
        }
    }
    if (c->velocity) { /* DGC momentum correction: compress the velocity */
        float *u = c->velocity + lo;
        for (int64_t i = 0; i < n; i++)
            u[i] = c->momentum * u[i] + g[i];
        if (!c->nesterov)
            return u;
        for (int64_t i = 0; i < n; i++) /* g may be the scratch itself: element for element */
            c->scratch[i] = g[i] + c->momentum * u[i];
        g = c->scratch;
    }
    return g;
}

int ldn_compressor_compress(struct ldn_compressor *c, uint64_t step, const float *grad, int64_t lo,
                            int64_t hi, struct ldn_compressed *out, char *err, size_t errlen)
{
    const int64_t n = hi - lo;
    LDN_ASSERT(lo >= 0 && lo <= hi && hi <= c->trunk_keys);
    const float *g = chunk_values(c, grad, lo, hi);
    if (n < c->min_elements) { /* small: dense, with everything kept folded in */
        float *acc = c->scratch, *r = c->residual ? c->residual + lo : NULL;
        for (int64_t i = 0; i < n; i++) {
            acc[i] = g[i] + (r ? r[i] : 0.0f);
            if (r)
                r[i] = 0.0f;
        }
        if (c->velocity && c->masking) /* all sent: momentum factor masking clears it all */
            memset(c->velocity + lo, 0, sizeof(float) * (size_t)n);
        *out = (struct ldn_compressed){.dense = 1, .vals = acc, .nsel = n};
        return LDN_OK;
    }
    const uint32_t *sel;
    int64_t nsel;
    size_t len = 0;
    int rc = ldn_codec_compress(c->codec, &c->desc, step, g, c->residual ? c->residual + lo : NULL,
                                n, c->packed, c->packed_cap, &len, &sel, &nsel, err, errlen);
    if (rc)
        return rc;
    /* Momentum factor masking where elements were picked (a dense codec keeps the velocity). */
    if (c->velocity && c->masking && c->desc.kind != LDN_CODEC_DENSE) {
        float *u = c->velocity + lo;
        for (int64_t i = 0; i < nsel; i++)
            u[sel[i]] = 0.0f;
    }
    *out = (struct ldn_compressed){.payload = c->packed, .len = len, .sel = sel, .nsel = nsel};
    return LDN_OK;
}

int ldn_compressor_global_add(struct ldn_compressor *c, const float *grad, int64_t lo, int64_t hi,
                              char *err, size_t errlen)
{
    LDN_ASSERT(ldn_compressor_is_global(c) && lo >= 0 && lo <= hi && hi <= c->trunk_keys);
    float *acc = c->residual ? c->residual : c->gacc;
    const float *g = chunk_values(c, grad, lo, hi);
    float *a = acc + lo;
    if (c->residual)
        for (int64_t i = 0; i < hi - lo; i++)
            a[i] += g[i];
    else
        memcpy(a, g, sizeof(float) * (size_t)(hi - lo));
    c->gkeys += hi - lo;
    if (c->gkeys < c->trunk_keys)
        return 0; /* the rest of the step's gradient is still being computed */
    c->gkeys = 0;
    const int64_t n = c->trunk_keys;
    int64_t k = (int64_t)(((uint64_t)n * c->desc.ratio_ppm + 999999) / 1000000);
    k = k < 1 ? 1 : k > n ? n : k;
    int64_t m = ldn_codec_topk(c->codec, acc, n, k, c->gidx);
    m = m < 0 ? m : ldn_codec_drop_zeros(acc, c->gidx, m);
    if (m < 0)
        return ldn_fail(err, errlen, (int)m, "compressor: global top-k of %lld keys failed",
                        (long long)n);
    c->gsel = m;
    c->gnext = 0;
    return 1;
}

int ldn_compressor_global_take(struct ldn_compressor *c, int64_t lo, int64_t hi,
                               struct ldn_compressed *out, char *err, size_t errlen)
{
    const float *acc = c->residual ? c->residual : c->gacc;
    const int64_t j0 = c->gnext, m = c->gsel;
    LDN_ASSERT(j0 == m || (int64_t)c->gidx[j0] >= lo);
    int64_t j = j0;
    while (j < m && (int64_t)c->gidx[j] < hi) {
        c->glocal[j - j0] = c->gidx[j] - (uint32_t)lo;
        c->gvals[j - j0] = acc[c->gidx[j]];
        j++;
    }
    size_t len = 0;
    int rc = ldn_codec_encode(&c->desc, hi - lo, c->glocal, j - j0, c->gvals,
                              ldn_codec_ctx_rng(c->codec), c->packed, c->packed_cap, &len, c->gdeq,
                              err, errlen);
    if (rc)
        return rc;
    for (int64_t q = j0; q < j; q++) {
        uint32_t i = c->gidx[q];
        if (c->residual) /* error feedback keeps what rounding lost */
            c->residual[i] -= c->gdeq[q - j0];
        if (c->velocity && c->masking) /* momentum factor masking */
            c->velocity[i] = 0.0f;
    }
    c->gnext = j;
    *out =
        (struct ldn_compressed){.payload = c->packed, .len = len, .sel = c->glocal, .nsel = j - j0};
    return LDN_OK;
}

float *ldn_compressor_residual(struct ldn_compressor *c)
{
    return c->residual;
}

float *ldn_compressor_velocity(struct ldn_compressor *c)
{
    return c->velocity;
}

struct ldn_rng *ldn_compressor_rng(struct ldn_compressor *c)
{
    return ldn_codec_ctx_rng(c->codec);
}

double ldn_compressor_residual_norm(const struct ldn_compressor *c)
{
    const float *r = c->residual;
    if (!r)
        return 0.0;
    double s = 0.0;
    for (int64_t i = 0; i < c->trunk_keys; i++)
        s += (double)r[i] * r[i];
    return sqrt(s);
}
