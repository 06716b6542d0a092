/* Synthetic multi-task data with controlled relatedness (docs/data.md).
 *
 * Every task t labels Gaussian inputs through its own low-rank map
 *   A_t = sqrt(r) U_shared + sqrt(1 - r) U_t        (features x rank, r = relatedness)
 *   h   = tanh(A_t^T x),   logits = V_t h + b_t + noise * N(0, 1),   y = argmax(logits)
 * with x ~ N(0, I), U entries ~ N(0, 1/features), V_t entries ~ N(0, 1) and b_t calibrated
 * so that the classes are close to balanced. Each task draws from its own random streams,
 * so task k's data depends only on (seed, k, the shape options), not on the task count.
 *
 * With clusters, U_shared is replaced by the cluster's U_c and V_t mixed with the cluster's
 * V_c the same way; with conflict, the last task labels by the negated logits of the one
 * before it (its map, weights and biases). */
#define _POSIX_C_SOURCE 200809L

#include "data.h"

#include "data_priv.h"
#include "log.h"
#include "rng.h"
#include "status.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Calibration of the class biases: at least this many rows (and 20 per class), at most
 * CAL_ROUNDS rounds, stopping when every class count is within CAL_TOLERANCE (relative) of
 * rows / classes. */
#define CAL_ROWS 3000
#define CAL_ROUNDS 50
#define CAL_TOLERANCE 0.02

/* Upper bounds that keep sizes far from overflow. */
#define MAX_TASKS 1000000
#define MAX_FEATURES (1 << 20)
#define MAX_CLASSES 1000
#define MAX_ROWS ((int64_t)1 << 31)
#define MAX_SPLIT_FLOATS ((int64_t)1 << 32)

void ldn_synth_opts_default(struct ldn_synth_opts *o)
{
    memset(o, 0, sizeof *o);
    o->tasks = 8;
    o->features = 64;
    o->rank = 8;
    o->classes = 4;
    o->relatedness = 0.8;
    o->n_train = 2000;
    o->n_test = 1000;
    o->noise = 0.1;
    o->seed = 1;
}

static int synth_check(const struct ldn_synth_opts *o, char *err, size_t errlen)
{
#define BAD(...) ldn_fail(err, errlen, LDN_ERR_ARG, "data synth: " __VA_ARGS__)
    if (o->tasks < 1 || o->tasks > MAX_TASKS)
        return BAD("tasks must be in 1..%d, got %d", MAX_TASKS, o->tasks);
    if (o->features < 1 || o->features > MAX_FEATURES)
        return BAD("features must be in 1..%d, got %d", MAX_FEATURES, o->features);
    if (o->rank < 1 || o->rank > o->features)
        return BAD("rank must be in 1..features (%d), got %d", o->features, o->rank);
    if (o->classes < 2 || o->classes > MAX_CLASSES)
        return BAD("classes must be in 2..%d, got %d", MAX_CLASSES, o->classes);
    if (!(o->relatedness >= 0.0 && o->relatedness <= 1.0))
        return BAD("relatedness must be in [0, 1], got %g", o->relatedness);
    if (o->n_train < 1 || o->n_train > MAX_ROWS)
        return BAD("n_train must be in 1..%lld, got %lld", (long long)MAX_ROWS,
                   (long long)o->n_train);
    if (o->n_test < 1 || o->n_test > MAX_ROWS)
        return BAD("n_test must be in 1..%lld, got %lld", (long long)MAX_ROWS,
                   (long long)o->n_test);
    if (o->n_train * o->features > MAX_SPLIT_FLOATS || o->n_test * o->features > MAX_SPLIT_FLOATS)
        return BAD("n_train/n_test x features must be <= %lld values per split",
                   (long long)MAX_SPLIT_FLOATS);
    if (!(o->noise >= 0.0 && isfinite(o->noise)))
        return BAD("noise must be a finite number >= 0, got %g", o->noise);
    if (o->clusters < 0 || o->clusters > MAX_TASKS)
        return BAD("clusters must be in 0..%d, got %d", MAX_TASKS, o->clusters);
    const int paired = o->conflict ? 2 : 0;
    if (o->conflict && o->tasks < 2)
        return BAD("a conflicting pair needs at least 2 tasks, got %d", o->tasks);
    if (o->clusters > 0 && o->tasks - paired < o->clusters)
        return BAD("%d clusters need at least %d tasks%s, got %d", o->clusters,
                   o->clusters + paired, paired ? " (with the conflicting pair)" : "", o->tasks);
#undef BAD
    return 0;
}

