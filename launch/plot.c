/* `ladon plot`: metrics.jsonl and config.yaml of runs into one gnuplot PNG. */
#define _POSIX_C_SOURCE 200809L
#include "plot.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "status.h"

#define NAME_MAX_LEN 128
#define LABEL_MAX 160
#define MAX_RUNS 16
#define DEPTH_MAX 16
#define DEFAULT_TIMEOUT_S 60

/* One evaluation record; NaN where the key is absent or null. */
enum field {
    F_STEP,
    F_EPOCH,
    F_LOSS,
    F_ACC,
    F_TRAIN_LOSS,
    F_SPS,
    F_PUSH,
    F_PULL,
    F_RATIO,
    F_AGREE,
    F_KL,
    F_SPARSITY,
    F_WEIGHT,
    F_COUNT
};
static const char *const field_keys[F_COUNT] = {"step",
                                                "epoch",
                                                "loss",
                                                "accuracy",
                                                "train_loss",
                                                "samples_per_s",
                                                "push_bytes_per_step",
                                                "pull_bytes_per_step",
                                                "compression_ratio",
                                                "teacher_agreement",
                                                "distill_kl",
                                                "sparsity",
                                                "task_weight"};

struct rec {
    char task[NAME_MAX_LEN];
    char round[NAME_MAX_LEN];
    double v[F_COUNT];
    double x; /* step laid out across rounds */
};

struct kv {
    char *key;
    char *val;
};

/* The last task-affinity row of a run (ps.affinity): G groups' labels and the whole trunk's
 * cosine matrix [G][G] (NaN for null). */
#define AFF_MAX_GROUPS 256
struct aff {
    int G;
    long step, from, to;
    char (*names)[NAME_MAX_LEN];
    double *cos;
};

struct run {
    const char *dir;
    char label[LABEL_MAX];
    struct rec *recs;
    size_t n, cap;
    char (*tasks)[NAME_MAX_LEN];
    size_t ntasks;
    char (*rounds)[NAME_MAX_LEN];
    double *round_x; /* where each round starts on the x axis */
    size_t nrounds;
    struct kv *cfg;
    size_t ncfg;
    int has_distill;
    int has_prune;       /* records with "sparsity" above 0 */
    double steps_per_ep; /* step / epoch of its records (0: unknown or rounds) */
    struct aff aff;
    int has_weight; /* train.task_weighting other than static: "task_weight" */
};

static void run_deinit(struct run *r)
{
    free(r->recs);
    free(r->tasks);
    free(r->rounds);
    free(r->round_x);
    for (size_t i = 0; i < r->ncfg; i++) {
        free(r->cfg[i].key);
        free(r->cfg[i].val);
    }
    free(r->cfg);
    free(r->aff.names);
    free(r->aff.cos);
    memset(r, 0, sizeof *r);
}

/* ---- JSON lines ---------------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    return p;
}

/* Parse a JSON string at *p (at its opening quote) into out (truncated to outlen - 1 bytes;
 * \u escapes outside ASCII become '?'). 0, or -1 when it is not a well-formed string. */
static int parse_string(const char **p, char *out, size_t outlen)
{
    const char *s = *p;
    size_t n = 0;
    if (*s++ != '"')
        return -1;
    for (; *s && *s != '"'; s++) {
        char c = *s;
        if (c == '\\') {
            const char *esc = strchr("\"\\/bfnrtu", *++s);
            if (!*s || !esc)
                return -1;
            static const char rep[] = "\"\\/\b\f\n\r\t";
            c = *s == 'u' ? '?' : rep[esc - "\"\\/bfnrtu"];
            if (*s == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (!strchr("0123456789abcdefABCDEF", s[k]) || !s[k])
                        return -1;
                unsigned code = (unsigned)strtoul((char[5]){s[1], s[2], s[3], s[4], 0}, NULL, 16);
                c = code < 0x80 && code >= 0x20 ? (char)code : '?';
                s += 4;
            }
        }
        if (n + 1 < outlen)
            out[n++] = c;
    }
    if (*s != '"')
        return -1;
    if (outlen)
        out[n] = 0;
    *p = s + 1;
    return 0;
}

/* Parse one value at *p: a number into *num, a string into str, null/true/false (num NaN, or
 * 1 and 0). NULL on success, else what was wrong. */
static const char *parse_value(const char **p, double *num, char *str, size_t cap)
{
    const char *s = *p;
    *num = NAN;
    if (str && cap)
        str[0] = 0;
    if (*s == '"') {
        char scratch[NAME_MAX_LEN];
        if (parse_string(p, str ? str : scratch, str ? cap : sizeof scratch))
            return "a malformed string";
        return NULL;
    }
    static const char *const words[] = {"null", "true", "false"};
    for (int w = 0; w < 3; w++) {
        size_t len = strlen(words[w]);
        if (!strncmp(s, words[w], len)) {
            *num = w == 0 ? NAN : w == 1 ? 1 : 0;
            *p = s + len;
            return NULL;
        }
    }
    if (*s != '-' && (*s < '0' || *s > '9'))
        return *s == '{' || *s == '[' ? "a nested object or array" : "an unexpected character";
    char *end;
    *num = strtod(s, &end);
    *p = end;
    return NULL;
}

/* Parse one flat JSON object into r. NULL on success, else what was wrong (with the column
 * in col). */
