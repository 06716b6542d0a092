/* Layers and networks over OpenBLAS. */
#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"

static void apply_act(enum ldn_activation act, float *y, const float *bias, int batch, int n)
{
    for (int i = 0; i < batch; i++) {
        float *row = y + (int64_t)i * n;
        switch (act) {
        case LDN_ACT_RELU:
            for (int j = 0; j < n; j++) {
                float v = row[j] + bias[j];
                row[j] = v > 0.0f ? v : 0.0f;
            }
            break;
        case LDN_ACT_TANH:
            for (int j = 0; j < n; j++)
                row[j] = tanhf(row[j] + bias[j]);
            break;
        case LDN_ACT_NONE:
            for (int j = 0; j < n; j++)
                row[j] += bias[j];
            break;
        }
    }
}

static void dense_forward(struct ldn_layer *l, const float *in, float *out, int batch)
{
    const float *w = l->tensors[0].data;
    const int64_t ld = l->row_len;
    /* out[B, rows] = in[B,in] * W[rows,in]^T, block by block when the weights arrive so */
    int br = l->block_rows > 0 ? l->block_rows : l->out_dim;
    for (int r0 = 0; r0 < l->out_dim; r0 += br) {
        int r1 = r0 + br < l->out_dim ? r0 + br : l->out_dim;
        if (l->weights_needed)
            l->weights_needed(l->weights_ud, l->index, r0, r1);
        for (int j = r0; j < r1; j++) /* bias column -> contiguous */
            l->bias[j] = w[j * ld + l->in_dim];
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, r1 - r0, l->in_dim, 1.0f, in,
                    l->in_dim, w + r0 * ld, (int)ld, 0.0f, out + r0, l->out_dim);
    }
    apply_act(l->act, out, l->bias, batch, l->out_dim);
}

/* dz = dout * act'(out), in place, and db = column sums of dz. */
static void act_backward(enum ldn_activation act, const float *out, float *dout, float *db,
                         int batch, int n)
{
    memset(db, 0, sizeof(float) * (size_t)n);
    for (int i = 0; i < batch; i++) {
        const float *o = out + (int64_t)i * n;
        float *d = dout + (int64_t)i * n;
        switch (act) {
        case LDN_ACT_RELU:
            for (int j = 0; j < n; j++) {
                d[j] = o[j] > 0.0f ? d[j] : 0.0f;
                db[j] += d[j];
            }
            break;
        case LDN_ACT_TANH:
            for (int j = 0; j < n; j++) {
                d[j] *= 1.0f - o[j] * o[j];
                db[j] += d[j];
            }
            break;
        case LDN_ACT_NONE:
            for (int j = 0; j < n; j++)
                db[j] += d[j];
            break;
        }
    }
}

static void dense_backward_data(struct ldn_layer *l, const float *out, float *dout, float *din,
                                int batch)
{
    const float *w = l->tensors[0].data;
    float *g = l->grad[0];
    const int64_t ld = l->row_len;
    act_backward(l->act, out, dout, l->bias, batch, l->out_dim);
    for (int j = 0; j < l->out_dim; j++)
        g[j * ld + l->in_dim] = l->bias[j];
    if (din) /* din[B,in] = dz[B,out] * W[out,in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, l->in_dim, l->out_dim, 1.0f,
                    dout, l->out_dim, w, (int)ld, 0.0f, din, l->in_dim);
}

static void dense_backward_params(struct ldn_layer *l, const float *in, const float *dz, int batch)
{
    float *g = l->grad[0];
    const int64_t ld = l->row_len;
    /* dW[rows, in] = dz[B, rows]^T * in[B, in], block by block so each block can be sent
     * while the next is computed */
    int br = l->block_rows > 0 ? l->block_rows : l->out_dim;
    for (int r0 = 0; r0 < l->out_dim; r0 += br) {
        int r1 = r0 + br < l->out_dim ? r0 + br : l->out_dim;
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1 - r0, l->in_dim, batch, 1.0f,
                    dz + r0, l->out_dim, in, l->in_dim, 0.0f, g + r0 * ld, (int)ld);
        if (l->grad_ready)
            l->grad_ready(l->grad_ud, l->index, r0, r1);
    }
}

