/* Layers and networks over OpenBLAS.
 *
 * A layer maps a batch of flat per-sample vectors [batch, in_dim] to [batch, out_dim].
 * It owns no memory: its parameters and gradients are views into the flat buffers of the
 * network that holds it, so a whole network's parameters are one float vector (the
 * parameter server's key space) and every optimizer works on flat vectors.
 *
 * The layer interface (struct ldn_layer_ops) is what a network calls; a new kind of layer
 * (convolution, say) implements forward/backward and describes its parameter tensors, and
 * nothing above this module changes. */
#ifndef LDN_NN_H
#define LDN_NN_H

#include <stdint.h>

#include "config.h"
#include "rng.h"

/* A named view of parameter memory, ggml style: ne[0] is the fastest dimension and nb[i] is
 * the stride of dimension i in elements. A dense layer keeps its parameters as one row-major
 * [out, in + 1] block, row j = (weights of output j, bias j), so that any range of whole rows
 * is one contiguous key range: its weight has ne = {in, out}, nb = {1, in + 1} and its bias
 * ne = {out}, nb = {in + 1}, offset by in. */
struct ldn_tensor {
    char name[32]; /* "weight", "bias" */
    int ndim;
    int64_t ne[4];
    int64_t nb[4];
    int64_t offset; /* offset of element 0 in the owning network's flat parameter vector */
    float *data;    /* = net->params + offset */
};

struct ldn_layer;

/* Called during backward when the parameter gradients of rows [row_lo, row_hi) of layer
 * `layer` are final (so they can be sent while the rest is computed). */
typedef void ldn_grad_ready_fn(void *ud, int layer, int row_lo, int row_hi);
/* Called by forward before rows [row_lo, row_hi) of layer `layer` read their weights, block
 * by block, so later blocks and layers can still be arriving while earlier ones compute. */
typedef void ldn_weights_needed_fn(void *ud, int layer, int row_lo, int row_hi);

struct ldn_layer_ops {
    const char *kind;
    /* out[batch, out_dim] = f(in[batch, in_dim]). */
    void (*forward)(struct ldn_layer *l, const float *in, float *out, int batch);
    /* Backward, first half: turn dout = dL/dout into the layer's delta in place (using the
     * forward's out), write the gradients that need nothing else (bias) and, when din != NULL,
     * dL/din. */
    void (*backward_data)(struct ldn_layer *l, const float *out, float *dout, float *din,
                          int batch);
    /* Backward, second half: the weight gradients from the forward's input and the delta
     * (overwriting, not accumulating), reporting each finished block to grad_ready. */
    void (*backward_params)(struct ldn_layer *l, const float *in, const float *delta, int batch);
    /* Draw initial parameters from r. */
    void (*init)(struct ldn_layer *l, struct ldn_rng *r);
};

struct ldn_layer {
    const struct ldn_layer_ops *ops;
    char name[32]; /* "fc0", "fc1", ..., "out" */
    int in_dim, out_dim;
    enum ldn_activation act; /* activation fused into the layer's output */
    int n_tensors;
    struct ldn_tensor tensors[2];  /* views into net->params */
    float *grad[2];                /* matching views into net->grads */
    int64_t offset, n_params;      /* the layer's block [offset, offset + n_params) */
    int64_t row_len;               /* keys per output row (in + 1 for dense) */
    float *bias;                   /* contiguous scratch [out]: bias copy / bias gradient */
    int index;                     /* position in the network */
    int block_rows;                /* backward computes the weight gradient in blocks of this
                                      many rows and reports each (0: one block) */
    ldn_grad_ready_fn *grad_ready; /* may be NULL */
    void *grad_ud;
    ldn_weights_needed_fn *weights_needed; /* forward hook, may be NULL */
    void *weights_ud;
};

/* A feed-forward stack of layers with its parameters, gradients and activations. */
struct ldn_nn {
    int n_layers;
    struct ldn_layer *layers;
    int64_t n_params;
    float *params;    /* [n_params], owned */
    float *grads;     /* [n_params], where backward writes (own_grads unless redirected) */
    float *own_grads; /* [n_params], owned */
    int max_batch;
    float **acts; /* acts[i]: output of layer i, [max_batch, out_dim] */
    float **dbuf; /* dbuf[i]: dL/d(output of layer i-1), [max_batch, max width] (i >= 1) */
    float **dz;   /* dz[i]: layer i's delta during backward (points into dbuf or dout) */
    int in_dim, out_dim;
};

/* A dense-layer stack in_dim -> widths[0] -> ... -> widths[n-1] -> out_dim with `act` after
 * every hidden layer; out_dim <= 0 means no output layer (the last width is the output and
 * gets the activation too: a trunk). Returns NULL on allocation failure or bad sizes. */
struct ldn_nn *ldn_nn_new_mlp(int in_dim, const int *widths, int n, int out_dim,
                              enum ldn_activation act, int max_batch);
void ldn_nn_destroy(struct ldn_nn **net);

/* He-normal weights (std sqrt(2/fan_in)), zero biases, drawn from r. */
void ldn_nn_init(struct ldn_nn *net, struct ldn_rng *r);

/* Whether two nets have the same layers (input and output widths of each): 1 or 0. */
int ldn_nn_same_shape(const struct ldn_nn *a, const struct ldn_nn *b);
/* Forward a batch (batch <= max_batch); returns the last layer's output (net->acts[n-1]). */
const float *ldn_nn_forward(struct ldn_nn *net, const float *in, int batch);
/* Backward from dout = dL/doutput (overwritten, and used until return); fills net->grads
 * and, if din != NULL, dL/din [batch, in_dim]. Deltas go top down first, then weight
 * gradients bottom up (first layer first). Must follow ldn_nn_forward on the same `in`. */
void ldn_nn_backward(struct ldn_nn *net, const float *in, float *dout, float *din, int batch);

/* Call fn(ud, i, r0, r1) before forward reads rows [r0, r1) of layer i, block by block
 * (ldn_nn_set_blocks). NULL to stop. */
void ldn_nn_set_forward_hook(struct ldn_nn *net, ldn_weights_needed_fn *fn, void *ud);

/* Make the next backward passes write their parameter gradients into grads[n_params]
 * (borrowed; NULL returns to the net's own buffer). Lets a caller alternate two buffers
 * while one is still being sent. */
void ldn_nn_use_grads(struct ldn_nn *net, float *grads);

/* Compute layer i in blocks of block_rows[i] output rows (NULL or 0: whole layers), forward
 * and backward. Results depend on the blocking (BLAS sums in another order), so every
 * trainer that must agree bit for bit uses the same blocks (ldn_model_new sets them). */
void ldn_nn_set_blocks(struct ldn_nn *net, const int *block_rows);

/* Report parameter gradients block by block during backward: fn (NULL to stop) is called
 * once per block of each layer, as soon as its gradient is final. */
void ldn_nn_set_grad_hook(struct ldn_nn *net, ldn_grad_ready_fn *fn, void *ud);

/* Dense layer ops (exposed for tests and future layer kinds that wrap it). */
extern const struct ldn_layer_ops ldn_dense_ops;

/* Rows per backward block of a layer for a chunk size in bytes (>= 1). */
int ldn_nn_block_rows(const struct ldn_layer *l, int64_t chunk_bytes);

#endif
