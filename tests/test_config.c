/* Tests for common/config: schema, defaults, exact error messages, overrides, round trip. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"
#include "cu_main.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MINIMAL "data:\n  dir: data/fmnist\nmodel:\n  trunk: [256]\ntasks:\n  category:\n"

static struct ldn_config *parse_over(const char *yaml, int n_over, char *const *over, char *err)
{
    err[0] = '\0';
    return ldn_config_parse(yaml, strlen(yaml), "t.yaml", n_over, over, err, LDN_ERRLEN);
}

static struct ldn_config *parse(const char *yaml, char *err)
{
    return parse_over(yaml, 0, NULL, err);
}

/* Parsing must fail with exactly `want`; on a mismatch print both. */
static void check_err(int line, const char *yaml, const char *ov, const char *want)
{
    char err[LDN_ERRLEN];
    char *over[1] = {(char *)ov};
    struct ldn_config *cfg = parse_over(yaml, ov ? 1 : 0, over, err);
    CU_ASSERT_PTR_NULL(cfg);
    ldn_config_destroy(&cfg);
    if (strcmp(err, want)) {
        fprintf(stderr, "\n  test_config.c:%d\n    want: %s\n    got:  %s\n", line, want, err);
        CU_FAIL("error message differs");
    }
    CU_ASSERT_PTR_NULL(strchr(err, '\n'));
}
#define EXPECT_ERR(yaml, want) check_err(__LINE__, yaml, NULL, want)
#define EXPECT_OVER_ERR(yaml, ov, want) check_err(__LINE__, yaml, ov, want)

static const char FULL[] = "run:\n"
                           "  name: exp1\n"
                           "  dir: /tmp/ladon-runs/exp1\n"
                           "  seed: 18446744073709551615\n"
                           "data:\n"
                           "  dir: data/fmnist/\n"
                           "model:\n"
                           "  trunk: [512, 256, 128]\n"
                           "  activation: tanh\n"
                           "tasks:\n"
                           "  category:\n"
                           "    weight: 2.5\n"
                           "    workers: 3\n"
                           "    head: [64, 32]\n"
                           "  group:\n"
                           "    file: /abs/group.h5\n"
                           "  parity: {file: sub/parity-v2.h5, workers: 0}\n"
                           "train:\n"
                           "  epochs: 7\n"
                           "  batch_size: 65536\n"
                           "  steps_per_epoch: 5000000000\n"
                           "  optimizer: adamw\n"
                           "  lr: 3e-4\n"
                           "  momentum: 0.5\n"
                           "  nesterov: Yes\n"
                           "  weight_decay: 0.01\n"
                           "  beta1: 0.8\n"
                           "  beta2: 0.99\n"
                           "  eps: 1e-6\n"
                           "  lr_schedule: cosine\n"
                           "  warmup_steps: 200\n"
                           "  lr_step_epochs: 2.5\n"
                           "  lr_gamma: 1\n"
                           "  lr_min: 1e-5\n"
                           "  sampling: round_robin\n"
                           "  sampling_alpha: 0\n"
                           "  log_every: 0\n"
                           "  eval_every: 0.5\n"
                           "  threads: 64\n"
                           "ps:\n"
                           "  servers: 4\n"
                           "  consistency: ssp\n"
                           "  staleness: 0\n"
                           "  timeout: 2.5\n"
                           "  interface: eth0\n";

static void test_full(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(FULL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->source, "t.yaml");
    CU_ASSERT_STRING_EQUAL(cfg->run_name, "exp1");
    CU_ASSERT_STRING_EQUAL(cfg->run_dir, "/tmp/ladon-runs/exp1");
    CU_ASSERT(cfg->seed == UINT64_MAX);
    CU_ASSERT_STRING_EQUAL(cfg->data_dir, "data/fmnist/");
    CU_ASSERT_EQUAL(cfg->n_trunk, 3);
    CU_ASSERT(cfg->trunk[0] == 512 && cfg->trunk[1] == 256 && cfg->trunk[2] == 128);
    CU_ASSERT_EQUAL(cfg->activation, LDN_ACT_TANH);
    CU_ASSERT_EQUAL_FATAL(cfg->n_tasks, 3);
    const struct ldn_task_config *t = cfg->tasks;
    CU_ASSERT_STRING_EQUAL(t[0].name, "category");
    CU_ASSERT_STRING_EQUAL(t[0].file, "data/fmnist/category.h5");
    CU_ASSERT_DOUBLE_EQUAL(t[0].weight, 2.5, 0);
    CU_ASSERT_EQUAL(t[0].workers, 3);
    CU_ASSERT(t[0].n_head == 2 && t[0].head[0] == 64 && t[0].head[1] == 32);
    CU_ASSERT_STRING_EQUAL(t[1].name, "group");
    CU_ASSERT_STRING_EQUAL(t[1].file, "/abs/group.h5");
    CU_ASSERT_DOUBLE_EQUAL(t[1].weight, 1.0, 0);
    CU_ASSERT_EQUAL(t[1].n_head, 0);
    CU_ASSERT_STRING_EQUAL(t[2].name, "parity");
    CU_ASSERT_STRING_EQUAL(t[2].file, "data/fmnist/sub/parity-v2.h5");
    CU_ASSERT_EQUAL(t[2].workers, 0);
    CU_ASSERT_EQUAL(cfg->epochs, 7);
    CU_ASSERT_EQUAL(cfg->batch_size, 65536);
    CU_ASSERT(cfg->steps_per_epoch == 5000000000LL);
    CU_ASSERT_EQUAL(cfg->optim.kind, LDN_OPTIM_ADAMW);
    CU_ASSERT(cfg->optim.lr == 3e-4);
    CU_ASSERT(cfg->optim.momentum == 0.5);
    CU_ASSERT(cfg->optim.nesterov);
    CU_ASSERT(cfg->optim.weight_decay == 0.01);
    CU_ASSERT(cfg->optim.beta1 == 0.8 && cfg->optim.beta2 == 0.99 && cfg->optim.eps == 1e-6);
    CU_ASSERT_EQUAL(cfg->lr.kind, LDN_LR_COSINE);
    CU_ASSERT(cfg->lr.warmup_steps == 200);
    CU_ASSERT(cfg->lr.step_epochs == 2.5 && cfg->lr.gamma == 1.0 && cfg->lr.min_lr == 1e-5);
    CU_ASSERT_EQUAL(cfg->sampling, LDN_SAMPLE_ROUND_ROBIN);
    CU_ASSERT(cfg->sampling_alpha == 0.0);
    CU_ASSERT(cfg->log_every == 0);
    CU_ASSERT(cfg->eval_every == 0.5);
    CU_ASSERT_EQUAL(cfg->threads, 64);
    CU_ASSERT_EQUAL(cfg->servers, 4);
    CU_ASSERT_EQUAL(cfg->consistency, LDN_SSP);
    CU_ASSERT_EQUAL(cfg->staleness, 0);
    CU_ASSERT(cfg->timeout_s == 2.5);
    CU_ASSERT_STRING_EQUAL(cfg->iface, "eth0");
    CU_ASSERT_EQUAL(ldn_config_task_index(cfg, "parity"), 2);
    CU_ASSERT_EQUAL(ldn_config_task_index(cfg, "nope"), -1);
    ldn_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(cfg);
    ldn_config_destroy(&cfg); /* NULL is fine */
    ldn_config_destroy(NULL);
}

