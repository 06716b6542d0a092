/* Task affinity measured by the servers (docs/architecture.md, "Task affinity"): under bsp,
 * per trunk layer, the pairwise dot products of the task groups' gradients (a group's
 * gradient = the sum of its workers' pushes of the step) accumulated over a window of steps,
 * and how many steps each pair of groups trained together. Dot products add over chunks,
 * layers' rows and servers, so each server accumulates over its own rows and the coordinator
 * sums the servers' partials and turns them into cosines.
 *
 * Not thread-safe; one accumulator per server. */
#ifndef LDN_AFFINITY_H
#define LDN_AFFINITY_H

#include <stdint.h>

/* Most groups the affinity is measured for (the partials travel as one message). */
#define LDN_AFFINITY_MAX_GROUPS 256

struct ldn_affinity;

/* An accumulator for G groups and L layers over windows of `window` steps (>= 1; windows
 * are aligned on multiples of window). Returns NULL when out of memory or G, L < 1. */
struct ldn_affinity *ldn_affinity_new(int G, int L, int64_t window);
void ldn_affinity_destroy(struct ldn_affinity **a);

/* Add one block of rows of layer `layer` of the open step: grads[g] points to group g's
 * gradient of the block (n floats) or is NULL when g did not train this step. Adds
 * grads[i] . grads[j] for every present pair, i == j included, over blocks of a few thousand
 * keys (pairwise dots for up to 8 present groups, else their Gram matrix by BLAS ssyrk),
 * summed in double. */
void ldn_affinity_add(struct ldn_affinity *a, int layer, const float *const *grads, int64_t n);

/* Step `step` is complete: every pair of groups with present[i] && present[j] gets one
 * co-occurrence (present[g] nonzero: g trained). When step + 1 is a multiple of the window,
 * the window is closed: it becomes the one reported and a new one starts. */
void ldn_affinity_step(struct ldn_affinity *a, int64_t step, const char *present);

/* What to report: the last closed window, or the open one when none has closed yet.
 * *dots: [L][G][G] (borrowed until the next step), *counts: [G][G] steps trained together
 * (counts[g][g]: steps g trained), [*from, *to): the steps it covers (from == to: nothing). */
void ldn_affinity_report(const struct ldn_affinity *a, const double **dots, const uint64_t **counts,
                         int64_t *from, int64_t *to);

/* Cosines out[G][G] from dot products dot[G][G]: dot_ij / sqrt(dot_ii dot_jj), NaN when
 * either norm is zero (a group that never trained in the window). out may not alias dot. */
void ldn_affinity_cosine(const double *dot, int G, double *out);

/* sum[L+1][G][G] from dots[L][G][G]: a copy, and block L = the sum over layers (the whole
 * trunk). */
void ldn_affinity_total(const double *dots, int G, int L, double *sum);

/* Coordinator side (affinity_gather.c): ask every server for its partials as of `step`,
 * sum them and write the cosine matrices (per layer and the whole trunk) with the groups and
 * their tasks as one affinity row into each of the non-NULL files. Each answer is awaited at
 * most job->cfg->timeout_s. Returns 0 or a negative status with err naming the server. */
struct ldn_job;
#include <stdio.h>
int ldn_affinity_gather(const struct ldn_job *job, void *const *servers, int64_t step, double epoch,
                        FILE *const *out, int n_out, char *err, size_t errlen);

#endif