static const char *parse_record(const char *line, struct rec *r, long *col)
{
    const char *p = skip_ws(line), *why = NULL;
    memset(r, 0, sizeof *r);
    for (int f = 0; f < F_COUNT; f++)
        r->v[f] = NAN;
    if (*p++ != '{')
        why = "expected '{'";
    for (p = skip_ws(p); !why && *p != '}';) {
        char key[64];
        if (parse_string(&p, key, sizeof key)) {
            why = "expected a quoted key";
            break;
        }
        p = skip_ws(p);
        if (*p++ != ':') {
            why = "expected ':' after a key";
            break;
        }
        p = skip_ws(p);
        int f = 0;
        while (f < F_COUNT && strcmp(key, field_keys[f]))
            f++;
        char *str = !strcmp(key, "task") ? r->task : !strcmp(key, "round") ? r->round : NULL;
        double num;
        if ((why = parse_value(&p, &num, str, NAME_MAX_LEN)))
            break;
        if (f < F_COUNT)
            r->v[f] = num;
        p = skip_ws(p);
        if (*p == ',')
            p = skip_ws(p + 1);
        else if (*p != '}')
            why = "expected ',' or '}'";
    }
    if (!why && *skip_ws(p + 1))
        why = "text after the closing '}'";
    *col = (long)(p - line) + 1;
    return why;
}

static long find_name(char (*list)[NAME_MAX_LEN], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], name))
            return (long)i;
    return -1;
}

/* Index of name in list (appending it when new), or -1 when out of memory. */
static long intern(char (**list)[NAME_MAX_LEN], size_t *n, const char *name)
{
    long found = find_name(*list, *n, name);
    if (found >= 0)
        return found;
    char(*grown)[NAME_MAX_LEN] = realloc(*list, (*n + 1) * sizeof **list);
    if (!grown)
        return -1;
    *list = grown;
    snprintf(grown[*n], NAME_MAX_LEN, "%s", name);
    return (long)(*n)++;
}

static int add_record(struct run *run, const struct rec *r)
{
    if (run->n == run->cap) {
        size_t cap = run->cap ? run->cap * 2 : 64;
        struct rec *grown = realloc(run->recs, cap * sizeof *grown);
        if (!grown)
            return LDN_ERR_NOMEM;
        run->recs = grown;
        run->cap = cap;
    }
    run->recs[run->n++] = *r;
    if (intern(&run->tasks, &run->ntasks, r->task) < 0)
        return LDN_ERR_NOMEM;
    if (r->round[0] && intern(&run->rounds, &run->nrounds, r->round) < 0)
        return LDN_ERR_NOMEM;
    if (!isnan(r->v[F_AGREE]) || !isnan(r->v[F_KL]))
        run->has_distill = 1;
    if (!isnan(r->v[F_SPARSITY]) && r->v[F_SPARSITY] > 0)
        run->has_prune = 1;
    if (!r->round[0] && r->v[F_EPOCH] > 0 && r->v[F_STEP] > 0)
        run->steps_per_ep = r->v[F_STEP] / r->v[F_EPOCH];
    if (!isnan(r->v[F_WEIGHT]))
        run->has_weight = 1;
    return LDN_OK;
}

/* ---- affinity rows ({"kind":"affinity",...}, docs/metrics.md) -------------------------- */

/* Just after "key": at the top level of the object at line (a key is found only where it is
 * followed by ':' and the text before it is not inside a string), or NULL. */
static const char *after_key(const char *line, const char *key)
{
    char pat[72];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    return p ? skip_ws(p + strlen(pat)) : NULL;
}

static int is_affinity(const char *line)
{
    const char *p = skip_ws(line);
    static const char head[] = "{\"kind\":\"affinity\"";
    return !strncmp(p, head, sizeof head - 1);
}

/* A JSON array of up to max strings at *p into names (joined by sep when sub-arrays of
 * strings: group_tasks). Returns the count or -1. */
static int parse_names(const char **p, char (*names)[NAME_MAX_LEN], int max)
{
    const char *s = skip_ws(*p);
    int n = 0;
    if (*s++ != '[')
        return -1;
    for (s = skip_ws(s); *s != ']';) {
        if (n == max)
            return -1;
        if (*s == '[') { /* the tasks of a group, joined with ',' */
            char joined[NAME_MAX_LEN] = "";
            for (s = skip_ws(s + 1); *s != ']';) {
                char one[NAME_MAX_LEN];
                if (parse_string(&s, one, sizeof one))
                    return -1;
                size_t len = strlen(joined);
                if (snprintf(joined + len, sizeof joined - len, "%s%s", len ? "," : "", one) >=
                    (int)(sizeof joined - len))
                    joined[sizeof joined - 1] = 0; /* a long list is cut */
                s = skip_ws(s);
                if (*s == ',')
                    s = skip_ws(s + 1);
                else if (*s != ']')
                    return -1;
            }
            s++;
            snprintf(names[n++], NAME_MAX_LEN, "%s", joined);
        } else if (parse_string(&s, names[n++], NAME_MAX_LEN))
            return -1;
        s = skip_ws(s);
        if (*s == ',')
            s = skip_ws(s + 1);
        else if (*s != ']')
            return -1;
    }
    *p = s + 1;
    return n;
}

