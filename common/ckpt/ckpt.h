/* HDF5 checkpoints: one file per checkpoint, written collectively with parallel HDF5, read
 * with the serial driver (no MPI needed). Layout and rules: docs/checkpoint.md.
 *
 * Writing: every rank lists the datasets it holds (or its rows of one: a server holds a row
 * range of each trunk layer) as items; ldn_ckpt_write gathers the list, creates every
 * dataset collectively (chunked, Fletcher-32) and writes each rank's rows in one collective
 * write per dataset, into DIR/step-NNNNNNNNNN.h5.tmp; after a successful close rank 0 renames
 * it into place, points DIR/latest at it (atomically) and deletes the oldest beyond
 * keep_last. A crash at any moment leaves the previous checkpoint and `latest` intact.
 *
 * Reading: ldn_ckpt_open checks the format and reads the root attributes; ldn_ckpt_read
 * reads rows of a dataset after checking its type and shape; HDF5 verifies the checksum of
 * every chunk it reads. Every failure is one line naming the file and the object. */
#ifndef LDN_CKPT_H
#define LDN_CKPT_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "nn.h"

#define LDN_CKPT_FORMAT "ladon-checkpoint"
#define LDN_CKPT_FORMAT_VERSION 1
#define LDN_CKPT_NAME_MAX 160

enum ldn_ckpt_type { LDN_CKPT_F32 = 0, LDN_CKPT_I64 = 1, LDN_CKPT_U64 = 2 };

/* One dataset, or the rows of one that this rank holds. */
struct ldn_ckpt_item {
    char name[LDN_CKPT_NAME_MAX]; /* absolute, e.g. "/trunk/0/weight" */
    int type;                     /* enum ldn_ckpt_type */
    int ndim;                     /* 1 or 2 */
    int64_t dims[2];              /* the whole dataset (dims[1] unused when ndim == 1) */
    int64_t row0, rows;           /* rows [row0, row0 + rows) of dims[0] held here */
    const void *src;              /* first element of row row0 */
    int64_t stride;               /* elements from one row to the next in src */
};

struct ldn_ckpt_items {
    struct ldn_ckpt_item *v;
    int n, cap;
};

void ldn_ckpt_items_free(struct ldn_ckpt_items *l);
/* Append a whole dataset held here (contiguous rows). Returns 0 or LDN_ERR_NOMEM/ARG. */
int ldn_ckpt_add(struct ldn_ckpt_items *l, const char *name, int type, int ndim, int64_t d0,
                 int64_t d1, const void *src);
/* Append rows [row0, row0 + rows) of a dataset [d0, d1] (contiguous in src). */
int ldn_ckpt_add_rows(struct ldn_ckpt_items *l, const char *name, int type, int ndim, int64_t d0,
                      int64_t d1, int64_t row0, int64_t rows, const void *src);
/* Append the rows of a network's parameter-shaped vector held here: base[0] is key lo and
 * keys [lo, hi) are whole rows. Every layer i with rows in range gives <prefix>/<i>/weight
 * [out, in] and <prefix>/<i>/bias [out] (key layout [out, in + 1], docs/checkpoint.md). */
int ldn_ckpt_add_net(struct ldn_ckpt_items *l, const struct ldn_nn *net, const char *prefix,
                     const float *base, int64_t lo, int64_t hi);

/* Root attributes. */
struct ldn_ckpt_meta {
    int64_t step; /* steps completed */
    int64_t steps_per_epoch, total_steps;
    int n_servers, n_workers, features;
    uint64_t seed;
    uint64_t init_id;    /* the initialisation's identity (ldn_model_init_id), 0 unknown */
    int round;           /* the round (1-based) of a run with rounds, 0 without */
    int lost_workers;    /* workers the job had lost when it wrote it (ps.on_worker_loss) */
    const char *config;  /* the resolved YAML */
    const char *metrics; /* the last evaluation as JSON lines, "" when none */
};

/* Write a checkpoint of meta->step into dir, collectively over comm (MPI_COMM_NULL: this
 * process alone, serial HDF5). Every rank passes its own items; meta must be the same on
 * every rank except metrics (rank 0's is used). On success the path written is in path_out
 * on every rank. Returns 0 or a negative status (the same on every rank) with err. */
int ldn_ckpt_write(MPI_Comm comm, const char *dir, const struct ldn_ckpt_meta *meta,
                   const struct ldn_ckpt_items *mine, int keep_last, char *path_out,
                   size_t path_len, char *err, size_t errlen);

