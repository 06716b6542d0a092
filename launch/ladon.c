/* The ladon executable: command-line entry and dispatch.
 *
 *   mpirun -np N ladon train CONFIG [key=value ...] [--resume [PATH|latest]] [--overwrite]
 *   ladon train --local CONFIG [key=value ...]
 *   ladon config show CONFIG [key=value ...]
 *   ladon data fmnist OUT_DIR [--src DIR] [--seed N]
 *   ladon data synth OUT_DIR [--tasks N] [--features F] [--rank R] [--classes C]
 *                            [--relatedness X] [--train N] [--test N] [--noise S] [--seed N]
 *                            [--clusters K] [--conflict]
 *   ladon inspect CKPT [--json]
 *   ladon eval CKPT [CKPT ...] [--data DIR] [--task T]
 *   ladon predict CKPT --task T INPUT.h5 OUTPUT.h5 [--split test|train]
 *   ladon export CKPT OUT.h5 [--quantize int8|fp16|none] [--prune S] [--data DIR]
 *   ladon plot RUN_DIR [RUN_DIR ...] [-o OUT.png] [--keep-script] [--timeout S]
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "dist.h"
#include "export.h"
#include "fuse.h"
#include "log.h"
#include "plot.h"
#include "status.h"
#include "tools.h"
#include "trainer.h"

#define FMNIST_DEFAULT_SRC "/usr/share/datasets/fashion-mnist"

/* Each command's usage: `ladon` alone lists them all, `ladon <command> --help` prints one. */
struct command_help {
    const char *name, *text;
};

static const struct command_help HELP[] = {
    {"train",
     "  mpirun -np N ladon train CONFIG [key=value ...] [--resume [PATH|latest]]\n"
     "        distributed training: rank 0 coordinator, ranks 1..ps.servers parameter\n"
     "        servers, the rest workers in task groups (launch/ladon-run counts N);\n"
     "        --resume continues from a checkpoint (default: checkpoint.dir/latest); a run\n"
     "        with rounds resumes as a whole (--resume or --resume RUN_DIR); a fresh run\n"
     "        refuses a run.dir that holds an earlier run's checkpoints unless --overwrite\n"
     "        (run.overwrite=true) deletes them\n"
     "  ladon train --local CONFIG [key=value ...] [--resume [PATH|latest]] [--overwrite]\n"
     "        train every task in this process (checkpoints like distributed runs)\n"},
    {"config", "  ladon config show CONFIG [key=value ...]     print the resolved configuration\n"},
    {"data",
     "  ladon data fmnist OUT_DIR [--src DIR] [--seed N]\n"
     "        build the Fashion-MNIST multi-task benchmark (default --src " FMNIST_DEFAULT_SRC ")\n"
     "  ladon data synth OUT_DIR [--tasks N] [--features F] [--rank R] [--classes C]\n"
     "        [--relatedness X] [--train N] [--test N] [--noise S] [--seed N]\n"
     "        [--clusters K] [--conflict]\n"
     "        generate related synthetic tasks (K clusters of related tasks; the last two\n"
     "        tasks a pair with negated decision functions)\n"},
    {"inspect", "  ladon inspect CKPT [--json]\n"
                "        verify every checksum of a checkpoint and summarise it (CKPT: a file, a\n"
                "        checkpoint directory or a run directory: its latest checkpoint)\n"},
    {"eval", "  ladon eval CKPT [CKPT ...] [--data DIR] [--task T]\n"
             "        test accuracy and loss of every task (or T) with the checkpoint's weights;\n"
             "        with several checkpoints also of their ensemble (mean of probabilities)\n"},
    {"predict", "  ladon predict CKPT --task T INPUT.h5 OUTPUT.h5 [--split test|train]\n"
                "        class probabilities of head T for every row of INPUT (a task file's\n"
                "        split or any file with a 2-D dataset x) into OUTPUT (/probs, /pred)\n"},
    {"export",
     "  ladon export CKPT OUT.h5 [--quantize int8|fp16|none] [--prune S] [--data DIR]\n"
     "        a deployable model file (int8/fp16, zero weights not stored) that eval and\n"
     "        predict take like a checkpoint; ladon export --help for the options\n"},
    {"fuse",
     "  ladon fuse CKPT [CKPT ...] -o OUT.h5 [--greedy] [--last K] [--holdout F] [--data DIR]\n"
     "        average the weights of checkpoints of one model (uniform or greedy soup) into\n"
     "        an exported file; ladon fuse --help for the options\n"},
    {"plot", "  ladon plot RUN_DIR [RUN_DIR ...] [-o OUT.png] [--keep-script] [--timeout S]\n"
             "        draw the runs' metrics into a PNG with gnuplot (default RUN_DIR/plot.png,\n"
             "        ./runs.png for several runs; ladon plot --help for the panels)\n"},
    {"version", "  ladon version                                print the version\n"},
};

