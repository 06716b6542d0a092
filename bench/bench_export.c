/* Prediction speed of exported models (bench/export.sh, docs/benchmarks.md "Export").
 *
 *   bench_export kernel [ROWS COLS BATCH]
 *       one layer: the CSR kernel (int8 values, per-row scale; and fp32 values) against
 *       OpenBLAS sgemm on the same matrix held dense in fp32, at several densities
 *   bench_export model CKPT EXPORT TASK_FILE TASK [REPEATS]
 *       whole model on a task file's test split: the checkpoint's fp32 forward pass against
 *       the exported file's (what `ladon predict` runs), rows/s, in one run, alternating
 *
 * Run with OPENBLAS_NUM_THREADS=1 for one core. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckmodel.h"
#include "data.h"
#include "qsparse.h"
#include "rng.h"
#include "status.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per call of fn(ud), the median of 7 timings of enough calls for 0.1 s. */
static double time_it(void (*fn)(void *), void *ud)
{
    int reps = 1;
    for (;;) {
        double t0 = now();
        for (int i = 0; i < reps; i++)
            fn(ud);
        if (now() - t0 > 0.1 || reps > (1 << 20))
            break;
        reps *= 2;
    }
    double t[7];
    for (int k = 0; k < 7; k++) {
        double t0 = now();
        for (int i = 0; i < reps; i++)
            fn(ud);
        t[k] = (now() - t0) / reps;
    }
    for (int i = 0; i < 7; i++) /* sort for the median */
        for (int j = i + 1; j < 7; j++)
            if (t[j] < t[i]) {
                double x = t[i];
                t[i] = t[j];
                t[j] = x;
            }
    return t[3];
}

struct kcall {
    const struct ldn_qmat *m;
    const float *bias, *xt;
    float *yt;
    int batch;
    int64_t ld;
};

static void kernel_call(void *ud)
{
    struct kcall *c = ud;
    ldn_qmat_apply(c->m, c->bias, LDN_ACT_RELU, c->xt, c->yt, c->batch, c->ld);
}

static int bench_kernel(int rows, int cols, int batch)
{
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 1);
    size_t n = (size_t)rows * (size_t)cols;
    const int64_t ld = batch % 1024 == 0 ? batch + 16 : batch; /* as qmodel.c pads it */
    float *w = malloc(n * sizeof *w), *xt = malloc((size_t)cols * (size_t)ld * sizeof *xt);
    float *yt = malloc((size_t)rows * (size_t)ld * sizeof *yt), *bias = calloc((size_t)rows, 4);
    int8_t *q = malloc(n);
    float *scale = malloc((size_t)rows * sizeof *scale);
    int64_t *pos = malloc(n * sizeof *pos);
    if (!w || !xt || !yt || !bias || !q || !scale || !pos)
        return 1;
    for (size_t i = 0; i < (size_t)cols * (size_t)ld; i++)
        xt[i] = (float)ldn_rng_uniform(&r);
    printf("one layer [%d, %d], batch %d, rows/s (batch rows through the layer per second)\n", rows,
           cols, batch);
    printf("%8s %14s %14s %14s %9s\n", "density", "dense sgemm", "csr int8", "csr fp32",
           "int8/sgemm");
    const double dens[] = {1.0, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02};
    for (size_t k = 0; k < sizeof dens / sizeof *dens; k++) {
        for (size_t i = 0; i < n; i++)
            w[i] = ldn_rng_uniform(&r) < dens[k] ? (float)ldn_rng_normal(&r) : 0.0f;
        for (int j = 0; j < rows; j++)
            ldn_q8_quantize_row(w + (size_t)j * cols, cols, q + (size_t)j * cols, &scale[j]);
        for (size_t i = 0; i < n; i++)
            pos[i] = (int64_t)i;
        struct ldn_qmat md, mq, mf;
        if (ldn_qmat_build(&md, rows, cols, (int64_t)n, pos, NULL, NULL, w, 0) ||
            ldn_qmat_build(&mq, rows, cols, (int64_t)n, pos, q, scale, NULL, 1) ||
            ldn_qmat_build(&mf, rows, cols, (int64_t)n, pos, NULL, NULL, w, 1))
            return 1;
        struct kcall c = {&md, bias, xt, yt, batch, ld};
        double td = time_it(kernel_call, &c);
        c.m = &mq;
        double tq = time_it(kernel_call, &c);
        c.m = &mf;
        double tf = time_it(kernel_call, &c);
        printf("%7.0f%% %14.0f %14.0f %14.0f %8.2fx\n", 100 * dens[k], batch / td, batch / tq,
               batch / tf, td / tq);
        ldn_qmat_free(&md);
        ldn_qmat_free(&mq);
        ldn_qmat_free(&mf);
    }
    free(w);
    free(xt);
    free(yt);
    free(bias);
    free(q);
    free(scale);
    free(pos);
    return 0;
}