/* Random streams of clusters: after every task's (4 per task), so no task's data changes. */
static uint64_t cluster_stream(const struct ldn_synth_opts *o, int c)
{
    return 1 + 4 * (uint64_t)o->tasks + (uint64_t)c;
}

/* The cluster of task t (clusters > 0, t not the conflicting pair's second). */
static int cluster_of(const struct ldn_synth_opts *o, int t)
{
    const int n = o->tasks - (o->conflict ? 2 : 0);
    if (t >= n) /* the conflicting pair's first task: a cluster of its own */
        return o->clusters;
    return (int)((int64_t)t * o->clusters / n);
}

/* One task's generator: A [features, rank], V [classes, rank], b [classes], and scratch. */
struct synth_task {
    int features, rank, classes;
    double noise;
    double *a, *v, *b;
    double *h, *logit; /* [rank], [classes] */
};

/* Random stream ids: 0 is the shared map; task t uses 1 + 4t + (0 params, 1 calibration,
 * 2 train, 3 test). */
static uint64_t stream_id(int t, int which)
{
    return 1 + 4 * (uint64_t)t + (uint64_t)which;
}

/* h = tanh(A^T x); logit = V h (no bias, no noise). */
static void forward(struct synth_task *s, const float *x)
{
    for (int k = 0; k < s->rank; k++)
        s->h[k] = 0;
    for (int i = 0; i < s->features; i++) {
        const double xi = x[i], *ai = s->a + (size_t)i * s->rank;
        for (int k = 0; k < s->rank; k++)
            s->h[k] += ai[k] * xi;
    }
    for (int k = 0; k < s->rank; k++)
        s->h[k] = tanh(s->h[k]);
    for (int c = 0; c < s->classes; c++) {
        const double *vc = s->v + (size_t)c * s->rank;
        double z = 0;
        for (int k = 0; k < s->rank; k++)
            z += vc[k] * s->h[k];
        s->logit[c] = z;
    }
}

static int argmax(const double *z, int n)
{
    int best = 0;
    for (int c = 1; c < n; c++)
        if (z[c] > z[best])
            best = c;
    return best;
}

static void draw_x(struct ldn_rng *r, float *x, int features)
{
    for (int i = 0; i < features; i++)
        x[i] = (float)ldn_rng_normal(r);
}

/* k-th smallest (0-based) of a[0..n), reordering a so that a[k..n) >= the result (Hoare
 * quickselect, middle pivot: deterministic). */
static double kth_smallest(double *a, int n, int k)
{
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] < pivot)
                i++;
            while (a[j] > pivot)
                j--;
            if (i <= j) {
                double t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            return a[k];
    }
    return a[k];
}

/* Calibration scratch: cal [rows, classes] noise-free logits, per-row margins and top-2. */
struct calib {
    int rows;
    double *cal, *g, *top1, *top2, *nb;
    int *top1i, *cnt;
};

static int cal_rows(int classes)
{
    return classes * 20 > CAL_ROWS ? classes * 20 : CAL_ROWS;
}

/* Choose the biases b so that argmax(V h + b) is close to uniform over the classes on a
 * calibration sample. Each round moves every b_c halfway to the value that would give class
 * c exactly rows/classes wins with the other biases fixed (a damped Jacobi iteration; the
 * target is a quantile of the margins z_ic - max_{c' != c}(z_ic' + b_c')). */
