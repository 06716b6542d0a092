/* Checkpoint tools: inspect, eval, predict (tools.h, docs/checkpoint.md, "Tools"). */
#define _XOPEN_SOURCE 700 /* POSIX 2008 with realpath */
#include "tools.h"

#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <hdf5.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckmodel.h"
#include "ckpt.h"
#include "config.h"
#include "data.h"
#include "h5util.h"
#include "loss.h"
#include "model.h"
#include "prune.h"
#include "status.h"

#define KIND "checkpoint"
#define VERIFY_BLOCK_BYTES (4 << 20) /* inspect reads datasets in blocks of rows of this size */
#define MAX_ROW_BYTES (1 << 30)      /* larger rows are a damaged shape, not a real one */
#define EVAL_MIN_BATCH 1024          /* the workers' evaluation batch (worker/worker.c) */

/* "a, b, c": the task names of cfg, for messages. */
static void task_list(const struct ldn_config *cfg, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int t = 0; t < cfg->n_tasks && off + 1 < len; t++) {
        int n = snprintf(buf + off, len - off, "%s%s", t ? ", " : "", cfg->tasks[t].name);
        if (n < 0)
            break;
        off += (size_t)n;
    }
}

static int find_task(const struct ldn_ckmodel *L, const char *task, char *err, size_t errlen)
{
    int t = ldn_config_task_index(L->cfg, task);
    if (t < 0) {
        char names[256];
        task_list(L->cfg, names, sizeof names);
        return ldn_fail(err, errlen, LDN_ERR_ARG, "checkpoint %s has no task '%s' (tasks: %s)",
                        L->ck.path, task, names);
    }
    return t;
}

/* ---------------------------------------------------------------- verifying every dataset */

struct verify {
    char **names; /* every dataset, "/a/b" */
    int n, cap;
    int64_t values, nonfinite;
    char first_nonfinite[LDN_CKPT_NAME_MAX];
};

static void verify_free(struct verify *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->names[i]);
    free(v->names);
    memset(v, 0, sizeof *v);
}

/* ldn_ckpt_walk: collect each dataset's name. */
static int collect(const char *name, void *ud, char *err, size_t errlen)
{
    struct verify *v = ud;
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 64;
        char **p = realloc(v->names, sizeof *p * (size_t)cap);
        if (!p)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        v->names = p;
        v->cap = cap;
    }
    if (!(v->names[v->n] = strdup(name)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    v->n++;
    return 0;
}

/* The one-line message for a failed H5Dread of dataset `name`. */
static int read_failure(const char *kind, const char *path, const char *name, char *err,
                        size_t errlen)
{
    char h5[256];
    ldn_h5_errmsg(h5, sizeof h5);
    if (strstr(h5, "Fletcher32") || strstr(h5, "checksum"))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "%s %s: %s: checksum mismatch (Fletcher-32): the file is damaged", kind,
                        path, name);
    return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                    "%s %s: read %s failed (damaged or truncated file?): %s", kind, path, name,
                    h5[0] ? h5 : "HDF5 error");
}

/* Read every element of dataset `name` in blocks of rows (HDF5 verifies each chunk's
 * checksum); count the values and the non-finite floats. */
static int verify_dataset(const struct ldn_ckpt *ck, const char *name, struct verify *v, char *err,
                          size_t errlen)
{
    hid_t d = H5Dopen2(ck->f, name, H5P_DEFAULT);
    if (d < 0)
        return ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path, "open %s", name);
    hid_t ft = H5Dget_type(d), fsp = H5Dget_space(d), mt = H5I_INVALID_HID, msp = H5I_INVALID_HID;
    void *buf = NULL;
    int rc = 0, nd = fsp >= 0 ? H5Sget_simple_extent_ndims(fsp) : -1;
    hsize_t dims[H5S_MAX_RANK] = {0};
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    if (ft < 0 || fsp < 0 || nd < 0 || H5Sget_simple_extent_dims(fsp, dims, NULL) < 0) {
        rc = ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path, "%s: type or shape", name);
        goto done;
    }
    if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "checkpoint %s: %s is not numeric (a checkpoint holds only numbers)",
                      ck->path, name);
        goto done;
    }
    if ((mt = H5Tget_native_type(ft, H5T_DIR_ASCEND)) < 0) {
        rc = ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, KIND, ck->path, "%s: type", name);
        goto done;
    }
    size_t es = H5Tget_size(mt);
    int is_f32 = cls == H5T_FLOAT && es == sizeof(float);
    int is_f64 = cls == H5T_FLOAT && es == sizeof(double);
    hsize_t rows = nd == 0 ? 1 : dims[0], row = 1;
    for (int i = 1; i < nd; i++) {
        if (dims[i] && row > (hsize_t)MAX_ROW_BYTES / dims[i]) {
            row = (hsize_t)MAX_ROW_BYTES + 1;
            break;
        }
        row *= dims[i];
    }
    if (row * es > (hsize_t)MAX_ROW_BYTES) {
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: %s has an implausible shape",
                      ck->path, name);
        goto done;
    }
    if (rows == 0 || row == 0)
        goto done;
    hsize_t block = VERIFY_BLOCK_BYTES / (row * es);
    if (block < 1)
        block = 1;
    if (block > rows)
        block = rows;
    if (!(buf = malloc((size_t)(block * row * es)))) {
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint %s: %s: out of memory", ck->path,
                      name);
        goto done;
    }
    for (hsize_t r0 = 0; r0 < rows && rc == 0; r0 += block) {
        hsize_t start[H5S_MAX_RANK] = {0}, count[H5S_MAX_RANK];
        hsize_t n = rows - r0 < block ? rows - r0 : block;
        for (int i = 0; i < nd; i++)
            count[i] = dims[i];
        start[0] = r0;
        count[0] = n;
        hsize_t elems = n * row;
        if (nd > 0 && H5Sselect_hyperslab(fsp, H5S_SELECT_SET, start, NULL, count, NULL) < 0) {
            rc = ldn_h5_fail(err, errlen, LDN_ERR_INTERNAL, KIND, ck->path, "select %s", name);
            break;
        }
        ldn_h5_close(&msp, H5Sclose);
        msp = nd > 0 ? H5Screate_simple(nd, count, NULL) : H5Screate(H5S_SCALAR);
        if (msp < 0 || H5Dread(d, mt, msp, fsp, H5P_DEFAULT, buf) < 0) {
            rc = read_failure(KIND, ck->path, name, err, errlen);
            break;
        }
        int64_t bad = 0;
        if (is_f32)
            for (hsize_t i = 0; i < elems; i++)
                bad += !isfinite(((const float *)buf)[i]);
        else if (is_f64)
            for (hsize_t i = 0; i < elems; i++)
                bad += !isfinite(((const double *)buf)[i]);
        if (bad && !v->nonfinite)
            snprintf(v->first_nonfinite, sizeof v->first_nonfinite, "%s", name);
        v->nonfinite += bad;
        v->values += (int64_t)elems;
    }
done:
    free(buf);
    ldn_h5_close(&msp, H5Sclose);
    ldn_h5_close(&mt, H5Tclose);
    ldn_h5_close(&fsp, H5Sclose);
    ldn_h5_close(&ft, H5Tclose);
    ldn_h5_close(&d, H5Dclose);
    return rc;
}

/* Walk the whole file and read every dataset. Returns 0 or the first damage found. */
static int verify_file(const struct ldn_ckpt *ck, struct verify *v, char *err, size_t errlen)
{
    int rc = ldn_ckpt_walk(ck, collect, v, err, errlen);
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    for (int i = 0; i < v->n && rc == 0; i++)
        rc = verify_dataset(ck, v->names[i], v, err, errlen);
    ldn_h5_restore(&q);
    return rc;
}