/* A G x G matrix of numbers or null at *p into m. 0 or -1. */
static int parse_matrix(const char *p, int G, double *m)
{
    p = skip_ws(p);
    if (*p++ != '[')
        return -1;
    for (int i = 0; i < G; i++) {
        p = skip_ws(p);
        if (*p++ != '[')
            return -1;
        for (int j = 0; j < G; j++) {
            double v;
            p = skip_ws(p);
            if (*p == '"' || parse_value(&p, &v, NULL, 0))
                return -1;
            m[(size_t)i * (size_t)G + (size_t)j] = v;
            p = skip_ws(p);
            if (*p++ != (j + 1 < G ? ',' : ']'))
                return -1;
        }
        p = skip_ws(p);
        if (*p++ != (i + 1 < G ? ',' : ']'))
            return -1;
    }
    return 0;
}

/* An affinity row into run->aff (the last one wins). NULL, or what is wrong. */
static const char *parse_affinity(const char *line, struct aff *a)
{
    char(*names)[NAME_MAX_LEN] = malloc(sizeof *names * AFF_MAX_GROUPS);
    char(*tasks)[NAME_MAX_LEN] = malloc(sizeof *tasks * AFF_MAX_GROUPS);
    const char *why = names && tasks ? NULL : "out of memory";
    const char *p = NULL, *c = NULL;
    int G = 0;
    double step = NAN, from = NAN, to = NAN;
    if (!why &&
        (!(p = after_key(line, "groups")) || (G = parse_names(&p, names, AFF_MAX_GROUPS)) < 1))
        why = "an affinity row without a list of groups";
    if (!why &&
        (!(p = after_key(line, "group_tasks")) || parse_names(&p, tasks, AFF_MAX_GROUPS) != G))
        why = "an affinity row whose group_tasks do not match its groups";
    if (!why) {
        const char *q;
        if ((q = after_key(line, "step")))
            parse_value(&q, &step, NULL, 0);
        if ((q = after_key(line, "from_step")))
            parse_value(&q, &from, NULL, 0);
        if ((q = after_key(line, "to_step")))
            parse_value(&q, &to, NULL, 0);
        if (isnan(step) || isnan(from) || isnan(to))
            why = "an affinity row without step, from_step and to_step";
    }
    double *cos = why ? NULL : malloc(sizeof *cos * (size_t)G * (size_t)G);
    if (!why && !cos)
        why = "out of memory";
    if (!why && (!(c = after_key(line, "cosine")) || !(c = after_key(c, "trunk")) ||
                 parse_matrix(c, G, cos)))
        why = "an affinity row without a groups x groups cosine.trunk matrix";
    if (!why) {
        for (int g = 0; g < G; g++) /* a group of one task is named by it; others list theirs */
            if (strcmp(names[g], tasks[g]) != 0) {
                char label[NAME_MAX_LEN];
                snprintf(label, sizeof label, "%.40s: %.80s", names[g], tasks[g]);
                snprintf(names[g], NAME_MAX_LEN, "%s", label);
            }
        free(a->names);
        free(a->cos);
        *a = (struct aff){G, (long)step, (long)from, (long)to, names, cos};
        names = NULL;
        cos = NULL;
    }
    free(names);
    free(tasks);
    free(cos);
    return why;
}

/* Read RUN/metrics.jsonl into run->recs (records without a step are skipped). */
static int read_metrics(struct run *run, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return ldn_fail(err, errlen, LDN_ERR_IO, "plot: %s: %s (is %s a run directory?)", path,
                        strerror(errno), run->dir);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    int rc = LDN_OK;
    while (rc == LDN_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (!*skip_ws(line))
            continue;
        struct rec r;
        long col = 1;
        const char *why = NULL;
        if (is_affinity(line)) {
            if ((why = parse_affinity(line, &run->aff)))
                rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "plot: %s:%ld: %s", path, lineno, why);
            continue;
        }
        why = parse_record(line, &r, &col);
        if (why)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "plot: %s:%ld:%ld: %s", path, lineno, col,
                          why);
        else if (!isnan(r.v[F_STEP]) && add_record(run, &r))
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "plot: %s: out of memory", path);
    }
    if (rc == LDN_OK && ferror(f))
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "plot: read %s: %s", path, strerror(errno));
    if (rc == LDN_OK && run->n == 0)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "plot: %s: no evaluation records", path);
    free(line);
    fclose(f);
    return rc;
}

/* Lay the rounds out one after the other: round k starts where round k-1's last step was. */
static int layout_rounds(struct run *run)
{
    size_t nr = run->nrounds ? run->nrounds : 1;
    double *end = calloc(nr, sizeof *end);
    run->round_x = calloc(nr, sizeof *run->round_x);
    if (!end || !run->round_x) {
        free(end);
        return LDN_ERR_NOMEM;
    }
    for (size_t i = 0; i < run->n; i++) {
        long k = find_name(run->rounds, run->nrounds, run->recs[i].round);
        k = k < 0 ? 0 : k; /* a record without a round: the first */
        if (run->recs[i].v[F_STEP] > end[k])
            end[k] = run->recs[i].v[F_STEP];
    }
    for (size_t k = 1; k < nr; k++)
        run->round_x[k] = run->round_x[k - 1] + end[k - 1];
    for (size_t i = 0; i < run->n; i++) {
        long k = find_name(run->rounds, run->nrounds, run->recs[i].round);
        run->recs[i].x = run->round_x[k < 0 ? 0 : k] + run->recs[i].v[F_STEP];
    }
    free(end);
    return LDN_OK;
}