static void test_defaults(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg =
        ldn_config_parse(MINIMAL, strlen(MINIMAL), "configs/quick.yml", 0, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->run_name, "quick");
    CU_ASSERT_STRING_EQUAL(cfg->run_dir, "runs/quick");
    CU_ASSERT(cfg->seed == 1);
    CU_ASSERT_EQUAL(cfg->activation, LDN_ACT_RELU);
    CU_ASSERT_EQUAL_FATAL(cfg->n_tasks, 1);
    CU_ASSERT_STRING_EQUAL(cfg->tasks[0].file, "data/fmnist/category.h5");
    CU_ASSERT(cfg->tasks[0].weight == 1.0 && cfg->tasks[0].workers == 0);
    CU_ASSERT_EQUAL(cfg->tasks[0].n_head, 0);
    CU_ASSERT_EQUAL(cfg->epochs, 10);
    CU_ASSERT_EQUAL(cfg->batch_size, 128);
    CU_ASSERT(cfg->steps_per_epoch == 0);
    CU_ASSERT_EQUAL(cfg->optim.kind, LDN_OPTIM_SGD);
    CU_ASSERT(cfg->optim.lr == 0.05 && cfg->optim.momentum == 0.9 && !cfg->optim.nesterov);
    CU_ASSERT(cfg->optim.weight_decay == 0 && cfg->optim.beta1 == 0.9);
    CU_ASSERT(cfg->optim.beta2 == 0.999 && cfg->optim.eps == 1e-8);
    CU_ASSERT_EQUAL(cfg->lr.kind, LDN_LR_CONSTANT);
    CU_ASSERT(cfg->lr.warmup_steps == 0 && cfg->lr.step_epochs == 10);
    CU_ASSERT(cfg->lr.gamma == 0.1 && cfg->lr.min_lr == 0);
    CU_ASSERT_EQUAL(cfg->sampling, LDN_SAMPLE_POWER);
    CU_ASSERT(cfg->sampling_alpha == 0.75);
    CU_ASSERT(cfg->log_every == 100 && cfg->eval_every == 1.0);
    CU_ASSERT_EQUAL(cfg->threads, 1);
    CU_ASSERT_EQUAL(cfg->servers, 1);
    CU_ASSERT_EQUAL(cfg->consistency, LDN_BSP);
    CU_ASSERT(cfg->curve); /* net.curve: on unless switched off */
    CU_ASSERT_EQUAL(cfg->staleness, 2);
    CU_ASSERT(cfg->timeout_s == 60);
    CU_ASSERT_STRING_EQUAL(cfg->iface, "auto");
    CU_ASSERT_STRING_EQUAL(ldn_optim_name(cfg->optim.kind), "sgd");
    CU_ASSERT_STRING_EQUAL(ldn_lr_name(LDN_LR_STEP), "step");
    CU_ASSERT_STRING_EQUAL(ldn_consistency_name(LDN_ASYNC), "async");
    CU_ASSERT_STRING_EQUAL(ldn_activation_name(LDN_ACT_TANH), "tanh");
    ldn_config_destroy(&cfg);

    /* empty sections are allowed and give defaults */
    cfg = parse(MINIMAL "train:\nps: ~\nrun: {}\n", err);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    ldn_config_destroy(&cfg);
}

static void test_errors_keys(void)
{
    EXPECT_ERR(MINIMAL "train:\n  epochs: 3\n  lrr: 0.1\n",
               "config t.yaml:9:3: train.lrr: unknown key (allowed in train: epochs, batch_size, "
               "steps_per_epoch, optimizer, lr, momentum, nesterov, weight_decay, beta1, beta2, "
               "eps, lr_schedule, warmup_steps, lr_step_epochs, lr_gamma, lr_min, sampling, "
               "sampling_alpha, log_every, eval_every, threads, task_weighting, dwa_temperature)");
    EXPECT_ERR(MINIMAL "trian:\n  epochs: 3\n",
               "config t.yaml:7:1: trian: unknown key (allowed at the top level: run, data, "
               "model, tasks, train, ps, compress, checkpoint, net, prune, rounds)");
    EXPECT_ERR(MINIMAL "    wieght: 2\n",
               "config t.yaml:7:5: tasks.category.wieght: unknown key (allowed in "
               "tasks.category: file, weight, workers, head)");
    EXPECT_ERR("model:\n  trunk: [8]\ntasks:\n  a:\n",
               "config t.yaml: data.dir: required key is missing");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  activation: relu\ntasks:\n  a:\n",
               "config t.yaml: model.trunk: required key is missing");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\n",
               "config t.yaml: tasks: required key is missing (at least one task)");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\ntasks:\n",
               "config t.yaml:5:7: tasks: must name at least one task, got none");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\ntasks: {}\n",
               "config t.yaml:5:8: tasks: must name at least one task, got none");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\ntasks:\n  bad name:\n",
               "config t.yaml:6:3: tasks: task names must match [A-Za-z0-9_-]+ and be at most "
               "63 characters, got 'bad name'");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\ntasks:\n  a:\n  a:\n",
               "config t.yaml:7:3: tasks.a: duplicate key (first at line 6)");
    EXPECT_ERR(MINIMAL "train:\n  lr: 0.1\n  lr: 0.2\n",
               "config t.yaml:9:3: train.lr: duplicate key (first at line 8)");
    EXPECT_ERR(MINIMAL "data:\n  dir: x\n",
               "config t.yaml:7:1: data: duplicate key (first at line 1)");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8]\ntasks:\n  a: 3\n",
               "config t.yaml:6:6: tasks.a: must be a mapping (file, weight, workers, head) or "
               "empty, got 3");
    EXPECT_ERR(MINIMAL "ps: [1, 2]\n",
               "config t.yaml:7:5: ps: must be a mapping of keys, got a list");
    EXPECT_ERR(MINIMAL "? [a]\n: 1\n", "config t.yaml:7:3: keys must be plain names, got a list");
}

