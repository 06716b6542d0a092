/* Gradient codec throughput on one core: encode (ldn_codec_compress with error feedback) and
 * decode + apply (ldn_codec_decode_add) of every codec of the "compressed pushes" issue, next to
 * the memcpy bandwidth of the same n * 4 bytes measured in the same run.
 *
 *   bench_codec [SIZES=1e5,1e6,1e7,1e8] [REPS=7]
 *
 * The gradient is standard normal. Encode GB/s = n * 4 bytes of fp32 input / time; decode + apply
 * GB/s = n * 4 bytes of the dense fp32 vector it is added into / time; memcpy GB/s = n * 4 bytes
 * copied / time. Each figure is the median of REPS timed repetitions after one warm-up call, with
 * a reused context and preallocated buffers; a repetition loops the call until it lasts >= 20 ms
 * (small n), REPS drops to 3 for n >= 1e8 and shrinks further so that a figure costs about 10 s;
 * a combination whose single warm-up call exceeds 10 s is skipped. Prints one markdown row per
 * (codec, n): | codec | n | encode GB/s | decode+apply GB/s | memcpy GB/s |. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "codec.h"
#include "rng.h"

#define MAX_SIZES 16
#define MAX_REPS 101
#define MIN_REP_SECONDS 0.02
#define BUDGET_SECONDS 10.0

struct bench_codec {
    const char *name;
    struct ldn_codec_desc d;
};

static const struct bench_codec CODECS[] = {
    {"topk1%-fp32", {LDN_CODEC_TOPK, LDN_QUANT_FP32, 10000, 256, 16, 7}},
    {"topk1%-int8", {LDN_CODEC_TOPK, LDN_QUANT_INT8, 10000, 256, 16, 7}},
    {"topk1%-sign", {LDN_CODEC_TOPK, LDN_QUANT_SIGN, 10000, 256, 16, 7}},
    {"threshold1%-int8", {LDN_CODEC_THRESHOLD, LDN_QUANT_INT8, 10000, 256, 16, 7}},
    {"randomk1%-int8", {LDN_CODEC_RANDOMK, LDN_QUANT_INT8, 10000, 256, 16, 7}},
    {"dense-int8", {LDN_CODEC_DENSE, LDN_QUANT_INT8, 1000000, 256, 16, 7}},
    {"dense-fp16", {LDN_CODEC_DENSE, LDN_QUANT_FP16, 1000000, 256, 16, 7}},
    {"dense-qsgd16", {LDN_CODEC_DENSE, LDN_QUANT_QSGD, 1000000, 256, 16, 7}},
};
#define NCODECS (sizeof CODECS / sizeof CODECS[0])

/* What one timed operation needs. */
enum op { OP_ENCODE, OP_DECODE, OP_MEMCPY };

struct state {
    const struct ldn_codec_desc *d;
    struct ldn_codec_ctx *tx, *rx;
    const float *grad;
    float *residual, *dense, *dst;
    uint8_t *out;
    size_t cap, len;
    int64_t n;
    uint64_t step;    /* next encode step */
    uint64_t rx_step; /* step of the payload in out */
    char err[512];
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_codec: %s: %s\n", what, err);
    exit(1);
}

static void run_op(struct state *s, enum op op)
{
    switch (op) {
    case OP_ENCODE:
        if (ldn_codec_compress(s->tx, s->d, s->step, s->grad, s->residual, s->n, s->out, s->cap,
                               &s->len, NULL, NULL, s->err, sizeof s->err))
            die("compress", s->err);
        s->rx_step = s->step++;
        break;
    case OP_DECODE:
        if (ldn_codec_decode_add(s->rx, s->d, s->rx_step, s->out, s->len, s->n, -1e-3f, s->dense,
                                 s->err, sizeof s->err))
            die("decode_add", s->err);
        break;
    case OP_MEMCPY: memcpy(s->dst, s->grad, (size_t)s->n * sizeof *s->grad); break;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median seconds per call of op after one warm-up call; a negative value when skipped. */
static double time_op(struct state *s, enum op op, int reps)
{
    double t0 = now();
    run_op(s, op);
    double warm = now() - t0;
    if (warm > BUDGET_SECONDS)
        return -1;
    int inner = 1;
    if (warm < MIN_REP_SECONDS)
        inner = warm > 0 ? (int)(MIN_REP_SECONDS / warm) + 1 : 1000;
    if (warm * reps > BUDGET_SECONDS)
        reps = (int)(BUDGET_SECONDS / warm) > 1 ? (int)(BUDGET_SECONDS / warm) : 1;
    double t[MAX_REPS];
    for (int r = 0; r < reps; r++) {
        t0 = now();
        for (int i = 0; i < inner; i++)
            run_op(s, op);
        t[r] = (now() - t0) / inner;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
}

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        die("malloc", "out of memory");
    memset(p, 0, bytes); /* touch every page before timing */
    return p;
}

static int parse_sizes(const char *arg, int64_t *sizes)
{
    int count = 0;
    const char *p = arg;
    while (*p && count < MAX_SIZES) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || v < 1 || v > (double)LDN_CODEC_MAX_N)
            die("bad size list", arg);
        sizes[count++] = (int64_t)(v + 0.5);
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            die("bad size list", arg);
    }
    return count;
}