static int has_prefix(const struct verify *v, const char *prefix)
{
    size_t n = strlen(prefix);
    for (int i = 0; i < v->n; i++)
        if (strncmp(v->names[i], prefix, n) == 0)
            return 1;
    return 0;
}

/* Workers with state in the file, and of them how many hold `what` (e.g. "/residual"). */
static int workers_with(const struct verify *v, const char *what)
{
    int count = 0, last = -1;
    for (int i = 0; i < v->n; i++) {
        int r, len = 0;
        if (sscanf(v->names[i], "/workers/%d%n", &r, &len) != 1 || r == last)
            continue;
        if (what && strncmp(v->names[i] + len, what, strlen(what)) != 0)
            continue;
        /* names are sorted by HDF5's name index: one rank's datasets are adjacent */
        last = r;
        count++;
    }
    return count;
}

/* The state that goes with the model must be complete where it exists: each network's
 * optimizer moments (all layers, the model's shapes) and each worker's batch order. */
static int check_state(const struct ldn_ckmodel *L, const struct verify *v, char *err,
                       size_t errlen)
{
    const char *moments[2] = {"m", "v"};
    char prefix[LDN_CKPT_NAME_MAX], probe[LDN_CKPT_NAME_MAX + 2];
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        for (int t = -1; t < L->cfg->n_tasks && rc == 0; t++) {
            struct ldn_nn *net = t < 0 ? L->model->trunk : L->model->heads[t];
            if (t < 0)
                snprintf(prefix, sizeof prefix, "/optimizer/%s/trunk", moments[k]);
            else
                snprintf(prefix, sizeof prefix, "/optimizer/%s/heads/%s", moments[k],
                         L->cfg->tasks[t].name);
            snprintf(probe, sizeof probe, "%s/", prefix);
            if (has_prefix(v, probe)) /* the net's gradient buffer is free scratch here */
                rc = ldn_ckpt_read_net(&L->ck, net, prefix, net->own_grads, 0, net->n_params, err,
                                       errlen);
        }
    }
    for (int i = 0; i < v->n && rc == 0; i++) {
        const char *b = strstr(v->names[i], "/batch/");
        if (strncmp(v->names[i], "/workers/", 9) != 0 || !b)
            continue;
        const char *slash = strrchr(v->names[i], '/');
        int dir = (int)(slash - v->names[i]);
        const char *parts[3] = {"perm", "state", "rng"};
        for (int k = 0; k < 3 && rc == 0; k++) {
            snprintf(probe, sizeof probe, "%.*s/%s", dir, v->names[i], parts[k]);
            if (!ldn_ckpt_has(&L->ck, probe))
                rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                              "checkpoint %s: dataset %s is missing (worker state incomplete)",
                              L->ck.path, probe);
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- the metrics attribute */

struct metric {
    char task[LDN_NAME_MAX];
    double step, epoch, loss, accuracy, test_rows;
};

/* The number after "key": in one JSON line (NAN when absent). */
static double json_num(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    char *end;
    double x = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? NAN : x;
}

/* Parse the metrics attribute (one JSON object per line and task) minimally: the fields the
 * summary prints. Returns the number of lines parsed into out (at most max). */
static int parse_metrics(const char *text, struct metric *out, int max)
{
    int n = 0;
    for (const char *p = text; *p && n < max;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[2048];
        if (len > 0 && len < sizeof line) {
            memcpy(line, p, len);
            line[len] = '\0';
            const char *t = strstr(line, "\"task\":\"");
            if (t) {
                struct metric *m = &out[n];
                t += 8;
                size_t tl = strcspn(t, "\"");
                if (tl >= sizeof m->task)
                    tl = sizeof m->task - 1;
                memcpy(m->task, t, tl);
                m->task[tl] = '\0';
                m->step = json_num(line, "step");
                m->epoch = json_num(line, "epoch");
                m->loss = json_num(line, "loss");
                m->accuracy = json_num(line, "accuracy");
                m->test_rows = json_num(line, "test_rows");
                n++;
            }
        }
        p += len + (e ? 1 : 0);
    }
    return n;
}

/* ---------------------------------------------------------------- printing helpers */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, size_t len, int64_t v)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%lld", (long long)(v < 0 ? -v : v)), o = 0;
    if (v < 0 && (size_t)o + 1 < len)
        buf[o++] = '-';
    for (int i = 0; i < n && (size_t)o + 1 < len; i++) {
        if (i > 0 && (n - i) % 3 == 0 && (size_t)o + 2 < len)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *human_bytes(char *buf, size_t len, double b)
{
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", b, u[i]);
    return buf;
}

static void print_layer(FILE *f, const struct ldn_layer *ly)
{
    fprintf(f, "weight [%d, %d]  bias [%d]", ly->out_dim, ly->in_dim, ly->out_dim);
}

/* ---------------------------------------------------------------- the round of a checkpoint */

/* The round a checkpoint of a run with rounds belongs to, and the run's round list when the
 * file lies under RUN/rounds/NAME/checkpoints beside a RUN/config.yaml. */
struct round_info {
    int round;                     /* ck.round: 1-based, 0 without rounds */
    char name[LDN_NAME_MAX];       /* the round's name */
    char run_config[LDN_PATH_MAX]; /* RUN/config.yaml, when run is set */
    struct ldn_config *run;        /* the run's config (owned), or NULL */
};

/* The round of a checkpoint of a run with rounds: the name its run.name ("<run>.<round>")
 * ends with. */
static const char *round_suffix(const struct ldn_config *cfg)
{
    const char *dot = strrchr(cfg->run_name, '.');
    return dot ? dot + 1 : cfg->run_name;
}

/* Cut the last component off path (in place); returns it, or NULL when there is none. */
static const char *cut_last(char *path)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return NULL;
    *slash = '\0';
    return slash + 1;
}

/* RUN/config.yaml of a file RUN/rounds/NAME/checkpoints/FILE into out, NAME into name;
 * 0 when ck_path does not lie in such a place. */
static int round_run_config(const char *ck_path, char *out, size_t outlen, char *name,
                            size_t namelen)
{
    char *abs = realpath(ck_path, NULL);
    if (!abs)
        return 0;
    const char *file = cut_last(abs), *ckdir = file ? cut_last(abs) : NULL;
    const char *round = ckdir ? cut_last(abs) : NULL, *rounds = round ? cut_last(abs) : NULL;
    int ok = rounds && strcmp(ckdir, "checkpoints") == 0 && strcmp(rounds, "rounds") == 0 &&
             (size_t)snprintf(out, outlen, "%s/config.yaml", abs) < outlen &&
             (size_t)snprintf(name, namelen, "%s", round) < namelen && access(out, F_OK) == 0;
    free(abs);
    return ok;
}

/* Fill ri for the checkpoint of L. The round list is only taken from a RUN/config.yaml that
 * parses and whose round ck.round has the name of the directory the checkpoint lies in; when
 * it does not, a note on stderr says why and only the round and its name are shown. */
