/* The multi-task model: shared trunk, per-task heads. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loss.h"
#include "rng.h"
#include "status.h"

struct ldn_model *ldn_model_new(const struct ldn_config *cfg, int features, const int *classes,
                                int max_batch, char *err, size_t errlen)
{
    return ldn_model_new_trunk(cfg, cfg->trunk, cfg->n_trunk, features, classes, max_batch, err,
                               errlen);
}

/* Parameters and activation floats (for max_batch rows) of an MLP in -> widths[0..n) -> out
 * (out 0: none), in int64 (every width <= 1e6, in <= 2^24: no overflow). */
static void mlp_size(int64_t in, const int *widths, int n, int64_t out, int64_t max_batch,
                     int64_t *params, int64_t *acts)
{
    *params = *acts = 0;
    for (int i = 0; i <= n; i++) {
        int64_t w = i < n ? widths[i] : out;
        if (w <= 0)
            continue;
        *params += (in + 1) * w;
        *acts += max_batch * w;
        in = w;
    }
}

static void widths_str(char *buf, size_t len, const int *w, int n)
{
    size_t off = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%d", i ? ", " : "", w[i]);
    if (off < len)
        snprintf(buf + off, len - off, "]");
}

int ldn_model_check_size(const struct ldn_config *cfg, const int *widths, int n_widths,
                         int features, const int *classes, int max_batch, char *err, size_t errlen)
{
    char w[256];
    int64_t params, acts, mb = max_batch > 0 ? max_batch : 1;
    mlp_size(features, widths, n_widths, 0, mb, &params, &acts);
    if (params > LDN_MODEL_MAX_PARAMS || acts > LDN_MODEL_MAX_PARAMS) {
        widths_str(w, sizeof w, widths, n_widths);
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "model.trunk %s on %d input features: %lld parameters and %lld "
                        "activations for %lld rows, more than the %lld ladon builds",
                        w, features, (long long)params, (long long)acts, (long long)mb,
                        (long long)LDN_MODEL_MAX_PARAMS);
    }
    const int64_t in = n_widths > 0 ? widths[n_widths - 1] : features;
    for (int t = 0; t < cfg->n_tasks; t++) {
        const struct ldn_task_config *tc = &cfg->tasks[t];
        mlp_size(in, tc->head, tc->n_head, classes[t], mb, &params, &acts);
        if (params > LDN_MODEL_MAX_PARAMS || acts > LDN_MODEL_MAX_PARAMS) {
            widths_str(w, sizeof w, tc->head, tc->n_head);
            return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                            "tasks.%s.head %s on %lld inputs with %d classes: %lld parameters "
                            "and %lld activations for %lld rows, more than the %lld ladon "
                            "builds",
                            tc->name, w, (long long)in, classes[t], (long long)params,
                            (long long)acts, (long long)mb, (long long)LDN_MODEL_MAX_PARAMS);
        }
    }
    return 0;
}

struct ldn_model *ldn_model_new_trunk(const struct ldn_config *cfg, const int *widths, int n_widths,
                                      int features, const int *classes, int max_batch, char *err,
                                      size_t errlen)
{
    if (ldn_model_check_size(cfg, widths, n_widths, features, classes, max_batch, err, errlen))
        return NULL;
    struct ldn_model *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->features = features;
    m->n_heads = cfg->n_tasks;
    m->trunk = ldn_nn_new_mlp(features, widths, n_widths, 0, cfg->activation, max_batch);
    m->heads = calloc((size_t)cfg->n_tasks, sizeof *m->heads);
    m->classes = calloc((size_t)cfg->n_tasks, sizeof *m->classes);
    if (!m->trunk || !m->heads || !m->classes ||
        !(m->dh = malloc(sizeof(float) * (size_t)max_batch * (size_t)m->trunk->out_dim)))
        goto nomem;
    struct ldn_rng r;
    ldn_rng_init(&r, cfg->seed, LDN_STREAM_TRUNK_INIT);
    ldn_nn_init(m->trunk, &r);
    /* The trunk computes in the blocks its pushes and pulls travel in (ps.chunk_kb), in every
     * trainer, so local and distributed runs do the same arithmetic. */
    int blocks[LDN_MAX_LAYERS];
    for (int l = 0; l < m->trunk->n_layers && l < LDN_MAX_LAYERS; l++)
        blocks[l] = ldn_nn_block_rows(&m->trunk->layers[l], (int64_t)cfg->chunk_kb * 1024);
    ldn_nn_set_blocks(m->trunk, blocks);
    for (int t = 0; t < cfg->n_tasks; t++) {
        const struct ldn_task_config *tc = &cfg->tasks[t];
        m->classes[t] = classes[t];
        m->heads[t] = ldn_nn_new_mlp(m->trunk->out_dim, tc->head, tc->n_head, classes[t],
                                     cfg->activation, max_batch);
        if (!m->heads[t])
            goto nomem;
        ldn_rng_init(&r, cfg->seed, LDN_STREAM_HEAD_INIT + (uint64_t)t);
        ldn_nn_init(m->heads[t], &r);
    }
    return m;
nomem:
    ldn_model_destroy(&m);
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "model: out of memory building trunk and %d heads",
             cfg->n_tasks);
    return NULL;
}

static uint64_t fnv1a_floats(uint64_t h, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        for (int b = 0; b < 4; b++) { /* little-endian bytes, whatever the host */
            h ^= (u >> (8 * b)) & 0xffu;
            h *= 0x100000001b3ULL;
        }
    }
    return h;
}

