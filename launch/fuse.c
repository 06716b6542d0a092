/* `ladon fuse` (fuse.h). */
#define _POSIX_C_SOURCE 200809L
#include "fuse.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckmodel.h"
#include "data.h"
#include "exportfile.h"
#include "h5util.h"
#include "status.h"

#define FUSE_BATCH 1024
#define FUSE_MAX 64 /* members at most */

static const char USAGE[] = "usage: ladon fuse CKPT [CKPT ...] -o OUT.h5 [--greedy] [--last K] "
                            "[--holdout F] [--data DIR]\n";

static void help(void)
{
    printf("%s", USAGE);
    printf("Average the weights (trunk and every head) of checkpoints of the same model into one\n"
           "model (model soups), written as an exported file (docs/export.md, --quantize none)\n"
           "that `ladon eval` and `ladon predict` take like a checkpoint.\n"
           "  CKPT          a checkpoint file, a checkpoint directory or a run directory (its\n"
           "                latest checkpoint)\n"
           "  --last K      with one CKPT directory: its last K checkpoints (checkpoint.keep_last\n"
           "                keeps them), the cheap common case\n"
           "  --greedy      greedy soup: members in order of their accuracy on the held-out rows,\n"
           "                each added only if the soup's mean accuracy there does not drop\n"
           "                (default: uniform, every member with the same weight)\n"
           "  --holdout F   the held-out rows: the last fraction F (default 0.1) of each task's\n"
           "                training split (the members were trained on them too; they rank\n"
           "                members, they are not a clean validation set)\n"
           "  --data DIR    task files DIR/<task>.h5 instead of the config's\n"
           "Members must have the same tasks, classes, input width and shapes. Averaging only\n"
           "helps members that share their initialisation (the init_id their checkpoints\n"
           "record): fuse says so when they do not. Prints each member's and the fused model's "
           "test accuracy.\n");
}

struct member {
    struct ldn_ckmodel L;
    double score; /* mean held-out accuracy over tasks */
};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The last k checkpoint files step-*.h5 of the checkpoint directory of arg (arg itself, or
 * arg/checkpoints for a run directory) into out[] (malloc'd paths). Returns how many, or a
 * negative status with err. */
static int last_k(const char *arg, int k, char **out, char *err, size_t errlen)
{
    char dir[LDN_PATH_MAX];
    struct stat st;
    snprintf(dir, sizeof dir, "%s/checkpoints", arg);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        snprintf(dir, sizeof dir, "%s", arg);
    DIR *d = opendir(dir);
    if (!d)
        return ldn_fail(err, errlen, LDN_ERR_IO, "--last: cannot read directory %s: %s", dir,
                        strerror(errno));
    char *names[4096];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 4096;) {
        size_t len = strlen(e->d_name);
        if (len > 8 && !strncmp(e->d_name, "step-", 5) && !strcmp(e->d_name + len - 3, ".h5"))
            names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_name);
    int got = 0, rc = 0;
    for (int i = n - k < 0 ? 0 : n - k; i < n && rc == 0; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        if (!(out[got] = malloc(len)))
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        else
            snprintf(out[got++], len, "%s/%s", dir, names[i]);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    if (rc == 0 && got < 2)
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "--last %d: %s holds %d checkpoint(s); fusing needs at least 2", k, dir, got);
    if (rc)
        while (got > 0)
            free(out[--got]);
    return rc ? rc : got;
}

/* Member m fits member 0: tasks, classes, input width, shapes. 0 or LDN_ERR_CONFIG with err. */
static int check_member(const struct member *M, int m, char *err, size_t errlen)
{
    const struct ldn_ckmodel *a = &M[0].L, *b = &M[m].L;
    if (b->x)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "%s is an exported file: fuse checkpoints (they hold fp32 weights)",
                        b->ck.path);
    if (a->cfg->n_tasks != b->cfg->n_tasks || a->ck.features != b->ck.features)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "%s has %d tasks on %d input features, %s has %d on %d: not the same model",
                        b->ck.path, b->cfg->n_tasks, b->ck.features, a->ck.path, a->cfg->n_tasks,
                        a->ck.features);
    if (!ldn_nn_same_shape(a->model->trunk, b->model->trunk))
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "%s and %s have trunks of other shapes: not the same model", b->ck.path,
                        a->ck.path);
    for (int t = 0; t < a->cfg->n_tasks; t++)
        if (strcmp(a->cfg->tasks[t].name, b->cfg->tasks[t].name) != 0 ||
            a->classes[t] != b->classes[t] ||
            !ldn_nn_same_shape(a->model->heads[t], b->model->heads[t]))
            return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                            "%s: task %d is '%s' (%d classes), in %s '%s' (%d classes), or its "
                            "head has another shape: not the same model",
                            b->ck.path, t, b->cfg->tasks[t].name, b->classes[t], a->ck.path,
                            a->cfg->tasks[t].name, a->classes[t]);
    return 0;
}