static void usage(FILE *f)
{
    fputs("usage: ladon <command> ...\n", f);
    for (size_t i = 0; i < LDN_ARRAY_LEN(HELP); i++)
        fputs(HELP[i].text, f);
    fputs("ladon <command> --help prints that command's usage. Config keys and overrides: "
          "docs/config.md\n",
          f);
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* `ladon <command> --help` (or `ladon help <command>`): that command's usage on stdout, 0;
 * -1 when `name` is not a command with a usage of its own here. */
static int command_help(const char *name)
{
    for (size_t i = 0; i < LDN_ARRAY_LEN(HELP); i++)
        if (!strcmp(HELP[i].name, name)) {
            printf("usage:\n%s", HELP[i].text);
            return 0;
        }
    return -1;
}

static int fail(const char *msg)
{
    fprintf(stderr, "ladon: %s\n", msg);
    return 1;
}

/* Parse a whole-string number; 0 on success. */
static int parse_i64(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int parse_f64(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static int cmd_config(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[0], "show") != 0) {
        usage(stderr);
        return 2;
    }
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = ldn_config_load(argv[1], argc - 2, argv + 2, err, sizeof err);
    if (!cfg)
        return fail(err);
    fputs(cfg->resolved_yaml, stdout);
    ldn_config_destroy(&cfg);
    return 0;
}

static int cmd_train(int argc, char **argv)
{
    /* options may come before or after CONFIG; `--resume` takes an optional value (a path or
     * "latest"; anything with '=' is an override) */
    static char overwrite[] = "run.overwrite=true"; /* --overwrite is this override */
    int local = 0, n = 0, ow = 0;
    const char *resume = NULL;
    char **rest = calloc((size_t)argc + 2, sizeof *rest);
    if (!rest)
        return fail("out of memory");
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--local"))
            local = 1;
        else if (!strcmp(argv[i], "--overwrite"))
            ow = 1;
        else if (!strcmp(argv[i], "--resume")) {
            resume = "latest";
            if (i + 1 < argc && argv[i + 1][0] != '-' && !strchr(argv[i + 1], '=') && n > 0)
                resume = argv[++i];
        } else if (!strncmp(argv[i], "--resume=", 9))
            resume = argv[i] + 9;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ladon train: unknown option '%s'\n", argv[i]);
            free(rest);
            return 2;
        } else
            rest[n++] = argv[i];
    }
    if (n < 1) {
        free(rest);
        usage(stderr);
        return 2;
    }
    if (ow)
        rest[n++] = overwrite;
    if (!local) {
        int rc = ldn_dist_main(rest[0], n - 1, rest + 1, resume);
        free(rest);
        return rc;
    }
    char err[LDN_ERRLEN];
    struct ldn_config *cfg = ldn_config_load(rest[0], n - 1, rest + 1, err, sizeof err);
    if (!cfg) {
        free(rest);
        return fail(err);
    }
    ldn_log_set_role("local", -1, NULL);
    ldn_data_set_max_memory((int64_t)(cfg->data_max_memory_mb * (1 << 20)));
    LDN_INFO("config %s (run %s, seed %llu)", cfg->source, cfg->run_name,
             (unsigned long long)cfg->seed);
    int rc = ldn_train_local(cfg, resume, err, sizeof err);
    ldn_config_destroy(&cfg);
    free(rest);
    return rc == 0 ? 0 : fail(err);
}

