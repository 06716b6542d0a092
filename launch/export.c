/* `ladon export` (export.h, docs/export.md). */
#define _POSIX_C_SOURCE 200809L
#include "export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckmodel.h"
#include "data.h"
#include "exportfile.h"
#include "h5util.h"
#include "loss.h"
#include "status.h"

#define EXPORT_BATCH 1024

static const char USAGE[] =
    "usage: ladon export CKPT OUT.h5 [--quantize int8|fp16|none] [--prune S] [--data DIR]\n";

static void help(void)
{
    printf("%s", USAGE);
    printf(
        "Write what prediction needs of a checkpoint (trunk, heads, activation, task names and\n"
        "classes, input width, the config that names the data) to OUT.h5, readable with h5py\n"
        "(layout: docs/export.md); `ladon eval` and `ladon predict` take it like a checkpoint.\n"
        "  CKPT            a checkpoint file, a checkpoint directory or a run directory\n"
        "  --quantize Q    int8 (default): one symmetric scale per output row, rounding half\n"
        "                  away from zero; fp16: IEEE half, rounding to nearest even; none: fp32\n"
        "  --prune S       zero the fraction S (0 <= S < 1) of each trunk layer's weights with\n"
        "                  the smallest magnitude first (biases and heads are never pruned)\n"
        "  --data DIR      test splits from DIR/<task>.h5 instead of the config's task files\n"
        "Weights that are zero (pruned, or rounded to 0) are not stored: each layer is kept\n"
        "dense, as a bitmap or as CSR with uint8 column deltas or uint16 columns, whichever is\n"
        "smallest. The export prints the size against dense fp32 weights and each task's test\n"
        "accuracy before and after. OUT is written as OUT.part and renamed: on any failure\n"
        "nothing is left at OUT.\n");
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return strcmp(a, b) == 0 || (stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
                                 sa.st_ino == sb.st_ino);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Zero the k = floor(s * n) weights of smallest magnitude of layer l (ties: the first in row
 * order), leaving the biases. Returns the weights now zero, or -1 when out of memory. */
static int64_t prune_layer(struct ldn_layer *l, double s)
{
    const int64_t n = (int64_t)l->out_dim * l->in_dim;
    const int64_t k = (int64_t)floor(s * (double)n);
    float *w = l->tensors[0].data, *mag = malloc(sizeof *mag * (size_t)n);
    if (!mag)
        return -1;
    for (int r = 0; r < l->out_dim; r++)
        for (int c = 0; c < l->in_dim; c++)
            mag[(int64_t)r * l->in_dim + c] = fabsf(w[r * l->row_len + c]);
    int64_t zeros = 0;
    if (k > 0) {
        qsort(mag, (size_t)n, sizeof *mag, cmp_float);
        const float thr = mag[k - 1];
        int64_t below = 0; /* weights strictly under the threshold: all go */
        for (int64_t i = 0; i < k; i++)
            below += mag[i] < thr;
        int64_t at = k - below; /* and this many of those equal to it */
        for (int r = 0; r < l->out_dim; r++)
            for (int c = 0; c < l->in_dim; c++) {
                float *x = &w[r * l->row_len + c], a = fabsf(*x);
                if (a < thr || (a == thr && at > 0 && at--))
                    *x = 0.0f;
            }
    }
    for (int r = 0; r < l->out_dim; r++)
        for (int c = 0; c < l->in_dim; c++)
            zeros += w[r * l->row_len + c] == 0.0f;
    free(mag);
    return zeros;
}

/* 0, or LDN_ERR_FORMAT naming the first weight or bias of net that is not finite. */
static int check_finite(const struct ldn_nn *net, const char *what, const char *path, char *err,
                        size_t errlen)
{
    for (int i = 0; i < net->n_layers; i++) {
        const struct ldn_layer *l = &net->layers[i];
        for (int r = 0; r < l->out_dim; r++)
            for (int c = 0; c <= l->in_dim; c++)
                if (!isfinite(l->tensors[0].data[r * l->row_len + c]))
                    return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                                    "checkpoint %s: %s layer %d %s [%d, %d] is not finite", path,
                                    what, i, c < l->in_dim ? "weight" : "bias", r,
                                    c < l->in_dim ? c : 0);
    }
    return 0;
}