static void round_info_find(const struct ldn_ckmodel *L, struct round_info *ri)
{
    memset(ri, 0, sizeof *ri);
    if ((ri->round = L->ck.round) <= 0)
        return;
    snprintf(ri->name, sizeof ri->name, "%s", round_suffix(L->cfg));
    char dir_name[LDN_NAME_MAX], why[LDN_ERRLEN];
    if (!round_run_config(L->ck.path, ri->run_config, sizeof ri->run_config, dir_name,
                          sizeof dir_name))
        return;
    struct ldn_config *run = ldn_config_load(ri->run_config, 0, NULL, why, sizeof why);
    if (!run) {
        fprintf(stderr, "ladon inspect: note: the run's %s does not load (%s): no round list\n",
                ri->run_config, why);
        return;
    }
    if (run->n_rounds < ri->round || strcmp(run->rounds[ri->round - 1].name, dir_name) != 0) {
        fprintf(stderr,
                "ladon inspect: note: %s: round %d is not '%s', the round the checkpoint lies "
                "under (the config changed since?): no round list\n",
                ri->run_config, ri->round, dir_name);
        ldn_config_destroy(&run);
        return;
    }
    snprintf(ri->name, sizeof ri->name, "%s", dir_name);
    ri->run = run;
}

/* "[64, 32]": the hidden widths of round r. */
static const char *round_trunk(const struct ldn_round_config *r, char *buf, size_t len)
{
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < r->n_trunk && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? ", " : "", r->trunk[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
    return buf;
}

static const char *anneal_name(int a)
{
    return a == LDN_ANNEAL_LINEAR ? "linear" : "none";
}
static const char *inputs_name(int i)
{
    return i == LDN_TEACHER_ALL ? "all" : "own";
}

/* The round lines of inspect's text: the round, then the run's round list (the checkpoint's
 * round marked with *): name, length, seed, trunk, init, and the teacher of a distilling one. */
static void print_rounds(const struct round_info *ri)
{
    if (!ri->run) {
        printf("round        %d: %s\n", ri->round, ri->name);
        return;
    }
    const struct ldn_config *run = ri->run;
    printf("round        %d of %d: %s (run %s, rounds from %s)\n", ri->round, run->n_rounds,
           ri->name, run->run_name, ri->run_config);
    for (int i = 0; i < run->n_rounds; i++) {
        const struct ldn_round_config *r = &run->rounds[i];
        char len[32], trunk[128];
        if (r->steps > 0)
            snprintf(len, sizeof len, "%lld steps", (long long)r->steps);
        else
            snprintf(len, sizeof len, "%d epoch%s", r->epochs, r->epochs == 1 ? "" : "s");
        printf("  %c %-2d %-12s %-11s seed %-5llu trunk %-12s", i + 1 == ri->round ? '*' : ' ',
               i + 1, r->name, len, (unsigned long long)r->seed,
               round_trunk(r, trunk, sizeof trunk));
        if (r->init_round >= 0)
            printf(" init %s,", r->init);
        if (!r->has_teacher) {
            printf(" on labels\n");
            continue;
        }
        const struct ldn_teacher_config *tc = &r->teacher;
        printf(" teacher ");
        for (int m = 0; m < tc->n_members; m++)
            printf("%s%s", m ? ", " : "", tc->members[m]);
        printf(": temperature %g, alpha %g, annealing %s, inputs %s\n", tc->temperature, tc->alpha,
               anneal_name(tc->annealing), inputs_name(tc->inputs));
    }
}

/* inspect --json: "round", "round_name" and, when found, "run_config" and "rounds". */
static void json_rounds(FILE *f, const struct round_info *ri)
{
    if (ri->round <= 0)
        return;
    fprintf(f, ",\"round\":%d,\"round_name\":", ri->round);
    json_string(f, ri->name);
    if (!ri->run)
        return;
    fputs(",\"run_config\":", f);
    json_string(f, ri->run_config);
    fputs(",\"rounds\":[", f);
    for (int i = 0; i < ri->run->n_rounds; i++) {
        const struct ldn_round_config *r = &ri->run->rounds[i];
        fputs(i ? ",{\"name\":" : "{\"name\":", f);
        json_string(f, r->name);
        if (r->steps > 0)
            fprintf(f, ",\"steps\":%lld,\"epochs\":null", (long long)r->steps);
        else
            fprintf(f, ",\"steps\":null,\"epochs\":%d", r->epochs);
        fprintf(f, ",\"seed\":%llu,\"trunk\":[", (unsigned long long)r->seed);
        for (int l = 0; l < r->n_trunk; l++)
            fprintf(f, l ? ",%d" : "%d", r->trunk[l]);
        fputs("],\"init\":", f);
        if (r->init_round >= 0)
            json_string(f, r->init);
        else
            fputs("null", f);
        if (!r->has_teacher) {
            fputs(",\"teacher\":null}", f);
            continue;
        }
        const struct ldn_teacher_config *tc = &r->teacher;
        fputs(",\"teacher\":{\"members\":[", f);
        for (int m = 0; m < tc->n_members; m++) {
            fputs(m ? "," : "", f);
            json_string(f, tc->members[m]);
        }
        fprintf(f,
                "],\"temperature\":%.17g,\"alpha\":%.17g,\"annealing\":\"%s\",\"inputs\":\"%s\"}}",
                tc->temperature, tc->alpha, anneal_name(tc->annealing), inputs_name(tc->inputs));
    }
    fputs("]", f);
}

/* ---------------------------------------------------------------- inspect */

struct summary {
    const struct ldn_ckmodel *L;
    const struct verify *v;
    int64_t size, trunk_params, head_params;
    int opt_m, opt_v, opt_t, opt_updates;
    int workers, w_residual, w_velocity, w_codec, w_batch;
    struct metric *metrics;
    int n_metrics;
    const struct round_info *ri;
    int pruned;                     /* the checkpoint has masks (/prune/trunk) */
    int64_t masked[LDN_MAX_LAYERS]; /* masked weights per trunk layer */
    struct ldn_prune_units units;
};

static void print_text(const struct summary *s)
{
    const struct ldn_ckpt *ck = &s->L->ck;
    const struct ldn_config *cfg = s->L->cfg;
    const struct ldn_model *m = s->L->model;
    char a[64], b[64];
    printf("checkpoint   %s\n", ck->path);
    printf("size         %s bytes (%s)\n", grouped(a, sizeof a, s->size),
           human_bytes(b, sizeof b, (double)s->size));
    printf("format       %s version %d, written by ladon %s at %s\n", LDN_CKPT_FORMAT,
           ck->format_version, ck->ladon_version, ck->created);
    printf("step         %lld of %lld (epoch %.2f, %lld steps per epoch)\n", (long long)ck->step,
           (long long)ck->total_steps, ck->epoch, (long long)ck->steps_per_epoch);
    printf("seed         %llu\n", (unsigned long long)ck->seed);
    if (ck->init_id)
        printf("init id      %016llx (the weights the run started from)\n",
               (unsigned long long)ck->init_id);
    else
        printf("init id      not recorded (written by an older ladon)\n");
    if (s->ri->round > 0)
        print_rounds(s->ri);
    printf("job          %d servers, %d workers, %d input features\n", ck->n_servers, ck->n_workers,
           ck->features);
    printf("trunk        %d layers, %s, %s parameters\n", m->trunk->n_layers,
           ldn_activation_name(cfg->activation), grouped(a, sizeof a, s->trunk_params));
    for (int i = 0; i < m->trunk->n_layers; i++) {
        printf("  %-10d ", i);
        print_layer(stdout, &m->trunk->layers[i]);
        printf("\n");
    }
    if (s->pruned) {
        char what[512];
        ldn_prune_describe(&s->units, s->masked, what, sizeof what);
        printf("pruning      sparsity %s of the trunk's weights, by layer\n", what);
    }
    printf("heads        %d tasks, %s parameters\n", cfg->n_tasks,
           grouped(a, sizeof a, s->head_params));
    for (int t = 0; t < cfg->n_tasks; t++) {
        const struct ldn_nn *h = m->heads[t];
        for (int i = 0; i < h->n_layers; i++) {
            if (i == 0)
                printf("  %-10s %3d classes  ", cfg->tasks[t].name, s->L->classes[t]);
            else
                printf("  %-10s %3s          ", "", "");
            print_layer(stdout, &h->layers[i]);
            printf("\n");
        }
    }
    int64_t total = s->trunk_params + s->head_params;
    printf("parameters   %s (%s as float32)\n", grouped(a, sizeof a, total),
           human_bytes(b, sizeof b, 4.0 * (double)total));
    const char *opt[4] = {
        s->opt_m ? "m (momentum / first moment)" : NULL, s->opt_v ? "v (second moment)" : NULL,
        s->opt_t ? "t (head step counts)" : NULL, s->opt_updates ? "trunk update counts" : NULL};
    printf("optimizer    ");
    int any = 0;
    for (int i = 0; i < 4; i++)
        if (opt[i])
            printf("%s%s", any++ ? ", " : "", opt[i]);
    printf("%s\n", any ? "" : "none");
    if (s->workers)
        printf("worker state %d workers: batch order %d, residual %d, velocity %d, codec rng %d\n",
               s->workers, s->w_batch, s->w_residual, s->w_velocity, s->w_codec);
    else
        printf("worker state none\n");
    if (s->n_metrics == 0)
        printf("last eval    none\n");
    for (int i = 0; i < s->n_metrics; i++) {
        const struct metric *e = &s->metrics[i];
        if (i == 0)
            printf("last eval    step %.0f (epoch %.2f)\n", e->step, e->epoch);
        printf("  %-10s accuracy %.6f  loss %.6g  (%.0f test rows)\n", e->task, e->accuracy,
               e->loss, e->test_rows);
    }
    printf("verified     %d datasets, %s values: every checksum matches\n", s->v->n,
           grouped(a, sizeof a, s->v->values));
    if (s->v->nonfinite)
        printf("warning      %s non-finite values (NaN or infinity), the first in %s\n",
               grouped(a, sizeof a, s->v->nonfinite), s->v->first_nonfinite);
}

static void json_shape(FILE *f, const struct ldn_layer *ly)
{
    fprintf(f, "{\"weight\":[%d,%d],\"bias\":[%d]}", ly->out_dim, ly->in_dim, ly->out_dim);
}

static void json_num_or_null(FILE *f, const char *key, double x, int comma)
{
    fprintf(f, comma ? ",\"%s\":" : "\"%s\":", key);
    if (isfinite(x))
        fprintf(f, "%.17g", x);
    else
        fputs("null", f);
}

static void print_json(const struct summary *s)
{
    const struct ldn_ckpt *ck = &s->L->ck;
    const struct ldn_config *cfg = s->L->cfg;
    const struct ldn_model *m = s->L->model;
    FILE *f = stdout;
    fputs("{\"path\":", f);
    json_string(f, ck->path);
    fprintf(f, ",\"size\":%lld,\"format\":\"%s\",\"format_version\":%d,\"ladon_version\":",
            (long long)s->size, LDN_CKPT_FORMAT, ck->format_version);
    json_string(f, ck->ladon_version);
    fputs(",\"created\":", f);
    json_string(f, ck->created);
    fprintf(f,
            ",\"step\":%lld,\"total_steps\":%lld,\"steps_per_epoch\":%lld,\"epoch\":%.17g"
            ",\"seed\":%llu,\"servers\":%d,\"workers\":%d,\"features\":%d,\"activation\":\"%s\"",
            (long long)ck->step, (long long)ck->total_steps, (long long)ck->steps_per_epoch,
            ck->epoch, (unsigned long long)ck->seed, ck->n_servers, ck->n_workers, ck->features,
            ldn_activation_name(cfg->activation));
    if (ck->init_id)
        fprintf(f, ",\"init_id\":\"%016llx\"", (unsigned long long)ck->init_id);
    json_rounds(f, s->ri);
    fputs(",\"trunk\":[", f);
    for (int i = 0; i < m->trunk->n_layers; i++) {
        fputs(i ? "," : "", f);
        json_shape(f, &m->trunk->layers[i]);
    }
    fputs("]", f);
    if (s->pruned) {
        char what[512];
        fprintf(f, ",\"pruning\":{\"sparsity\":%.17g,\"layers\":[",
                ldn_prune_describe(&s->units, s->masked, what, sizeof what));
        for (int i = 0; i < m->trunk->n_layers; i++)
            fprintf(f, "%s%.17g", i ? "," : "",
                    (double)s->masked[i] / (double)s->units.layer_weights[i]);
        fputs("]}", f);
    }
    fputs(",\"heads\":[", f);
    for (int t = 0; t < cfg->n_tasks; t++) {
        fputs(t ? ",{\"task\":" : "{\"task\":", f);
        json_string(f, cfg->tasks[t].name);
        fprintf(f, ",\"classes\":%d,\"layers\":[", s->L->classes[t]);
        for (int i = 0; i < m->heads[t]->n_layers; i++) {
            fputs(i ? "," : "", f);
            json_shape(f, &m->heads[t]->layers[i]);
        }
        fputs("]}", f);
    }
    int64_t total = s->trunk_params + s->head_params;
    fprintf(f,
            "],\"parameters\":{\"trunk\":%lld,\"heads\":%lld,\"total\":%lld,\"bytes\":%lld}"
            ",\"optimizer\":{\"m\":%s,\"v\":%s,\"t\":%s,\"trunk_updates\":%s}"
            ",\"worker_state\":{\"workers\":%d,\"batch\":%d,\"residual\":%d,\"velocity\":%d,"
            "\"codec_rng\":%d}",
            (long long)s->trunk_params, (long long)s->head_params, (long long)total,
            (long long)(4 * total), s->opt_m ? "true" : "false", s->opt_v ? "true" : "false",
            s->opt_t ? "true" : "false", s->opt_updates ? "true" : "false", s->workers, s->w_batch,
            s->w_residual, s->w_velocity, s->w_codec);
    fputs(",\"metrics\":[", f);
    for (int i = 0; i < s->n_metrics; i++) {
        const struct metric *e = &s->metrics[i];
        fputs(i ? ",{\"task\":" : "{\"task\":", f);
        json_string(f, e->task);
        json_num_or_null(f, "step", e->step, 1);
        json_num_or_null(f, "epoch", e->epoch, 1);
        json_num_or_null(f, "accuracy", e->accuracy, 1);
        json_num_or_null(f, "loss", e->loss, 1);
        json_num_or_null(f, "test_rows", e->test_rows, 1);
        fputs("}", f);
    }
    fprintf(f, "],\"verified\":{\"datasets\":%d,\"values\":%lld,\"nonfinite\":%lld}}\n", s->v->n,
            (long long)s->v->values, (long long)s->v->nonfinite);
}

/* A tool's option: `--name VALUE` into *value, or a flag (`--name`) setting *flag. */
struct tool_opt {
    const char *name;
    const char **value;
    int *flag;
};

/* The command line of tool `ladon TOOL`: the options, and up to n_pos positional arguments
 * into pos[] (left as they were when not given). Returns 0, or 2 (the exit status) after one
 * line naming the tool and the argument. */
static int parse_args(const char *tool, int argc, char **argv, const struct tool_opt *opts,
                      int n_opts, const char **pos, int n_pos)
{
    int np = 0;
    for (int i = 0; i < argc; i++) {
        const struct tool_opt *o = NULL;
        for (int k = 0; k < n_opts && !o; k++)
            if (!strcmp(argv[i], opts[k].name))
                o = &opts[k];
        if (o && o->flag)
            *o->flag = 1;
        else if (o && i + 1 < argc)
            *o->value = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ladon %s: unknown option or missing value '%s'\n", tool, argv[i]);
            return 2;
        } else if (np < n_pos)
            pos[np++] = argv[i];
        else {
            fprintf(stderr, "ladon %s: too many arguments ('%s' is extra)\n", tool, argv[i]);
            return 2;
        }
    }
    return 0;
}