/* ---- config.yaml: flatten the resolved YAML into dotted keys --------------------------- */

static char *trim(char *s)
{
    while (*s == ' ')
        s++;
    char *hash = strstr(s, " #");
    if (hash)
        *hash = 0;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = 0;
    return s;
}

static int add_kv(struct run *run, char stack[][NAME_MAX_LEN], int level, const char *val)
{
    char key[DEPTH_MAX * NAME_MAX_LEN] = "";
    size_t len = 0;
    for (int i = 0; i <= level; i++)
        len += (size_t)snprintf(key + len, sizeof key - len, "%s%s", i ? "." : "", stack[i]);
    struct kv *grown = realloc(run->cfg, (run->ncfg + 1) * sizeof *grown);
    if (!grown)
        return LDN_ERR_NOMEM;
    run->cfg = grown;
    grown[run->ncfg].key = strdup(key);
    grown[run->ncfg].val = strdup(val);
    if (!grown[run->ncfg].key || !grown[run->ncfg].val) {
        free(grown[run->ncfg].key);
        free(grown[run->ncfg].val);
        return LDN_ERR_NOMEM;
    }
    run->ncfg++;
    return LDN_OK;
}

/* Handle one line of block YAML: "key: value", "key:" or "- name: X" (a list item, named by
 * its name or its index). */
static int config_line(struct run *run, char *line, char stack[][NAME_MAX_LEN], int *items)
{
    int indent = 0;
    while (line[indent] == ' ')
        indent++;
    char *s = trim(line);
    if (!*s || *s == '#')
        return LDN_OK;
    int level = indent / 2;
    if (level >= DEPTH_MAX - 1)
        return LDN_OK;
    if (s[0] == '-' && s[1] == ' ') {
        char *rest = trim(s + 2);
        if (!strncmp(rest, "name: ", 6))
            snprintf(stack[level], NAME_MAX_LEN, "%s", trim(rest + 6));
        else
            snprintf(stack[level], NAME_MAX_LEN, "%d", items[level]);
        items[level]++;
        s = rest;
        level++;
        if (!strchr(s, ':'))
            return add_kv(run, stack, level - 1, s);
    } else {
        items[level + 1] = 0;
    }
    char *colon = strstr(s, ": ");
    if (!colon && s[strlen(s) - 1] == ':')
        colon = s + strlen(s) - 1;
    if (!colon)
        return LDN_OK;
    *colon = 0;
    snprintf(stack[level], NAME_MAX_LEN, "%s", s);
    char *val = trim(colon + 1);
    return *val ? add_kv(run, stack, level, val) : LDN_OK;
}

/* Read RUN/config.yaml (absent: no keys, the run is named by its directory alone). */
static int read_config(struct run *run)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", run->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return LDN_OK;
    char stack[DEPTH_MAX][NAME_MAX_LEN] = {{0}};
    int items[DEPTH_MAX + 1] = {0};
    char *line = NULL;
    size_t cap = 0;
    int rc = LDN_OK;
    while (rc == LDN_OK && getline(&line, &cap, f) >= 0)
        rc = config_line(run, line, stack, items);
    free(line);
    fclose(f);
    return rc;
}

static const char *config_get(const struct run *run, const char *key)
{
    for (size_t i = 0; i < run->ncfg; i++)
        if (!strcmp(run->cfg[i].key, key))
            return run->cfg[i].val;
    return NULL;
}

/* Keys that differ between every run by construction. */
static int ignored_key(const char *key)
{
    return !strcmp(key, "run.name") || !strcmp(key, "run.dir") || !strcmp(key, "checkpoint.dir");
}

/* The keys in which run i's config differs from another run's, "key value, ..." into buf. */
static void config_diff(const struct run *runs, size_t n, size_t i, char *buf, size_t len)
{
    const struct run *r = &runs[i];
    size_t used = 0;
    buf[0] = 0;
    for (size_t k = 0; k < r->ncfg && used < len; k++) {
        const char *key = r->cfg[k].key, *val = r->cfg[k].val;
        int differs = 0;
        for (size_t j = 0; j < n && !differs; j++) {
            const char *other = config_get(&runs[j], key);
            differs = j != i && runs[j].ncfg && (!other || strcmp(other, val));
        }
        if (differs && !ignored_key(key))
            used += (size_t)snprintf(buf + used, len - used, "%s%s %s", used ? ", " : "", key, val);
    }
}

/* Name each run: its directory's last component, then the keys in which its config differs
 * from another run's, e.g. "runA (train.lr 0.1)" (long lists cut with "..."). */
static void make_labels(struct run *runs, size_t n)
{
    const size_t max_diff = 100;
    for (size_t i = 0; i < n; i++) {
        struct run *r = &runs[i];
        char diff[LABEL_MAX * 4];
        const char *base = strrchr(r->dir, '/');
        base = base && base[1] ? base + 1 : r->dir;
        config_diff(runs, n, i, diff, sizeof diff);
        if (strlen(diff) > max_diff)
            memcpy(diff + max_diff - 3, "...", 4);
        if (*diff)
            snprintf(r->label, sizeof r->label, "%.40s (%s)", base, diff);
        else
            snprintf(r->label, sizeof r->label, "%.40s", base);
    }
}

/* ---- the gnuplot script ---------------------------------------------------------------- */

