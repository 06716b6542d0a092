/* Tests for common/job/metrics: the exact metrics.jsonl line, non-finite numbers, escaped
 * task names, truncate versus append on resume, and the errors of an unusable run dir. */
#define _POSIX_C_SOURCE 200809L

#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cu_main.h"
#include "status.h"

static char dir[64]; /* a fresh temporary run directory per test */

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/ldn-test-metrics-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
}

static void remove_dir(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    unlink(path);
    CU_ASSERT_EQUAL(rmdir(dir), 0);
}

/* The whole of RUN_DIR/metrics.jsonl in buf (NUL-terminated); returns its length or -1. */
static long read_all(char *buf, size_t len)
{
    char path[128];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (long)n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Write r to a fresh metrics.jsonl and read the line back into buf. */
static void write_one(const struct ldn_eval_record *r, char *buf, size_t len)
{
    char err[LDN_ERRLEN];
    FILE *f = ldn_metrics_open(dir, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(ldn_metrics_write(f, r), LDN_OK);
    fclose(f);
    CU_ASSERT(read_all(buf, len) > 0);
    CU_ASSERT_EQUAL(count_lines(buf), 1);
}

static void expect_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0) {
        fprintf(stderr, "\n    want: %s    got:  %s", want, got);
        CU_FAIL("metrics line differs");
    }
}

/* When python3 is installed, every line of metrics.jsonl must load with json.loads (which
 * refuses NaN and Infinity with parse_constant) as an object with `keys` members. */
static void expect_valid_json(int keys)
{
    if (system("command -v python3 >/dev/null 2>&1") != 0) {
        fprintf(stderr, "\n    (python3 not found: JSON parse check skipped)");
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "def bad(c): raise ValueError(c)\n"
             "for l in open(sys.argv[1], encoding=\"utf-8\"):\n"
             "    o = json.loads(l, parse_constant=bad)\n"
             "    assert isinstance(o, dict) and len(o) == %d, o\n' %s/metrics.jsonl",
             keys, dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static const struct ldn_eval_record FULL = {.task = "category",
                                            .step = 1234567890123LL,
                                            .epoch = 2.5,
                                            .loss = 0.4321,
                                            .accuracy = 0.875,
                                            .test_rows = 10000,
                                            .train_loss = 0.5,
                                            .train_accuracy = 0.8125,
                                            .samples_per_s = 12345.67,
                                            .lr = 0.05,
                                            .elapsed_s = 61.25,
                                            .push_bytes_per_step = 1024,
                                            .pull_bytes_per_step = 2048.5,
                                            .dense_bytes_per_step = 4096,
                                            .residual_norm = 1.5e-3};

/* One line, every field under its name in the documented order and format;
 * dense_bytes_per_step appears as compression_ratio = dense / push. */
static void test_line(void)
{
    make_dir();
    char buf[1024];
    write_one(&FULL, buf, sizeof buf);
    expect_text(buf, "{\"task\":\"category\",\"step\":1234567890123,\"epoch\":2.5000,"
                     "\"loss\":0.4321,\"accuracy\":0.875000,\"test_rows\":10000,"
                     "\"train_loss\":0.5,\"train_accuracy\":0.812500,\"samples_per_s\":12345.7,"
                     "\"lr\":0.05,\"elapsed_s\":61.250,\"push_bytes_per_step\":1024.0,"
                     "\"pull_bytes_per_step\":2048.5,\"compression_ratio\":4.00,"
                     "\"residual_norm\":0.0015}\n");
    expect_valid_json(15);
    remove_dir();
}

/* Local training pushes nothing: compression_ratio is 1, not a division by zero. */
static void test_no_pushes(void)
{
    make_dir();
    struct ldn_eval_record r = FULL;
    r.push_bytes_per_step = 0;
    r.dense_bytes_per_step = 0;
    char buf[1024];
    write_one(&r, buf, sizeof buf);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"push_bytes_per_step\":0.0,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"compression_ratio\":1.00,"));
    remove_dir();
}

/* NaN and infinities (a diverged loss, no training rows since the last evaluation) are
 * written as null, so the line stays JSON. */
static void test_not_finite(void)
{
    make_dir();
    struct ldn_eval_record r = FULL;
    r.epoch = NAN;
    r.loss = NAN;
    r.accuracy = -NAN;
    r.train_loss = INFINITY;
    r.train_accuracy = -INFINITY;
    r.samples_per_s = INFINITY;
    r.lr = NAN;
    r.elapsed_s = -INFINITY;
    r.pull_bytes_per_step = NAN;
    r.dense_bytes_per_step = INFINITY; /* compression_ratio inf */
    r.residual_norm = NAN;
    char buf[1024];
    write_one(&r, buf, sizeof buf);
    expect_text(buf, "{\"task\":\"category\",\"step\":1234567890123,\"epoch\":null,"
                     "\"loss\":null,\"accuracy\":null,\"test_rows\":10000,"
                     "\"train_loss\":null,\"train_accuracy\":null,\"samples_per_s\":null,"
                     "\"lr\":null,\"elapsed_s\":null,\"push_bytes_per_step\":1024.0,"
                     "\"pull_bytes_per_step\":null,\"compression_ratio\":null,"
                     "\"residual_norm\":null}\n");
    expect_valid_json(15);
    /* push NaN: the ratio is not computed from it and the field is null */
    r = FULL;
    r.push_bytes_per_step = NAN;
    write_one(&r, buf, sizeof buf);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"push_bytes_per_step\":null,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, ",\"compression_ratio\":1.00,"));
    expect_valid_json(15);
    remove_dir();
}