/* Test split of every task (NULL where it cannot be read: a note says why). */
static void load_tests(const struct ldn_ckmodel *L, const char *data, struct ldn_dataset **sets)
{
    for (int t = 0; t < L->cfg->n_tasks; t++) {
        char err[LDN_ERRLEN];
        if (!(sets[t] = ldn_ckmodel_load_split(L, t, data, "test", err, sizeof err)))
            fprintf(stderr, "ladon export: note: no accuracy for task %s: %s\n",
                    L->cfg->tasks[t].name, err);
    }
}

/* Accuracy of head t of L on ds (through the export's kernels for an export). */
static double accuracy(struct ldn_ckmodel *L, int t, const struct ldn_dataset *ds)
{
    const int mb = L->model->trunk->max_batch, c = L->classes[t];
    int64_t right = 0;
    for (int64_t i = 0; i < ds->n; i += mb) {
        int b = (int)(ds->n - i < mb ? ds->n - i : mb);
        const float *z = ldn_ckmodel_forward(L, t, ds->x + i * ds->features, b);
        for (int j = 0; j < b; j++)
            right += ldn_argmax(z + (int64_t)j * c, c) == ds->y[i + j];
    }
    return ds->n > 0 ? (double)right / (double)ds->n : 0.0;
}

static void print_report(const struct ldn_export_report *rep)
{
    printf("%-24s %12s %10s %8s %7s  %s\n", "layer", "shape", "stored", "density", "index",
           "deflated bytes: dense / bitmap / csr8 / csr16");
    for (int i = 0; i < rep->n; i++) {
        const struct ldn_export_layer_report *l = &rep->layers[i];
        char shape[32];
        snprintf(shape, sizeof shape, "[%d, %d]", l->rows, l->cols);
        printf("%-24s %12s %10lld %7.2f%% %7s  %lld / %lld / %lld / %lld\n", l->name, shape,
               (long long)l->stored, 100.0 * (double)l->stored / ((double)l->rows * l->cols),
               ldn_qs_index_name(l->index), (long long)l->est_bytes[0], (long long)l->est_bytes[1],
               (long long)l->est_bytes[2], (long long)l->est_bytes[3]);
    }
}