/* The checkpoint's pruning masks, counted per layer (none: s->pruned stays 0). */
static int read_masks(struct summary *s, char *err, size_t errlen)
{
    const struct ldn_nn *trunk = s->L->model->trunk;
    const int64_t n = trunk->n_params;
    uint8_t *keep = malloc((size_t)n);
    float *buf = malloc(sizeof(float) * (size_t)n);
    int rc = keep && buf ? ldn_prune_ckpt_read(&s->L->ck, trunk, keep, buf, 0, n, err, errlen)
                         : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if (rc == 1) {
        s->pruned = 1;
        ldn_prune_units_init(&s->units, &s->L->cfg->prune, trunk);
        ldn_prune_count(trunk, keep, 0, n, s->masked);
    }
    free(keep);
    free(buf);
    return rc < 0 ? rc : 0;
}

int ldn_tool_inspect(int argc, char **argv)
{
    const char *arg = NULL;
    int json = 0;
    const struct tool_opt opts[] = {{"--json", NULL, &json}};
    if (parse_args("inspect", argc, argv, opts, 1, &arg, 1))
        return 2;
    if (!arg) {
        fprintf(stderr, "usage: ladon inspect CKPT [--json]\n");
        return 2;
    }
    char err[LDN_ERRLEN];
    struct ldn_ckmodel L;
    struct verify v = {0};
    struct round_info ri = {0};
    struct summary s = {.L = &L, .v = &v, .ri = &ri};
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    ldn_ckmodel_init(&L);
    /* every dataset first (the checksums), then the model's shapes against the config */
    int rc = ldn_ckmodel_open(arg, &L.ck, err, sizeof err);
    if (rc == 0)
        rc = verify_file(&L.ck, &v, err, sizeof err);
    if (rc == 0) {
        char path[LDN_PATH_MAX];
        snprintf(path, sizeof path, "%s", L.ck.path);
        ldn_ckpt_close(&L.ck);
        rc = ldn_ckmodel_load(path, 1, &L, err, sizeof err);
    } else {
        ldn_ckpt_close(&L.ck);
        ldn_ckmodel_init(&L);
    }
    if (rc == 0)
        rc = check_state(&L, &v, err, sizeof err);
    if (rc == 0) {
        struct stat st;
        s.size = stat(L.ck.path, &st) == 0 ? (int64_t)st.st_size : -1;
        s.trunk_params = L.model->trunk->n_params;
        for (int t = 0; t < L.cfg->n_tasks; t++)
            s.head_params += L.model->heads[t]->n_params;
        s.opt_m = has_prefix(&v, "/optimizer/m/");
        s.opt_v = has_prefix(&v, "/optimizer/v/");
        s.opt_t = has_prefix(&v, "/optimizer/t/");
        s.opt_updates = has_prefix(&v, "/optimizer/trunk_updates");
        s.workers = workers_with(&v, NULL);
        s.w_batch = workers_with(&v, "/batch/");
        s.w_residual = workers_with(&v, "/residual");
        s.w_velocity = workers_with(&v, "/velocity");
        s.w_codec = workers_with(&v, "/codec_rng");
        int max = L.cfg->n_tasks + 1;
        s.metrics = calloc((size_t)max, sizeof *s.metrics);
        if (!s.metrics)
            rc = ldn_fail(err, sizeof err, LDN_ERR_NOMEM, "out of memory");
        else
            s.n_metrics = parse_metrics(L.ck.metrics, s.metrics, max);
        round_info_find(&L, &ri);
    }
    if (rc == 0)
        rc = read_masks(&s, err, sizeof err);
    if (rc == 0) {
        if (json)
            print_json(&s);
        else
            print_text(&s);
    }
    free(s.metrics);
    ldn_config_destroy(&ri.run);
    verify_free(&v);
    ldn_ckmodel_free(&L);
    ldn_h5_restore(&q);
    if (rc) {
        fprintf(stderr, "ladon inspect: %s\n", err);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- eval */

#define EVAL_MAX_MEMBERS 32 /* checkpoints one `ladon eval` takes */

/* The checkpoints of `ladon eval` (one, or the members of an ensemble) and the test sets of
 * the first member's tasks. */
struct ensemble {
    int n;                     /* members */
    struct ldn_ckmodel *m;     /* [n] */
    int n_tasks;               /* the first member's tasks */
    int only;                  /* the task of --task (an index of the first member's), or -1 */
    int *head;                 /* [n_tasks * n]: member k's head for task t at [t * n + k] */
    struct ldn_dataset **sets; /* [n_tasks]: the test split, NULL for a task not evaluated */
    int batch;                 /* rows per forward pass: the smallest max batch of the members */
};

/* Per task: loss[k] and acc[k] of member k, and of the ensemble at k = n. */
struct eval_result {
    double *loss, *acc;
};

static void ensemble_free(struct ensemble *E)
{
    for (int t = 0; t < E->n_tasks && E->sets; t++)
        ldn_dataset_destroy(&E->sets[t]);
    for (int k = 0; k < E->n && E->m; k++)
        ldn_ckmodel_free(&E->m[k]);
    free(E->sets);
    free(E->head);
    free(E->m);
    memset(E, 0, sizeof *E);
}

/* Load the n checkpoints args[] (each as ldn_ckmodel_load takes it) into E. */
static int load_members(struct ensemble *E, const char *const *args, int n, char *err,
                        size_t errlen)
{
    if (!(E->m = calloc((size_t)n, sizeof *E->m)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int k = 0; k < n; k++)
        ldn_ckmodel_init(&E->m[k]);
    E->n = n;
    for (int k = 0; k < n; k++) {
        int rc = ldn_ckmodel_load(args[k], EVAL_MIN_BATCH, &E->m[k], err, errlen);
        if (rc)
            return rc;
        int mb = E->m[k].model->trunk->max_batch;
        E->batch = k == 0 || mb < E->batch ? mb : E->batch;
    }
    E->n_tasks = E->m[0].cfg->n_tasks;
    if (!(E->head = calloc((size_t)(E->n_tasks * n), sizeof *E->head)) ||
        !(E->sets = calloc((size_t)E->n_tasks, sizeof *E->sets)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; t < E->n_tasks; t++)
        E->head[t * n] = t; /* the first member's own order */
    return 0;
}

/* Member k against the first member: the input width, every task of the first (only --task's
 * when given) with the same classes, and (without --task) no task the first lacks. Fills
 * E->head for member k. Returns 0 or LDN_ERR_ARG with one line naming both checkpoints. */
static int check_member(struct ensemble *E, int k, char *err, size_t errlen)
{
    const struct ldn_ckmodel *A = &E->m[0], *B = &E->m[k];
    const char *why = "ensemble members must have the same tasks";
    char names[256];
    if (A->ck.features != B->ck.features)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "input width: checkpoint %s takes %d input features, checkpoint %s %d "
                        "(ensemble members must take the same inputs)",
                        A->ck.path, A->ck.features, B->ck.path, B->ck.features);
    for (int t = 0; t < E->n_tasks; t++) {
        if (E->only >= 0 && t != E->only)
            continue;
        const char *name = A->cfg->tasks[t].name;
        int h = ldn_config_task_index(B->cfg, name);
        if (h < 0) {
            task_list(B->cfg, names, sizeof names);
            return ldn_fail(err, errlen, LDN_ERR_ARG,
                            "checkpoint %s has no task '%s' of checkpoint %s (%s; it has: %s)",
                            B->ck.path, name, A->ck.path, why, names);
        }
        if (B->classes[h] != A->classes[t])
            return ldn_fail(err, errlen, LDN_ERR_ARG,
                            "head '%s': %d classes in checkpoint %s, %d in checkpoint %s "
                            "(ensemble members must agree on each head's classes)",
                            name, A->classes[t], A->ck.path, B->classes[h], B->ck.path);
        E->head[t * E->n + k] = h;
    }
    for (int h = 0; E->only < 0 && h < B->cfg->n_tasks; h++) {
        if (ldn_config_task_index(A->cfg, B->cfg->tasks[h].name) >= 0)
            continue;
        task_list(A->cfg, names, sizeof names);
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "checkpoint %s has task '%s' that checkpoint %s lacks (%s; the first has: "
                        "%s)",
                        B->ck.path, B->cfg->tasks[h].name, A->ck.path, why, names);
    }
    return 0;
}

/* The test split of task t of the first member: the config's file or DIR/T.h5, which must have
 * the members' input width and the head's classes. */
static int load_test_set(struct ensemble *E, int t, const char *data, char *err, size_t errlen)
{
    const struct ldn_ckmodel *L = &E->m[0];
    const struct ldn_task_config *tk = &L->cfg->tasks[t];
    char file[LDN_PATH_MAX + LDN_NAME_MAX + 8], name[64];
    if (data)
        snprintf(file, sizeof file, "%s/%s.h5", data, tk->name);
    else
        snprintf(file, sizeof file, "%s", tk->file);
    int classes, features, rc;
    int64_t n_train, n_test;
    if ((rc = ldn_dataset_probe(file, name, sizeof name, &classes, &features, &n_train, &n_test,
                                err, errlen)))
        return rc;
    if (features != L->ck.features)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "data %s: %d features, the model of checkpoint %s takes %d", file, features,
                        L->ck.path, L->ck.features);
    if (classes != L->classes[t])
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "data %s: %d classes, head %s of checkpoint %s has %d", file, classes,
                        tk->name, L->ck.path, L->classes[t]);
    if (strcmp(name, tk->name) != 0)
        fprintf(stderr, "ladon eval: warning: %s holds task '%s', evaluated as task '%s'\n", file,
                name, tk->name);
    if (!(E->sets[t] = ldn_dataset_load(file, "test", 0, 1, err, errlen)))
        return LDN_ERR_FORMAT;
    return 0;
}