/* s as a gnuplot double-quoted string. */
static void gp_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One datablock $d_R_T per run and task: x then every field, "?" where missing; a blank line
 * between rounds. */
static void write_data(FILE *f, const struct run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < runs[i].ntasks; t++) {
            fprintf(f, "$d_%zu_%zu << EOD\n", i, t);
            const char *round = NULL;
            for (size_t k = 0; k < runs[i].n; k++) {
                const struct rec *r = &runs[i].recs[k];
                if (strcmp(r->task, runs[i].tasks[t]))
                    continue;
                if (round && strcmp(round, r->round) != 0)
                    fputc('\n', f); /* a blank line: no line drawn across a round boundary */
                round = r->round;
                fprintf(f, "%.10g", r->x);
                for (int c = 0; c < F_COUNT; c++) {
                    if (isnan(r->v[c]))
                        fputs(" ?", f);
                    else
                        fprintf(f, " %.10g", r->v[c]);
                }
                fputc('\n', f);
            }
            fputs("EOD\n", f);
        }
}

/* A labelled dashed line where each round starts (every panel shows them). */
static void write_rounds(FILE *f, const struct run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < runs[i].nrounds; k++) {
            double x = runs[i].round_x[k];
            fprintf(f,
                    "set arrow from %.10g, graph 0 to %.10g, graph 1 nohead dt 2 lc rgb "
                    "\"gray40\"\n",
                    x, x);
            fputs("set label ", f);
            char text[LABEL_MAX + NAME_MAX_LEN];
            snprintf(text, sizeof text, "%s%s%s", n > 1 ? runs[i].label : "", n > 1 ? ": " : "",
                     runs[i].rounds[k]);
            gp_string(f, text);
            fprintf(f, " at %.10g, graph %.2f left offset 0.5,0 font \",8\" tc rgb \"gray30\"\n", x,
                    0.95 - 0.06 * (double)i);
        }
}

/* The number config.yaml has at key, or def. */
static double config_num(const struct run *run, const char *key, double def)
{
    const char *v = config_get(run, key);
    char *end;
    double x = v ? strtod(v, &end) : def;
    return v && end != v ? x : def;
}

/* Dotted lines where pruning starts and where it reaches its target (prune.start, prune.end
 * of the run's config.yaml; end 0: three quarters of the run, as common/job/prune.c has it),
 * for pruned runs without rounds. */
static void write_prune_marks(FILE *f, const struct run *runs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct run *r = &runs[i];
        if (!r->has_prune || r->nrounds > 0 || r->steps_per_ep <= 0)
            continue;
        const double total = floor(r->steps_per_ep * config_num(r, "train.epochs", 0) + 0.5);
        const double start = config_num(r, "prune.start", 0);
        double end = config_num(r, "prune.end", 0);
        end = end > 0 ? end : floor(total * 3 / 4);
        end = end > total - 1 ? total - 1 : end;
        end = end < start ? start : end;
        const double at[2] = {start, end};
        const char *what[2] = {"prune start", "prune end"};
        for (int k = 0; k < 2; k++) {
            fprintf(f,
                    "set arrow from %.10g, graph 0 to %.10g, graph 1 nohead dt 3 lc rgb "
                    "\"dark-red\"\n",
                    at[k], at[k]);
            char text[LABEL_MAX + 32];
            const char *base = strrchr(r->dir, '/'); /* the run's name, not its config diff */
            base = base && base[1] ? base + 1 : r->dir;
            snprintf(text, sizeof text, "%s%s%s", n > 1 ? base : "", n > 1 ? ": " : "", what[k]);
            fputs("set label ", f);
            gp_string(f, text);
            fprintf(f, " at %.10g, graph %.2f left offset 0.5,0 font \",8\" tc rgb \"dark-red\"\n",
                    at[k], 0.10 + 0.06 * (double)i);
        }
    }
}

/* A second x axis in epochs, from the first run whose records give steps per epoch (runs
 * with rounds have none: epochs restart in every round). */
static void write_epoch_axis(FILE *f, const struct run *runs, size_t n, double xmax)
{
    for (size_t i = 0; i < n; i++) {
        if (runs[i].steps_per_ep <= 0 || runs[i].nrounds > 0 || xmax <= 0)
            continue;
        fprintf(f, "set x2range [0:%.10g]\nset x2tics nomirror\nset xtics nomirror\n",
                xmax / runs[i].steps_per_ep);
        if (n > 1) {
            char text[LABEL_MAX + 16];
            snprintf(text, sizeof text, "epoch (of %s)", runs[i].label);
            fputs("set x2label ", f);
            gp_string(f, text);
            fputc('\n', f);
        } else
            fputs("set x2label \"epoch\"\n", f);
        return;
    }
}

/* One panel: column c+2 of every run's datablocks, one line per task (per_task) or the first
 * task's records only (values that are the same for every task of a run). */