/* out = mean of the members whose use[m] is set (every net of the model). */
static void average(struct ldn_model *out, const struct member *M, int n, const char *use)
{
    const int nt = M[0].L.cfg->n_tasks;
    for (int k = -1; k < nt; k++) { /* -1: the trunk */
        struct ldn_nn *o = k < 0 ? out->trunk : out->heads[k];
        int used = 0;
        memset(o->params, 0, sizeof(float) * (size_t)o->n_params);
        for (int m = 0; m < n; m++) {
            if (!use[m])
                continue;
            const struct ldn_nn *s = k < 0 ? M[m].L.model->trunk : M[m].L.model->heads[k];
            for (int64_t i = 0; i < o->n_params; i++)
                o->params[i] += s->params[i];
            used++;
        }
        const float inv = 1.0f / (float)used;
        for (int64_t i = 0; i < o->n_params; i++)
            o->params[i] *= inv;
    }
}

/* Mean accuracy over tasks of model m on rows [from[t], n) of sets[t]. */
static double score(struct ldn_model *m, struct ldn_dataset *const *sets, const int64_t *from,
                    int nt)
{
    double s = 0;
    for (int t = 0; t < nt; t++) {
        double loss, acc;
        const struct ldn_dataset *d = sets[t];
        ldn_model_evaluate(m, t, d->x + from[t] * d->features, d->y + from[t], d->n - from[t],
                           &loss, &acc);
        s += acc;
    }
    return s / nt;
}

/* Say whether the members share their initialisation: every checkpoint records the identity
 * of the weights its run started from (init_id, docs/checkpoint.md); a member written before
 * ladon recorded it is compared by run.seed (and said so). */
static void report_init(const struct member *M, int n)
{
    int same = 1, known = 1;
    for (int m = 0; m < n; m++)
        known &= M[m].L.ck.init_id != 0;
    for (int m = 1; m < n; m++)
        same &= known ? M[m].L.ck.init_id == M[0].L.ck.init_id : M[m].L.ck.seed == M[0].L.ck.seed;
    if (same && known) {
        printf("members share their initialisation (init_id %016llx)\n",
               (unsigned long long)M[0].L.ck.init_id);
        return;
    }
    if (same) {
        printf("members share run.seed %llu and their shapes (a member records no init_id: "
               "written by an older ladon, so a shared start is assumed, not known)\n",
               (unsigned long long)M[0].L.ck.seed);
        return;
    }
    fprintf(stderr, "ladon fuse: warning: the members do NOT share an initialisation (%s",
            known ? "init_id" : "run.seed");
    for (int m = 0; m < n; m++)
        fprintf(stderr, known ? "%s %016llx" : "%s %llu", m ? "," : "",
                (unsigned long long)(known ? M[m].L.ck.init_id : M[m].L.ck.seed));
    fprintf(stderr, "): averaging independently initialised networks usually destroys their "
                    "accuracy; the fused model is written anyway\n");
}

struct fuse_args {
    const char *paths[FUSE_MAX];
    int n;
    const char *out, *data;
    int greedy;
    double holdout;
};

/* Greedy soup (Wortsman et al. 2022): members by score, each kept only if the soup's score
 * does not drop. use[] gets the members kept. */
