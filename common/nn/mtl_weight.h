/* Multi-task loss weighting and gradient combination: pure functions, no state, no I/O.
 *
 * - DWA (Liu et al. 2019, dynamic weight average): w_t = K * softmax_t(r_t / T) with
 *   r_t = L_t(e-1) / L_t(e-2), the ratio of each task's mean training loss over the last two
 *   epochs.
 * - Uncertainty weighting (Kendall et al. 2018) with a learned log-variance s_t per task, in the
 *   form ladon uses for classification: L_t * exp(-s_t) + s_t (docs/config.md
 *   "train.task_weighting"; it is twice the L/(2 e^s) + s/2 form, with the same minimum
 *   s* = log L and a task weight of exactly 1 at s = 0).
 * - PCGrad (Yu et al. 2020) on one layer's G task gradients: each task's gradient is projected
 *   off the gradients it conflicts with (negative dot product), in a random order, then the
 *   projected gradients are summed.
 * Used by the local trainer, the coordinator (DWA) and the workers (uncertainty); the PCGrad
 * projection is shared with a server-side version. */
#ifndef LDN_MTL_WEIGHT_H
#define LDN_MTL_WEIGHT_H

#include <stdint.h>

#include "rng.h"

/* The random stream of PCGrad's projection orders: + step in the local trainer, + step *
 * chunks + chunk on the servers. */
#define LDN_STREAM_PCGRAD 0x5043000000000000ull

/* DWA weights of K tasks from their mean losses of the last epoch (l1) and the one before
 * (l2), temperature T > 0, into w[0..K). The ratios are shifted by their maximum before exp,
 * so large ratios cannot overflow. Returns 0, or -1 (w set to 1) when a loss is not finite
 * and positive or T is not > 0. */
int ldn_mtl_dwa(const double *l1, const double *l2, int K, double T, double *w);

/* Uncertainty weighting of one task: for the batch mean loss L and log-variance s, returns the
 * weighted loss L * exp(-s) + s; *w_loss receives its derivative in L, exp(-s) (the factor the
 * task's loss gradient is scaled by), and *g_s its derivative in s, 1 - L * exp(-s). */
double ldn_mtl_uncertainty(double L, double s, double *w_loss, double *g_s);

/* PCGrad over one layer: g[i][0..n) is task i's gradient (i < G, left unchanged); p[i] receives
 * task i's projected gradient: starting from g[i], for every j != i in an order drawn from rng
 * (one shuffle per i, in perm[0..G) scratch), if p[i] . g[j] < 0 and g[j] != 0 then
 * p[i] -= (p[i] . g[j] / |g[j]|^2) g[j]. Dot products are summed in double; norm2[0..G) is
 * scratch. Returns the number of projections made. p[i] must not alias any g[j]. */
int ldn_mtl_pcgrad(const float *const *g, float *const *p, int G, int64_t n, struct ldn_rng *rng,
                   int *perm, double *norm2);

/* out[0..n) = sum over i < G of p[i][0..n), added in task order. */
void ldn_mtl_sum(const float *const *p, int G, int64_t n, float *out);

/* Dot product of a and b (n values), summed in double. */
double ldn_mtl_dot(const float *a, const float *b, int64_t n);

#endif
