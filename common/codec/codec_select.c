/* Codec selection: exact top-k, DGC sampled threshold, seeded random-k. */
#include <string.h>

#include "codec.h"
#include "codec_priv.h"
#include "status.h"

#define HIST_SHIFT 20 /* 2048 buckets over the 31 magnitude bits: exponent + 3 mantissa bits */
#define HIST_BUCKETS (1u << (31 - HIST_SHIFT))
_Static_assert(HIST_BUCKETS == LDN__CODEC_HIST_BUCKETS, "histogram size");

static inline uint32_t absbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u & 0x7fffffffu;
}

/* Unique sort key: magnitude bits above, the complemented index below, so that of two equal
 * magnitudes the lower index has the larger key. Ordering of the magnitude bits of floats
 * agrees with the ordering of magnitudes (NaN above infinity). */
static inline uint64_t key_of(uint32_t ab, uint32_t i)
{
    return ((uint64_t)ab << 32) | (uint32_t)~i;
}

/* Rearrange a[0..m) so that a[p] is the element of rank p in descending order; return it.
 * Keys are unique. Random pivots: expected linear time. */
static uint64_t select_desc(uint64_t *a, size_t m, size_t p, struct ldn_rng *rng)
{
    size_t lo = 0, hi = m;
    while (hi - lo > 1) {
        size_t pi = lo + (size_t)ldn_rng_below(rng, hi - lo);
        uint64_t piv = a[pi];
        a[pi] = a[hi - 1];
        a[hi - 1] = piv;
        size_t s = lo;
        for (size_t i = lo; i < hi - 1; i++) {
            if (a[i] > piv) {
                uint64_t t = a[i];
                a[i] = a[s];
                a[s] = t;
                s++;
            }
        }
        a[hi - 1] = a[s];
        a[s] = piv;
        if (p == s)
            return piv;
        if (p < s)
            hi = s;
        else
            lo = s + 1;
    }
    return a[lo];
}

/* The histogram bucket that holds the k-th largest (k >= 1, counted from the top bucket), its
 * rank r (1-based) inside the bucket and the bucket's count inb. */
static uint32_t kth_bucket(const uint32_t *hist, size_t k, size_t *r, size_t *inb)
{
    size_t above = 0;
    uint32_t b = HIST_BUCKETS - 1;
    while (above + hist[b] < k)
        above += hist[b--];
    *r = k - above;
    *inb = hist[b];
    return b;
}

/* Exact top-k over the elements sub[0..m) of v (sub NULL: 0..m), written ascending to out. */
static int64_t topk_sub(struct ldn_codec_ctx *ctx, const float *v, const uint32_t *sub, size_t m,
                        size_t k, uint32_t *out)
{
    if (k >= m) {
        for (size_t j = 0; j < m; j++)
            out[j] = sub ? sub[j] : (uint32_t)j;
        return (int64_t)m;
    }
    if (k == 0)
        return 0;
    uint32_t *hist = ldn__codec_hist(ctx);
    memset(hist, 0, HIST_BUCKETS * sizeof *hist);
    if (sub) {
        for (size_t j = 0; j < m; j++)
            hist[absbits(v[sub[j]]) >> HIST_SHIFT]++;
    } else {
        for (size_t j = 0; j < m; j++)
            hist[absbits(v[j]) >> HIST_SHIFT]++;
    }
    size_t r, inb;
    const uint32_t b = kth_bucket(hist, k, &r, &inb);
    uint64_t thr = 0; /* composite key threshold inside bucket b; 0 takes the whole bucket */
    if (r < inb) {
        uint64_t *keys = ldn__codec_scratch(ctx, LDN__CODEC_KEYS, inb * sizeof *keys);
        if (!keys)
            return LDN_ERR_NOMEM;
        size_t c = 0;
        for (size_t j = 0; j < m; j++) {
            uint32_t i = sub ? sub[j] : (uint32_t)j, ab = absbits(v[i]);
            if ((ab >> HIST_SHIFT) == b)
                keys[c++] = key_of(ab, i);
        }
        thr = select_desc(keys, inb, r - 1, ldn__codec_pivot_rng(ctx));
    }
    size_t c = 0;
    for (size_t j = 0; j < m; j++) {
        uint32_t i = sub ? sub[j] : (uint32_t)j, ab = absbits(v[i]), bk = ab >> HIST_SHIFT;
        if (bk > b || (bk == b && key_of(ab, i) >= thr))
            out[c++] = i;
    }
    LDN_ASSERT(c == k);
    return (int64_t)k;
}