static void greedy(struct ldn_model *soup, struct member *M, int n, char *use,
                   struct ldn_dataset *const *sets, const int64_t *from, int nt)
{
    int order[FUSE_MAX] = {0};
    for (int m = 0; m < n; m++)
        order[m] = m;
    for (int i = 1; i < n; i++) /* by score, best first (stable) */
        for (int j = i; j > 0 && M[order[j]].score > M[order[j - 1]].score; j--) {
            int s = order[j];
            order[j] = order[j - 1];
            order[j - 1] = s;
        }
    for (int m = 0; m < n; m++)
        use[m] = 0;
    use[order[0]] = 1;
    double best = M[order[0]].score;
    printf("greedy: start with %s (held-out %.4f)\n", M[order[0]].L.ck.path, best);
    for (int i = 1; i < n; i++) {
        use[order[i]] = 1;
        average(soup, M, n, use);
        double s = score(soup, sets, from, nt);
        int keep = s >= best;
        printf("greedy: %s %s: soup held-out %.4f against %.4f\n", keep ? "add" : "skip",
               M[order[i]].L.ck.path, s, best);
        if (keep)
            best = s;
        else
            use[order[i]] = 0;
    }
    average(soup, M, n, use);
}

static int run(const struct fuse_args *a, char *err, size_t errlen)
{
    struct member *M = calloc((size_t)a->n, sizeof *M);
    struct ldn_ckmodel F; /* holds the fused weights: member 0's model, overwritten */
    ldn_ckmodel_init(&F);
    struct ldn_dataset **train = NULL, **test = NULL;
    int64_t *from = NULL;
    char use[FUSE_MAX] = {0};
    int rc = M ? 0 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int m = 0; m < a->n && rc == 0; m++) {
        ldn_ckmodel_init(&M[m].L);
        rc = ldn_ckmodel_load(a->paths[m], FUSE_BATCH, &M[m].L, err, errlen);
        if (rc == 0)
            rc = check_member(M, m, err, errlen);
        struct stat so, sm;
        if (rc == 0 && stat(a->out, &so) == 0 && stat(M[m].L.ck.path, &sm) == 0 &&
            so.st_dev == sm.st_dev && so.st_ino == sm.st_ino)
            rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                          "output %s is member %s: refusing to overwrite it", a->out,
                          M[m].L.ck.path);
    }
    const int nt = rc == 0 ? M[0].L.cfg->n_tasks : 0;
    if (rc == 0 && (rc = ldn_ckmodel_load(a->paths[0], FUSE_BATCH, &F, err, errlen)) == 0) {
        train = calloc((size_t)nt, sizeof *train);
        test = calloc((size_t)nt, sizeof *test);
        from = calloc((size_t)nt, sizeof *from);
        if (!train || !test || !from)
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; rc == 0 && t < nt; t++) {
        if (!(train[t] = ldn_ckmodel_load_split(&M[0].L, t, a->data, "train", err, errlen)) ||
            !(test[t] = ldn_ckmodel_load_split(&M[0].L, t, a->data, "test", err, errlen)))
            rc = LDN_ERR_FORMAT;
        else {
            int64_t h = (int64_t)ceil(a->holdout * (double)train[t]->n);
            from[t] = train[t]->n - (h < 1 ? 1 : h);
        }
    }
    if (rc == 0) {
        report_init(M, a->n);
        printf("held-out rows: the last %.0f%% of each task's training split (",
               100.0 * a->holdout);
        for (int t = 0; t < nt; t++)
            printf("%s%s rows [%lld, %lld)", t ? ", " : "", M[0].L.cfg->tasks[t].name,
                   (long long)from[t], (long long)train[t]->n);
        printf("); the members were trained on them too\n");
        for (int m = 0; m < a->n; m++)
            M[m].score = score(M[m].L.model, train, from, nt);
        if (a->greedy)
            greedy(F.model, M, a->n, use, train, from, nt);
        else {
            for (int m = 0; m < a->n; m++)
                use[m] = 1;
            average(F.model, M, a->n, use);
        }
    }
    int kept = 0;
    for (int m = 0; rc == 0 && m < a->n; m++)
        kept += use[m];
    struct ldn_export_report rep = {0};
    struct ldn_export_meta meta = {ldn_export_quant_kind("none"), 0.0, M ? M[0].L.ck.step : 0,
                                   M ? M[0].L.ck.epoch : 0, a->paths[0]};
    if (rc == 0)
        rc = ldn_export_write(a->out, F.model, F.cfg, &meta, &rep, err, errlen);
    if (rc == 0) {
        printf("fused %d of %d member(s) (%s) into %s\n", kept, a->n,
               a->greedy ? "greedy soup" : "uniform average", a->out);
        printf("%-40s %9s", "test accuracy", "held-out");
        for (int t = 0; t < nt; t++)
            printf(" %10s", M[0].L.cfg->tasks[t].name);
        printf("\n");
        for (int m = 0; m <= a->n; m++) {
            struct ldn_model *mod = m < a->n ? M[m].L.model : F.model;
            const char *name = m < a->n ? M[m].L.ck.path : "fused";
            size_t len = strlen(name);
            printf("%-40s %9.4f", len > 40 ? name + len - 40 : name,
                   m < a->n ? M[m].score : score(mod, train, from, nt));
            for (int t = 0; t < nt; t++) {
                double loss, acc;
                ldn_model_evaluate(mod, t, test[t]->x, test[t]->y, test[t]->n, &loss, &acc);
                printf(" %10.4f", acc);
            }
            printf("%s\n", m < a->n && a->greedy && !use[m] ? "  (left out)" : "");
        }
    }
    ldn_export_report_free(&rep);
    for (int t = 0; t < nt; t++) {
        if (train)
            ldn_dataset_destroy(&train[t]);
        if (test)
            ldn_dataset_destroy(&test[t]);
    }
    free(train);
    free(test);
    free(from);
    for (int m = 0; M && m < a->n; m++)
        ldn_ckmodel_free(&M[m].L);
    free(M);
    ldn_ckmodel_free(&F);
    return rc;
}