static void write_panel(FILE *f, const struct run *runs, size_t n, const char *title,
                        const char *ylabel, const int *cols, int ncols, int per_task)
{
    static const char *const col_names[F_COUNT] = {
        "", "",          "test loss", "test accuracy", "training loss", "", "push", "pull",
        "", "agreement", "KL",        "sparsity"};
    fprintf(f, "set title \"%s\"\nset ylabel \"%s\"\nplot ", title, ylabel);
    int first = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t t = 0; t < (per_task ? runs[i].ntasks : 1); t++)
            for (int c = 0; c < ncols; c++) {
                char key[LABEL_MAX + 2 * NAME_MAX_LEN];
                const char *task = per_task && runs[i].ntasks > 1 ? runs[i].tasks[t] : "";
                snprintf(key, sizeof key, "%s%s%s%s%s", n > 1 ? runs[i].label : "",
                         n > 1 && *task ? " " : "", task, ncols > 1 ? " " : "",
                         ncols > 1 ? col_names[cols[c]] : "");
                fprintf(f, "%s$d_%zu_%zu using 1:%d with linespoints ", first ? "" : ", \\\n  ", i,
                        t, cols[c] + 2);
                fputs(*key ? "title " : "notitle", f);
                if (*key)
                    gp_string(f, key);
                first = 0;
            }
    fputc('\n', f);
}

/* The heat map of run i's last affinity matrix: cells coloured from -1 (blue) to 1 (red),
 * the groups' names on both axes (up to 40 groups) and each cell's value (up to 12). */
static void write_affinity(FILE *f, const struct run *runs, size_t n, size_t i)
{
    const struct aff *a = &runs[i].aff;
    fprintf(f, "$a_%zu << EOD\n", i);
    for (int r = 0; r < a->G; r++) {
        for (int c = 0; c < a->G; c++) {
            double v = a->cos[(size_t)r * (size_t)a->G + (size_t)c];
            fprintf(f, isnan(v) ? "%sNaN" : "%s%.4f", c ? " " : "", v);
        }
        fputc('\n', f);
    }
    fputs("EOD\n", f);
    fputs("unset arrow\nunset label\nunset key\nunset grid\nset xlabel \"\"\nset ylabel \"\"\n", f);
    fputs("unset x2tics\nunset x2label\nset xtics mirror\n", f);
    fprintf(f, "set xrange [-0.5:%d.5]\nset yrange [%d.5:-0.5]\n", a->G - 1, a->G - 1);
    fputs("set cbrange [-1:1]\nset palette defined (-1 \"#2166ac\", 0 \"white\", 1 \"#b2182b\")\n",
          f);
    for (int axis = 0; axis < 2; axis++) {
        fprintf(f, "set %s (", axis ? "ytics" : "xtics");
        for (int g = 0; g < a->G && a->G <= 40; g++) {
            fputs(g ? ", " : "", f);
            gp_string(f, a->names[g]);
            fprintf(f, " %d", g);
        }
        fprintf(f, ")%s font \",8\"\n", axis ? "" : " rotate by 30 right");
    }
    char title[LABEL_MAX + 128];
    snprintf(title, sizeof title, "%s%stask affinity: cosine of trunk gradients, steps [%ld, %ld)",
             n > 1 ? runs[i].label : "", n > 1 ? ": " : "", a->from, a->to);
    fputs("set title ", f);
    gp_string(f, title);
    fprintf(f, "\nplot $a_%zu matrix with image", i);
    if (a->G <= 12)
        fprintf(f, ", $a_%zu matrix using 1:2:(sprintf(\"%%.2f\", $3)) with labels font \",8\"", i);
    fputc('\n', f);
}

static void write_script(FILE *f, const struct run *runs, size_t n, const char *out)
{
    int distill = 0, rounds = 0, prune = 0, heat = 0, weight = 0;
    for (size_t i = 0; i < n; i++) {
        distill |= runs[i].has_distill;
        weight |= runs[i].has_weight;
        rounds |= runs[i].nrounds > 0;
        prune |= runs[i].has_prune;
        heat += runs[i].aff.G > 0;
    }
    int rows = (6 + 2 * distill + prune + weight + heat + 1) / 2;
    fputs("# written by ladon plot; run with: gnuplot THIS_FILE\n", f);
    fprintf(f, "set terminal pngcairo noenhanced size 1400,%d font \",10\"\n", 330 * rows);
    fputs("if (!exists(\"out\")) out = ", f);
    gp_string(f, out);
    fputs("\nset output out\nset datafile missing \"?\"\n", f);
    write_data(f, runs, n);
    fputs("set grid\nset key outside bottom center horizontal maxcols 3 font \",8\"\n", f);
    fprintf(f, "set xlabel \"%s\"\n", rounds ? "step (rounds one after the other)" : "step");
    write_rounds(f, runs, n);
    write_prune_marks(f, runs, n);
    double xmax = 0; /* one x range for every panel (the distillation ones have fewer points) */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < runs[i].n; k++)
            xmax = runs[i].recs[k].x > xmax ? runs[i].recs[k].x : xmax;
    if (xmax > 0)
        fprintf(f, "set xrange [0:%.10g]\n", xmax);
    write_epoch_axis(f, runs, n, xmax);
    fprintf(f, "set multiplot layout %d,2 title ", rows);
    gp_string(f, n == 1 ? runs[0].label : "ladon runs");
    fputc('\n', f);
    write_panel(f, runs, n, "test accuracy", "accuracy", (int[]){F_ACC}, 1, 1);
    write_panel(f, runs, n, "test loss", "loss", (int[]){F_LOSS}, 1, 1);
    write_panel(f, runs, n, "training loss", "loss", (int[]){F_TRAIN_LOSS}, 1, 1);
    write_panel(f, runs, n, "throughput", "samples/s", (int[]){F_SPS}, 1, 0);
    write_panel(f, runs, n, "bytes per step", "bytes", (int[]){F_PUSH, F_PULL}, 2, 0);
    write_panel(f, runs, n, "compression ratio (dense / pushed bytes)", "ratio", (int[]){F_RATIO},
                1, 0);
    if (distill) {
        write_panel(f, runs, n, "teacher agreement", "agreement", (int[]){F_AGREE}, 1, 1);
        write_panel(f, runs, n, "distillation KL", "KL", (int[]){F_KL}, 1, 1);
    }
    if (prune)
        write_panel(f, runs, n, "trunk sparsity (share of weights masked)", "sparsity",
                    (int[]){F_SPARSITY}, 1, 0);
    if (weight)
        write_panel(f, runs, n, "task weight in effect (train.task_weighting)", "weight",
                    (int[]){F_WEIGHT}, 1, 1);
    for (size_t i = 0; i < n; i++) /* last: they change the axes */
        if (runs[i].aff.G > 0)
            write_affinity(f, runs, n, i);
    fputs("unset multiplot\n", f);
}

