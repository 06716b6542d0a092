/* Task affinity accumulator (ps/affinity.c): dot products on hand-computed vectors, absent
 * groups contributing nothing, blocks of one layer adding up, co-occurrence counts, windows
 * closing on multiples of the window, cosines (NaN for a group that never trained), the
 * whole-trunk sum, and the metrics row it becomes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "affinity.h"
#include "cu_main.h"
#include "metrics.h"

#define NG 3
#define NL 2

static void test_dots_and_absent_groups(void)
{
    struct ldn_affinity *a = ldn_affinity_new(NG, NL, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    const float x[4] = {1, 2, 3, 4}, y[4] = {-1, 0, 1, 2}, z[4] = {5, 5, 5, 5};
    const float *g1[NG] = {x, y, NULL}; /* group 2 sat the step out */
    ldn_affinity_add(a, 1, g1, 4);
    const char present1[NG] = {1, 1, 0};
    ldn_affinity_step(a, 0, present1);
    const float *g2[NG] = {x, NULL, z};
    ldn_affinity_add(a, 1, g2, 2); /* a block of 2 rows, then the rest of the layer */
    ldn_affinity_add(a, 1, (const float *[NG]){x + 2, NULL, z + 2}, 2);
    const char present2[NG] = {1, 0, 1};
    ldn_affinity_step(a, 1, present2);
    const double *d;
    const uint64_t *n;
    int64_t from, to;
    ldn_affinity_report(a, &d, &n, &from, &to);
    CU_ASSERT_EQUAL(from, 0);
    CU_ASSERT_EQUAL(to, 2);
    for (int i = 0; i < NG * NG; i++) /* layer 0 got nothing */
        CU_ASSERT_DOUBLE_EQUAL(d[i], 0.0, 0.0);
    const double *d1 = d + NG * NG;
    CU_ASSERT_DOUBLE_EQUAL(d1[0 * NG + 0], 2 * 30.0, 1e-12); /* |x|^2 twice */
    CU_ASSERT_DOUBLE_EQUAL(d1[1 * NG + 1], 6.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(d1[2 * NG + 2], 100.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(d1[0 * NG + 1], 10.0, 1e-12); /* x.y = -1 + 0 + 3 + 8 */
    CU_ASSERT_DOUBLE_EQUAL(d1[1 * NG + 0], 10.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(d1[0 * NG + 2], 50.0, 1e-12); /* x.z, the blocks summed */
    CU_ASSERT_DOUBLE_EQUAL(d1[1 * NG + 2], 0.0, 0.0);    /* y and z never trained together */
    const uint64_t want[NG * NG] = {2, 1, 1, 1, 1, 0, 1, 0, 1};
    CU_ASSERT(memcmp(n, want, sizeof want) == 0);
    ldn_affinity_destroy(&a);
    CU_ASSERT_PTR_NULL(a);
    ldn_affinity_destroy(&a); /* NULL is fine */
    CU_ASSERT_PTR_NULL(ldn_affinity_new(0, 1, 1));
    CU_ASSERT_PTR_NULL(ldn_affinity_new(1, 1, 0));
    CU_ASSERT_PTR_NULL(ldn_affinity_new(LDN_AFFINITY_MAX_GROUPS + 1, 1, 1));
}

/* Many groups (the Gram-matrix path) and a length over several blocks: the same dots as a
 * plain double loop, absent groups left out. */
static void test_many_groups(void)
{
    enum { MG = 12, N = 20011 };
    float *x = malloc(sizeof(float) * MG * N);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    const float *g[MG];
    for (int i = 0; i < MG; i++) {
        for (int k = 0; k < N; k++)
            x[i * N + k] = (float)((k * (i + 3) + 7 * i) % 97) / 97.0f - 0.5f;
        g[i] = i == 5 ? NULL : x + (size_t)i * N;
    }
    struct ldn_affinity *a = ldn_affinity_new(MG, 1, 10);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    ldn_affinity_add(a, 0, g, N);
    ldn_affinity_add(a, 0, g, 300); /* a short block as well */
    const double *d;
    const uint64_t *n;
    int64_t from, to;
    ldn_affinity_report(a, &d, &n, &from, &to);
    double worst = 0;
    for (int i = 0; i < MG; i++)
        for (int j = 0; j < MG; j++) {
            double want = 0;
            for (int k = 0; g[i] && g[j] && k < N; k++)
                want += (double)g[i][k] * g[j][k] * (k < 300 ? 2 : 1);
            double err = fabs(d[i * MG + j] - want) / (1 + fabs(want));
            worst = err > worst ? err : worst;
        }
    CU_ASSERT(worst < 1e-5);
    ldn_affinity_destroy(&a);
    free(x);
}

static void test_windows(void)
{
    struct ldn_affinity *a = ldn_affinity_new(1, 1, 3);
    const float one = 1, two = 2;
    const char p[1] = {1};
    const double *d;
    const uint64_t *n;
    int64_t from, to;
    for (int64_t s = 10; s < 17; s++) { /* a resumed job: its first window is [10, 12) */
        ldn_affinity_add(a, 0, (const float *[1]){s < 12 ? &one : &two}, 1);
        ldn_affinity_step(a, s, p);
        ldn_affinity_report(a, &d, &n, &from, &to);
        if (s == 10) { /* nothing closed yet: the open window */
            CU_ASSERT_EQUAL(from, 10);
            CU_ASSERT_EQUAL(to, 11);
            CU_ASSERT_DOUBLE_EQUAL(d[0], 1.0, 0.0);
        }
        if (s == 11 || s == 12 || s == 13) { /* [10, 12) closed at step 11 */
            CU_ASSERT_EQUAL(from, 10);
            CU_ASSERT_EQUAL(to, 12);
            CU_ASSERT_DOUBLE_EQUAL(d[0], 2.0, 0.0);
            CU_ASSERT_EQUAL(n[0], 2);
        }
        if (s >= 14) { /* [12, 15) closed at step 14 */
            CU_ASSERT_EQUAL(from, 12);
            CU_ASSERT_EQUAL(to, 15);
            CU_ASSERT_DOUBLE_EQUAL(d[0], 12.0, 0.0);
            CU_ASSERT_EQUAL(n[0], 3);
        }
    }
    ldn_affinity_destroy(&a);
    a = ldn_affinity_new(2, 1, 5);
    ldn_affinity_report(a, &d, &n, &from, &to); /* nothing yet */
    CU_ASSERT_EQUAL(from, to);
    ldn_affinity_destroy(&a);
}

static void test_cosine_and_total(void)
{
    /* two layers of dot products of vectors u = (1, 0), v = (1, 1), w = 0 (never trained) */
    const double dots[NL * NG * NG] = {1, 1,  0, 1,  2, 0, 0, 0, 0, /* layer 0 */
                                       4, -2, 0, -2, 1, 0, 0, 0, 0};
    double sum[(NL + 1) * NG * NG], cos[NG * NG];
    ldn_affinity_total(dots, NG, NL, sum);
    CU_ASSERT(memcmp(sum, dots, sizeof dots) == 0);
    const double *t = sum + NL * NG * NG;
    CU_ASSERT_DOUBLE_EQUAL(t[0], 5.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(t[1], -1.0, 0.0);
    CU_ASSERT_DOUBLE_EQUAL(t[4], 3.0, 0.0);
    ldn_affinity_cosine(dots, NG, cos);
    CU_ASSERT_DOUBLE_EQUAL(cos[0], 1.0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cos[1], 1.0 / sqrt(2.0), 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(cos[3], cos[1], 0.0);
    CU_ASSERT(isnan(cos[2]) && isnan(cos[8]));
    ldn_affinity_cosine(dots + NG * NG, NG, cos); /* opposite directions: -1 */
    CU_ASSERT_DOUBLE_EQUAL(cos[1], -1.0, 1e-12);
    ldn_affinity_cosine(t, NG, cos);
    CU_ASSERT_DOUBLE_EQUAL(cos[1], -1.0 / sqrt(15.0), 1e-12);
}

static void test_metrics_row(void)
{
    const char *names[2] = {"a", "group1"};
    const char *t0[1] = {"a"}, *t1[2] = {"b", "c\"q"};
    const char *const *tasks[2] = {t0, t1};
    const int nt[2] = {1, 2};
    const double cos[2 * 4] = {1, 0.5, 0.5, 1, 1, NAN, NAN, NAN};
    const uint64_t together[4] = {7, 3, 3, 4};
    struct ldn_affinity_record r = {.step = 30,
                                    .from = 10,
                                    .to = 20,
                                    .epoch = 1.5,
                                    .G = 2,
                                    .n_layers = 1,
                                    .group_names = names,
                                    .n_group_tasks = nt,
                                    .tasks = tasks,
                                    .cos = cos,
                                    .together = together};
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(ldn_metrics_write_affinity(f, &r), 0);
    fclose(f);
    CU_ASSERT_STRING_EQUAL(text,
                           "{\"kind\":\"affinity\",\"step\":30,\"epoch\":1.5000,\"from_step\":10,"
                           "\"to_step\":20,\"groups\":[\"a\",\"group1\"],\"group_tasks\":[[\"a\"],"
                           "[\"b\",\"c\\\"q\"]],\"cosine\":{\"0\":[[1.000000,0.500000],[0.500000,"
                           "1.000000]],\"trunk\":[[1.000000,null],[null,null]]},"
                           "\"steps_together\":[[7,3],[3,4]]}\n");
    free(text);
}

static const struct ldn_cu_test TESTS[] = {
    {"dots and absent groups", test_dots_and_absent_groups},
    {"many groups", test_many_groups},
    {"windows", test_windows},
    {"cosine and total", test_cosine_and_total},
    {"metrics row", test_metrics_row},
    {NULL, NULL},
};

LDN_CU_MAIN("affinity", TESTS)