static int run(const char *arg, const char *out, int quant, double prune, int prune_given,
               const char *data, char *err, size_t errlen)
{
    struct ldn_ckmodel L, X;
    ldn_ckmodel_init(&X);
    struct ldn_export_report rep = {0};
    struct ldn_dataset **sets = NULL;
    double *before = NULL;
    int written = 0;
    int rc = ldn_ckmodel_load(arg, EXPORT_BATCH, &L, err, errlen);
    if (rc == 0 && L.x)
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "%s is already an exported file (format ladon-export): export a checkpoint",
                      L.ck.path);
    if (rc == 0 && same_file(L.ck.path, out))
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "output %s is the checkpoint: refusing to overwrite it", out);
    if (rc == 0)
        rc = check_finite(L.model->trunk, "trunk", L.ck.path, err, errlen);
    for (int t = 0; rc == 0 && t < L.cfg->n_tasks; t++)
        rc = check_finite(L.model->heads[t], L.cfg->tasks[t].name, L.ck.path, err, errlen);
    const int nt = rc == 0 ? L.cfg->n_tasks : 0;
    if (rc == 0 && (!(sets = calloc((size_t)nt, sizeof *sets)) ||
                    !(before = calloc((size_t)nt, sizeof *before))))
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if (rc == 0) {
        load_tests(&L, data, sets);
        for (int t = 0; t < nt; t++)
            if (sets[t])
                before[t] = accuracy(&L, t, sets[t]);
    }
    int64_t zeros = 0, weights = 0;
    for (int i = 0; rc == 0 && i < L.model->trunk->n_layers; i++) {
        struct ldn_layer *l = &L.model->trunk->layers[i];
        int64_t z = prune_layer(l, prune_given ? prune : 0.0);
        if (z < 0)
            rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory pruning trunk layer %d", i);
        zeros += z;
        weights += (int64_t)l->out_dim * l->in_dim;
    }
    struct ldn_export_meta meta = {quant, prune_given ? prune : 0.0, L.ck.step, L.ck.epoch,
                                   L.ck.path};
    if (rc == 0 && (rc = ldn_export_write(out, L.model, L.cfg, &meta, &rep, err, errlen)) == 0)
        written = 1;
    /* read it back as eval and predict will, and measure it */
    if (rc == 0 && (rc = ldn_ckmodel_load(out, EXPORT_BATCH, &X, err, errlen)) != 0)
        rc = LDN_ERR_INTERNAL;
    if (rc == 0) {
        printf("exported %s (step %lld, epoch %.2f) to %s: quantize %s, trunk sparsity %.2f%%%s\n",
               L.ck.path, (long long)L.ck.step, L.ck.epoch, out, ldn_export_quant_name(quant),
               weights ? 100.0 * (double)zeros / (double)weights : 0.0,
               prune_given ? " (--prune, per layer)" : " (zeros as trained)");
        print_report(&rep);
        printf("size: dense fp32 weights %lld bytes, file %lld bytes: %.2fx smaller\n",
               (long long)rep.dense_f32_bytes, (long long)rep.file_bytes,
               rep.file_bytes > 0 ? (double)rep.dense_f32_bytes / (double)rep.file_bytes : 0.0);
        printf("%-16s %10s %10s %10s %9s\n", "task", "test rows", "before", "after", "delta pp");
        for (int t = 0; t < nt; t++) {
            if (!sets[t])
                continue;
            double after = accuracy(&X, t, sets[t]);
            printf("%-16s %10lld %10.4f %10.4f %+9.2f\n", L.cfg->tasks[t].name,
                   (long long)sets[t]->n, before[t], after, 100.0 * (after - before[t]));
        }
    }
    if (rc && written)
        unlink(out); /* it does not read back: leave nothing */
    for (int t = 0; sets && t < nt; t++)
        ldn_dataset_destroy(&sets[t]);
    free(sets);
    free(before);
    ldn_export_report_free(&rep);
    ldn_ckmodel_free(&X);
    ldn_ckmodel_free(&L);
    return rc;
}

int ldn_tool_export(int argc, char **argv)
{
    const char *pos[2] = {NULL, NULL}, *quant_s = "int8", *prune_s = NULL, *data = NULL;
    int np = 0;
    for (int i = 0; i < argc; i++) {
        const char **v = !strcmp(argv[i], "--quantize") ? &quant_s
                         : !strcmp(argv[i], "--prune")  ? &prune_s
                         : !strcmp(argv[i], "--data")   ? &data
                                                        : NULL;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return 0;
        }
        if (v && i + 1 < argc)
            *v = argv[++i];
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "ladon export: unknown option or missing value '%s'\n", argv[i]);
            return 2;
        } else if (np < 2)
            pos[np++] = argv[i];
        else {
            fprintf(stderr, "ladon export: too many arguments ('%s' is extra)\n", argv[i]);
            return 2;
        }
    }
    if (np < 2) {
        fprintf(stderr, "%s", USAGE);
        return 2;
    }
    int quant = ldn_export_quant_kind(quant_s);
    if (quant < 0) {
        fprintf(stderr, "ladon export: --quantize must be int8, fp16 or none, got '%s'\n", quant_s);
        return 2;
    }
    double prune = 0.0;
    if (prune_s) {
        char *end;
        errno = 0;
        prune = strtod(prune_s, &end);
        if (errno || end == prune_s || *end || !(prune >= 0.0 && prune < 1.0)) {
            fprintf(stderr, "ladon export: --prune must be a sparsity in [0, 1), got '%s'\n",
                    prune_s);
            return 2;
        }
    }
    char err[LDN_ERRLEN];
    struct ldn_h5quiet q;
    ldn_h5_quiet(&q);
    int rc = run(pos[0], pos[1], quant, prune, prune_s != NULL, data, err, sizeof err);
    ldn_h5_restore(&q);
    if (rc) {
        fprintf(stderr, "ladon export: %s\n", err);
        return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
