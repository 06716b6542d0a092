/* The model a checkpoint holds. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "ckmodel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

#define MAX_CLASSES 1000000  /* more is a damaged shape, not a real head */
#define EXPORT_MIN_BATCH 256 /* an export has no train.batch_size of its own to go by */

/* A checkpoint with the model it holds: the stored config, the classes of each head, the
 * trunk and heads with the checkpoint's weights. */

void ldn_ckmodel_init(struct ldn_ckmodel *L)
{
    memset(L, 0, sizeof *L);
    L->ck.f = H5I_INVALID_HID;
}

void ldn_ckmodel_free(struct ldn_ckmodel *L)
{
    if (L->x) {
        ldn_export_close(L->x);
        free(L->x);
    }
    ldn_model_destroy(&L->model);
    free(L->classes);
    ldn_config_destroy(&L->cfg);
    ldn_ckpt_close(&L->ck);
    ldn_ckmodel_init(L);
}

/* Open the checkpoint `arg` names: a file, a checkpoint directory (its `latest`) or a run
 * directory (its checkpoints/latest). Returns 0 or a negative status with err. */
int ldn_ckmodel_open(const char *arg, struct ldn_ckpt *ck, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX];
    int rc = ldn_ckpt_resolve(arg, arg, path, sizeof path, err, errlen);
    if (rc == 0 && (rc = ldn_ckpt_open(path, ck, err, errlen)) != 0 && ldn_export_is(path))
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "%s is an exported model (format ladon-export), not a checkpoint: "
                      "ladon eval and ladon predict take it",
                      path);
    return rc;
}

/* The stored config, parsed. */
static int parse_config(const struct ldn_ckpt *ck, struct ldn_config **cfg, char *err,
                        size_t errlen)
{
    char why[LDN_ERRLEN];
    *cfg = ldn_config_parse(ck->config, strlen(ck->config), ck->path, 0, NULL, why, sizeof why);
    if (!*cfg)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "checkpoint %s: the config stored in it does not parse: %s", ck->path, why);
    return 0;
}

/* Classes of task t's head: the rows of its output layer's weight. */
static int head_classes(const struct ldn_ckpt *ck, const struct ldn_task_config *tk, int *classes,
                        char *err, size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    int nd, rc;
    int64_t dims[2];
    snprintf(name, sizeof name, "/heads/%s/%d/weight", tk->name, tk->n_head);
    if ((rc = ldn_ckpt_shape(ck, name, &nd, dims, err, errlen)))
        return rc;
    if (nd != 2 || dims[0] < 1 || dims[0] > MAX_CLASSES)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "checkpoint %s: %s is not a [classes, inputs] matrix of 1..%d classes",
                        ck->path, name, MAX_CLASSES);
    *classes = (int)dims[0];
    return 0;
}

/* Do the stored weights of an MLP in -> widths[0..n) -> out (out 0: none) at prefix have the
 * shapes the stored config gives them? Checked before anything is built: a config that
 * disagrees with its file (damaged, or edited) would otherwise have the loader allocate and
 * initialise a model of the config's size, up to LDN_MODEL_MAX_PARAMS, before the first
 * read found the mismatch. */
static int check_mlp(const struct ldn_ckpt *ck, const char *prefix, int64_t in, const int *widths,
                     int n, int64_t out, char *err, size_t errlen)
{
    for (int i = 0; i <= n; i++) {
        const int64_t w = i < n ? widths[i] : out;
        if (w <= 0)
            continue;
        char name[LDN_CKPT_NAME_MAX], why[LDN_ERRLEN];
        const int64_t dw[2] = {w, in}, db[2] = {w, 1};
        snprintf(name, sizeof name, "%s/%d/weight", prefix, i);
        int rc = ldn_ckpt_check_shape(ck, name, 2, dw, why, sizeof why);
        if (rc == 0) {
            snprintf(name, sizeof name, "%s/%d/bias", prefix, i);
            rc = ldn_ckpt_check_shape(ck, name, 1, db, why, sizeof why);
        }
        if (rc)
            return ldn_fail(err, errlen, rc, "%s (the shape the config stored in it gives)", why);
        in = w;
    }
    return 0;
}

static int check_shapes(const struct ldn_ckpt *ck, const struct ldn_config *cfg, const int *classes,
                        char *err, size_t errlen)
{
    int rc = check_mlp(ck, "/trunk", ck->features, cfg->trunk, cfg->n_trunk, 0, err, errlen);
    const int64_t in = cfg->n_trunk > 0 ? cfg->trunk[cfg->n_trunk - 1] : ck->features;
    for (int t = 0; rc == 0 && t < cfg->n_tasks; t++) {
        const struct ldn_task_config *tc = &cfg->tasks[t];
        char prefix[LDN_CKPT_NAME_MAX];
        snprintf(prefix, sizeof prefix, "/heads/%s", tc->name);
        rc = check_mlp(ck, prefix, in, tc->head, tc->n_head, classes[t], err, errlen);
    }
    return rc;
}

/* An exported file: its config, its model with the stored weights (dequantized) and the
 * compressed model itself. The config's tasks must be the file's, in the same order. */
