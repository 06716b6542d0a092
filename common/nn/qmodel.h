/* The multi-task model of an exported file, for prediction only: a trunk and one head per
 * task whose layers are compressed matrices (qsparse.h), forwarded with the activations kept
 * transposed ([width, batch]) from the first layer to the logits. Built by the export reader
 * (common/ckpt/exportfile.h); not thread-safe (one set of activation buffers). */
#ifndef LDN_QMODEL_H
#define LDN_QMODEL_H

#include "config.h"
#include "qsparse.h"

struct ldn_qlayer {
    struct ldn_qmat w; /* [out, in] */
    float *bias;       /* [out] (owned) */
    enum ldn_activation act;
};

struct ldn_qnet {
    int n_layers;
    struct ldn_qlayer *layers; /* [n_layers] (owned) */
};

struct ldn_qmodel {
    int features;
    enum ldn_activation act; /* after every trunk layer and every head layer but the last */
    struct ldn_qnet trunk;
    int n_heads;
    struct ldn_qnet *heads; /* [n_heads] */
    int *classes;           /* [n_heads] */
    int max_batch;
    int64_t ld;    /* row stride of buf (>= max_batch) */
    float *buf[2]; /* [max width, ld] each: activations, transposed */
    float *logits; /* [max_batch, max classes] */
};

/* An empty model for n_heads heads (layers filled in by the caller), with its arrays. NULL
 * when out of memory. */
struct ldn_qmodel *ldn_qmodel_new(int features, enum ldn_activation act, int n_heads);
/* Allocate the activation buffers for max_batch rows once every layer is in; checks that each
 * net's layers chain (in of one = out of the previous, the trunk starting at features and
 * every head at the trunk's output). 0, LDN_ERR_FORMAT with err, or LDN_ERR_NOMEM. */
int ldn_qmodel_finish(struct ldn_qmodel *m, int max_batch, char *err, size_t errlen);
void ldn_qmodel_destroy(struct ldn_qmodel **m);
/* Allocate net's n layers (zeroed). 0 or LDN_ERR_NOMEM. */
int ldn_qnet_alloc(struct ldn_qnet *net, int n);

/* Logits [batch, classes[t]] of head t for x [batch, features] (batch <= max_batch); valid
 * until the next call. */
const float *ldn_qmodel_forward(struct ldn_qmodel *m, int t, const float *x, int batch);

#endif