static int cmd_data(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *what = argv[0], *out = argv[1];
    char err[LDN_ERRLEN];
    if (!strcmp(what, "fmnist")) {
        const char *src = FMNIST_DEFAULT_SRC;
        long long seed = 1;
        for (int i = 2; i < argc; i++) {
            if (!strcmp(argv[i], "--src") && i + 1 < argc)
                src = argv[++i];
            else if (!strcmp(argv[i], "--seed") && i + 1 < argc && !parse_i64(argv[i + 1], &seed))
                i++;
            else {
                fprintf(stderr, "ladon data fmnist: bad argument '%s'\n", argv[i]);
                return 2;
            }
        }
        if (ldn_data_build_fmnist(src, out, (uint64_t)seed, err, sizeof err) != 0)
            return fail(err);
        printf("wrote Fashion-MNIST tasks category, group, parity to %s\n", out);
        return 0;
    }
    if (!strcmp(what, "synth")) {
        struct ldn_synth_opts o;
        ldn_synth_opts_default(&o);
        for (int i = 2; i < argc; i++) {
            const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
            long long n = 0;
            double x = 0;
            int ok = v != NULL;
            if (ok && !strcmp(k, "--tasks"))
                ok = !parse_i64(v, &n) && n > 0 && n <= 100000 && ((o.tasks = (int)n), 1);
            else if (ok && !strcmp(k, "--features"))
                ok = !parse_i64(v, &n) && n > 0 && n <= 1000000 && ((o.features = (int)n), 1);
            else if (ok && !strcmp(k, "--rank"))
                ok = !parse_i64(v, &n) && n > 0 && n <= 1000000 && ((o.rank = (int)n), 1);
            else if (ok && !strcmp(k, "--classes"))
                ok = !parse_i64(v, &n) && n > 1 && n <= 100000 && ((o.classes = (int)n), 1);
            else if (ok && !strcmp(k, "--train"))
                ok = !parse_i64(v, &n) && n > 0 && ((o.n_train = n), 1);
            else if (ok && !strcmp(k, "--test"))
                ok = !parse_i64(v, &n) && n > 0 && ((o.n_test = n), 1);
            else if (ok && !strcmp(k, "--seed"))
                ok = !parse_i64(v, &n) && n >= 0 && ((o.seed = (uint64_t)n), 1);
            else if (ok && !strcmp(k, "--relatedness"))
                ok = !parse_f64(v, &x) && ((o.relatedness = x), 1);
            else if (ok && !strcmp(k, "--noise"))
                ok = !parse_f64(v, &x) && ((o.noise = x), 1);
            else if (ok && !strcmp(k, "--clusters"))
                ok = !parse_i64(v, &n) && n >= 0 && n <= 100000 && ((o.clusters = (int)n), 1);
            else if (!strcmp(k, "--conflict")) {
                o.conflict = 1;
                continue; /* a flag: no value */
            } else
                ok = 0;
            if (!ok) {
                fprintf(stderr, "ladon data synth: bad argument '%s%s%s'\n", k, v ? " " : "",
                        v ? v : "");
                return 2;
            }
            i++;
        }
        if (ldn_data_build_synth(out, &o, err, sizeof err) != 0)
            return fail(err);
        printf("wrote %d synthetic tasks to %s\n", o.tasks, out);
        return 0;
    }
    usage(stderr);
    return 2;
}

int main(int argc, char **argv)
{
    /* Large per-message buffers (ZeroMQ frames, batches) come and go every step: keep them in
     * the heap instead of fresh mmap'd pages, whose first touch costs more than the copy. */
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* plot and export print their own, longer help */
    const int own_help = !strcmp(cmd, "plot") || !strcmp(cmd, "export") || !strcmp(cmd, "fuse");
    for (int i = 2; i < argc && !own_help; i++) /* --help anywhere: usage, nothing done */
        if (is_help(argv[i]) && command_help(cmd) == 0)
            return 0;
    if (!strcmp(cmd, "help") && argc >= 3) {
        if (!strcmp(argv[2], "plot"))
            return ldn_tool_plot(1, (char *[]){"--help", NULL});
        if (!strcmp(argv[2], "export"))
            return ldn_tool_export(1, (char *[]){"--help", NULL});
        if (!strcmp(argv[2], "fuse"))
            return ldn_tool_fuse(1, (char *[]){"--help", NULL});
        if (command_help(argv[2]) == 0)
            return 0;
        fprintf(stderr, "ladon: unknown command '%s'\n", argv[2]);
        usage(stderr);
        return 2;
    }
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "config"))
        return cmd_config(argc - 2, argv + 2);
    if (!strcmp(cmd, "data"))
        return cmd_data(argc - 2, argv + 2);
    if (!strcmp(cmd, "inspect"))
        return ldn_tool_inspect(argc - 2, argv + 2);
    if (!strcmp(cmd, "eval"))
        return ldn_tool_eval(argc - 2, argv + 2);
    if (!strcmp(cmd, "predict"))
        return ldn_tool_predict(argc - 2, argv + 2);
    if (!strcmp(cmd, "export"))
        return ldn_tool_export(argc - 2, argv + 2);
    if (!strcmp(cmd, "fuse"))
        return ldn_tool_fuse(argc - 2, argv + 2);
    if (!strcmp(cmd, "plot"))
        return ldn_tool_plot(argc - 2, argv + 2);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ladon %s\n", LDN_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "help") || is_help(cmd)) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ladon: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
