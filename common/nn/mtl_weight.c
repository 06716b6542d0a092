/* Multi-task loss weighting (DWA, uncertainty) and the PCGrad projection. */
#include "mtl_weight.h"

#include <float.h>
#include <math.h>
#include <string.h>

int ldn_mtl_dwa(const double *l1, const double *l2, int K, double T, double *w)
{
    int ok = T > 0 && isfinite(T);
    for (int t = 0; t < K && ok; t++)
        ok = isfinite(l1[t]) && isfinite(l2[t]) && l1[t] > 0 && l2[t] > 0;
    if (!ok) {
        for (int t = 0; t < K; t++)
            w[t] = 1.0;
        return -1;
    }
    double mx = -INFINITY;
    for (int t = 0; t < K; t++) {
        const double r = l1[t] / l2[t];
        w[t] = (isfinite(r) ? r : DBL_MAX) / T;
        mx = w[t] > mx ? w[t] : mx;
    }
    double sum = 0.0;
    for (int t = 0; t < K; t++) {
        w[t] = exp(w[t] - mx);
        sum += w[t];
    }
    for (int t = 0; t < K; t++)
        w[t] = (double)K * w[t] / sum;
    return 0;
}

double ldn_mtl_uncertainty(double L, double s, double *w_loss, double *g_s)
{
    const double e = exp(-s);
    *w_loss = e;
    *g_s = 1.0 - L * e;
    return L * e + s;
}

double ldn_mtl_dot(const float *a, const float *b, int64_t n)
{
    double s = 0.0;
    for (int64_t k = 0; k < n; k++)
        s += (double)a[k] * (double)b[k];
    return s;
}

int ldn_mtl_pcgrad(const float *const *g, float *const *p, int G, int64_t n, struct ldn_rng *rng,
                   int *perm, double *norm2)
{
    int projections = 0;
    for (int j = 0; j < G; j++)
        norm2[j] = ldn_mtl_dot(g[j], g[j], n);
    for (int i = 0; i < G; i++) {
        memcpy(p[i], g[i], sizeof(float) * (size_t)n);
        int m = 0; /* the other tasks, shuffled (Fisher-Yates) */
        for (int j = 0; j < G; j++)
            if (j != i)
                perm[m++] = j;
        for (int k = m - 1; k > 0; k--) {
            int r = (int)ldn_rng_below(rng, (uint64_t)k + 1);
            int tmp = perm[k];
            perm[k] = perm[r];
            perm[r] = tmp;
        }
        for (int k = 0; k < m; k++) {
            const int j = perm[k];
            if (norm2[j] <= 0)
                continue;
            const double d = ldn_mtl_dot(p[i], g[j], n);
            if (d >= 0)
                continue;
            const double c = d / norm2[j];
            for (int64_t q = 0; q < n; q++)
                p[i][q] = (float)((double)p[i][q] - c * (double)g[j][q]);
            projections++;
        }
    }
    return projections;
}

void ldn_mtl_sum(const float *const *p, int G, int64_t n, float *out)
{
    if (G <= 0) {
        memset(out, 0, sizeof(float) * (size_t)n);
        return;
    }
    memcpy(out, p[0], sizeof(float) * (size_t)n);
    for (int i = 1; i < G; i++)
        for (int64_t q = 0; q < n; q++)
            out[q] += p[i][q];
}