/* p[j] += softmax(z)[j] for each of the b rows of z [b, c] (in double). */
static void add_softmax(const float *z, int b, int c, double *p)
{
    for (int i = 0; i < b; i++) {
        const float *r = z + (int64_t)i * c;
        double *q = p + (int64_t)i * c, zmax = r[0], sum = 0;
        for (int j = 1; j < c; j++)
            zmax = r[j] > zmax ? r[j] : zmax;
        for (int j = 0; j < c; j++)
            sum += exp((double)r[j] - zmax);
        for (int j = 0; j < c; j++)
            q[j] += exp((double)r[j] - zmax) / sum;
    }
}

/* Task t in batches of E->batch rows: each member's mean cross-entropy and accuracy (exactly
 * as ldn_model_evaluate computes them), and with several members the ensemble's: the argmax
 * and the cross-entropy of the mean of the members' probabilities. pbar: [E->batch * classes]
 * scratch. */
static void eval_task(struct ensemble *E, int t, struct eval_result *r, double *pbar)
{
    const struct ldn_dataset *ds = E->sets[t];
    const int n = E->n, c = E->m[0].classes[t], f = ds->features;
    double ens_loss = 0;
    int64_t ens_right = 0;
    for (int k = 0; k <= n; k++)
        r->loss[k] = r->acc[k] = 0;
    for (int64_t i = 0; i < ds->n; i += E->batch) {
        int b = (int)(ds->n - i < E->batch ? ds->n - i : E->batch);
        if (n > 1)
            memset(pbar, 0, sizeof *pbar * (size_t)b * (size_t)c);
        for (int k = 0; k < n; k++) {
            const float *z = ldn_ckmodel_forward(&E->m[k], E->head[t * n + k], ds->x + i * f, b);
            int64_t ok = 0;
            r->loss[k] += ldn_loss_xent(z, ds->y + i, b, c, 1.0f, NULL, &ok) * b;
            r->acc[k] += (double)ok;
            if (n > 1)
                add_softmax(z, b, c, pbar);
        }
        for (int j = 0; n > 1 && j < b; j++) {
            const double *q = pbar + (int64_t)j * c;
            int best = 0;
            for (int l = 1; l < c; l++)
                best = q[l] > q[best] ? l : best;
            double py = q[ds->y[i + j]] / n;
            ens_right += best == ds->y[i + j];
            ens_loss -= log(py > DBL_MIN ? py : DBL_MIN);
        }
    }
    r->loss[n] = ens_loss;
    r->acc[n] = (double)ens_right;
    for (int k = 0; k <= n; k++) {
        r->loss[k] = ds->n > 0 ? r->loss[k] / (double)ds->n : 0.0;
        r->acc[k] = ds->n > 0 ? r->acc[k] / (double)ds->n : 0.0;
    }
}