static void calibrate(struct synth_task *s, struct ldn_rng *r, float *x, struct calib *cb)
{
    const int c_n = s->classes, k_n = cb->rows, want = k_n / c_n;
    for (int i = 0; i < k_n; i++) {
        draw_x(r, x, s->features);
        forward(s, x);
        memcpy(cb->cal + (size_t)i * c_n, s->logit, (size_t)c_n * sizeof *cb->cal);
    }
    for (int c = 0; c < c_n; c++)
        s->b[c] = 0;
    for (int round = 0; round <= CAL_ROUNDS; round++) {
        memset(cb->cnt, 0, (size_t)c_n * sizeof *cb->cnt);
        for (int i = 0; i < k_n; i++) {
            const double *z = cb->cal + (size_t)i * c_n;
            double t1 = -HUGE_VAL, t2 = -HUGE_VAL;
            int i1 = 0;
            for (int c = 0; c < c_n; c++) {
                double v = z[c] + s->b[c];
                if (v > t1) {
                    t2 = t1;
                    t1 = v;
                    i1 = c;
                } else if (v > t2) {
                    t2 = v;
                }
            }
            cb->top1[i] = t1;
            cb->top2[i] = t2;
            cb->top1i[i] = i1;
            cb->cnt[i1]++;
        }
        int balanced = 1;
        for (int c = 0; c < c_n; c++)
            balanced &= fabs((double)cb->cnt[c] / want - 1.0) <= CAL_TOLERANCE;
        if (balanced || round == CAL_ROUNDS)
            break;
        double mean = 0;
        for (int c = 0; c < c_n; c++) {
            for (int i = 0; i < k_n; i++) { /* c wins row i iff b_c > g_i */
                double other = cb->top1i[i] == c ? cb->top2[i] : cb->top1[i];
                cb->g[i] = other - cb->cal[(size_t)i * c_n + c];
            }
            double q1 = kth_smallest(cb->g, k_n, want - 1), q2 = HUGE_VAL;
            for (int i = want; i < k_n; i++)
                q2 = cb->g[i] < q2 ? cb->g[i] : q2;
            cb->nb[c] = q2 < HUGE_VAL ? 0.5 * (q1 + q2) : q1 + 1.0;
        }
        for (int c = 0; c < c_n; c++) {
            s->b[c] += 0.5 * (cb->nb[c] - s->b[c]);
            mean += s->b[c];
        }
        for (int c = 0; c < c_n; c++) /* argmax ignores a common shift: keep b centred */
            s->b[c] -= mean / c_n;
    }
}

/* Generate n rows into x [n, features] and y [n] from stream r. */
static void gen_rows(struct synth_task *s, struct ldn_rng *r, int64_t n, float *x, int32_t *y)
{
    for (int64_t i = 0; i < n; i++) {
        float *xi = x + i * s->features;
        draw_x(r, xi, s->features);
        forward(s, xi);
        for (int c = 0; c < s->classes; c++)
            s->logit[c] += s->b[c] + s->noise * ldn_rng_normal(r);
        y[i] = argmax(s->logit, s->classes);
    }
}

/* Scratch and output buffers for one task, reused across tasks. */
struct synth_bufs {
    double *u_shared, *v_shared, *a, *v, *b, *h, *logit;
    struct calib cb;
    float *x_train, *x_test;
    int32_t *y_train, *y_test;
    char *classes;
};

static void bufs_free(struct synth_bufs *b)
{
    free(b->u_shared);
    free(b->v_shared);
    free(b->a);
    free(b->v);
    free(b->b);
    free(b->h);
    free(b->logit);
    free(b->cb.cal);
    free(b->cb.g);
    free(b->cb.top1);
    free(b->cb.top2);
    free(b->cb.nb);
    free(b->cb.top1i);
    free(b->cb.cnt);
    free(b->x_train);
    free(b->x_test);
    free(b->y_train);
    free(b->y_test);
    free(b->classes);
}

