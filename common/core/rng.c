/* xoshiro256** with splitmix64 seeding (algorithms by Blackman and Vigna). */
#include "rng.h"

#include <math.h>

__extension__ typedef unsigned __int128 u128;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void ldn_rng_init(struct ldn_rng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    splitmix64(&x);
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ldn_rng_u64(struct ldn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void ldn_rng_fill_u32(struct ldn_rng *r, uint32_t *out, int64_t n)
{
    int64_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t v = ldn_rng_u64(r);
        out[i] = (uint32_t)v;
        out[i + 1] = (uint32_t)(v >> 32);
    }
    if (i < n)
        out[i] = (uint32_t)ldn_rng_u64(r);
}

double ldn_rng_uniform(struct ldn_rng *r)
{
    return (double)(ldn_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t ldn_rng_below(struct ldn_rng *r, uint64_t n)
{
    /* Lemire's nearly-divisionless method with rejection. */
    u128 m = (u128)ldn_rng_u64(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t t = (0 - n) % n;
        while (low < t) {
            m = (u128)ldn_rng_u64(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double ldn_rng_normal(struct ldn_rng *r)
{
    double u1 = ldn_rng_uniform(r);
    double u2 = ldn_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void ldn_rng_shuffle(struct ldn_rng *r, int64_t *idx, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)ldn_rng_below(r, (uint64_t)i + 1);
        int64_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}