/* Exact top-k of the unique keys[0..m) (key_of: magnitude bits above, complemented index
 * below, in ascending index order), indices written ascending to out. The keys carry their
 * magnitudes, so nothing is read from the vector again. */
static int64_t topk_keys(struct ldn_codec_ctx *ctx, const uint64_t *keys, size_t m, size_t k,
                         uint32_t *out)
{
    if (k >= m) {
        for (size_t j = 0; j < m; j++)
            out[j] = ~(uint32_t)keys[j];
        return (int64_t)m;
    }
    if (k == 0)
        return 0;
    const int shift = 32 + HIST_SHIFT;
    uint32_t *hist = ldn__codec_hist(ctx);
    memset(hist, 0, HIST_BUCKETS * sizeof *hist);
    for (size_t j = 0; j < m; j++)
        hist[keys[j] >> shift]++;
    size_t r, inb;
    const uint32_t b = kth_bucket(hist, k, &r, &inb);
    uint64_t thr = (uint64_t)b << shift; /* the whole bucket */
    if (r < inb) {
        uint64_t *in = ldn__codec_scratch(ctx, LDN__CODEC_KEYS, inb * sizeof *in);
        if (!in)
            return LDN_ERR_NOMEM;
        size_t c = 0;
        for (size_t j = 0; j < m; j++)
            if ((keys[j] >> shift) == b)
                in[c++] = keys[j];
        thr = select_desc(in, inb, r - 1, ldn__codec_pivot_rng(ctx));
    }
    size_t c = 0; /* out holds exactly k: no branch-free write past the last one */
    for (size_t j = 0; j < m; j++)
        if (keys[j] >= thr)
            out[c++] = ~(uint32_t)keys[j];
    LDN_ASSERT(c == k);
    return (int64_t)k;
}

static int check_nk(int64_t n, int64_t k)
{
    return n < 0 || n > LDN_CODEC_MAX_N || k < 0 ? LDN_ERR_ARG : 0;
}

/* Elements sampled for a threshold over n. */
static size_t sample_size(size_t n)
{
    size_t ms = n / LDN_CODEC_SAMPLE_DIV;
    return ms < LDN_CODEC_SAMPLE_MIN ? LDN_CODEC_SAMPLE_MIN : ms;
}

/* The rank-kp (1-based, descending) magnitude bits of a stratified sample of ms elements of
 * v[0..n) (one uniform draw in each of ms equal strata), into *thr. The draws ascend, so the
 * reads stream through v instead of missing the cache one by one; ms <= n. Returns 0 or
 * LDN_ERR_NOMEM. */
static int sample_threshold(struct ldn_codec_ctx *ctx, const float *v, size_t n, size_t ms,
                            size_t kp, uint32_t *thr)
{
    uint64_t *keys = ldn__codec_scratch(ctx, LDN__CODEC_KEYS, ms * sizeof *keys);
    if (!keys)
        return LDN_ERR_NOMEM;
    struct ldn_rng *rng = ldn__codec_rng(ctx);
    for (size_t j = 0; j < ms; j++) {
        size_t lo = j * n / ms, hi = (j + 1) * n / ms; /* hi > lo since ms <= n */
        keys[j] = key_of(absbits(v[lo + ldn_rng_below(rng, hi - lo)]), (uint32_t)j);
    }
    *thr = (uint32_t)(select_desc(keys, ms, kp - 1, ldn__codec_pivot_rng(ctx)) >> 32);
    return 0;
}

int64_t ldn_codec_topk(struct ldn_codec_ctx *ctx, const float *v, int64_t n, int64_t k,
                       uint32_t *idx)
{
    if (check_nk(n, k))
        return LDN_ERR_ARG;
    size_t un = (size_t)n, uk = (size_t)(k < n ? k : n), ms = sample_size(un);
    if (uk == 0 || 2 * ms >= un || uk > un / 8)
        return topk_sub(ctx, v, NULL, un, uk, idx);
    /* One pass instead of a histogram over everything: a sample gives a threshold that about
     * 1.5k elements pass; if at least k (and at most the buffer) do, the exact top-k of those
     * candidates is the exact top-k of v (every other element is below them all); otherwise
     * the histogram method over everything. */
    /* The scan writes every index and advances only past the ones that pass (no branch to
     * mispredict), a block at a time, so the buffer needs a block of room beyond cap. */
    const size_t cap = 4 * uk + 64, block = 1024;
    uint32_t *cand = ldn__codec_scratch(ctx, LDN__CODEC_CAND, (cap + block) * sizeof *cand);
    if (!cand)
        return LDN_ERR_NOMEM;
    size_t kp = (3 * uk * ms + un) / (2 * un) + 1;
    uint32_t thr;
    if (sample_threshold(ctx, v, un, ms, kp > ms ? ms : kp, &thr))
        return LDN_ERR_NOMEM;
    size_t c = 0;
    for (size_t b = 0; b < un; b += block) {
        const size_t e = b + block < un ? b + block : un;
        for (size_t i = b; i < e; i++) {
            cand[c] = (uint32_t)i;
            c += absbits(v[i]) >= thr;
        }
        if (c > cap) {
            c = 0; /* far too many: give up on the sample */
            break;
        }
    }
    if (c < uk)
        return topk_sub(ctx, v, NULL, un, uk, idx);
    /* One gather from v makes the candidates' keys; the exact selection among them then
     * never goes back to v (a cache miss per candidate and pass on large vectors). */
    uint64_t *keys = ldn__codec_scratch(ctx, LDN__CODEC_CKEYS, c * sizeof *keys);
    if (!keys)
        return LDN_ERR_NOMEM;
    for (size_t j = 0; j < c; j++)
        keys[j] = key_of(absbits(v[cand[j]]), cand[j]);
    return topk_keys(ctx, keys, c, uk, idx);
}