/* One checkpoint: today's table. Several: the members, then an accuracy table and a loss
 * table, each a row per task, a column per member ([k] in argument order) and the ensemble. */
static void print_eval(const struct ensemble *E, const struct eval_result *res)
{
    const struct ldn_ckmodel *m = E->m;
    if (E->n == 1) {
        printf("checkpoint %s: step %lld of %lld, epoch %.2f\n", m->ck.path, (long long)m->ck.step,
               (long long)m->ck.total_steps, m->ck.epoch);
        printf("%-16s %10s %10s %12s\n", "task", "test rows", "accuracy", "loss");
        for (int t = 0; t < E->n_tasks; t++)
            if (E->sets[t])
                printf("%-16s %10lld %10.6f %12.6g\n", m->cfg->tasks[t].name,
                       (long long)E->sets[t]->n, res[t].acc[0], res[t].loss[0]);
        return;
    }
    printf("ensemble of %d checkpoints (the mean of their softmax probabilities)\n", E->n);
    for (int k = 0; k < E->n; k++) {
        const struct ldn_ckpt *ck = &m[k].ck;
        printf("  [%d] %s: step %lld of %lld, epoch %.2f", k + 1, ck->path, (long long)ck->step,
               (long long)ck->total_steps, ck->epoch);
        if (ck->round > 0)
            printf(", round %d (%s)", ck->round, round_suffix(m[k].cfg));
        printf("\n");
    }
    for (int loss = 0; loss < 2; loss++) {
        printf("%-16s %10s", loss ? "loss" : "accuracy", "test rows");
        for (int k = 0; k < E->n; k++) {
            char label[16];
            snprintf(label, sizeof label, "[%d]", k + 1);
            printf(" %12s", label);
        }
        printf(" %12s\n", "ensemble");
        for (int t = 0; t < E->n_tasks; t++) {
            if (!E->sets[t])
                continue;
            printf("%-16s %10lld", m->cfg->tasks[t].name, (long long)E->sets[t]->n);
            for (int k = 0; k <= E->n; k++)
                printf(loss ? " %12.6g" : " %12.6f", loss ? res[t].loss[k] : res[t].acc[k]);
            printf("\n");
        }
    }
}