int ldn_tool_fuse(int argc, char **argv)
{
    struct fuse_args a = {.holdout = 0.1};
    const char *last_s = NULL, *hold_s = NULL;
    for (int i = 0; i < argc; i++) {
        const char **v = !strcmp(argv[i], "-o")          ? &a.out
                         : !strcmp(argv[i], "--last")    ? &last_s
                         : !strcmp(argv[i], "--holdout") ? &hold_s
                         : !strcmp(argv[i], "--data")    ? &a.data
                                                         : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        }
        if (!strcmp(argv[i], "--greedy"))
            a.greedy = 1;
        else if (v && i + 1 < argc)
            *v = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ladon fuse: unknown option or missing value '%s'\n", argv[i]);
            return 2;
        } else if (a.n < FUSE_MAX)
            a.paths[a.n++] = argv[i];
        else {
            fprintf(stderr, "ladon fuse: at most %d members\n", FUSE_MAX);
            return 2;
        }
    }
    char *end;
    if (hold_s && (errno = 0, a.holdout = strtod(hold_s, &end),
                   errno || end == hold_s || *end || !(a.holdout > 0 && a.holdout < 1))) {
        fprintf(stderr, "ladon fuse: --holdout must be a fraction in (0, 1), got '%s'\n", hold_s);
        return 2;
    }
    long k = 0;
    if (last_s && (errno = 0, k = strtol(last_s, &end, 10),
                   errno || end == last_s || *end || k < 2 || k > FUSE_MAX)) {
        fprintf(stderr, "ladon fuse: --last must be a count in [2, %d], got '%s'\n", FUSE_MAX,
                last_s);
        return 2;
    }
    if (!a.out || a.n < 1 || (!last_s && a.n < 2) || (last_s && a.n != 1)) {
        fprintf(stderr, "%s%s", USAGE,
                last_s ? "  (--last K takes exactly one checkpoint or run directory)\n"
                       : "  (at least two members, and -o OUT.h5)\n");
        return 2;
    }
    char err[LDN_ERRLEN];
    char *found[FUSE_MAX];
    int nf = 0;
    if (last_s) {
        nf = last_k(a.paths[0], (int)k, found, err, sizeof err);
        if (nf < 0) {
            fprintf(stderr, "ladon fuse: %s\n", err);
            return 1;
        }
        for (int i = 0; i < nf; i++)
            a.paths[i] = found[i];
        a.n = nf;
    }
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    int rc = run(&a, err, sizeof err);
    ldn_h5_restore(&q);
    for (int i = 0; i < nf; i++)
        free(found[i]);
    if (rc) {
        fprintf(stderr, "ladon fuse: %s\n", err);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