static void dense_init(struct ldn_layer *l, struct ldn_rng *r)
{
    float *w = l->tensors[0].data;
    double std = sqrt(2.0 / l->in_dim);
    for (int j = 0; j < l->out_dim; j++) {
        for (int i = 0; i < l->in_dim; i++)
            w[j * l->row_len + i] = (float)(std * ldn_rng_normal(r));
        w[j * l->row_len + l->in_dim] = 0.0f;
    }
}

const struct ldn_layer_ops ldn_dense_ops = {"dense", dense_forward, dense_backward_data,
                                            dense_backward_params, dense_init};

static void set_tensor(struct ldn_tensor *t, const char *name, int ndim, int64_t ne0, int64_t ne1,
                       int64_t nb0, int64_t nb1, int64_t offset)
{
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->ne[0] = ne0;
    t->ne[1] = ne1;
    t->ne[2] = t->ne[3] = 1;
    t->nb[0] = nb0;
    t->nb[1] = nb1;
    t->nb[2] = t->nb[3] = ne1 * nb1;
    t->offset = offset;
}

struct ldn_nn *ldn_nn_new_mlp(int in_dim, const int *widths, int n, int out_dim,
                              enum ldn_activation act, int max_batch)
{
    if (in_dim < 1 || n < 0 || max_batch < 1 || (n == 0 && out_dim < 1))
        return NULL;
    struct ldn_nn *net = calloc(1, sizeof *net);
    if (!net)
        return NULL;
    net->n_layers = n + (out_dim > 0 ? 1 : 0);
    net->layers = calloc((size_t)net->n_layers, sizeof *net->layers);
    net->acts = calloc((size_t)net->n_layers, sizeof *net->acts);
    if (!net->layers || !net->acts)
        goto fail;
    int prev = in_dim;
    int64_t off = 0;
    for (int i = 0; i < net->n_layers; i++) {
        struct ldn_layer *l = &net->layers[i];
        bool is_out = i == n;
        int w = is_out ? out_dim : widths[i];
        if (w < 1)
            goto fail;
        l->ops = &ldn_dense_ops;
        l->index = i;
        if (is_out)
            snprintf(l->name, sizeof l->name, "out");
        else
            snprintf(l->name, sizeof l->name, "fc%d", i);
        l->in_dim = prev;
        l->out_dim = w;
        l->act = is_out ? LDN_ACT_NONE : act;
        l->n_tensors = 2;
        l->row_len = prev + 1;
        l->offset = off;
        l->n_params = (int64_t)w * l->row_len;
        set_tensor(&l->tensors[0], "weight", 2, prev, w, 1, l->row_len, off);
        set_tensor(&l->tensors[1], "bias", 1, w, 1, l->row_len, l->row_len * w, off + prev);
        off += l->n_params;
        prev = w;
    }
    net->in_dim = in_dim;
    net->out_dim = prev;
    net->n_params = off;
    net->max_batch = max_batch;
    net->params = calloc((size_t)off, sizeof(float));
    net->grads = net->own_grads = calloc((size_t)off, sizeof(float));
    if (!net->params || !net->grads)
        goto fail;
    for (int i = 0; i < net->n_layers; i++) {
        struct ldn_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_tensors; k++) {
            l->tensors[k].data = net->params + l->tensors[k].offset;
            l->grad[k] = net->grads + l->tensors[k].offset;
        }
        net->acts[i] = malloc(sizeof(float) * (size_t)max_batch * (size_t)l->out_dim);
        l->bias = malloc(sizeof(float) * (size_t)l->out_dim);
        if (!net->acts[i] || !l->bias)
            goto fail;
    }
    /* dbuf[i] (1 <= i < n): gradient w.r.t. layer i-1's output; dbuf[n]: w.r.t. the net's
     * output, for callers that backpropagate into this net (a trunk under a head). */
    const size_t nl = (size_t)(unsigned)net->n_layers;
    net->dbuf = calloc(nl + 1, sizeof *net->dbuf);
    net->dz = calloc(nl, sizeof *net->dz);
    if (!net->dbuf || !net->dz)
        goto fail;
    for (int i = 1; i <= net->n_layers; i++) {
        size_t w = (size_t)net->layers[i - 1].out_dim;
        if (!(net->dbuf[i] = malloc(sizeof(float) * (size_t)max_batch * w)))
            goto fail;
    }
    return net;