static void test_errors_values(void)
{
    EXPECT_ERR(MINIMAL "train:\n  epochs: three\n",
               "config t.yaml:8:11: train.epochs: must be an integer >= 1, got 'three'");
    EXPECT_ERR(MINIMAL "train:\n  epochs: 2.0\n",
               "config t.yaml:8:11: train.epochs: must be an integer >= 1, got 2.0");
    EXPECT_ERR(MINIMAL "train:\n  batch_size: 0\n",
               "config t.yaml:8:15: train.batch_size: must be an integer in [1, 65536], got 0");
    EXPECT_ERR(MINIMAL "train:\n  momentum: 1.0\n",
               "config t.yaml:8:13: train.momentum: must be a number in [0, 1), got 1.0");
    EXPECT_ERR(MINIMAL "train:\n  lr: -1\n",
               "config t.yaml:8:7: train.lr: must be a number > 0, got -1");
    EXPECT_ERR(MINIMAL "train:\n  lr: nan\n",
               "config t.yaml:8:7: train.lr: must be a number > 0, got nan");
    EXPECT_ERR(MINIMAL "train:\n  lr_gamma: 1e999\n",
               "config t.yaml:8:13: train.lr_gamma: must be a number in (0, 1], got 1e999");
    EXPECT_ERR(MINIMAL "train:\n  lr: \"0.1x\"\n",
               "config t.yaml:8:7: train.lr: must be a number > 0, got '0.1x'");
    EXPECT_ERR(MINIMAL "train:\n  optimizer: sgdd\n",
               "config t.yaml:8:14: train.optimizer: must be one of sgd, adam, adamw, got 'sgdd'");
    EXPECT_ERR(MINIMAL "train:\n  optimizer: [sgd]\n",
               "config t.yaml:8:14: train.optimizer: must be one of sgd, adam, adamw, got a list");
    EXPECT_ERR(MINIMAL "train:\n  nesterov: maybe\n",
               "config t.yaml:8:13: train.nesterov: must be true or false, got 'maybe'");
    EXPECT_ERR(MINIMAL "train:\n  nesterov: true\n  momentum: 0\n",
               "config t.yaml:8:13: train.nesterov: true needs train.momentum > 0, got momentum 0");
    EXPECT_ERR(MINIMAL "train:\n  epochs: 99999999999999999999\n",
               "config t.yaml:8:11: train.epochs: must be an integer >= 1, got "
               "99999999999999999999 (too large)");
    EXPECT_ERR(MINIMAL "train:\n  epochs: 3000000000\n",
               "config t.yaml:8:11: train.epochs: must be an integer >= 1, got 3000000000 (too "
               "large)");
    EXPECT_ERR(MINIMAL "run:\n  seed: -1\n",
               "config t.yaml:8:9: run.seed: must be an integer >= 0, got -1");
    EXPECT_ERR(MINIMAL "ps:\n  staleness: 1000001\n",
               "config t.yaml:8:14: ps.staleness: must be an integer in [0, 1000000], got 1000001");
    EXPECT_ERR(MINIMAL "    workers: -1\n",
               "config t.yaml:7:14: tasks.category.workers: must be an integer >= 0, got -1");
    EXPECT_ERR(MINIMAL "run:\n  name:\n",
               "config t.yaml:8:8: run.name: must be a non-empty string, got nothing (null)");
    EXPECT_ERR(MINIMAL "run:\n  name: {a: 1}\n",
               "config t.yaml:8:9: run.name: must be a non-empty string, got a mapping");
    EXPECT_ERR(MINIMAL
               "run:\n  name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
               "config t.yaml:8:9: run.name: must be at most 63 characters long, got 64");
}

static void test_errors_lists(void)
{
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: 256\ntasks:\n  a:\n",
               "config t.yaml:4:10: model.trunk: must be a list of 1 to 16 integers, e.g. [256, "
               "256], got 256");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: []\ntasks:\n  a:\n",
               "config t.yaml:4:10: model.trunk: must have 1 to 16 entries, got 0");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8, 0]\ntasks:\n  a:\n",
               "config t.yaml:4:14: model.trunk: each entry must be an integer in [1, 1000000], "
               "got 0");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [8, [9]]\ntasks:\n  a:\n",
               "config t.yaml:4:14: model.trunk: each entry must be an integer in [1, 1000000], "
               "got a list");
    EXPECT_ERR("data:\n  dir: d\nmodel:\n  trunk: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]\n"
               "tasks:\n  a:\n",
               "config t.yaml:4:10: model.trunk: must have 1 to 16 entries, got 17");
    EXPECT_ERR(MINIMAL "    head: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]\n",
               "config t.yaml:7:11: tasks.category.head: must have 0 to 15 entries, got 16");
}

static void test_errors_documents(void)
{
    EXPECT_ERR("", "config t.yaml: empty document (expected a mapping with data, model, tasks)");
    EXPECT_ERR("# only a comment\n",
               "config t.yaml: empty document (expected a mapping with data, model, tasks)");
    EXPECT_ERR("---\n",
               "config t.yaml: empty document (expected a mapping with data, model, tasks)");
    EXPECT_ERR("hello\n", "config t.yaml:1:1: the top level must be a mapping with data, model, "
                          "tasks, got 'hello'");
    EXPECT_ERR("- a\n- b\n",
               "config t.yaml:1:1: the top level must be a mapping with data, model, tasks, got a "
               "list");
    EXPECT_ERR("data:\n  dir: d\n model: x\n",
               "config t.yaml:3:2: YAML syntax error: did not find expected key while parsing a "
               "block mapping");
    EXPECT_ERR("data: [1, 2\n",
               "config t.yaml:2:1: YAML syntax error: did not find expected ',' or ']' while "
               "parsing a flow sequence");
    EXPECT_ERR("data: *nope\n", "config t.yaml:1:7: YAML syntax error: found undefined alias");
    EXPECT_ERR(MINIMAL "---\nx: 1\n",
               "config t.yaml:8:1: a second YAML document (expected only one)");
    /* aliases: allowed, resolved by libyaml; a self-referencing alias must not loop */
    char err[LDN_ERRLEN];
    struct ldn_config *cfg =
        parse("data: {dir: d}\nmodel: {trunk: &w [32, 32]}\ntasks:\n  a: {head: *w}\n", err);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg)
        CU_ASSERT(cfg->tasks[0].n_head == 2 && cfg->tasks[0].head[1] == 32);
    ldn_config_destroy(&cfg);
    EXPECT_ERR("&r {data: *r}\n",
               "config t.yaml:1:5: data.data: unknown key (allowed in data: dir, max_memory_mb)");
}

