/* Per-task datasets in HDF5: loading a worker's shard, and building datasets.
 *
 * File layout (one file per task, docs/data.md):
 *   /            attrs: format="ladon-task" (string), format_version=1 (int),
 *                       task (string), num_classes (int), features (int),
 *                       x_scale (double: x * x_scale gives the model input)
 *   /train/x     uint8 or float32 [N, features]     /train/y  int32 [N]
 *   /test/x      same type [M, features]            /test/y   int32 [M]
 * Labels are class indices in [0, num_classes). */
#ifndef LDN_DATA_H
#define LDN_DATA_H

#include <stddef.h>
#include <stdint.h>

#define LDN_DATA_FORMAT "ladon-task"
#define LDN_DATA_FORMAT_VERSION 1
/* Upper bounds of a task file's num_classes and features: more is a damaged file, not a task. */
#define LDN_DATA_MAX_CLASSES 1000000
#define LDN_DATA_MAX_FEATURES (1 << 24)

/* A loaded split (or shard of one), held in memory as float32 model inputs. */
struct ldn_dataset {
    char task[64];
    int64_t n;       /* rows held */
    int64_t n_total; /* rows in the whole split */
    int64_t first;   /* index of the first held row in the split */
    int features;
    int num_classes;
    float *x;      /* [n, features], already multiplied by x_scale (owned) */
    int32_t *y;    /* [n] (owned) */
    int64_t bytes; /* of x and y, counted against ldn_data_max_memory while loaded */
};

/* The most bytes of loaded splits (x and y of every struct ldn_dataset that ldn_dataset_load
 * made and ldn_dataset_destroy has not freed yet) this process holds at once: data.max_memory_mb.
 * bytes <= 0 sets the automatic bound, half the host's physical memory (sysconf), the default.
 * Thread-safe. */
void ldn_data_set_max_memory(int64_t bytes);
/* The bound in bytes, and the bytes held now. */
int64_t ldn_data_max_memory(void);
int64_t ldn_data_memory_held(void);

/* Read rows [shard*N/nshards, (shard+1)*N/nshards) of `split` ("train" or "test") of the
 * task file at path by hyperslab. Validates the format attributes, shapes and that every
 * label is in range, and that the shard fits in ldn_data_max_memory() with what is held
 * already (else LDN_ERR_NOMEM naming data.max_memory_mb). Returns a new dataset or NULL with a
 * one-line error naming the file and what is wrong. Uses serial HDF5 (no MPI needed). */
struct ldn_dataset *ldn_dataset_load(const char *path, const char *split, int shard, int nshards,
                                     char *err, size_t errlen);
void ldn_dataset_destroy(struct ldn_dataset **ds);

/* Read only the header of a task file: task name, classes, features, train/test sizes.
 * Returns 0 or a negative ldn_status with err filled. */
int ldn_dataset_probe(const char *path, char *task, size_t tasklen, int *num_classes, int *features,
                      int64_t *n_train, int64_t *n_test, char *err, size_t errlen);

/* Build the Fashion-MNIST multi-task benchmark (docs/data.md) from the IDX .gz files
 * in src_dir into out_dir (created if needed). Either every task file appears in out_dir
 * or, on error, none is written or changed. Returns 0 or negative status with err. */
int ldn_data_build_fmnist(const char *src_dir, const char *out_dir, uint64_t seed, char *err,
                          size_t errlen);

struct ldn_synth_opts {
    int tasks;          /* number of tasks, >= 1 */
    int features;       /* input dimension (default 64) */
    int rank;           /* rank of the shared feature map (default 8) */
    int classes;        /* classes per task (default 4) */
    double relatedness; /* in [0,1]: 1 = every task uses the shared map, 0 = independent */
    int64_t n_train;    /* training rows per task (default 2000) */
    int64_t n_test;     /* test rows per task (default 1000) */
    double noise;       /* label noise: std of Gaussian noise added to the logits (default 0.1) */
    uint64_t seed;
    /* Task clusters (0: off, the single shared map above). With clusters = K >= 1 the tasks
     * (all but a conflicting pair) are cut into K contiguous clusters; the tasks of a cluster
     * share its map and its class weights, each mixed with the task's own by relatedness
     * (A_t = sqrt(r) U_c + sqrt(1-r) U_t, V_t = sqrt(r) V_c + sqrt(1-r) V_t'), and clusters are
     * independent of each other. */
    int clusters;
    /* conflict != 0: the last two tasks are a conflicting pair: the second labels its rows by
     * the first's decision function negated (argmax of -(V h + b), the first's own map and
     * weights), with its own rows. Needs tasks >= 2 (and, with clusters, tasks >= clusters + 2). */
    int conflict;
};

/* Fill o with the defaults above (tasks = 8, relatedness = 0.8, seed = 1). */
void ldn_synth_opts_default(struct ldn_synth_opts *o);

/* Generate synthetic tasks task000.h5 ... into out_dir, same all-or-nothing rule. */
int ldn_data_build_synth(const char *out_dir, const struct ldn_synth_opts *o, char *err,
                         size_t errlen);

#endif