struct mcall {
    struct ldn_ckmodel *L;
    int t, dense;
    const struct ldn_dataset *ds;
    double sink;
};

/* The whole test split through the model, in its max batch. */
static void model_call(void *ud)
{
    struct mcall *c = ud;
    const int mb = c->L->model->trunk->max_batch;
    for (int64_t i = 0; i < c->ds->n; i += mb) {
        int b = (int)(c->ds->n - i < mb ? c->ds->n - i : mb);
        const float *x = c->ds->x + i * c->ds->features;
        const float *z = c->dense ? ldn_model_forward(c->L->model, c->t, x, b)
                                  : ldn_ckmodel_forward(c->L, c->t, x, b);
        c->sink += z[0];
    }
}

static int bench_model(const char *ck, const char *ex, const char *file, const char *task,
                       int repeats)
{
    char err[LDN_ERRLEN];
    struct ldn_ckmodel A, B;
    struct ldn_dataset *ds = ldn_dataset_load(file, "test", 0, 1, err, sizeof err);
    if (!ds || ldn_ckmodel_load(ck, 1024, &A, err, sizeof err) ||
        ldn_ckmodel_load(ex, 1024, &B, err, sizeof err)) {
        fprintf(stderr, "bench_export: %s\n", err);
        return 1;
    }
    int ta = ldn_config_task_index(A.cfg, task), tb = ldn_config_task_index(B.cfg, task);
    if (ta < 0 || tb < 0 || !B.x) {
        fprintf(stderr, "bench_export: no task %s, or %s is not an export\n", task, ex);
        return 1;
    }
    struct mcall a = {&A, ta, 1, ds, 0}, b = {&B, tb, 0, ds, 0};
    double best_a = 1e30, best_b = 1e30;
    for (int k = 0; k < repeats; k++) { /* alternate, so both see the same machine */
        double t = time_it(model_call, &a);
        best_a = t < best_a ? t : best_a;
        t = time_it(model_call, &b);
        best_b = t < best_b ? t : best_b;
    }
    printf("model %s vs %s, task %s, %lld test rows, batch %d\n", ck, ex, task, (long long)ds->n,
           A.model->trunk->max_batch);
    printf("dense fp32 (sgemm) rows/s %.0f\nexport rows/s %.0f\nratio %.2f\n", ds->n / best_a,
           ds->n / best_b, best_a / best_b);
    ldn_ckmodel_free(&A);
    ldn_ckmodel_free(&B);
    ldn_dataset_destroy(&ds);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "kernel"))
        return bench_kernel(argc > 2 ? atoi(argv[2]) : 256, argc > 3 ? atoi(argv[3]) : 784,
                            argc > 4 ? atoi(argv[4]) : 1024);
    if (argc >= 6 && !strcmp(argv[1], "model"))
        return bench_model(argv[2], argv[3], argv[4], argv[5], argc > 6 ? atoi(argv[6]) : 3);
    fprintf(stderr, "usage: bench_export kernel [ROWS COLS BATCH] | model CKPT EXPORT TASK_FILE "
                    "TASK [REPEATS]\n");
    return 2;
}