/* An open checkpoint. */
struct ldn_ckpt {
    char path[LDN_PATH_MAX];
    hid_t f;
    int format_version;
    int64_t step, steps_per_epoch, total_steps;
    double epoch;
    int n_servers, n_workers, features;
    uint64_t seed;
    uint64_t init_id; /* ldn_model_init_id of the weights the run started from; 0: not recorded
                         (a checkpoint of ladon before init_id) */
    int round;        /* 1-based round of a run with rounds, 0 without */
    int lost_workers; /* workers lost before it was written: per-worker state is not complete */
    char *config, *metrics, *created, *ladon_version; /* owned */
};

/* Open path read-only, check format and version, read the root attributes. */
int ldn_ckpt_open(const char *path, struct ldn_ckpt *ck, char *err, size_t errlen);
void ldn_ckpt_close(struct ldn_ckpt *ck);
/* 1 when dataset `name` exists, 0 otherwise. */
int ldn_ckpt_has(const struct ldn_ckpt *ck, const char *name);
/* Visit every object of the file, reading each object header (damaged metadata shows here),
 * and call fn(name, ud) for each dataset ("/a/b"; fn may be NULL). fn returns 0 to go on or
 * a negative status, which stops the walk and is returned (fn fills err). Returns 0, fn's
 * status, or LDN_ERR_FORMAT: "cannot walk its objects (damaged file?)" with HDF5's reason. */
int ldn_ckpt_walk(const struct ldn_ckpt *ck,
                  int (*fn)(const char *name, void *ud, char *err, size_t errlen), void *ud,
                  char *err, size_t errlen);
/* Does dataset `name` have ndim dimensions of dims (dims[1] ignored for ndim 1)? 0, or
 * LDN_ERR_FORMAT: "has shape [a, b], expected [c, d]" (or why it has none). */
int ldn_ckpt_check_shape(const struct ldn_ckpt *ck, const char *name, int ndim,
                         const int64_t dims[2], char *err, size_t errlen);
/* Shape of dataset `name`: *ndim (1 or 2) and dims. 0 or a negative status with err. */
int ldn_ckpt_shape(const struct ldn_ckpt *ck, const char *name, int *ndim, int64_t dims[2],
                   char *err, size_t errlen);
/* Read rows [row0, row0 + rows) of dataset `name`, which must have `type`, `ndim` dims and
 * the shape dims, into dst (row r at dst + r * stride elements). Float32 values must be finite:
 * a NaN or an infinity is LDN_ERR_FORMAT naming the file, the dataset and the element
 * ("checkpoint F: /trunk/0/weight[3, 17] is NaN ..."), so no loader takes one in. */
int ldn_ckpt_read(const struct ldn_ckpt *ck, const char *name, int type, int ndim,
                  const int64_t dims[2], int64_t row0, int64_t rows, void *dst, int64_t stride,
                  char *err, size_t errlen);
/* The largest update count a checkpoint may hold (2^53: exact in a double; no run comes near). */
#define LDN_CKPT_MAX_COUNT ((int64_t)1 << 53)
/* Read elements [row0, row0 + rows) of the int64 update counts `name` (shape dims, 1-D) into
 * dst, each checked to be in [0, LDN_CKPT_MAX_COUNT]: a count outside is LDN_ERR_FORMAT naming
 * the file, the dataset and the element. */
int ldn_ckpt_read_counts(const struct ldn_ckpt *ck, const char *name, const int64_t dims[2],
                         int64_t row0, int64_t rows, int64_t *dst, char *err, size_t errlen);
/* Read the rows of keys [lo, hi) of a network's parameter-shaped vector (the inverse of
 * ldn_ckpt_add_net) into base (base[0] = key lo). */
int ldn_ckpt_read_net(const struct ldn_ckpt *ck, const struct ldn_nn *net, const char *prefix,
                      float *base, int64_t lo, int64_t hi, char *err, size_t errlen);

/* The checkpoint file `arg` names: "latest" (the file dir/latest points at), a checkpoint
 * directory (its latest), a run directory (its checkpoints/latest, when it has no latest of
 * its own) or a file. Returns 0 with the path in out, or a negative status with err. */
int ldn_ckpt_resolve(const char *arg, const char *dir, char *out, size_t outlen, char *err,
                     size_t errlen);

/* Test hooks (docs/checkpoint.md): with LDN_FAULT=kill-in-ckpt:RANK:STEP the given rank
 * kills itself with SIGKILL after writing its data, before the file is closed; with
 * LDN_FAULT=kill-after-ckpt:RANK:STEP, after the checkpoint is in place (where: "kill-in-ckpt",
 * "kill-after-ckpt"; workers also call it with "kill-after-done"). A fourth field,
 * KIND:RANK:STEP:FILE, makes it fire once: only when FILE does not exist yet (it is created). */
void ldn_ckpt_fault(const char *where, int rank, int64_t step);
/* 1 when LDN_FAULT names hook `where` at this rank and step (whether or not it fires once). */
int ldn_ckpt_fault_armed(const char *where, int rank, int64_t step);

#endif