/* Load the members, check that they agree (before any data is read), load every test set
 * (before anything is printed), evaluate and print. */
static int run_eval(struct ensemble *E, const char *const *args, int n, const char *data,
                    const char *task, char *err, size_t errlen)
{
    int rc = load_members(E, args, n, err, errlen);
    E->only = -1;
    if (rc == 0 && task && (E->only = find_task(&E->m[0], task, err, errlen)) < 0)
        return E->only;
    for (int k = 1; rc == 0 && k < n; k++)
        rc = check_member(E, k, err, errlen);
    int max_classes = 1;
    for (int t = 0; rc == 0 && t < E->n_tasks; t++) {
        if (E->only >= 0 && t != E->only)
            continue;
        rc = load_test_set(E, t, data, err, errlen);
        max_classes = E->m[0].classes[t] > max_classes ? E->m[0].classes[t] : max_classes;
    }
    if (rc)
        return rc;
    struct eval_result *res = calloc((size_t)E->n_tasks, sizeof *res);
    double *vals = calloc((size_t)(2 * E->n_tasks * (n + 1)), sizeof *vals);
    double *pbar = malloc(sizeof *pbar * (size_t)E->batch * (size_t)max_classes);
    if (!res || !vals || !pbar)
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; rc == 0 && t < E->n_tasks; t++) {
        res[t].loss = vals + (int64_t)2 * t * (n + 1);
        res[t].acc = res[t].loss + n + 1;
        if (E->sets[t])
            eval_task(E, t, &res[t], pbar);
    }
    if (rc == 0)
        print_eval(E, res);
    free(pbar);
    free(vals);
    free(res);
    return rc;
}

int ldn_tool_eval(int argc, char **argv)
{
    const char *args[EVAL_MAX_MEMBERS + 1] = {NULL}, *data = NULL, *task = NULL;
    const struct tool_opt opts[] = {{"--data", &data, NULL}, {"--task", &task, NULL}};
    if (parse_args("eval", argc, argv, opts, 2, args, EVAL_MAX_MEMBERS + 1))
        return 2;
    int n = 0;
    while (n <= EVAL_MAX_MEMBERS && args[n])
        n++;
    if (n > EVAL_MAX_MEMBERS) {
        fprintf(stderr, "ladon eval: at most %d checkpoints ('%s' is one too many)\n",
                EVAL_MAX_MEMBERS, args[EVAL_MAX_MEMBERS]);
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "usage: ladon eval CKPT [CKPT ...] [--data DIR] [--task T]\n");
        return 2;
    }
    char err[LDN_ERRLEN];
    struct ensemble E = {0};
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    int rc = run_eval(&E, args, n, data, task, err, sizeof err);
    ensemble_free(&E);
    ldn_h5_restore(&q);
    if (rc) {
        fprintf(stderr, "ladon eval: %s\n", err);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- predict */

/* The rows to predict: a task file's split, or the /x of any HDF5 file. */
struct input {
    struct ldn_dataset *ds; /* a task file's split (x and y), or NULL */
    float *x;               /* [n, features] model inputs (ds->x or owned) */
    int64_t n;
    int features;
    int is_task;
};

static void input_deinit(struct input *in)
{
    if (in->ds)
        ldn_dataset_destroy(&in->ds);
    else
        free(in->x);
    memset(in, 0, sizeof *in);
}

/* /x of a file that is not a task file: 2-D, integer or float, times the root attribute
 * x_scale (default 1). */
static int read_plain_x(hid_t f, const char *path, struct input *in, char *err, size_t errlen)
{
    const char *K = "input";
    double scale = 1.0;
    int rc = ldn_h5_attr_num(f, "x_scale", 0, K, path, &scale, err, errlen);
    if (rc < 0)
        return rc;
    if (!(isfinite(scale) && scale > 0))
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "input %s: root attribute x_scale must be finite and > 0, got %g", path,
                        scale);
    if (H5Lexists(f, "x", H5P_DEFAULT) <= 0)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "input %s: neither a ladon task file nor a file with a 2-D dataset x",
                        path);
    hid_t d = H5Dopen2(f, "x", H5P_DEFAULT), ft = d >= 0 ? H5Dget_type(d) : -1;
    hid_t sp = d >= 0 ? H5Dget_space(d) : -1;
    hsize_t dims[2] = {0, 0};
    H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    rc = 0;
    if (d < 0 || ft < 0 || sp < 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_FORMAT, K, path, "open x");
    else if (H5Sget_simple_extent_ndims(sp) != 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        rc =
            ldn_fail(err, errlen, LDN_ERR_FORMAT, "input %s: x must be 2-D [rows, features]", path);
    else if (cls != H5T_INTEGER && cls != H5T_FLOAT)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "input %s: x must be uint8 or float32", path);
    else if (dims[0] == 0)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "input %s: x has no rows", path);
    else if (dims[1] != (hsize_t)in->features)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "input %s: x has %llu features (columns), the model takes %d", path,
                      (unsigned long long)dims[1], in->features);
    else if (dims[0] > (hsize_t)(SIZE_MAX / sizeof(float) / dims[1]) ||
             !(in->x = malloc(sizeof(float) * (size_t)(dims[0] * dims[1]))))
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "input %s: out of memory for x [%llu, %llu]",
                      path, (unsigned long long)dims[0], (unsigned long long)dims[1]);
    else if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, in->x) < 0)
        rc = read_failure(K, path, "x", err, errlen);
    if (rc == 0) {
        in->n = (int64_t)dims[0];
        int64_t total = in->n * in->features;
        for (int64_t i = 0; i < total; i++) {
            in->x[i] = (float)(in->x[i] * scale);
            if (!isfinite(in->x[i])) {
                rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                              "input %s: x[%lld, %lld] is not finite (after x_scale)", path,
                              (long long)(i / in->features), (long long)(i % in->features));
                break;
            }
        }
    }
    ldn_h5_close(&sp, H5Sclose);
    ldn_h5_close(&ft, H5Tclose);
    ldn_h5_close(&d, H5Dclose);
    return rc;
}

/* Read the input: a ladon task file (its `split`, through ldn_dataset_load) or any HDF5 file
 * with /x. in->features is the model's; a different count is an error. */
static int read_input(const char *path, const char *split, struct input *in, char *err,
                      size_t errlen)
{
    hid_t f;
    int orc = ldn_h5_open_ro("input", path, &f, err, errlen);
    if (orc)
        return orc;
    char *format = NULL;
    int rc = ldn_h5_attr_str(f, "format", "input", path, &format, err, errlen);
    if (rc < 0) {
        H5Fclose(f);
        return rc;
    }
    in->is_task = rc == 0 && strcmp(format, LDN_DATA_FORMAT) == 0;
    free(format);
    if (!in->is_task) {
        rc = read_plain_x(f, path, in, err, errlen);
        H5Fclose(f);
        return rc;
    }
    H5Fclose(f);
    char task[64];
    int classes, features;
    int64_t n_train, n_test;
    if ((rc = ldn_dataset_probe(path, task, sizeof task, &classes, &features, &n_train, &n_test,
                                err, errlen)))
        return rc;
    if (features != in->features)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "input %s: %d features, the model takes %d",
                        path, features, in->features);
    if (!(in->ds = ldn_dataset_load(path, split, 0, 1, err, errlen)))
        return LDN_ERR_FORMAT;
    in->x = in->ds->x;
    in->n = in->ds->n;
    return 0;
}