uint64_t ldn_model_init_id(const struct ldn_nn *trunk, struct ldn_nn *const *heads, int n_heads)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
    h = fnv1a_floats(h, trunk->params, trunk->n_params);
    for (int t = 0; t < n_heads; t++)
        h = fnv1a_floats(h, heads[t]->params, heads[t]->n_params);
    return h;
}

void ldn_model_destroy(struct ldn_model **pm)
{
    if (!pm || !*pm)
        return;
    struct ldn_model *m = *pm;
    ldn_nn_destroy(&m->trunk);
    if (m->heads)
        for (int t = 0; t < m->n_heads; t++)
            ldn_nn_destroy(&m->heads[t]);
    free(m->heads);
    free(m->classes);
    free(m->dh);
    free(m);
    *pm = NULL;
}

const float *ldn_model_forward(struct ldn_model *m, int t, const float *x, int batch)
{
    const float *h = ldn_nn_forward(m->trunk, x, batch);
    return ldn_nn_forward(m->heads[t], h, batch);
}

void ldn_model_backward(struct ldn_model *m, int t, const float *x, float *dlogits, int batch)
{
    ldn_model_backward_head(m, t, dlogits, batch, 0);
    ldn_model_backward_trunk(m, x, batch);
}

const float *ldn_model_forward_head(struct ldn_model *m, int u, int batch)
{
    return ldn_nn_forward(m->heads[u], m->trunk->acts[m->trunk->n_layers - 1], batch);
}

void ldn_model_backward_head(struct ldn_model *m, int u, float *dlogits, int batch, int accumulate)
{
    struct ldn_nn *trunk = m->trunk;
    const float *h = trunk->acts[trunk->n_layers - 1];
    float *dh = trunk->dbuf[trunk->n_layers]; /* dL/d(trunk output) */
    if (!accumulate) {
        ldn_nn_backward(m->heads[u], h, dlogits, dh, batch);
        return;
    }
    ldn_nn_backward(m->heads[u], h, dlogits, m->dh, batch);
    for (int64_t i = 0; i < (int64_t)batch * trunk->out_dim; i++)
        dh[i] += m->dh[i];
}

void ldn_model_backward_trunk(struct ldn_model *m, const float *x, int batch)
{
    struct ldn_nn *trunk = m->trunk;
    ldn_nn_backward(trunk, x, trunk->dbuf[trunk->n_layers], NULL, batch);
}

void ldn_model_evaluate(struct ldn_model *m, int t, const float *x, const int32_t *y, int64_t n,
                        double *loss, double *accuracy)
{
    double total = 0.0;
    int64_t correct = 0;
    int mb = m->trunk->max_batch;
    for (int64_t i = 0; i < n; i += mb) {
        int b = (int)(n - i < mb ? n - i : mb);
        const float *z = ldn_model_forward(m, t, x + i * m->features, b);
        int64_t ok = 0;
        total += ldn_loss_xent(z, y + i, b, m->classes[t], 1.0f, NULL, &ok) * b;
        correct += ok;
    }
    *loss = n > 0 ? total / (double)n : 0.0;
    *accuracy = n > 0 ? (double)correct / (double)n : 0.0;
}

int ldn_batch_buf_init(struct ldn_batch_buf *b, int max_batch, int features, int max_classes)
{
    b->max_batch = max_batch;
    b->x = malloc(sizeof(float) * (size_t)max_batch * (size_t)features);
    b->y = malloc(sizeof(int32_t) * (size_t)max_batch);
    b->dz = malloc(sizeof(float) * (size_t)max_batch * (size_t)max_classes);
    if (!b->x || !b->y || !b->dz) {
        ldn_batch_buf_deinit(b);
        return LDN_ERR_NOMEM;
    }
    return LDN_OK;
}

void ldn_batch_buf_deinit(struct ldn_batch_buf *b)
{
    free(b->x);
    free(b->y);
    free(b->dz);
    b->x = b->dz = NULL;
    b->y = NULL;
}

void ldn_batch_gather(struct ldn_batch_buf *buf, int at, const float *x, const int32_t *y,
                      const int64_t *idx, int n, int features)
{
    LDN_ASSERT(at >= 0 && at + n <= buf->max_batch);
    for (int i = 0; i < n; i++) {
        memcpy(buf->x + (int64_t)(at + i) * features, x + idx[i] * features,
               sizeof(float) * (size_t)features);
        buf->y[at + i] = y ? y[idx[i]] : -1;
    }
}

const float *ldn_model_forward_rows(struct ldn_model *m, int t, const float *x, const int32_t *y,
                                    const int64_t *idx, int n, struct ldn_batch_buf *buf)
{
    ldn_batch_gather(buf, 0, x, y, idx, n, m->features);
    return ldn_model_forward(m, t, buf->x, n);
}

double ldn_model_loss_backward(struct ldn_model *m, int t, const float *z, int n, float weight,
                               struct ldn_batch_buf *buf, int64_t *correct)
{
    double loss = ldn_loss_xent(z, buf->y, n, m->classes[t], weight, buf->dz, correct);
    ldn_model_backward(m, t, buf->x, buf->dz, n);
    return loss;
}

double ldn_model_train_batch(struct ldn_model *m, int t, const float *x, const int32_t *y,
                             const int64_t *idx, int n, float weight, struct ldn_batch_buf *buf,
                             int64_t *correct)
{
    const float *z = ldn_model_forward_rows(m, t, x, y, idx, n, buf);
    return ldn_model_loss_backward(m, t, z, n, weight, buf, correct);
}
