/* The run's phase list (common/job/phases): what the local trainer and the coordinator do, in
 * order, for a handful of configs, and the driver that walks it. */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "cu_main.h"
#include "phases.h"
#include "status.h"

#define MINIMAL "data:\n  dir: data/fmnist\nmodel:\n  trunk: [8]\ntasks:\n  category:\n"

static struct ldn_config *config(const char *extra)
{
    char yaml[1024], err[LDN_ERRLEN] = "";
    snprintf(yaml, sizeof yaml, "%s%s", MINIMAL, extra);
    struct ldn_config *cfg =
        ldn_config_parse(yaml, strlen(yaml), "t.yaml", 0, NULL, err, sizeof err);
    if (!cfg)
        fprintf(stderr, "config: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    return cfg;
}

/* The list as text: T<from>-<to>, E<step>, C<step> (c when only if due), P<step>, S<step>, R<step>
 * (prune). */
static void text(const struct ldn_phases *p, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < p->n && off < len; i++) {
        const struct ldn_phase *ph = &p->list[i];
        const char *sep = i ? " " : "";
        if (ph->kind == LDN_PHASE_TRAIN)
            off += (size_t)snprintf(buf + off, len - off, "%sT%lld-%lld", sep, (long long)ph->from,
                                    (long long)ph->to);
        else
            off += (size_t)snprintf(buf + off, len - off, "%s%c%lld", sep,
                                    "TECPSR"[ph->kind] + (ph->if_due ? 'a' - 'A' : 0),
                                    (long long)ph->to);
    }
}

/* The phase list of cfg (extra YAML) for steps_per_epoch and epochs from start equals want. */
static void expect(const char *extra, int64_t spe, int64_t total, int64_t start, const char *want)
{
    struct ldn_config *cfg = config(extra);
    struct ldn_phases p;
    char err[LDN_ERRLEN], got[2048];
    CU_ASSERT_EQUAL_FATAL(ldn_phases_build(cfg, spe, total, start, &p, err, sizeof err), 0);
    text(&p, got, sizeof got);
    if (strcmp(got, want) != 0)
        fprintf(stderr, "\n    want: %s\n    got:  %s\n", want, got);
    CU_ASSERT_STRING_EQUAL(got, want);
    ldn_phases_deinit(&p);
    ldn_config_destroy(&cfg);
}

static void test_defaults(void)
{
    /* an evaluation per epoch, one final checkpoint, then stop */
    expect("", 10, 30, 0, "T0-10 E10 T10-20 E20 T20-30 E30 C30 S30");
    /* a last partial evaluation period still ends with an evaluation */
    expect("train:\n  eval_every: 2\n", 10, 30, 0, "T0-20 E20 T20-30 E30 C30 S30");
    expect("checkpoint:\n  final: false\n", 10, 20, 0, "T0-10 E10 T10-20 E20 S20");
}

static void test_every_steps(void)
{
    expect("train:\n  eval_every: 0.5\ncheckpoint:\n  every_steps: 7\n", 10, 20, 0,
           "T0-5 E5 T5-7 C7 T7-10 E10 T10-14 C14 T14-15 E15 T15-20 E20 C20 S20");
    /* a checkpoint step that is also an evaluation: evaluate first, one checkpoint */
    expect("checkpoint:\n  every_steps: 10\n", 10, 20, 0, "T0-10 E10 C10 T10-20 E20 C20 S20");
}

static void test_every_minutes(void)
{
    /* the clock is looked at every log mark: a checkpoint there if its minutes are up */
    expect("train:\n  log_every: 3\ncheckpoint:\n  every_minutes: 1\n  final: false\n", 10, 10, 0,
           "T0-3 c3 T3-6 c6 T6-9 c9 T9-10 E10 c10 S10");
    /* without log marks, at every evaluation; the final one is not conditional */
    expect("train:\n  log_every: 0\ncheckpoint:\n  every_minutes: 5\n", 10, 20, 0,
           "T0-10 E10 c10 T10-20 E20 C20 S20");
}

static void test_resume(void)
{
    /* mid-run: the first phase trains to the next boundary */
    expect("", 10, 30, 13, "T13-20 E20 T20-30 E30 C30 S30");
    expect("checkpoint:\n  every_steps: 4\n", 10, 20, 13, "T13-16 C16 T16-20 E20 C20 S20");
    /* resumed at the end: nothing left but the stop */
    expect("", 10, 30, 30, "S30");
    struct ldn_config *cfg = config("");
    struct ldn_phases p;
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL(ldn_phases_build(cfg, 10, 30, 31, &p, err, sizeof err), LDN_ERR_ARG);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "start step 31"));
    ldn_config_destroy(&cfg);
}

