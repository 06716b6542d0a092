/* Task affinity accumulator: pairwise dot products of group gradients per layer and window. */
#include "affinity.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct win {
    double *dots;    /* [L][G][G] */
    uint64_t *count; /* [G][G] */
    int64_t from, to;
};

struct ldn_affinity {
    int G, L;
    int64_t window;
    struct win cur, last;
    int has_last;
    /* ldn_affinity_add's scratch: the present groups' rows of a block of keys [P][block],
     * their Gram matrix [P][P] and which group each row is */
    float *rows, *gram;
    int *idx;
    int64_t block;
};

/* Up to this many present groups, pairwise dots (syrk's call costs more for so few rows). */
#define FEW 8

/* Keys per block: the scratch rows stay about 256 KiB (in cache), 1024..8192 keys (syrk wants
 * long rows: with many groups the scratch grows, up to 1 MiB for 256). */
static int64_t block_for(int G)
{
    int64_t b = 65536 / G;
    return b < 1024 ? 1024 : b > 8192 ? 8192 : b;
}

static int win_init(struct win *w, size_t GG, size_t L)
{
    w->dots = calloc(GG * L, sizeof *w->dots);
    w->count = calloc(GG, sizeof *w->count);
    w->from = w->to = -1;
    return w->dots && w->count ? 0 : -1;
}

struct ldn_affinity *ldn_affinity_new(int G, int L, int64_t window)
{
    if (G < 1 || L < 1 || window < 1 || G > LDN_AFFINITY_MAX_GROUPS)
        return NULL;
    struct ldn_affinity *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->G = G;
    a->L = L;
    a->window = window;
    const size_t GG = (size_t)G * (size_t)G;
    a->block = block_for(G);
    a->rows = malloc(sizeof *a->rows * (size_t)G * (size_t)a->block);
    a->gram = malloc(sizeof *a->gram * GG);
    a->idx = malloc(sizeof *a->idx * (size_t)G);
    if (win_init(&a->cur, GG, (size_t)L) || win_init(&a->last, GG, (size_t)L) || !a->rows ||
        !a->gram || !a->idx)
        ldn_affinity_destroy(&a);
    return a;
}

void ldn_affinity_destroy(struct ldn_affinity **pa)
{
    if (!pa || !*pa)
        return;
    struct ldn_affinity *a = *pa;
    free(a->cur.dots);
    free(a->cur.count);
    free(a->last.dots);
    free(a->last.count);
    free(a->rows);
    free(a->gram);
    free(a->idx);
    free(a);
    *pa = NULL;
}

void ldn_affinity_add(struct ldn_affinity *a, int layer, const float *const *grads, int64_t n)
{
    if (layer < 0 || layer >= a->L || n <= 0)
        return;
    const int G = a->G;
    int P = 0;
    for (int g = 0; g < G; g++)
        if (grads[g])
            a->idx[P++] = g;
    if (P == 0)
        return;
    double *d = a->cur.dots + (size_t)layer * (size_t)G * (size_t)G;
    /* block by block (in cache): for a few groups their pairwise dots, else the present rows
     * copied side by side and their Gram matrix by BLAS (float sums over at most a block's
     * keys); added up in double */
    for (int64_t o = 0; o < n; o += a->block) {
        const int len = (int)(n - o < a->block ? n - o : a->block);
        if (P <= FEW) { /* a few groups: pairwise dots of the block, in cache after the first */
            for (int p = 0; p < P; p++)
                for (int q = p; q < P; q++) {
                    const size_t i = (size_t)a->idx[p], j = (size_t)a->idx[q];
                    const double v = cblas_dsdot(len, grads[i] + o, 1, grads[j] + o, 1);
                    d[i * (size_t)G + j] += v;
                    if (i != j)
                        d[j * (size_t)G + i] += v;
                }
            continue;
        }
        for (int p = 0; p < P; p++)
            memcpy(a->rows + (size_t)p * (size_t)len, grads[a->idx[p]] + o,
                   sizeof(float) * (size_t)len);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, P, len, 1.0f, a->rows, len, 0.0f,
                    a->gram, P);
        for (int p = 0; p < P; p++)
            for (int q = p; q < P; q++) {
                const double v = a->gram[(size_t)p * (size_t)P + (size_t)q];
                const size_t i = (size_t)a->idx[p], j = (size_t)a->idx[q];
                d[i * (size_t)G + j] += v;
                if (i != j)
                    d[j * (size_t)G + i] += v;
            }
    }
}

void ldn_affinity_step(struct ldn_affinity *a, int64_t step, const char *present)
{
    const int G = a->G;
    struct win *w = &a->cur;
    if (w->from < 0)
        w->from = step;
    w->to = step + 1;
    for (int i = 0; i < G; i++)
        for (int j = 0; present[i] && j < G; j++)
            if (present[j])
                w->count[(size_t)i * (size_t)G + (size_t)j]++;
    if ((step + 1) % a->window != 0)
        return;
    struct win t = a->last; /* close the window: it becomes the reported one */
    a->last = a->cur;
    a->cur = t;
    memset(a->cur.dots, 0, sizeof *a->cur.dots * (size_t)G * (size_t)G * (size_t)a->L);
    memset(a->cur.count, 0, sizeof *a->cur.count * (size_t)G * (size_t)G);
    a->cur.from = a->cur.to = -1;
    a->has_last = 1;
}

void ldn_affinity_report(const struct ldn_affinity *a, const double **dots, const uint64_t **counts,
                         int64_t *from, int64_t *to)
{
    const struct win *w = a->has_last ? &a->last : &a->cur;
    *dots = w->dots;
    *counts = w->count;
    *from = w->from < 0 ? 0 : w->from;
    *to = w->to < 0 ? *from : w->to;
}

void ldn_affinity_cosine(const double *dot, int G, double *out)
{
    for (int i = 0; i < G; i++)
        for (int j = 0; j < G; j++) {
            double ni = dot[(size_t)i * (size_t)G + (size_t)i];
            double nj = dot[(size_t)j * (size_t)G + (size_t)j];
            out[(size_t)i * (size_t)G + (size_t)j] =
                ni > 0 && nj > 0 ? dot[(size_t)i * (size_t)G + (size_t)j] / sqrt(ni * nj) : NAN;
        }
}

void ldn_affinity_total(const double *dots, int G, int L, double *sum)
{
    const size_t GG = (size_t)G * (size_t)G;
    memcpy(sum, dots, sizeof *sum * GG * (size_t)L);
    double *t = sum + GG * (size_t)L;
    memset(t, 0, sizeof *t * GG);
    for (int l = 0; l < L; l++)
        for (size_t i = 0; i < GG; i++)
            t[i] += dots[(size_t)l * GG + i];
}