static int load_export(const char *path, int max_batch, struct ldn_ckmodel *L, char *err,
                       size_t errlen)
{
    if (!(L->x = calloc(1, sizeof *L->x)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if (max_batch < 1)
        max_batch = 1;
    int rc = ldn_export_open(path, max_batch, L->x, err, errlen);
    if (rc)
        return rc;
    const struct ldn_export *x = L->x;
    snprintf(L->ck.path, sizeof L->ck.path, "%s", path);
    L->ck.format_version = x->format_version;
    L->ck.step = L->ck.total_steps = x->step;
    L->ck.epoch = x->epoch;
    L->ck.features = x->features;
    if (!(L->ck.config = strdup(x->config)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if ((rc = parse_config(&L->ck, &L->cfg, err, errlen)))
        return rc;
    if (L->cfg->n_tasks != x->n_tasks)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "export %s: %d heads, its stored config has %d tasks", path, x->n_tasks,
                        L->cfg->n_tasks);
    int widths[LDN_MAX_LAYERS], heads[LDN_MAX_TASKS];
    for (int t = 0; t < x->n_tasks; t++) {
        if (strcmp(L->cfg->tasks[t].name, x->tasks[t]) != 0)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "export %s: head %d is '%s', its stored config says task '%s'", path, t,
                            x->tasks[t], L->cfg->tasks[t].name);
        heads[t] = t;
    }
    for (int i = 0; i < x->qm->trunk.n_layers; i++)
        widths[i] = x->qm->trunk.layers[i].w.rows;
    if (!(L->classes = malloc(sizeof *L->classes * (size_t)x->n_tasks)))
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    memcpy(L->classes, x->qm->classes, sizeof *L->classes * (size_t)x->n_tasks);
    L->model = ldn_model_new_trunk(L->cfg, widths, x->qm->trunk.n_layers, x->features, L->classes,
                                   max_batch, err, errlen);
    if (!L->model)
        return LDN_ERR_NOMEM;
    return ldn_export_fill_model(x, heads, L->model, err, errlen);
}

const float *ldn_ckmodel_forward(struct ldn_ckmodel *L, int t, const float *x, int batch)
{
    return L->x ? ldn_qmodel_forward(L->x->qm, t, x, batch)
                : ldn_model_forward(L->model, t, x, batch);
}

/* Open the checkpoint `arg`, rebuild its model from the stored config (activations for
 * max_batch rows) and load the trunk and every head. Shapes and types are checked against
 * the config, and the checksum of every chunk read is verified. On failure L is left empty
 * (loaded_deinit is still safe). */
int ldn_ckmodel_load(const char *arg, int max_batch, struct ldn_ckmodel *L, char *err,
                     size_t errlen)
{
    ldn_ckmodel_init(L);
    char path[LDN_PATH_MAX];
    int rc = ldn_ckpt_resolve(arg, arg, path, sizeof path, err, errlen);
    if (rc == 0 && ldn_export_is(path)) {
        if (max_batch < EXPORT_MIN_BATCH)
            max_batch = EXPORT_MIN_BATCH;
        if ((rc = load_export(path, max_batch, L, err, errlen)))
            ldn_ckmodel_free(L);
        return rc;
    }
    if (rc == 0)
        rc = ldn_ckpt_open(path, &L->ck, err, errlen);
    if (rc == 0)
        rc = parse_config(&L->ck, &L->cfg, err, errlen);
    if (rc == 0 && !(L->classes = calloc((size_t)L->cfg->n_tasks, sizeof *L->classes)))
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    for (int t = 0; rc == 0 && t < L->cfg->n_tasks; t++)
        rc = head_classes(&L->ck, &L->cfg->tasks[t], &L->classes[t], err, errlen);
    if (max_batch < (L->cfg ? L->cfg->batch_size : 0))
        max_batch = L->cfg->batch_size;
    char why[LDN_ERRLEN];
    /* the sizes come from the file: say which */
    if (rc == 0 && ldn_model_check_size(L->cfg, L->cfg->trunk, L->cfg->n_trunk, L->ck.features,
                                        L->classes, max_batch, why, sizeof why))
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "checkpoint %s: stored config: %s", L->ck.path,
                      why);
    if (rc == 0)
        rc = check_shapes(&L->ck, L->cfg, L->classes, err, errlen);
    if (rc == 0 &&
        !(L->model = ldn_model_new(L->cfg, L->ck.features, L->classes, max_batch, why, sizeof why)))
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint %s: %s", L->ck.path, why);
    if (rc == 0) {
        struct ldn_nn *trunk = L->model->trunk;
        rc = ldn_ckpt_read_net(&L->ck, trunk, "/trunk", trunk->params, 0, trunk->n_params, err,
                               errlen);
    }
    for (int t = 0; rc == 0 && t < L->cfg->n_tasks; t++) {
        struct ldn_nn *h = L->model->heads[t];
        char prefix[LDN_CKPT_NAME_MAX];
        snprintf(prefix, sizeof prefix, "/heads/%s", L->cfg->tasks[t].name);
        rc = ldn_ckpt_read_net(&L->ck, h, prefix, h->params, 0, h->n_params, err, errlen);
    }
    if (rc)
        ldn_ckmodel_free(L);
    return rc;
}

struct ldn_dataset *ldn_ckmodel_load_split(const struct ldn_ckmodel *L, int t, const char *data,
                                           const char *split, char *err, size_t errlen)
{
    char file[LDN_PATH_MAX + LDN_NAME_MAX + 8];
    if (data)
        snprintf(file, sizeof file, "%s/%s.h5", data, L->cfg->tasks[t].name);
    else
        snprintf(file, sizeof file, "%s", L->cfg->tasks[t].file);
    struct ldn_dataset *d = ldn_dataset_load(file, split, 0, 1, err, errlen);
    if (d && (d->features != L->ck.features || d->num_classes != L->classes[t])) {
        ldn_fail(err, errlen, LDN_ERR_FORMAT,
                 "data %s: %d features and %d classes, the model has %d and %d", file, d->features,
                 d->num_classes, L->ck.features, L->classes[t]);
        ldn_dataset_destroy(&d);
    }
    return d;
}