/* Inputs that only have to fail cleanly (message not pinned), under ASan. */
static void test_garbage(void)
{
    static const char *const inputs[] = {
        "\xff\xfe\x00",     "[[[[[[[[[[[[",
        "{a: {b: {c: {d: ", "!!binary abc",
        "data: !!map {}\n", "? \n: \n",
        "\"\\u0000\": 1\n", "tasks:\n  \"\\0x\": {}\n",
        "&a [*a]\n",        "data: &a {dir: *a}\nmodel: {trunk: [1]}\ntasks: {a: }\n",
        "tasks: *a\n",      "%YAML 9.9\n---\na\n",
    };
    char err[LDN_ERRLEN];
    for (size_t i = 0; i < LDN_ARRAY_LEN(inputs); i++) {
        struct ldn_config *cfg = parse(inputs[i], err);
        CU_ASSERT_PTR_NULL(cfg);
        CU_ASSERT(err[0] != '\0');
        CU_ASSERT_PTR_NULL(strchr(err, '\n'));
        ldn_config_destroy(&cfg);
    }
    /* deep nesting and a very long string */
    size_t n = 100000;
    char *deep = malloc(2 * n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(deep);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    struct ldn_config *cfg = parse(deep, err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_STRING_EQUAL(err, "config t.yaml:1:33: YAML nested deeper than 32 levels");
    memcpy(deep, "run: {name: ", 12);
    memset(deep + 12, 'x', 2 * n - 12);
    cfg = parse(deep, err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT(strlen(err) < 400);
    free(deep);
    /* many tasks: more than LDN_MAX_TASKS */
    size_t cap = 64 + 16 * (LDN_MAX_TASKS + 2);
    char *big = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    size_t len = (size_t)snprintf(big, cap, "data: {dir: d}\nmodel: {trunk: [4]}\ntasks:\n");
    for (int i = 0; i <= LDN_MAX_TASKS; i++)
        len += (size_t)snprintf(big + len, cap - len, "  t%d:\n", i);
    cfg = parse(big, err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_STRING_EQUAL(err, "config t.yaml:4:3: tasks: must have at most 1024 tasks, got 1025");
    free(big);
}

/* net.max_message_mb, net.queue_messages, data.max_memory_mb: defaults, values, bad values
 * (what a job needs is checked at start-up against its key layout: tests/mpi/bounds.sh). */
static void test_bounds(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(MINIMAL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT(cfg->max_message_mb == 0);     /* automatic */
    CU_ASSERT(cfg->data_max_memory_mb == 0); /* automatic */
    CU_ASSERT_EQUAL(cfg->queue_messages, 10000);
    ldn_config_destroy(&cfg);
    char *over[] = {"net.max_message_mb=1.5", "net.queue_messages=200", "data.max_memory_mb=512"};
    cfg = parse_over(MINIMAL, 3, over, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT(cfg->max_message_mb == 1.5);
    CU_ASSERT_EQUAL(cfg->queue_messages, 200);
    CU_ASSERT(cfg->data_max_memory_mb == 512);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->resolved_yaml, "max_memory_mb"));
    ldn_config_destroy(&cfg);
    EXPECT_ERR(MINIMAL "net:\n  max_message_mb: -1\n",
               "config t.yaml:8:19: net.max_message_mb: must be a number in [0, 1048576], got -1");
    EXPECT_ERR(MINIMAL "net:\n  max_message_mb: lots\n",
               "config t.yaml:8:19: net.max_message_mb: must be a number in [0, 1048576], got "
               "'lots'");
    EXPECT_ERR(
        MINIMAL "net:\n  queue_messages: 0\n",
        "config t.yaml:8:19: net.queue_messages: must be an integer in [1, 10000000], got 0");
    EXPECT_ERR(MINIMAL "net:\n  queue_messages: 1.5\n",
               "config t.yaml:8:19: net.queue_messages: must be an integer in [1, 10000000], got "
               "1.5");
    EXPECT_OVER_ERR(MINIMAL, "data.max_memory_mb=-5",
                    "config override 'data.max_memory_mb=-5': data.max_memory_mb: must be a "
                    "number in [0, 1073741824], got -5");
    EXPECT_OVER_ERR(MINIMAL, "data.max_memory_mb=inf",
                    "config override 'data.max_memory_mb=inf': data.max_memory_mb: must be a "
                    "number in [0, 1073741824], got inf");
}

static void test_overrides(void)
{
    char err[LDN_ERRLEN];
    char *over[] = {"train.lr=0.2",
                    "tasks.category.weight=2",
                    "model.trunk=[128,64]",
                    "ps.consistency=async",
                    "train.optimizer='adam'",
                    "run.seed=42",
                    "tasks.category.head=[16]",
                    "train.nesterov=on",
                    "run.name=over",
                    "ps.interface=\"lo 0\"",
                    "net.curve=false"};
    struct ldn_config *cfg = parse_over(MINIMAL "train:\n  lr: 0.1\n", 11, over, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT(cfg->optim.lr == 0.2);
    CU_ASSERT(cfg->tasks[0].weight == 2.0);
    CU_ASSERT(cfg->n_trunk == 2 && cfg->trunk[0] == 128 && cfg->trunk[1] == 64);
    CU_ASSERT_EQUAL(cfg->consistency, LDN_ASYNC);
    CU_ASSERT_EQUAL(cfg->optim.kind, LDN_OPTIM_ADAM);
    CU_ASSERT(cfg->seed == 42);
    CU_ASSERT(cfg->tasks[0].n_head == 1 && cfg->tasks[0].head[0] == 16);
    CU_ASSERT(cfg->optim.nesterov);
    CU_ASSERT_STRING_EQUAL(cfg->run_name, "over");
    CU_ASSERT_STRING_EQUAL(cfg->run_dir, "runs/over");
    CU_ASSERT_STRING_EQUAL(cfg->iface, "lo 0");
    CU_ASSERT(!cfg->curve);
    ldn_config_destroy(&cfg);

    /* a later override wins over an earlier one; sections may be created by overrides */
    char *twice[] = {"train.epochs=2", "train.epochs=5", "data.dir=/data"};
    cfg = parse_over("model: {trunk: [4]}\ntasks: {a: }\n", 3, twice, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->epochs, 5);
    CU_ASSERT_STRING_EQUAL(cfg->tasks[0].file, "/data/a.h5");
    ldn_config_destroy(&cfg);

    EXPECT_OVER_ERR(MINIMAL, "train.lr=abc",
                    "config override 'train.lr=abc': train.lr: must be a number > 0, got 'abc'");
    EXPECT_OVER_ERR(MINIMAL "train:\n  lr: 0.1\n", "train.lr=-0.5",
                    "config override 'train.lr=-0.5': train.lr: must be a number > 0, got -0.5");
    EXPECT_OVER_ERR(MINIMAL, "train.lrr=1",
                    "config override 'train.lrr=1': train.lrr: unknown key (allowed in train: "
                    "epochs, batch_size, steps_per_epoch, optimizer, lr, momentum, nesterov, "
                    "weight_decay, beta1, beta2, eps, lr_schedule, warmup_steps, lr_step_epochs, "
                    "lr_gamma, lr_min, sampling, sampling_alpha, log_every, eval_every, threads, "
                    "task_weighting, dwa_temperature)");
    EXPECT_OVER_ERR(
        MINIMAL, "trian.lr=1",
        "config override 'trian.lr=1': trian: unknown key (allowed at the top level: "
        "run, data, model, tasks, train, ps, compress, checkpoint, net, prune, rounds)");
    EXPECT_OVER_ERR(MINIMAL "  group:\n", "tasks.x.weight=2",
                    "config override 'tasks.x.weight=2': unknown task 'x' (tasks: category, "
                    "group)");
    EXPECT_OVER_ERR(MINIMAL, "tasks.category.wait=2",
                    "config override 'tasks.category.wait=2': tasks.category.wait: unknown key "
                    "(allowed in tasks.category: file, weight, workers, head)");
    EXPECT_OVER_ERR(MINIMAL, "train.epochs",
                    "config override 'train.epochs': expected KEY=VALUE, e.g. train.lr=0.05");
    EXPECT_OVER_ERR(MINIMAL, "=3",
                    "config override '=3': empty key (expected KEY=VALUE, e.g. train.lr=0.05)");
    EXPECT_OVER_ERR(MINIMAL, "train=3",
                    "config override 'train=3': key must be SECTION.KEY, tasks.NAME.KEY or "
                    "rounds.NAME[.teacher].KEY");
    EXPECT_OVER_ERR(MINIMAL, "train..lr=3",
                    "config override 'train..lr=3': key must be SECTION.KEY, tasks.NAME.KEY or "
                    "rounds.NAME[.teacher].KEY of "
                    "names [A-Za-z0-9_-]+");
    EXPECT_OVER_ERR(MINIMAL, "model.trunk=[128,",
                    "config override 'model.trunk=[128,': value is not valid YAML: did not find "
                    "expected node content while parsing a flow node");
    EXPECT_OVER_ERR(MINIMAL, "model.trunk=[128,x]",
                    "config override 'model.trunk=[128,x]': model.trunk: each entry must be an "
                    "integer in [1, 1000000], got 'x'");
    EXPECT_OVER_ERR(MINIMAL, "train.epochs=",
                    "config override 'train.epochs=': train.epochs: must be an integer >= 1, got "
                    "nothing (null)");
    /* a cross-key error is reported where the key that needs the other one was set */
    EXPECT_OVER_ERR(MINIMAL "train:\n  nesterov: true\n", "train.momentum=0",
                    "config t.yaml:8:13: train.nesterov: true needs train.momentum > 0, got "
                    "momentum 0");
    EXPECT_OVER_ERR(MINIMAL "train:\n  momentum: 0\n", "train.nesterov=true",
                    "config override 'train.nesterov=true': train.nesterov: true needs "
                    "train.momentum > 0, got momentum 0");
    /* momentum correction keeps an SGD velocity on the workers: refused with any other
     * optimizer, wherever either key was set */
    EXPECT_OVER_ERR(MINIMAL "compress:\n  codec: topk\n  momentum_correction: true\n",
                    "train.optimizer=adam",
                    "config t.yaml:9:24: compress.momentum_correction: true needs "
                    "train.optimizer: sgd (the workers keep an SGD velocity and the servers apply "
                    "plain SGD), got optimizer adam");
    EXPECT_OVER_ERR(MINIMAL "train:\n  optimizer: adamw\n", "compress.momentum_correction=true",
                    "config override 'compress.momentum_correction=true': "
                    "compress.momentum_correction: true needs train.optimizer: sgd (the workers "
                    "keep an SGD velocity and the servers apply plain SGD), got optimizer adamw");
    EXPECT_OVER_ERR(MINIMAL, "tasks.category.head=&a [*a]",
                    "config override 'tasks.category.head=&a [*a]': tasks.category.head: each "
                    "entry must be an integer in [1, 1000000], got a list");
    EXPECT_OVER_ERR(MINIMAL, "train.lr={a: 1}",
                    "config override 'train.lr={a: 1}': train.lr: must be a number > 0, got a "
                    "mapping");
}

static void cfg_equal(const struct ldn_config *a, const struct ldn_config *b)
{
    CU_ASSERT_STRING_EQUAL(a->run_name, b->run_name);
    CU_ASSERT_STRING_EQUAL(a->run_dir, b->run_dir);
    CU_ASSERT(a->seed == b->seed);
    CU_ASSERT_STRING_EQUAL(a->data_dir, b->data_dir);
    CU_ASSERT(a->n_trunk == b->n_trunk && !memcmp(a->trunk, b->trunk, sizeof a->trunk));
    CU_ASSERT_EQUAL(a->activation, b->activation);
    CU_ASSERT_EQUAL_FATAL(a->n_tasks, b->n_tasks);
    for (int i = 0; i < a->n_tasks; i++) {
        const struct ldn_task_config *x = &a->tasks[i], *y = &b->tasks[i];
        CU_ASSERT_STRING_EQUAL(x->name, y->name);
        CU_ASSERT_STRING_EQUAL(x->file, y->file);
        CU_ASSERT(x->weight == y->weight && x->workers == y->workers);
        CU_ASSERT(x->n_head == y->n_head && !memcmp(x->head, y->head, sizeof x->head));
    }
    CU_ASSERT(a->epochs == b->epochs && a->batch_size == b->batch_size);
    CU_ASSERT(a->steps_per_epoch == b->steps_per_epoch);
    CU_ASSERT(!memcmp(&a->optim, &b->optim, sizeof a->optim));
    CU_ASSERT(!memcmp(&a->lr, &b->lr, sizeof a->lr));
    CU_ASSERT(a->sampling == b->sampling && a->sampling_alpha == b->sampling_alpha);
    CU_ASSERT(a->log_every == b->log_every && a->eval_every == b->eval_every);
    CU_ASSERT_EQUAL(a->threads, b->threads);
    CU_ASSERT(a->servers == b->servers && a->consistency == b->consistency);
    CU_ASSERT(a->staleness == b->staleness && a->timeout_s == b->timeout_s);
    CU_ASSERT_STRING_EQUAL(a->iface, b->iface);
}

static void round_trip(const char *yaml, int n_over, char *const *over)
{
    char err[LDN_ERRLEN];
    struct ldn_config *a = parse_over(yaml, n_over, over, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    struct ldn_config *b = parse(a->resolved_yaml, err);
    if (!b)
        fprintf(stderr, "\n  reparse failed: %s\n%s", err, a->resolved_yaml);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    cfg_equal(a, b);
    CU_ASSERT_STRING_EQUAL(a->resolved_yaml, b->resolved_yaml);
    ldn_config_destroy(&a);
    ldn_config_destroy(&b);
}

static void test_round_trip(void)
{
    round_trip(FULL, 0, NULL);
    round_trip(MINIMAL, 0, NULL);
    /* odd characters in strings and paths (file written relative to data.dir + a comment) */
    char *odd[] = {"data.dir=\"d\\x7f\\u2028\\x85\\u00e9/\"",
                   "tasks.category.file=\"\\x85\\t.h5\""};
    round_trip(MINIMAL, 2, odd);
    char *over[] = {"train.lr=0.1", "run.name='null'",
                    "ps.interface=\"a \\\"b\\\" \\\\ \\t \\u2028 \\x85 é\"",
                    "data.dir=\"-odd dir/\"", "tasks.category.file=\"x: y.h5\""};
    round_trip(MINIMAL, (int)LDN_ARRAY_LEN(over), over);
    round_trip(MINIMAL "train: {lr: 0.1, momentum: 0.30000000000000004, eps: 1e-300}\n", 0, NULL);

    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(MINIMAL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const char *y = cfg->resolved_yaml;
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "\ndata:\n  dir: data/fmnist\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "  trunk: [256]\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "    file: category.h5  # data/fmnist/category.h5\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "  lr: 0.05\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "  eps: 1.0e-08\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(y, "  lr_step_epochs: 10\n"));
    ldn_config_destroy(&cfg);
}

static void test_load(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = ldn_config_load("/nonexistent/x.yaml", 0, NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_STRING_EQUAL(err,
                           "config /nonexistent/x.yaml: cannot open: No such file or directory");
    cfg = ldn_config_load("/", 0, NULL, err, sizeof err);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_STRING_EQUAL(err, "config /: cannot open: not a regular file (a directory)");

    char path[128], name[64];
    snprintf(name, sizeof name, "ldn_test_config_%ld", (long)getpid());
    snprintf(path, sizeof path, "/tmp/%s.yaml", name);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(MINIMAL, f);
    fclose(f);
    char *over[] = {"train.epochs=4"};
    cfg = ldn_config_load(path, 1, over, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (cfg) {
        CU_ASSERT_STRING_EQUAL(cfg->source, path);
        CU_ASSERT_EQUAL(cfg->epochs, 4);
        CU_ASSERT_STRING_EQUAL(cfg->run_name, name);
    }
    ldn_config_destroy(&cfg);
    unlink(path);

    /* the example configs in configs/ must load */
    const char *src = getenv("LDN_SOURCE_DIR");
    static const char *const examples[] = {"quickstart", "fmnist-mtl", "synth-64"};
    static const int n_tasks[] = {3, 3, 64};
    for (size_t i = 0; src && i < LDN_ARRAY_LEN(examples); i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/configs/%s.yaml", src, examples[i]);
        cfg = ldn_config_load(p, 0, NULL, err, sizeof err);
        if (!cfg)
            fprintf(stderr, "\n  %s\n", err);
        CU_ASSERT_PTR_NOT_NULL(cfg);
        if (cfg) {
            CU_ASSERT_STRING_EQUAL(cfg->run_name, examples[i]);
            CU_ASSERT_EQUAL(cfg->n_tasks, n_tasks[i]);
        }
        ldn_config_destroy(&cfg);
    }
}

#define ROUNDS                                                                                     \
    MINIMAL "train:\n  epochs: 4\n  lr: 0.1\nrounds:\n"                                            \
            "  - name: m1\n    seed: 11\n"                                                         \
            "  - name: m2\n    seed: 12\n    steps: 50\n"                                          \
            "  - name: student\n    trunk: [64, 64]\n    init: m1\n    lr_schedule: cosine\n"      \
            "    teacher:\n      members: [m1, m2, runs/x/ckpt.h5]\n      temperature: 3\n"        \
            "      annealing: linear\n      inputs: all\n"

static void test_rounds(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(MINIMAL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->n_rounds, 0); /* no rounds: one round of the train section */
    CU_ASSERT_PTR_NULL(cfg->rounds);
    CU_ASSERT_PTR_NULL(strstr(cfg->resolved_yaml, "rounds"));
    ldn_config_destroy(&cfg);

    char *over[] = {"rounds.student.teacher.alpha=0.3", "rounds.m1.epochs=2"};
    cfg = parse_over(ROUNDS, 2, over, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL_FATAL(cfg->n_rounds, 3);
    const struct ldn_round_config *m1 = &cfg->rounds[0], *m2 = &cfg->rounds[1],
                                  *st = &cfg->rounds[2];
    CU_ASSERT_STRING_EQUAL(m1->name, "m1");
    CU_ASSERT_EQUAL(m1->epochs, 2); /* override */
    CU_ASSERT_EQUAL(m1->steps, 0);
    CU_ASSERT_EQUAL(m1->seed, 11);
    CU_ASSERT_EQUAL(m1->n_trunk, 1); /* model.trunk */
    CU_ASSERT_EQUAL(m1->trunk[0], 256);
    CU_ASSERT_EQUAL(m1->lr, 0.1); /* train.lr */
    CU_ASSERT_EQUAL(m1->init_round, -1);
    CU_ASSERT_FALSE(m1->has_teacher);
    CU_ASSERT_EQUAL(m2->steps, 50);
    CU_ASSERT_EQUAL(m2->epochs, 0);
    CU_ASSERT_EQUAL(st->epochs, 4); /* train.epochs */
    CU_ASSERT_EQUAL(st->seed, 1);   /* run.seed */
    CU_ASSERT_EQUAL(st->n_trunk, 2);
    CU_ASSERT_EQUAL(st->trunk[1], 64);
    CU_ASSERT_EQUAL(st->init_round, 0);
    CU_ASSERT_EQUAL(st->lr_schedule.kind, LDN_LR_COSINE);
    CU_ASSERT_TRUE_FATAL(st->has_teacher);
    const struct ldn_teacher_config *t = &st->teacher;
    CU_ASSERT_EQUAL(t->n_members, 3);
    CU_ASSERT_STRING_EQUAL(t->members[2], "runs/x/ckpt.h5");
    CU_ASSERT_EQUAL(t->member_round[0], 0);
    CU_ASSERT_EQUAL(t->member_round[1], 1);
    CU_ASSERT_EQUAL(t->member_round[2], -1);
    CU_ASSERT_EQUAL(t->temperature, 3);
    CU_ASSERT_EQUAL(t->alpha, 0.3); /* override */
    CU_ASSERT_EQUAL(t->annealing, LDN_ANNEAL_LINEAR);
    CU_ASSERT_EQUAL(t->inputs, LDN_TEACHER_ALL);
    CU_ASSERT_EQUAL(ldn_config_round_index(cfg, "m2"), 1);
    CU_ASSERT_EQUAL(ldn_config_round_index(cfg, "m3"), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->resolved_yaml, "    steps: 50\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->resolved_yaml, "      members: [m1, m2, runs/x/ckpt.h5]\n"));
    ldn_config_destroy(&cfg);
    round_trip(ROUNDS, 0, NULL);
    round_trip(ROUNDS, 2, over);
    cfg =
        parse(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher:\n      members: [a]\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->rounds[1].teacher.temperature, 2); /* defaults */
    CU_ASSERT_EQUAL(cfg->rounds[1].teacher.alpha, 0.5);
    CU_ASSERT_EQUAL(cfg->rounds[1].teacher.annealing, LDN_ANNEAL_NONE);
    CU_ASSERT_EQUAL(cfg->rounds[1].teacher.inputs, LDN_TEACHER_OWN);
    CU_ASSERT_EQUAL(cfg->rounds[0].epochs, 10);
    ldn_config_destroy(&cfg);
}

static void test_rounds_errors(void)
{
    EXPECT_OVER_ERR(ROUNDS, "rounds.x.lr=1",
                    "config override 'rounds.x.lr=1': unknown round 'x' (rounds: m1, m2, student)");
    EXPECT_OVER_ERR(ROUNDS, "rounds.m1.teacher=1",
                    "config override 'rounds.m1.teacher=1': rounds.m1.teacher: must be a mapping "
                    "of keys, got 1");
    EXPECT_OVER_ERR(MINIMAL, "rounds.m1.lr=1",
                    "config override 'rounds.m1.lr=1': unknown round 'm1' (rounds: none)");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n    teacher: {members: [b]}\n  - name: b\n",
               "config t.yaml:9:24: rounds.a.teacher.members: member 'b' comes later (round 2 of "
               "2): a teacher learns from earlier rounds");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher: {members: [c]}\n",
               "config t.yaml:10:24: rounds.b.teacher.members: unknown member 'c': not the name of "
               "an earlier round, nor a checkpoint path (with a '/' or ending in .h5)");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n    teacher: {members: [a]}\n",
               "config t.yaml:9:24: rounds.a.teacher.members: round 'a' cannot be its own teacher");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher: {alpha: 0.2}\n",
               "config t.yaml:10:14: rounds.b.teacher.members: required: the earlier rounds (or "
               "checkpoint paths) to distil from");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher: {members: [a, a]}\n",
               "config t.yaml:10:24: rounds.b.teacher.members: member 'a' is listed twice");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher: {members: a}\n",
               "config t.yaml:10:24: rounds.b.teacher.members: must be a list of 1 to 8 strings, "
               "e.g. [a, b], got 'a'");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: b\n    teacher: {members: [a], alpha: 2}\n",
               "config t.yaml:10:36: rounds.b.teacher.alpha: must be a number in [0, 1], got 2");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n    init: b\n  - name: b\n",
               "config t.yaml:9:11: rounds.a: init: 'b' is not an earlier round (init starts a "
               "round from an earlier round's result)");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n    epochs: 2\n    steps: 9\n",
               "config t.yaml:10:12: rounds.a: give the round's length as epochs or as steps, not "
               "both");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n  - name: a\n",
               "config t.yaml:9:11: rounds.a: duplicate round name (also round 1)");
    EXPECT_ERR(MINIMAL "rounds: 3\n",
               "config t.yaml:7:9: rounds: must be a list of rounds (- name: ...), got 3");
    EXPECT_ERR(MINIMAL "rounds: []\n",
               "config t.yaml:7:9: rounds: must list 1 to 64 rounds, got 0");
    EXPECT_ERR(MINIMAL "rounds:\n  - seed: 3\n",
               "config t.yaml:8:5: rounds[1]: name: required, [A-Za-z0-9_-]+ of at most 63 "
               "characters");
    EXPECT_ERR(MINIMAL "rounds:\n  - name: a\n    epoch: 3\n",
               "config t.yaml:9:5: rounds.a.epoch: unknown key (allowed in rounds.a: name, epochs, "
               "steps, seed, trunk, lr, lr_schedule, warmup_steps, lr_step_epochs, lr_gamma, "
               "lr_min, init, teacher)");
    EXPECT_ERR(MINIMAL "teacher:\n  alpha: 1\n",
               "config t.yaml:7:1: teacher: unknown key (allowed at the top level: run, data, "
               "model, tasks, train, ps, compress, checkpoint, net, prune, rounds)");
}

/* A round as a run of its own: the round's values, its directories, no rounds, a final
 * checkpoint; and its resolved YAML parses back to the same. */
static void test_round_config(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(ROUNDS "run: {name: kd, dir: runs/kd, seed: 3}\n"
                                          "checkpoint: {final: false, every_steps: 7}\n",
                                   err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    struct ldn_config *m2 = ldn_config_round(cfg, 1, err, sizeof err);
    struct ldn_config *st = ldn_config_round(cfg, 2, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(m2->n_rounds, 0);
    CU_ASSERT_PTR_NULL(m2->rounds);
    CU_ASSERT_EQUAL(m2->seed, 12);
    CU_ASSERT_EQUAL(m2->epochs, 1); /* steps: 50 is one epoch of 50 steps */
    CU_ASSERT_EQUAL(m2->steps_per_epoch, 50);
    CU_ASSERT_STRING_EQUAL(m2->run_name, "kd.m2");
    CU_ASSERT_STRING_EQUAL(m2->run_dir, "runs/kd/rounds/m2");
    CU_ASSERT_STRING_EQUAL(m2->ckpt.dir, "runs/kd/rounds/m2/checkpoints");
    CU_ASSERT_TRUE(m2->ckpt.final); /* the snapshot */
    CU_ASSERT_EQUAL(m2->ckpt.every_steps, 7);
    CU_ASSERT_EQUAL(st->n_trunk, 2);
    CU_ASSERT_EQUAL(st->trunk[0], 64);
    CU_ASSERT_EQUAL(st->epochs, 4);
    CU_ASSERT_EQUAL(st->steps_per_epoch, 0);
    CU_ASSERT_EQUAL(st->lr.kind, LDN_LR_COSINE);
    CU_ASSERT_EQUAL(st->n_tasks, cfg->n_tasks);
    CU_ASSERT_PTR_NOT_EQUAL(st->tasks, cfg->tasks); /* its own copy */
    CU_ASSERT_PTR_NULL(strstr(st->resolved_yaml, "\nrounds:"));
    struct ldn_config *back = ldn_config_parse(st->resolved_yaml, strlen(st->resolved_yaml),
                                               "r.yaml", 0, NULL, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_EQUAL(back->trunk[1], 64);
    CU_ASSERT_STRING_EQUAL(back->run_dir, "runs/kd/rounds/student");
    ldn_config_destroy(&back);
    ldn_config_destroy(&m2);
    ldn_config_destroy(&st);
    ldn_config_destroy(&cfg);
}

/* prune: values, overrides and the checks across keys */
static void test_prune(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(MINIMAL "prune:\n  sparsity: 0.9\n  layers: [0.5]\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_DOUBLE_EQUAL(cfg->prune.sparsity, 0.9, 0);
    CU_ASSERT_EQUAL(cfg->prune.every, 100);
    CU_ASSERT_EQUAL(cfg->prune.n_layers, 1);
    CU_ASSERT_DOUBLE_EQUAL(cfg->prune.layers[0], 0.5, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->resolved_yaml, "  layers: [0.5]\n"));
    ldn_config_destroy(&cfg);
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 1.5\n",
               "config t.yaml:8:13: prune.sparsity: must be a number in [0, 1), got 1.5");
    EXPECT_OVER_ERR(MINIMAL, "prune.every=0",
                    "config override 'prune.every=0': prune.every: must be an integer >= 1, got 0");
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 0.9\n  layers: [0.5, 0.9]\n",
               "config t.yaml:9:11: prune.layers: must have one entry per trunk layer (1), got 2");
    EXPECT_ERR(MINIMAL "prune:\n  layers: [1]\n",
               "config t.yaml:8:12: prune.layers: must be a number in [0, 1), got 1");
    EXPECT_ERR(MINIMAL "prune:\n  layers: [0.5]\n  scope: global\n",
               "config t.yaml:8:11: prune.layers: per-layer targets need prune.scope: layer, got "
               "global");
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 0.5\n  initial: 0.6\n",
               "config t.yaml:9:12: prune.initial: must be <= the target sparsity (0.5), got 0.6");
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 0.5\n  start: 100\n  end: 50\n",
               "config t.yaml:10:8: prune.end: must be > prune.start (100), got 50");
    EXPECT_ERR(MINIMAL "ps:\n  consistency: ssp\nprune:\n  sparsity: 0.5\n",
               "config t.yaml:10:13: prune.sparsity: pruning needs ps.consistency: bsp (masks "
               "change between steps), got ssp");
    /* prune.rounds: the rounds pruned, required with rounds, refused without */
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 0.5\n  rounds: [a]\n",
               "config t.yaml:9:11: prune.rounds: names rounds to prune, but the config has no "
               "rounds");
    EXPECT_ERR(MINIMAL "prune:\n  sparsity: 0.5\nrounds:\n  - {name: a, steps: 10}\n",
               "config t.yaml: prune.rounds: required with rounds: the rounds to prune (for "
               "example [student]); each is pruned from its own step 0 with its own trunk");
    EXPECT_ERR(MINIMAL
               "prune:\n  sparsity: 0.5\n  rounds: [b]\nrounds:\n  - {name: a, steps: 10}\n",
               "config t.yaml:9:11: prune.rounds: 'b' is not a round of this config");
    EXPECT_ERR(MINIMAL "prune:\n  layers: [0.5]\n  rounds: [a]\nrounds:\n  - {name: a, steps: 10, "
                       "trunk: [8, 8]}\n",
               "config t.yaml:8:11: prune.layers: must have one entry per trunk layer of round a "
               "(2), got 1");
    {
        struct ldn_config *rc = parse(
            MINIMAL "prune:\n  sparsity: 0.5\n  rounds: [b]\nrounds:\n  - {name: a, steps: 10}\n"
                    "  - {name: b, steps: 10}\n",
            err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rc);
        struct ldn_config *a = ldn_config_round(rc, 0, err, sizeof err),
                          *b = ldn_config_round(rc, 1, err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        CU_ASSERT_DOUBLE_EQUAL(a->prune.sparsity, 0, 0); /* not listed: not pruned */
        CU_ASSERT_DOUBLE_EQUAL(b->prune.sparsity, 0.5, 0);
        CU_ASSERT_EQUAL(b->prune.n_rounds, 0);
        ldn_config_destroy(&a);
        ldn_config_destroy(&b);
        ldn_config_destroy(&rc);
    }
}