int64_t ldn_codec_drop_zeros(const float *v, uint32_t *idx, int64_t m)
{
    int64_t c = 0;
    for (int64_t j = 0; j < m; j++) {
        idx[c] = idx[j];
        c += v[idx[j]] != 0.0f;
    }
    return c;
}

int64_t ldn_codec_threshold(struct ldn_codec_ctx *ctx, const float *v, int64_t n, int64_t k,
                            uint32_t *idx)
{
    if (check_nk(n, k))
        return LDN_ERR_ARG;
    size_t un = (size_t)n, uk = (size_t)(k < n ? k : n), ms = sample_size(un);
    if (uk == 0 || 2 * ms >= un)
        return topk_sub(ctx, v, NULL, un, uk, idx);
    /* Threshold: the top-k' magnitude of a sample of ms elements (with replacement). */
    size_t kp = (uk * ms + un / 2) / un;
    uint32_t thr;
    if (sample_threshold(ctx, v, un, ms, kp < 1 ? 1 : kp, &thr))
        return LDN_ERR_NOMEM;

    size_t c = 0;
    for (size_t i = 0; i < un; i++)
        c += absbits(v[i]) >= thr;
    size_t lo = (7 * uk + 9) / 10, hi = 13 * uk / 10;
    if (c >= lo && c <= hi) {
        size_t j = 0;
        for (size_t i = 0; i < un; i++)
            if (absbits(v[i]) >= thr)
                idx[j++] = (uint32_t)i;
        return (int64_t)c;
    }
    if (c < lo) /* threshold too high: exact answer over everything */
        return topk_sub(ctx, v, NULL, un, uk, idx);
    /* Too many: exact top-k among the candidates. */
    uint32_t *cand = ldn__codec_scratch(ctx, LDN__CODEC_CAND, c * sizeof *cand);
    if (!cand)
        return LDN_ERR_NOMEM;
    size_t j = 0;
    for (size_t i = 0; i < un; i++)
        if (absbits(v[i]) >= thr)
            cand[j++] = (uint32_t)i;
    return topk_sub(ctx, v, cand, c, uk, idx);
}

int64_t ldn_codec_randomk(struct ldn_codec_ctx *ctx, uint64_t seed, uint64_t step, int64_t n,
                          int64_t k, uint32_t *idx)
{
    if (check_nk(n, k))
        return LDN_ERR_ARG;
    uint64_t un = (uint64_t)n, uk = (uint64_t)(k < n ? k : n);
    if (uk == 0)
        return 0;
    size_t words = (size_t)((un + 63) / 64);
    uint64_t *bits = ldn__codec_scratch(ctx, LDN__CODEC_BITS, words * sizeof *bits);
    if (!bits)
        return LDN_ERR_NOMEM;
    memset(bits, 0, words * sizeof *bits);
    /* Floyd's algorithm: k draws, a uniform k-subset; the bitmap gives ascending order. */
    struct ldn_rng r;
    ldn_rng_init(&r, seed, step);
    for (uint64_t j = un - uk; j < un; j++) {
        uint64_t t = ldn_rng_below(&r, j + 1);
        if (bits[t >> 6] & (1ull << (t & 63)))
            t = j;
        bits[t >> 6] |= 1ull << (t & 63);
    }
    size_t c = 0;
    for (size_t w = 0; w < words; w++) {
        uint64_t x = bits[w];
        while (x) {
            idx[c++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(x));
            x &= x - 1;
        }
    }
    LDN_ASSERT(c == uk);
    return (int64_t)uk;
}