static int bufs_alloc(struct synth_bufs *b, const struct ldn_synth_opts *o)
{
    const size_t f = (size_t)o->features, k = (size_t)o->rank, c = (size_t)o->classes;
    memset(b, 0, sizeof *b);
    b->u_shared = malloc(f * k * sizeof(double));
    b->v_shared = malloc(c * k * sizeof(double));
    b->a = malloc(f * k * sizeof(double));
    b->v = malloc(c * k * sizeof(double));
    b->b = malloc(c * sizeof(double));
    b->h = malloc(k * sizeof(double));
    b->logit = malloc(c * sizeof(double));
    const size_t k_n = (size_t)cal_rows(o->classes);
    b->cb.rows = (int)k_n;
    b->cb.cal = malloc(k_n * c * sizeof(double));
    b->cb.g = malloc(k_n * sizeof(double));
    b->cb.top1 = malloc(k_n * sizeof(double));
    b->cb.top2 = malloc(k_n * sizeof(double));
    b->cb.nb = malloc(c * sizeof(double));
    b->cb.top1i = malloc(k_n * sizeof(int));
    b->cb.cnt = malloc(c * sizeof(int));
    b->x_train = malloc((size_t)o->n_train * f * sizeof(float));
    b->x_test = malloc((size_t)o->n_test * f * sizeof(float));
    b->y_train = malloc((size_t)o->n_train * sizeof(int32_t));
    b->y_test = malloc((size_t)o->n_test * sizeof(int32_t));
    b->classes = malloc(c * 8 + 1);
    if (!b->u_shared || !b->v_shared || !b->a || !b->v || !b->b || !b->h || !b->logit ||
        !b->cb.cal || !b->cb.g || !b->cb.top1 || !b->cb.top2 || !b->cb.nb || !b->cb.top1i ||
        !b->cb.cnt || !b->x_train || !b->x_test || !b->y_train || !b->y_test || !b->classes)
        return -1;
    char *p = b->classes;
    for (int i = 0; i < o->classes; i++)
        p += sprintf(p, "%sc%d", i ? "," : "", i);
    return 0;
}

/* The shared map (and, with clusters, class weights) task t mixes in: stream 0 without
 * clusters, its cluster's stream with them. */
static void shared_for(const struct ldn_synth_opts *o, struct synth_bufs *bf, int t)
{
    struct ldn_rng r;
    ldn_rng_init(&r, o->seed, o->clusters > 0 ? cluster_stream(o, cluster_of(o, t)) : 0);
    const double su = 1.0 / sqrt((double)o->features);
    for (size_t i = 0; i < (size_t)o->features * (size_t)o->rank; i++)
        bf->u_shared[i] = su * ldn_rng_normal(&r);
    for (size_t i = 0; o->clusters > 0 && i < (size_t)o->classes * (size_t)o->rank; i++)
        bf->v_shared[i] = ldn_rng_normal(&r);
}

