/* Server-side cost of ps.affinity on one core: ldn_affinity_add of G group gradients of n keys
 * (G (G + 1) / 2 dot products, double accumulation) next to what a bsp server does with the
 * same pushes anyway, measured in the same run: the sum over G workers of their pushes into
 * the step's gradient (apply_sum's loop: a copy, then G - 1 scale-adds) and one SGD-momentum
 * update of the n keys.
 *
 *   bench_affinity [N=133376] [GROUPS=3,8,16,64] [REPS=7]
 *
 * N defaults to one of 2 servers' share of the Fashion-MNIST trunk 784-256-256. Each figure
 * is the median of REPS repetitions after a warm-up, each repetition looping until it lasts
 * >= 20 ms. Prints | groups | n | affinity ms | bsp sum + update ms | ratio |. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "affinity.h"
#include "rng.h"

#define MAX_REPS 101

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct job {
    int G;
    int64_t n;
    float **g, *acc, *w, *v;
    struct ldn_affinity *a;
};

static void run_affinity(struct job *j)
{
    ldn_affinity_add(j->a, 0, (const float *const *)j->g, j->n);
}

/* apply_sum's arithmetic with group scale 1 and an SGD momentum update */
static void run_bsp(struct job *j)
{
    memcpy(j->acc, j->g[0], sizeof(float) * (size_t)j->n);
    for (int w = 1; w < j->G; w++)
        for (int64_t i = 0; i < j->n; i++)
            j->acc[i] += 1.0f * j->g[w][i];
    for (int64_t i = 0; i < j->n; i++) {
        j->v[i] = 0.9f * j->v[i] + j->acc[i];
        j->w[i] -= 0.01f * j->v[i];
    }
}

/* Median over reps of the milliseconds one call of fn takes. */
static double time_ms(void (*fn)(struct job *), struct job *j, int reps)
{
    double t[MAX_REPS];
    fn(j);
    for (int r = 0; r < reps; r++) {
        long calls = 0;
        double t0 = now(), el;
        do {
            fn(j);
            calls++;
        } while ((el = now() - t0) < 0.02);
        t[r] = 1e3 * el / (double)calls;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    return t[reps / 2];
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 133376;
    const char *groups = argc > 2 ? argv[2] : "3,8,16,64";
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (n < 1 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_affinity [N] [GROUPS=3,8,...] [REPS<=%d]\n", MAX_REPS);
        return 2;
    }
    printf("| groups | n | affinity ms | bsp sum + update ms | ratio |\n|---|---|---|---|---|\n");
    char list[256];
    snprintf(list, sizeof list, "%s", groups);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        struct job j = {.G = atoi(tok), .n = n};
        if (j.G < 1 || j.G > LDN_AFFINITY_MAX_GROUPS) {
            fprintf(stderr, "bench_affinity: groups must be in 1..%d, got %s\n",
                    LDN_AFFINITY_MAX_GROUPS, tok);
            return 2;
        }
        j.g = calloc((size_t)j.G, sizeof *j.g);
        j.acc = malloc(sizeof(float) * (size_t)n);
        j.w = calloc((size_t)n, sizeof(float));
        j.v = calloc((size_t)n, sizeof(float));
        j.a = ldn_affinity_new(j.G, 1, 1000000);
        if (!j.g || !j.acc || !j.w || !j.v || !j.a) {
            fprintf(stderr, "bench_affinity: out of memory\n");
            return 1;
        }
        struct ldn_rng r;
        ldn_rng_init(&r, 1, 0);
        for (int g = 0; g < j.G; g++) {
            if (!(j.g[g] = malloc(sizeof(float) * (size_t)n)))
                return 1;
            for (int64_t i = 0; i < n; i++)
                j.g[g][i] = (float)ldn_rng_normal(&r);
        }
        double ta = time_ms(run_affinity, &j, reps), tb = time_ms(run_bsp, &j, reps);
        printf("| %d | %lld | %.3f | %.3f | %.2f |\n", j.G, (long long)n, ta, tb, ta / tb);
        for (int g = 0; g < j.G; g++)
            free(j.g[g]);
        free(j.g);
        free(j.acc);
        free(j.w);
        free(j.v);
        ldn_affinity_destroy(&j.a);
    }
    return 0;
}