/* ---- running gnuplot -------------------------------------------------------------------- */

static int gnuplot_on_path(void)
{
    const char *path = getenv("PATH");
    char dir[LDN_PATH_MAX + 16];
    while (path && *path) {
        size_t len = strcspn(path, ":");
        if (len && len < LDN_PATH_MAX) {
            snprintf(dir, sizeof dir, "%.*s/gnuplot", (int)len, path);
            if (access(dir, X_OK) == 0)
                return 1;
        }
        path += len + (path[len] == ':');
    }
    return 0;
}

/* The first line of file into buf ("" when empty or unreadable). */
static void first_line(const char *file, char *buf, size_t len)
{
    buf[0] = 0;
    FILE *f = fopen(file, "r");
    if (!f)
        return;
    while (fgets(buf, (int)len, f) && !*trim(buf))
        ;
    fclose(f);
    char *s = trim(buf);
    memmove(buf, s, strlen(s) + 1);
}

/* Wait for pid up to timeout_s; 1 when it exited with status 0, 0 when it failed, -1 when it
 * was killed for running out of time. */
static int wait_child(pid_t pid, double timeout_s)
{
    struct timespec tick = {0, 20 * 1000 * 1000};
    int status = 0;
    for (double waited = 0;; waited += 0.02) {
        pid_t got = waitpid(pid, &status, WNOHANG);
        if (got == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (got < 0 && errno != EINTR)
            return 0;
        if (waited >= timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nanosleep(&tick, NULL);
    }
}

/* gnuplot SCRIPT with out="PART" (the script's output), stderr into errfile. */
static int run_gnuplot(const char *script, const char *part, const char *errfile, double timeout_s,
                       char *err, size_t errlen)
{
    char setout[2 * LDN_PATH_MAX + 16] = "out=\"";
    size_t n = strlen(setout);
    for (const char *c = part; *c && n + 4 < sizeof setout; c++) {
        if (*c == '"' || *c == '\\')
            setout[n++] = '\\';
        setout[n++] = *c;
    }
    setout[n++] = '"';
    setout[n] = 0;
    if (!gnuplot_on_path())
        return ldn_fail(err, errlen, LDN_ERR_IO,
                        "plot: gnuplot not found on PATH: install gnuplot-nox (launch/setup-deps "
                        "does)");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "plot: fork: %s", strerror(errno));
    if (pid == 0) {
        if (!freopen("/dev/null", "r", stdin) || !freopen("/dev/null", "w", stdout) ||
            !freopen(errfile, "w", stderr))
            _exit(126);
        execlp("gnuplot", "gnuplot", "-e", setout, script, (char *)NULL);
        fprintf(stderr, "exec gnuplot: %s\n", strerror(errno));
        _exit(127);
    }
    int ok = wait_child(pid, timeout_s);
    if (ok < 0)
        return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                        "plot: gnuplot did not finish within %g s (killed); script %s", timeout_s,
                        script);
    if (!ok) {
        char line[LDN_ERRLEN / 2];
        first_line(errfile, line, sizeof line);
        return ldn_fail(err, errlen, LDN_ERR_PEER, "plot: gnuplot failed on %s: %s", script,
                        *line ? line : "(no message)");
    }
    return LDN_OK;
}

/* ---- the command ------------------------------------------------------------------------ */

struct plot_args {
    const char *dirs[MAX_RUNS];
    size_t n;
    const char *out;
    int keep_script;
    double timeout_s;
};

static void plot_usage(FILE *f)
{
    fputs("usage: ladon plot RUN_DIR [RUN_DIR ...] [-o OUT.png] [--keep-script] [--timeout S]\n"
          "  draw test accuracy, test loss and training loss per task, samples/s, push and\n"
          "  pull bytes per step and the compression ratio of each run's metrics.jsonl against\n"
          "  step (rounds one after the other, each start marked), and the last task-affinity\n"
          "  matrix (ps.affinity) as a heat map; several runs are overlaid\n"
          "  and named by what differs in their config.yaml. Default OUT: RUN_DIR/plot.png for\n"
          "  one run, ./runs.png for several. --keep-script also writes the gnuplot script\n"
          "  (data inline) as OUT with .gp for .png; --timeout: seconds for gnuplot (60).\n"
          "  Needs gnuplot (Debian: gnuplot-nox; launch/setup-deps installs it).\n",
          f);
}

