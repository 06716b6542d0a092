/* Internal helpers shared by the data builders (data.c, data_fmnist.c, data_synth.c):
 * writing one task file, staging output files for an all-or-nothing commit, the HDF5
 * error-stack helpers and a small private PRNG. Not part of the public API. */
#ifndef LDN_DATA_PRIV_H
#define LDN_DATA_PRIV_H

#include <hdf5.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* One split to write. x is uint8 (x_float == 0) or float32 [n, features]; source_index
 * (may be NULL) is stored as /<split>/source_index int32 [n]. Borrowed for the call. */
struct ldn__split_out {
    int64_t n;
    const void *x;
    int x_float;
    const int32_t *y;
    const int32_t *source_index;
};

/* One task file to write (layout in data.h). Strings are borrowed for the call. */
struct ldn__task_out {
    const char *task;
    const char *description; /* stored as attr "description" */
    const char *classes;     /* comma-separated class names, attr "classes" */
    int num_classes;
    int features;
    double x_scale;
    struct ldn__split_out train, test;
};

/* Write t to a new file at path (truncating it). Returns 0 or a negative ldn_status with a
 * one-line error naming path. The caller handles HDF5's automatic error printing. */
int ldn__data_write_task(const char *path, const struct ldn__task_out *t, char *err, size_t errlen);

/* Output files written under temporary names and renamed into place together. */
struct ldn__stage {
    char *dir;
    int n, cap;
    char **tmp;   /* dir/.name.tmp.<pid> */
    char **final; /* dir/name */
};

/* Create dir (mkdir -p) and initialise s. Returns 0 or a negative status with err. */
int ldn__stage_init(struct ldn__stage *s, const char *dir, char *err, size_t errlen);
/* Register output file `name`; returns the temporary path to write (owned by s) or NULL
 * with err filled. */
const char *ldn__stage_add(struct ldn__stage *s, const char *name, char *err, size_t errlen);
/* Rename every temporary to its final name. If a rename fails, the files already renamed
 * are restored from backups, the temporaries are deleted and a negative status returned. */
int ldn__stage_commit(struct ldn__stage *s, char *err, size_t errlen);
/* Delete any remaining temporaries and free s (safe after commit or a failed init). */
void ldn__stage_deinit(struct ldn__stage *s);

/* Save the current HDF5 automatic error handler and silence it; restore it afterwards. */
struct ldn__h5quiet {
    H5E_auto2_t fn;
    void *data;
};
void ldn__h5_quiet(struct ldn__h5quiet *q);
void ldn__h5_restore(const struct ldn__h5quiet *q);
/* The innermost message on HDF5's default error stack ("" when empty), copied to buf. */
const char *ldn__h5_errmsg(char *buf, size_t len);

/* Private xoshiro256** generator seeded through splitmix64 (not the shared rng module, so
 * that dataset contents never change when that module changes). */
struct ldn__prng {
    uint64_t s[4];
    double spare; /* second Box-Muller value, valid when has_spare */
    int has_spare;
};

static inline uint64_t ldn__splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seed from (seed, stream): different streams give independent sequences. */
static inline void ldn__prng_seed(struct ldn__prng *r, uint64_t seed, uint64_t stream)
{
    uint64_t x = seed ^ (stream * 0xd1b54a32d192ed03ULL);
    x = ldn__splitmix64(&x) ^ stream;
    for (int i = 0; i < 4; i++)
        r->s[i] = ldn__splitmix64(&x);
    r->spare = 0;
    r->has_spare = 0;
}

static inline uint64_t ldn__rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t ldn__prng_next(struct ldn__prng *r)
{
    uint64_t *s = r->s;
    uint64_t out = ldn__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ldn__rotl(s[3], 45);
    return out;
}

/* Uniform integer in [0, n), n >= 1, without modulo bias (rejection sampling). */
static inline uint64_t ldn__prng_below(struct ldn__prng *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = ldn__prng_next(r);
        if (x >= threshold)
            return x % n;
    }
}

/* Uniform double in (0, 1). */
static inline double ldn__prng_unit(struct ldn__prng *r)
{
    return ((double)(ldn__prng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Standard normal (Box-Muller; each pair of uniforms gives two values). */
static inline double ldn__prng_normal(struct ldn__prng *r)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = ldn__prng_unit(r), u2 = ldn__prng_unit(r);
    double rad = sqrt(-2.0 * log(u1)), ang = 6.283185307179586 * u2;
    r->spare = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

#endif