/* Softmax of each row of z [n, c] into p; argmax (the first largest logit) into pred. */
static void softmax_rows(const float *z, int n, int c, float *p, int32_t *pred)
{
    for (int i = 0; i < n; i++) {
        const float *r = z + (int64_t)i * c;
        int best = 0;
        for (int j = 1; j < c; j++)
            if (r[j] > r[best])
                best = j;
        double sum = 0;
        for (int j = 0; j < c; j++)
            sum += exp((double)r[j] - (double)r[best]);
        for (int j = 0; j < c; j++)
            p[(int64_t)i * c + j] = (float)(exp((double)r[j] - (double)r[best]) / sum);
        pred[i] = best;
    }
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* Write /probs, /pred and the attributes to OUT.tmp.<pid>, fsync, rename over OUT. */
static int write_output(const char *out, const struct ldn_ckmodel *L, const char *task,
                        const char *input, const char *split, const float *probs,
                        const int32_t *pred, int64_t n, int c, char *err, size_t errlen)
{
    const char *K = "output";
    char tmp[LDN_PATH_MAX + 32];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid()) >= (int)sizeof tmp)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "output path is too long: %s", out);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return ldn_h5_fail(err, errlen, LDN_ERR_IO, K, out, "cannot create %s", tmp);
    hsize_t dp[2] = {(hsize_t)n, (hsize_t)c}, dn = (hsize_t)n;
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), sp = H5I_INVALID_HID, d = H5I_INVALID_HID;
    int rc = dcpl < 0 || H5Pset_obj_track_times(dcpl, 0) < 0 ? -1 : 0;
    if (rc == 0 &&
        ((sp = H5Screate_simple(2, dp, NULL)) < 0 ||
         (d = H5Dcreate2(f, "probs", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
         H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, probs) < 0))
        rc = -1;
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_close(&sp, H5Sclose);
    if (rc == 0 &&
        ((sp = H5Screate_simple(1, &dn, NULL)) < 0 ||
         (d = H5Dcreate2(f, "pred", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0 ||
         H5Dwrite(d, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, pred) < 0))
        rc = -1;
    ldn_h5_close(&d, H5Dclose);
    ldn_h5_close(&sp, H5Sclose);
    ldn_h5_close(&dcpl, H5Pclose);
    int32_t classes = c;
    if (rc == 0 &&
        (ldn_h5_write_attr_str(f, "task", task) < 0 ||
         ldn_h5_write_attr_str(f, "checkpoint", L->ck.path) < 0 ||
         ldn_h5_write_attr_scalar(f, "step", H5T_STD_I64LE, H5T_NATIVE_INT64, &L->ck.step) < 0 ||
         ldn_h5_write_attr_scalar(f, "classes", H5T_STD_I32LE, H5T_NATIVE_INT32, &classes) < 0 ||
         ldn_h5_write_attr_str(f, "input", input) < 0 ||
         ldn_h5_write_attr_str(f, "split", split) < 0))
        rc = -1;
    if (rc)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, K, out, "write %s", tmp);
    if (H5Fclose(f) < 0 && rc == 0)
        rc = ldn_h5_fail(err, errlen, LDN_ERR_IO, K, out, "close %s", tmp);
    if (rc == 0) {
        int fd = open(tmp, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0)
            rc = ldn_fail(err, errlen, LDN_ERR_IO, "output %s: fsync %s: %s", out, tmp,
                          strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && rename(tmp, out) != 0)
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "output %s: rename from %s: %s", out, tmp,
                      strerror(errno));
    if (rc)
        unlink(tmp);
    return rc;
}

int ldn_tool_predict(int argc, char **argv)
{
    const char *pos[3] = {NULL, NULL, NULL}, *task = NULL, *split_arg = NULL;
    const struct tool_opt opts[] = {{"--task", &task, NULL}, {"--split", &split_arg, NULL}};
    if (parse_args("predict", argc, argv, opts, 2, pos, 3))
        return 2;
    const char *arg = pos[0], *input = pos[1], *output = pos[2];
    const char *split = split_arg ? split_arg : "test";
    if (!arg || !task || !input || !output) {
        fprintf(stderr,
                "usage: ladon predict CKPT --task T INPUT.h5 OUTPUT.h5 [--split test|train]\n");
        return 2;
    }
    if (strcmp(split, "test") != 0 && strcmp(split, "train") != 0) {
        fprintf(stderr, "ladon predict: --split must be test or train, got '%s'\n", split);
        return 2;
    }
    if (same_file(input, output)) {
        fprintf(stderr, "ladon predict: output %s is the input file: refusing to overwrite it\n",
                output);
        return 1;
    }
    char err[LDN_ERRLEN];
    struct ldn_ckmodel L;
    struct input in = {0};
    float *probs = NULL;
    int32_t *pred = NULL;
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    int rc = ldn_ckmodel_load(arg, EVAL_MIN_BATCH, &L, err, sizeof err), t = -1;
    if (rc == 0 && (t = find_task(&L, task, err, sizeof err)) < 0)
        rc = t;
    if (rc == 0 && same_file(L.ck.path, output))
        rc = ldn_fail(err, sizeof err, LDN_ERR_ARG,
                      "output %s is the checkpoint: refusing to overwrite it", output);
    if (rc == 0) {
        in.features = L.ck.features;
        rc = read_input(input, split, &in, err, sizeof err);
        if (rc == 0 && !in.is_task && split_arg)
            fprintf(stderr, "ladon predict: note: %s is not a task file; --split is ignored\n",
                    input);
    }
    int c = rc == 0 ? L.classes[t] : 0;
    if (rc == 0 && (!(probs = malloc(sizeof(float) * (size_t)in.n * (size_t)c)) ||
                    !(pred = malloc(sizeof(int32_t) * (size_t)in.n))))
        rc = ldn_fail(err, sizeof err, LDN_ERR_NOMEM, "out of memory for %lld x %d probabilities",
                      (long long)in.n, c);
    int64_t correct = 0;
    if (rc == 0) {
        int mb = L.model->trunk->max_batch;
        for (int64_t i = 0; i < in.n; i += mb) {
            int b = (int)(in.n - i < mb ? in.n - i : mb);
            const float *z = ldn_ckmodel_forward(&L, t, in.x + i * in.features, b);
            softmax_rows(z, b, c, probs + i * c, pred + i);
        }
        if (in.is_task && in.ds->num_classes == c)
            for (int64_t i = 0; i < in.n; i++)
                correct += pred[i] == in.ds->y[i];
        rc = write_output(output, &L, task, input, in.is_task ? split : "", probs, pred, in.n, c,
                          err, sizeof err);
    }
    if (rc == 0) {
        printf("%s: %lld rows of %s%s%s, task %s, %d classes, checkpoint step %lld", output,
               (long long)in.n, input, in.is_task ? " split " : "", in.is_task ? split : "", task,
               c, (long long)L.ck.step);
        if (in.is_task && in.ds->num_classes == c)
            printf("; accuracy %.6f", (double)correct / (double)in.n);
        printf("\n");
    }
    free(probs);
    free(pred);
    input_deinit(&in);
    ldn_ckmodel_free(&L);
    ldn_h5_restore(&q);
    if (rc) {
        fprintf(stderr, "ladon predict: %s\n", err);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