/* Insert a PLAN phase at `at` into the default list of 3 epochs of 10 steps. */
static int insert_plan(int64_t at, char *got, size_t len)
{
    struct ldn_config *cfg = config("");
    struct ldn_phases p;
    char err[LDN_ERRLEN];
    CU_ASSERT_EQUAL_FATAL(ldn_phases_build(cfg, 10, 30, 0, &p, err, sizeof err), 0);
    struct ldn_phase ph = {.kind = LDN_PHASE_PLAN, .to = at, .arg = 1};
    int rc = ldn_phases_insert(&p, &ph, err, sizeof err);
    text(&p, got, len);
    ldn_phases_deinit(&p);
    ldn_config_destroy(&cfg);
    return rc;
}

/* prune: a PRUNE phase before every mask update, after that step's eval and checkpoint; on a
 * resume at a mask step, first of all */
static void test_prune(void)
{
    const char *p = "prune: {sparsity: 0.5, start: 2, end: 8, every: 3}\n";
    expect(p, 5, 10, 0, "T0-2 R2 T2-5 E5 R5 T5-8 R8 T8-10 E10 C10 S10");
    expect(p, 5, 10, 5, "R5 T5-8 R8 T8-10 E10 C10 S10");
}

static void test_insert(void)
{
    char got[1024];
    CU_ASSERT_EQUAL(insert_plan(15, got, sizeof got), 0);
    CU_ASSERT_STRING_EQUAL(got, "T0-10 E10 T10-15 P15 T15-20 E20 T20-30 E30 C30 S30");
    CU_ASSERT_EQUAL(insert_plan(20, got, sizeof got), 0); /* after what happens at step 20 */
    CU_ASSERT_STRING_EQUAL(got, "T0-10 E10 T10-20 E20 P20 T20-30 E30 C30 S30");
    CU_ASSERT_EQUAL(insert_plan(0, got, sizeof got), 0);
    CU_ASSERT_STRING_EQUAL(got, "P0 T0-10 E10 T10-20 E20 T20-30 E30 C30 S30");
    CU_ASSERT_EQUAL(insert_plan(30, got, sizeof got), LDN_ERR_ARG); /* nothing left to train */
    CU_ASSERT_EQUAL(insert_plan(-1, got, sizeof got), LDN_ERR_ARG);
}

struct calls {
    char log[256];
    int fail_at_eval;
};

static int record(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct calls *c = ud;
    size_t n = strlen(c->log);
    snprintf(c->log + n, sizeof c->log - n, "%s%s@%lld", n ? " " : "", ldn_phase_name(ph->kind),
             (long long)ph->to);
    if (ph->kind == LDN_PHASE_EVAL && c->fail_at_eval == ph->to)
        return ldn_fail(err, errlen, LDN_ERR_IO, "eval %lld failed", (long long)ph->to);
    return 0;
}

/* Walk the every-minutes list of test_every_minutes with every_minutes = m. */
static int walk(double minutes, int fail_at_eval, char *log, size_t len, char *err)
{
    struct ldn_config *cfg = config("train:\n  log_every: 5\ncheckpoint:\n  every_minutes: 1\n");
    struct ldn_phases p;
    CU_ASSERT_EQUAL_FATAL(ldn_phases_build(cfg, 10, 10, 0, &p, err, LDN_ERRLEN), 0);
    const struct ldn_phase_ops ops = {
        .fn = {[LDN_PHASE_TRAIN] = record, [LDN_PHASE_EVAL] = record, [LDN_PHASE_CKPT] = record}};
    struct calls c = {"", fail_at_eval};
    int rc = ldn_phases_run(&p, &ops, &c, minutes, err, LDN_ERRLEN);
    snprintf(log, len, "%s", c.log);
    ldn_phases_deinit(&p);
    ldn_config_destroy(&cfg);
    return rc;
}

static void test_run(void)
{
    char log[256], err[LDN_ERRLEN];
    /* the minutes never pass: only the final checkpoint; STOP has no handler here */
    CU_ASSERT_EQUAL(walk(1e6, -1, log, sizeof log, err), 0);
    CU_ASSERT_STRING_EQUAL(log, "train@5 train@10 eval@10 checkpoint@10");
    /* they always have: a checkpoint at every look */
    CU_ASSERT_EQUAL(walk(1e-12, -1, log, sizeof log, err), 0);
    CU_ASSERT_STRING_EQUAL(log, "train@5 checkpoint@5 train@10 eval@10 checkpoint@10");
    /* a failing handler ends the walk with its status and message */
    CU_ASSERT_EQUAL(walk(1e6, 10, log, sizeof log, err), LDN_ERR_IO);
    CU_ASSERT_STRING_EQUAL(log, "train@5 train@10 eval@10");
    CU_ASSERT_STRING_EQUAL(err, "eval 10 failed");
}

static const struct ldn_cu_test TESTS[] = {
    {"defaults: evaluations and the final checkpoint", test_defaults},
    {"checkpoint.every_steps", test_every_steps},
    {"checkpoint.every_minutes", test_every_minutes},
    {"resume mid-run", test_resume},
    {"a phase inserted mid-run", test_insert},
    {"the driver", test_run},
    {"prune phases", test_prune},
    {NULL, NULL}};

LDN_CU_MAIN("phases", TESTS)