/* Generate task t's train and test splits into the buffers. */
static void synth_task_gen(const struct ldn_synth_opts *o, struct synth_bufs *bf, int t)
{
    struct synth_task s = {o->features, o->rank, o->classes, o->noise, bf->a,
                           bf->v,       bf->b,   bf->h,      bf->logit};
    const size_t fk = (size_t)o->features * (size_t)o->rank;
    const double ws = sqrt(o->relatedness), wp = sqrt(1.0 - o->relatedness);
    const double su = 1.0 / sqrt((double)o->features);
    const int negated = o->conflict && t == o->tasks - 1;
    const int gen = negated ? t - 1 : t; /* whose generator: the pair's first task's */
    struct ldn_rng r;
    if (o->clusters > 0)
        shared_for(o, bf, gen);
    ldn_rng_init(&r, o->seed, stream_id(gen, 0));
    for (size_t i = 0; i < fk; i++)
        s.a[i] = ws * bf->u_shared[i] + wp * su * ldn_rng_normal(&r);
    for (size_t i = 0; i < (size_t)o->classes * (size_t)o->rank; i++)
        s.v[i] =
            o->clusters > 0 ? ws * bf->v_shared[i] + wp * ldn_rng_normal(&r) : ldn_rng_normal(&r);
    ldn_rng_init(&r, o->seed, stream_id(gen, 1));
    calibrate(&s, &r, bf->x_test, &bf->cb); /* x_test as scratch for one row */
    if (negated) { /* the first task's logits, negated: its classes in reverse preference */
        for (size_t i = 0; i < (size_t)o->classes * (size_t)o->rank; i++)
            s.v[i] = -s.v[i];
        for (int c = 0; c < o->classes; c++)
            s.b[c] = -s.b[c];
    }
    ldn_rng_init(&r, o->seed, stream_id(t, 2));
    gen_rows(&s, &r, o->n_train, bf->x_train, bf->y_train);
    ldn_rng_init(&r, o->seed, stream_id(t, 3));
    gen_rows(&s, &r, o->n_test, bf->x_test, bf->y_test);
}

int ldn_data_build_synth(const char *out_dir, const struct ldn_synth_opts *o, char *err,
                         size_t errlen)
{
    if (!out_dir || !o)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "data synth: output dir or options are NULL");
    int rc = synth_check(o, err, errlen);
    if (rc < 0)
        return rc;
    struct synth_bufs bf;
    if (bufs_alloc(&bf, o) < 0) {
        bufs_free(&bf);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "data synth: out of memory");
    }
    if (o->clusters == 0)
        shared_for(o, &bf, 0);

    int width = 3; /* task000 ... task999, then as many digits as needed (<= 7) */
    for (int t = o->tasks - 1; t >= 1000 && width < 7; t /= 10)
        width++;
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    struct ldn__stage st;
    rc = ldn__stage_init(&st, out_dir, err, errlen);
    for (int t = 0; t < o->tasks && rc == 0; t++) {
        char task[32], name[40], desc[256];
        snprintf(task, sizeof task, "task%0*d", width, t);
        snprintf(name, sizeof name, "%s.h5", task);
        char rel[64] = "";
        if (o->conflict && t == o->tasks - 1)
            snprintf(rel, sizeof rel, " conflicts_with=task%0*d", width, t - 1);
        else if (o->clusters > 0 && cluster_of(o, t) < o->clusters)
            snprintf(rel, sizeof rel, " cluster=%d", cluster_of(o, t));
        else if (o->conflict && t == o->tasks - 2)
            snprintf(rel, sizeof rel, " conflicts_with=task%0*d", width, t + 1);
        snprintf(desc, sizeof desc,
                 "synthetic task %d: features=%d rank=%d classes=%d relatedness=%g "
                 "noise=%g seed=%llu%s",
                 t, o->features, o->rank, o->classes, o->relatedness, o->noise,
                 (unsigned long long)o->seed, rel);
        const char *tmp = ldn__stage_add(&st, name, err, errlen);
        if (!tmp) {
            rc = LDN_ERR_NOMEM;
            break;
        }
        synth_task_gen(o, &bf, t);
        struct ldn__task_out out = {
            .task = task,
            .description = desc,
            .classes = bf.classes,
            .num_classes = o->classes,
            .features = o->features,
            .x_scale = 1.0,
            .train = {o->n_train, bf.x_train, 1, bf.y_train, NULL},
            .test = {o->n_test, bf.x_test, 1, bf.y_test, NULL},
        };
        rc = ldn__data_write_task(tmp, &out, err, errlen);
    }
    if (rc == 0)
        rc = ldn__stage_commit(&st, err, errlen);
    if (rc == 0)
        LDN_DEBUG("data synth: wrote %d tasks to %s", o->tasks, out_dir);
    ldn__stage_deinit(&st);
    ldn_h5_restore(&q);
    bufs_free(&bf);
    return rc;
}