/* ps.liveness_timeout and ps.on_worker_loss: defaults, values, the checks across keys. */
static void test_liveness(void)
{
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = parse(MINIMAL, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_DOUBLE_EQUAL(cfg->liveness_s, 10, 0);
    CU_ASSERT_EQUAL(cfg->on_worker_loss, LDN_LOSS_FAIL);
    CU_ASSERT_PTR_NOT_NULL(strstr(cfg->resolved_yaml, "  on_worker_loss: fail\n"));
    ldn_config_destroy(&cfg);
    cfg = parse(MINIMAL "ps:\n  timeout: 20\n  liveness_timeout: 5\n  on_worker_loss: continue\n",
                err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->on_worker_loss, LDN_LOSS_CONTINUE);
    CU_ASSERT_DOUBLE_EQUAL(cfg->liveness_s, 5, 0);
    ldn_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(parse(MINIMAL "ps:\n  liveness_timeout: 1\n", err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ps.liveness_timeout: must be a number >= 2, got 1"));
    CU_ASSERT_PTR_NULL(parse(MINIMAL "ps:\n  on_worker_loss: maybe\n", err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ps.on_worker_loss"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "continue"));
    /* continue: the survivors' waits (ps.timeout) must outlast the detection */
    CU_ASSERT_PTR_NULL(parse(MINIMAL "ps:\n  timeout: 15\n  liveness_timeout: 10\n"
                                     "  on_worker_loss: continue\n",
                             err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "config t.yaml:9:21: ps.liveness_timeout: must be at most "
                                       "half of ps.timeout (15 s)"));
    CU_ASSERT_PTR_NULL(parse(MINIMAL "ps:\n  on_worker_loss: continue\nrounds:\n"
                                     "  - name: a\n",
                             err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "ps.on_worker_loss: continue is not available with rounds"));
}

static const struct ldn_cu_test TESTS[] = {
    {"liveness", test_liveness},
    {"prune", test_prune},
    {"full config, every field", test_full},
    {"defaults on a minimal config", test_defaults},
    {"errors: keys and sections", test_errors_keys},
    {"errors: values", test_errors_values},
    {"bounds", test_bounds},
    {"errors: lists", test_errors_lists},
    {"errors: documents and syntax", test_errors_documents},
    {"garbage fails cleanly", test_garbage},
    {"overrides", test_overrides},
    {"resolved_yaml round trip", test_round_trip},
    {"load from file", test_load},
    {"rounds", test_rounds},
    {"rounds: errors", test_rounds_errors},
    {"a round's own config", test_round_config},
    {NULL, NULL},
};

LDN_CU_MAIN("config", TESTS)