fail:
    ldn_nn_destroy(&net);
    return NULL;
}

void ldn_nn_destroy(struct ldn_nn **pnet)
{
    if (!pnet || !*pnet)
        return;
    struct ldn_nn *net = *pnet;
    if (net->acts)
        for (int i = 0; i < net->n_layers; i++)
            free(net->acts[i]);
    if (net->layers)
        for (int i = 0; i < net->n_layers; i++)
            free(net->layers[i].bias);
    free(net->acts);
    free(net->layers);
    free(net->params);
    free(net->own_grads);
    if (net->dbuf)
        for (int i = 0; i <= net->n_layers; i++)
            free(net->dbuf[i]);
    free(net->dbuf);
    free(net->dz);
    free(net);
    *pnet = NULL;
}

void ldn_nn_use_grads(struct ldn_nn *net, float *grads)
{
    net->grads = grads ? grads : net->own_grads;
    for (int i = 0; i < net->n_layers; i++) {
        struct ldn_layer *l = &net->layers[i];
        for (int k = 0; k < l->n_tensors; k++)
            l->grad[k] = net->grads + l->tensors[k].offset;
    }
}

void ldn_nn_set_forward_hook(struct ldn_nn *net, ldn_weights_needed_fn *fn, void *ud)
{
    for (int i = 0; i < net->n_layers; i++) {
        net->layers[i].weights_needed = fn;
        net->layers[i].weights_ud = ud;
    }
}

int ldn_nn_same_shape(const struct ldn_nn *a, const struct ldn_nn *b)
{
    if (a->n_layers != b->n_layers || a->n_params != b->n_params)
        return 0;
    for (int l = 0; l < a->n_layers; l++)
        if (a->layers[l].in_dim != b->layers[l].in_dim ||
            a->layers[l].out_dim != b->layers[l].out_dim)
            return 0;
    return 1;
}

void ldn_nn_set_grad_hook(struct ldn_nn *net, ldn_grad_ready_fn *fn, void *ud)
{
    for (int i = 0; i < net->n_layers; i++) {
        net->layers[i].grad_ready = fn;
        net->layers[i].grad_ud = ud;
    }
}

void ldn_nn_set_blocks(struct ldn_nn *net, const int *block_rows)
{
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].block_rows = block_rows ? block_rows[i] : 0;
}

void ldn_nn_init(struct ldn_nn *net, struct ldn_rng *r)
{
    for (int i = 0; i < net->n_layers; i++)
        net->layers[i].ops->init(&net->layers[i], r);
}

const float *ldn_nn_forward(struct ldn_nn *net, const float *in, int batch)
{
    LDN_ASSERT(batch >= 1 && batch <= net->max_batch);
    const float *x = in;
    for (int i = 0; i < net->n_layers; i++) {
        struct ldn_layer *l = &net->layers[i];
        l->ops->forward(l, x, net->acts[i], batch);
        x = net->acts[i];
    }
    return x;
}

void ldn_nn_backward(struct ldn_nn *net, const float *in, float *dout, float *din, int batch)
{
    LDN_ASSERT(batch >= 1 && batch <= net->max_batch);
    /* Pass 1, top down: every layer's delta (dL/d pre-activation), kept per layer. */
    float *d = dout;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        struct ldn_layer *l = &net->layers[i];
        net->dz[i] = d;
        float *dx = i > 0 ? net->dbuf[i] : din;
        l->ops->backward_data(l, net->acts[i], d, dx, batch);
        d = dx;
    }
    /* Pass 2, bottom up: parameter gradients, first layer first, so the weights the next
     * forward pass needs first are the first to travel. */
    for (int i = 0; i < net->n_layers; i++) {
        struct ldn_layer *l = &net->layers[i];
        l->ops->backward_params(l, i > 0 ? net->acts[i - 1] : in, net->dz[i], batch);
    }
}

int ldn_nn_block_rows(const struct ldn_layer *l, int64_t chunk_bytes)
{
    int64_t row_bytes = l->row_len * (int64_t)sizeof(float);
    int64_t rows = chunk_bytes / row_bytes;
    if (rows < 1)
        rows = 1;
    int64_t blocks = (l->out_dim + rows - 1) / rows;
    return (int)((l->out_dim + blocks - 1) / blocks); /* equal blocks, none tiny */
}
