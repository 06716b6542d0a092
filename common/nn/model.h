/* The multi-task model: one shared trunk and one head per task.
 *
 * The trunk maps the input features to its last hidden width (with the activation after
 * every layer); head t maps that to task t's classes. Each is a struct ldn_nn with its own
 * flat parameter vector: the trunk's vector is the parameter servers' key space (layer
 * order, weight then bias, row-major [out, in]). Initial weights come from the seed alone,
 * so every rank builds the same model. */
#ifndef LDN_MODEL_H
#define LDN_MODEL_H

#include "config.h"
#include "nn.h"

/* RNG stream ids used for initialisation (distinct from data and sampling streams). */
#define LDN_STREAM_TRUNK_INIT 1u
#define LDN_STREAM_HEAD_INIT 0x1000u /* + task index */

struct ldn_model {
    int features;
    struct ldn_nn *trunk;
    int n_heads;
    struct ldn_nn **heads; /* heads[t] for task t of the config */
    int *classes;          /* classes[t] */
    float *dh;             /* [max_batch, trunk width]: one head's dL/d(trunk output) */
};

/* The most parameters (and activation floats) of the trunk or of one head: 2^31 (8 GiB of
 * float32; the trunk's keys are 32-bit). */
#define LDN_MODEL_MAX_PARAMS ((int64_t)1 << 31)

/* Would ldn_model_new_trunk stay within LDN_MODEL_MAX_PARAMS? 0, or LDN_ERR_CONFIG with one
 * line naming the field (model.trunk or tasks.NAME.head) and the sizes. Computes without
 * allocating. */
int ldn_model_check_size(const struct ldn_config *cfg, const int *widths, int n_widths,
                         int features, const int *classes, int max_batch, char *err, size_t errlen);
/* Build trunk and heads from cfg for `features` inputs and classes[t] outputs per task, with
 * activations for up to max_batch rows, initialised from cfg->seed. NULL on error (err set:
 * out of memory, or the sizes ldn_model_check_size refuses). */
struct ldn_model *ldn_model_new(const struct ldn_config *cfg, int features, const int *classes,
                                int max_batch, char *err, size_t errlen);
/* The same with another trunk than model.trunk: hidden widths widths[0..n_widths) (a plan
 * switch gives the trunk another shape; the heads follow its output width). */
struct ldn_model *ldn_model_new_trunk(const struct ldn_config *cfg, const int *widths, int n_widths,
                                      int features, const int *classes, int max_batch, char *err,
                                      size_t errlen);
void ldn_model_destroy(struct ldn_model **m);

/* The identity of an initialisation (docs/checkpoint.md, root attribute init_id): FNV-1a 64
 * over the parameters of the trunk, then of heads[0..n_heads), each net's keys in order (row j
 * of a layer = its in weights, then its bias) as little-endian float32 bytes. Two models whose
 * training started from the same weights share it; it is computed once, at the start, and
 * carried through resumes. */
uint64_t ldn_model_init_id(const struct ldn_nn *trunk, struct ldn_nn *const *heads, int n_heads);

/* Forward a batch through the trunk and head t; returns the logits [batch, classes[t]]. */
const float *ldn_model_forward(struct ldn_model *m, int t, const float *x, int batch);
/* Backward from dlogits (overwritten) through head t and the trunk: fills m->heads[t]->grads
 * and m->trunk->grads (no dL/dx). Must follow ldn_model_forward(m, t, x, batch). */
void ldn_model_backward(struct ldn_model *m, int t, const float *x, float *dlogits, int batch);

/* Several heads on one batch (a distillation round with teacher.inputs: all): after
 * ldn_model_forward(m, t, x, batch), head u on the same trunk output; returns its logits. */
const float *ldn_model_forward_head(struct ldn_model *m, int u, int batch);
/* Backward of head u from dlogits (overwritten): its gradients in m->heads[u]->grads, and its
 * dL/d(trunk output) written (accumulate == 0, the first head) or added to the others'. */
void ldn_model_backward_head(struct ldn_model *m, int u, float *dlogits, int batch, int accumulate);
/* Then the trunk from the heads' summed dL/d(trunk output): m->trunk->grads. */
void ldn_model_backward_trunk(struct ldn_model *m, const float *x, int batch);

/* Per-step buffers for ldn_model_train_batch, allocated once (sizes for max_batch rows). */
struct ldn_batch_buf {
    int max_batch;
    float *x;   /* [max_batch, features] */
    int32_t *y; /* [max_batch] */
    float *dz;  /* [max_batch, max classes] */
};

int ldn_batch_buf_init(struct ldn_batch_buf *b, int max_batch, int features, int max_classes);
void ldn_batch_buf_deinit(struct ldn_batch_buf *b);

/* Copy rows idx[0..n) of x [rows, features] and their labels y (NULL: -1, no label) into buf's
 * rows [at, at + n) (at + n <= buf->max_batch). */
void ldn_batch_gather(struct ldn_batch_buf *buf, int at, const float *x, const int32_t *y,
                      const int64_t *idx, int n, int features);

/* Gather rows idx[0..n) of x [rows, features] and their labels y into buf and forward them through
 * the trunk and head t; returns the logits [n, classes[t]]. */
const float *ldn_model_forward_rows(struct ldn_model *m, int t, const float *x, const int32_t *y,
                                    const int64_t *idx, int n, struct ldn_batch_buf *buf);
/* After ldn_model_forward_rows: cross-entropy of logits z against buf's labels scaled by
 * weight, and backward (gradients in m->trunk->grads and m->heads[t]->grads). Returns the
 * batch mean loss, *correct the rows predicted right. */
double ldn_model_loss_backward(struct ldn_model *m, int t, const float *z, int n, float weight,
                               struct ldn_batch_buf *buf, int64_t *correct);

/* One training batch of task t: gather rows idx[0..n) of x and y (a training split), forward,
 * cross-entropy scaled by weight, backward. Leaves the gradients in m->trunk->grads and
 * m->heads[t]->grads (no optimizer step); returns the batch mean loss, *correct the rows
 * predicted right. */
double ldn_model_train_batch(struct ldn_model *m, int t, const float *x, const int32_t *y,
                             const int64_t *idx, int n, float weight, struct ldn_batch_buf *buf,
                             int64_t *correct);

/* Evaluate head t on n rows (x [n, features], labels y) in chunks of the model's max batch:
 * mean cross-entropy into *loss and the fraction of correct argmax into *accuracy. */
void ldn_model_evaluate(struct ldn_model *m, int t, const float *x, const int32_t *y, int64_t n,
                        double *loss, double *accuracy);

#endif