/* Quotes, backslashes and control characters in the task name are escaped; other bytes
 * pass through. */
static void test_escapes(void)
{
    make_dir();
    struct ldn_eval_record r = FULL;
    r.task = "a\"b\\c\nd\te\x01\x1f/\x7f\xc3\xa9";
    char buf[1024];
    write_one(&r, buf, sizeof buf);
    const char *want = "{\"task\":\"a\\\"b\\\\c\\u000ad\\u0009e\\u0001\\u001f/\x7f\xc3\xa9\",";
    CU_ASSERT_EQUAL(strncmp(buf, want, strlen(want)), 0);
    expect_valid_json(15);
    if (system("command -v python3 >/dev/null 2>&1") == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import json,sys; "
                 "assert json.loads(open(sys.argv[1], encoding=\"utf-8\").read())[\"task\"] == "
                 "\"a\\\"b\\\\c\\nd\\te\\x01\\x1f/\\x7f\\xe9\"' %s/metrics.jsonl",
                 dir);
        CU_ASSERT_EQUAL(system(cmd), 0);
    }
    r.task = NULL;
    write_one(&r, buf, sizeof buf);
    CU_ASSERT_EQUAL(strncmp(buf, "{\"task\":\"\",", 11), 0);
    remove_dir();
}

/* A fresh run truncates metrics.jsonl; a resume (append != 0) keeps the rows before it. */
static void test_append_truncate(void)
{
    make_dir();
    char err[LDN_ERRLEN], buf[4096];
    struct ldn_eval_record r = FULL;
    FILE *f = ldn_metrics_open(dir, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    r.step = 1;
    CU_ASSERT_EQUAL(ldn_metrics_write(f, &r), LDN_OK);
    r.step = 2;
    CU_ASSERT_EQUAL(ldn_metrics_write(f, &r), LDN_OK);
    /* each write is flushed: the rows are on disk before the file is closed */
    CU_ASSERT(read_all(buf, sizeof buf) > 0);
    CU_ASSERT_EQUAL(count_lines(buf), 2);
    fclose(f);

    f = ldn_metrics_open(dir, 1, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    r.step = 3;
    CU_ASSERT_EQUAL(ldn_metrics_write(f, &r), LDN_OK);
    fclose(f);
    CU_ASSERT(read_all(buf, sizeof buf) > 0);
    CU_ASSERT_EQUAL(count_lines(buf), 3);
    const char *s1 = strstr(buf, "\"step\":1,"), *s2 = strstr(buf, "\"step\":2,"),
               *s3 = strstr(buf, "\"step\":3,");
    CU_ASSERT(s1 && s2 && s3 && s1 < s2 && s2 < s3);
    expect_valid_json(15);

    f = ldn_metrics_open(dir, 0, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    r.step = 4;
    CU_ASSERT_EQUAL(ldn_metrics_write(f, &r), LDN_OK);
    fclose(f);
    CU_ASSERT(read_all(buf, sizeof buf) > 0);
    CU_ASSERT_EQUAL(count_lines(buf), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"step\":4,"));
    remove_dir();
}

/* A run dir that does not exist, or is a file, fails with the path and the OS reason; an
 * over-long one with the directory. */
static void test_open_errors(void)
{
    make_dir();
    char err[LDN_ERRLEN], run[128], want[256];
    for (int append = 0; append < 2; append++) {
        snprintf(run, sizeof run, "%s/missing", dir);
        err[0] = '\0';
        CU_ASSERT_PTR_NULL(ldn_metrics_open(run, append, err, sizeof err));
        snprintf(want, sizeof want, "metrics %s/metrics.jsonl: No such file or directory", run);
        expect_text(err, want);
    }
    snprintf(run, sizeof run, "%s/metrics.jsonl", dir); /* a regular file as the run dir */
    FILE *f = fopen(run, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fclose(f);
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(ldn_metrics_open(run, 0, err, sizeof err));
    snprintf(want, sizeof want, "metrics %s/metrics.jsonl: Not a directory", run);
    expect_text(err, want);

    char *longdir = malloc(4096);
    CU_ASSERT_PTR_NOT_NULL_FATAL(longdir);
    memset(longdir, 'd', 4095);
    longdir[0] = '/';
    longdir[4095] = '\0';
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(ldn_metrics_open(longdir, 0, err, sizeof err));
    CU_ASSERT_EQUAL(strncmp(err, "metrics: run directory /ddd", 27), 0);
    free(longdir);
    remove_dir();
}

/* A full disk makes the write (which flushes) fail with LDN_ERR_IO. */
static void test_write_error(void)
{
    FILE *f = fopen("/dev/full", "w");
    if (!f) {
        fprintf(stderr, "\n    (no /dev/full: skipped)");
        return;
    }
    CU_ASSERT_EQUAL(ldn_metrics_write(f, &FULL), LDN_ERR_IO);
    fclose(f);
}

static const struct ldn_cu_test TESTS[] = {
    {"one line, every field under its name", test_line},
    {"no pushes: compression ratio 1", test_no_pushes},
    {"NaN and infinities written as null", test_not_finite},
    {"task names escaped", test_escapes},
    {"truncate when fresh, append on resume", test_append_truncate},
    {"unusable run dir names the path", test_open_errors},
    {"write to a full disk fails", test_write_error},
    {NULL, NULL}};

LDN_CU_MAIN("metrics", TESTS)
