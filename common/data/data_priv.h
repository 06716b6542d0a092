/* Internal helpers shared by the data builders (data.c, data_fmnist.c, data_synth.c):
 * writing one task file, staging output files for an all-or-nothing commit, the HDF5
 * error-stack helpers and a small private PRNG. Not part of the public API. */
#ifndef LDN_DATA_PRIV_H
#define LDN_DATA_PRIV_H

#include <hdf5.h>

#include "h5util.h"
#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* One split to write. x is uint8 (x_float == 0) or float32 [n, features]; source_index
 * (may be NULL) is stored as /<split>/source_index int32 [n]. Borrowed for the call. */
struct ldn__split_out {
    int64_t n;
    const void *x;
    int x_float;
    const int32_t *y;
    const int32_t *source_index;
};

/* One task file to write (layout in data.h). Strings are borrowed for the call. */
struct ldn__task_out {
    const char *task;
    const char *description; /* stored as attr "description" */
    const char *classes;     /* comma-separated class names, attr "classes" */
    int num_classes;
    int features;
    double x_scale;
    struct ldn__split_out train, test;
};

/* Write t to a new file at path (truncating it). Returns 0 or a negative ldn_status with a
 * one-line error naming path. The caller handles HDF5's automatic error printing. */
int ldn__data_write_task(const char *path, const struct ldn__task_out *t, char *err, size_t errlen);

/* Output files written under temporary names and renamed into place together. */
struct ldn__stage {
    char *dir;
    int n, cap;
    char **tmp;   /* dir/.name.tmp.<pid> */
    char **final; /* dir/name */
};

/* Create dir (mkdir -p) and initialise s. Returns 0 or a negative status with err. */
int ldn__stage_init(struct ldn__stage *s, const char *dir, char *err, size_t errlen);
/* Register output file `name`; returns the temporary path to write (owned by s) or NULL
 * with err filled. */
const char *ldn__stage_add(struct ldn__stage *s, const char *name, char *err, size_t errlen);
/* Rename every temporary to its final name. If a rename fails, the files already renamed
 * are restored from backups, the temporaries are deleted and a negative status returned. */
int ldn__stage_commit(struct ldn__stage *s, char *err, size_t errlen);
/* Delete any remaining temporaries and free s (safe after commit or a failed init). */
void ldn__stage_deinit(struct ldn__stage *s);

#endif