/* 0, 1 when help was asked for, or 2 on a usage error (message printed). */
static int parse_plot_args(int argc, char **argv, struct plot_args *a)
{
    memset(a, 0, sizeof *a);
    a->timeout_s = DEFAULT_TIMEOUT_S;
    for (int i = 0; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            plot_usage(stdout);
            return 1;
        } else if (!strcmp(argv[i], "-o") && i + 1 < argc) {
            a->out = argv[++i];
        } else if (!strcmp(argv[i], "--keep-script")) {
            a->keep_script = 1;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc &&
                   (a->timeout_s = strtod(argv[i + 1], &end)) > 0 && !*end) {
            i++;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ladon plot: unknown or incomplete option '%s'\n", argv[i]);
            plot_usage(stderr);
            return 2;
        } else if (a->n == MAX_RUNS) {
            fprintf(stderr, "ladon plot: at most %d runs at once\n", MAX_RUNS);
            return 2;
        } else {
            size_t len = strlen(argv[i]);
            while (len > 1 && argv[i][len - 1] == '/')
                argv[i][--len] = 0;
            a->dirs[a->n++] = argv[i];
        }
    }
    if (a->n == 0) {
        plot_usage(stderr);
        return 2;
    }
    return 0;
}

/* Where the script goes: OUT.gp beside the PNG (--keep-script), else a fresh temporary
 * directory (tmpdir is filled, "" when none was made). */
static int script_path(const struct plot_args *a, const char *out, char *script, size_t len,
                       char *tmpdir, size_t tmplen, char *err, size_t errlen)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, tmplen, "%s/ladon-plot-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir))
        return ldn_fail(err, errlen, LDN_ERR_IO, "plot: mkdtemp %s: %s", tmpdir, strerror(errno));
    if (!a->keep_script) {
        snprintf(script, len, "%s/plot.gp", tmpdir);
        return LDN_OK;
    }
    size_t n = strlen(out);
    if (n > 4 && !strcmp(out + n - 4, ".png"))
        n -= 4;
    if (snprintf(script, len, "%.*s.gp", (int)n, out) >= (int)len)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "plot: output path %s is too long", out);
    return LDN_OK;
}

static int write_script_file(const char *script, const struct run *runs, size_t n, const char *out,
                             char *err, size_t errlen)
{
    FILE *f = fopen(script, "w");
    if (!f)
        return ldn_fail(err, errlen, LDN_ERR_IO, "plot: %s: %s", script, strerror(errno));
    write_script(f, runs, n, out);
    int bad = ferror(f);
    if (fclose(f) || bad)
        return ldn_fail(err, errlen, LDN_ERR_IO, "plot: write %s: %s", script, strerror(errno));
    return LDN_OK;
}

/* Script, gnuplot into OUT.part, then rename to OUT. */
static int render(const struct plot_args *a, const struct run *runs, const char *out, char *err,
                  size_t errlen)
{
    char script[LDN_PATH_MAX + 16], tmpdir[LDN_PATH_MAX], part[LDN_PATH_MAX + 16];
    char errfile[LDN_PATH_MAX + 16];
    if (snprintf(part, sizeof part, "%s.part", out) >= (int)sizeof part)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "plot: output path %s is too long", out);
    int rc = script_path(a, out, script, sizeof script, tmpdir, sizeof tmpdir, err, errlen);
    if (rc)
        return rc;
    snprintf(errfile, sizeof errfile, "%s/gnuplot.err", tmpdir);
    rc = write_script_file(script, runs, a->n, out, err, errlen);
    if (!rc)
        rc = run_gnuplot(script, part, errfile, a->timeout_s, err, errlen);
    struct stat st;
    if (!rc && (stat(part, &st) || st.st_size == 0))
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "plot: gnuplot wrote no image to %s", part);
    if (!rc && rename(part, out))
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "plot: rename %s to %s: %s", part, out,
                      strerror(errno));
    if (rc)
        remove(part);
    remove(errfile);
    if (!a->keep_script)
        remove(script);
    rmdir(tmpdir);
    return rc;
}

int ldn_tool_plot(int argc, char **argv)
{
    struct plot_args a;
    int rc = parse_plot_args(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : 2;
    char out[LDN_PATH_MAX], err[LDN_ERRLEN] = "";
    if (a.out)
        snprintf(out, sizeof out, "%s", a.out);
    else if (a.n == 1)
        snprintf(out, sizeof out, "%s/plot.png", a.dirs[0]);
    else
        snprintf(out, sizeof out, "runs.png");
    struct run runs[MAX_RUNS] = {{0}};
    for (size_t i = 0; i < a.n && !rc; i++) {
        runs[i].dir = a.dirs[i];
        rc = read_metrics(&runs[i], err, sizeof err);
        if (!rc && (read_config(&runs[i]) || layout_rounds(&runs[i])))
            rc = ldn_fail(err, sizeof err, LDN_ERR_NOMEM, "plot: %s: out of memory", a.dirs[i]);
    }
    if (!rc) {
        make_labels(runs, a.n);
        rc = render(&a, runs, out, err, sizeof err);
    }
    for (size_t i = 0; i < a.n; i++)
        run_deinit(&runs[i]);
    if (rc) {
        fprintf(stderr, "ladon %s\n", err);
        return 1;
    }
    printf("%s\n", out);
    return 0;
}
