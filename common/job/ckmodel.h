/* The model a checkpoint holds: its stored config, the classes of each head, and the trunk and
 * heads rebuilt from that config with the checkpoint's weights. Used by the checkpoint tools
 * (eval, predict, inspect) and by distillation rounds (a teacher's members, a round's init).
 * An exported file (docs/export.md) loads the same way: its stored config, the model with its
 * (dequantized) weights, and its compressed model in `x`, which ldn_ckmodel_forward uses. */
#ifndef LDN_CKMODEL_H
#define LDN_CKMODEL_H

#include <stddef.h>

#include "ckpt.h"
#include "config.h"
#include "data.h"
#include "exportfile.h"
#include "model.h"

struct ldn_ckmodel {
    struct ldn_ckpt ck;
    struct ldn_config *cfg;
    int *classes; /* classes[t] for task t of cfg */
    struct ldn_model *model;
    struct ldn_export *x; /* an exported file's compressed model, or NULL */
};

/* An empty L (ldn_ckmodel_free is safe on it). */
void ldn_ckmodel_init(struct ldn_ckmodel *L);
void ldn_ckmodel_free(struct ldn_ckmodel *L);

/* Open the checkpoint `arg` names: a file, a checkpoint directory (its `latest`) or a run
 * directory (its checkpoints/latest). Returns 0 or a negative status with err. */
int ldn_ckmodel_open(const char *arg, struct ldn_ckpt *ck, char *err, size_t errlen);

/* Open the checkpoint `arg`, rebuild its model from the stored config (activations for
 * max_batch rows, at least the stored train.batch_size) and load the trunk and every head.
 * Shapes and types are checked against the config, and the checksum of every chunk read is
 * verified. On failure L is left empty. */
int ldn_ckmodel_load(const char *arg, int max_batch, struct ldn_ckmodel *L, char *err,
                     size_t errlen);

/* The `split` ("train" or "test") of task t's data for this model: DIR/<task>.h5 when data is
 * given, else the task's file in the stored config; its input width and classes must be the
 * model's. NULL with err ("data FILE: ...") otherwise. */
struct ldn_dataset *ldn_ckmodel_load_split(const struct ldn_ckmodel *L, int t, const char *data,
                                           const char *split, char *err, size_t errlen);

/* Logits [batch, classes[t]] of head t: the exported file's own kernels when L is an export,
 * else the model's forward pass. batch <= L->model->trunk->max_batch. */
const float *ldn_ckmodel_forward(struct ldn_ckmodel *L, int t, const float *x, int batch);

#endif
