/* Exported model files (format "ladon-export", docs/export.md): what prediction needs of a
 * checkpoint (trunk and heads, activation, task names, input width, the config that names
 * the data), with fp16 or int8 per-row weights and the zero weights left out (bitmap or CSR
 * indices, the smaller per layer, every dataset deflated and checksummed). Serial HDF5.
 *
 * Writing goes to OUT.part, is fsync'd and renamed over OUT: a failure leaves nothing at OUT
 * (and no OUT.part). Reading checks the format, every shape, type, index and value (finite),
 * and HDF5 verifies the checksum of every chunk. */
#ifndef LDN_EXPORT_H
#define LDN_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "model.h"
#include "qmodel.h"

#define LDN_EXPORT_FORMAT "ladon-export"
#define LDN_EXPORT_FORMAT_VERSION 2 /* 2: int8 scales are float16 (1: float32; both read) */
/* A layer is predicted with the sparse kernel when at most this fraction of its weights is
 * stored (denser ones are expanded to fp32 once at load and use sgemm; docs/export.md has
 * the measurement). */
#define LDN_EXPORT_SPARSE_MAX_DENSITY 0.2

enum ldn_export_quant { LDN_EXPORT_NONE = 0, LDN_EXPORT_FP16 = 1, LDN_EXPORT_INT8 = 2 };

const char *ldn_export_quant_name(int q);
/* -1 for an unknown name. */
int ldn_export_quant_kind(const char *name);

/* What the writer chose for one layer. */
struct ldn_export_layer_report {
    char name[LDN_NAME_MAX + 16]; /* "trunk/0", "heads/category/1" */
    int rows, cols;
    int64_t stored;       /* weights stored (non-zero after quantization) */
    int index;            /* enum ldn_qs_index */
    int64_t est_bytes[4]; /* deflated bytes of values + indices for each index kind */
};

struct ldn_export_report {
    int n;
    struct ldn_export_layer_report *layers; /* [n] (owned) */
    int64_t dense_f32_bytes;                /* 4 bytes per weight and bias */
    int64_t file_bytes;
};

void ldn_export_report_free(struct ldn_export_report *r);

/* The metadata written with the model. */
struct ldn_export_meta {
    int quant; /* enum ldn_export_quant */
    double prune;
    int64_t step;
    double epoch;
    const char *source; /* the checkpoint exported */
};

/* Write model m (weights as they are: the caller prunes) of config cfg to `out` as above,
 * filling rep. Returns 0 or a negative status with err ("export OUT: ..."). */
int ldn_export_write(const char *out, const struct ldn_model *m, const struct ldn_config *cfg,
                     const struct ldn_export_meta *meta, struct ldn_export_report *rep, char *err,
                     size_t errlen);

/* 1 when path is an HDF5 file whose root attribute format is "ladon-export", else 0 (never
 * an error: the caller opens it as whatever else it may be). */
int ldn_export_is(const char *path);

/* An exported file, read. */
struct ldn_export {
    char path[1024];
    int format_version, features, quant;
    double prune, epoch;
    int64_t step;
    char *config, *source; /* owned */
    struct ldn_qmodel *qm; /* heads in the file's task order (tasks[]) */
    int n_tasks;
    char (*tasks)[LDN_NAME_MAX]; /* [n_tasks] (owned) */
};

/* Read the exported file at path into x with activations for max_batch rows. On failure x is
 * left empty (ldn_export_close is safe). */
int ldn_export_open(const char *path, int max_batch, struct ldn_export *x, char *err,
                    size_t errlen);
void ldn_export_close(struct ldn_export *x);

/* The weights of x's layers into m's (same shapes, checked): fp32 values of what is stored,
 * zero elsewhere; head t of m from head heads[t] of x. 0 or LDN_ERR_FORMAT with err. */
int ldn_export_fill_model(const struct ldn_export *x, const int *heads, struct ldn_model *m,
                          char *err, size_t errlen);

#endif