static void print_gbs(double bytes, double sec)
{
    if (sec > 0)
        printf(" %.2f |", bytes / sec / 1e9);
    else
        printf(" skipped |");
}

int main(int argc, char **argv)
{
    int64_t sizes[MAX_SIZES] = {100000, 1000000, 10000000, 100000000};
    int nsizes = 4, reps = 7;
    if (argc > 1)
        nsizes = parse_sizes(argv[1], sizes);
    if (argc > 2)
        reps = atoi(argv[2]);
    if (argc > 3 || reps < 1 || reps > MAX_REPS) {
        fprintf(stderr, "usage: bench_codec [SIZES=1e5,1e6,1e7,1e8] [REPS=7 (1..%d)]\n", MAX_REPS);
        return 2;
    }
    int64_t nmax = 0;
    for (int i = 0; i < nsizes; i++)
        nmax = sizes[i] > nmax ? sizes[i] : nmax;

    size_t cap = 0;
    for (size_t c = 0; c < NCODECS; c++) {
        size_t b = ldn_codec_max_bytes(&CODECS[c].d, nmax);
        cap = b > cap ? b : cap;
    }
    float *grad = xmalloc((size_t)nmax * sizeof *grad);
    struct state s = {.residual = xmalloc((size_t)nmax * sizeof(float)),
                      .dense = xmalloc((size_t)nmax * sizeof(float)),
                      .dst = xmalloc((size_t)nmax * sizeof(float)),
                      .out = xmalloc(cap),
                      .cap = cap,
                      .grad = grad,
                      .tx = ldn_codec_ctx_new(1),
                      .rx = ldn_codec_ctx_new(2)};
    if (!s.tx || !s.rx)
        die("ldn_codec_ctx_new", "out of memory");
    struct ldn_rng rng;
    ldn_rng_init(&rng, 42, 0);
    for (int64_t i = 0; i < nmax; i++)
        grad[i] = (float)ldn_rng_normal(&rng);

    printf(
        "| codec | n | encode GB/s | decode+apply GB/s | memcpy GB/s |\n|---|---|---|---|---|\n");
    fflush(stdout);
    for (int i = 0; i < nsizes; i++) {
        int64_t n = sizes[i];
        int r = n >= 100000000 && reps > 3 ? 3 : reps;
        double bytes = (double)n * sizeof(float);
        for (size_t c = 0; c < NCODECS; c++) {
            s.d = &CODECS[c].d;
            s.n = n;
            s.step = 0;
            memset(s.residual, 0, (size_t)n * sizeof(float));
            memset(s.dense, 0, (size_t)n * sizeof(float));
            double te = time_op(&s, OP_ENCODE, r);
            double td = te > 0 ? time_op(&s, OP_DECODE, r) : -1;
            double tm = time_op(&s, OP_MEMCPY, r);
            printf("| %s | %lld |", CODECS[c].name, (long long)n);
            print_gbs(bytes, te);
            print_gbs(bytes, td);
            print_gbs(bytes, tm);
            printf("\n");
            fflush(stdout);
            fprintf(stderr, "bench_codec: %s n=%lld payload %zu bytes (%.4f of fp32)\n",
                    CODECS[c].name, (long long)n, s.len, (double)s.len / bytes);
        }
    }
    ldn_codec_ctx_destroy(&s.tx);
    ldn_codec_ctx_destroy(&s.rx);
    free(grad);
    free(s.residual);
    free(s.dense);
    free(s.dst);
    free(s.out);
    return 0;
}
