/* A server's parameter store: the weights of one key range [lo, hi) of the trunk, cut into the
 * job's chunks, with their optimizer state, the updates applied to each chunk (its version),
 * and the pruning mask. Every write to the weights goes through this module: an update waits
 * until ZeroMQ has finished any zero-copy send of the chunk, applies the optimizer to the
 * chunk's keys, keeps masked keys at zero and counts the version.
 *
 * The fields are readable (the server sends params and reports versions); write them only
 * through the functions below. */
#ifndef LDN_STORE_H
#define LDN_STORE_H

#include <stdatomic.h>
#include <stdint.h>

#include "ckpt.h"
#include "config.h"
#include "keyspace.h"
#include "nn.h"
#include "optim.h"

struct ldn_store {
    int rank;                 /* for messages */
    int64_t lo, hi, n;        /* keys [lo, hi), n = hi - lo */
    int C;                    /* chunks held */
    struct ldn_chunk *chunks; /* [C], keys relative to lo */
    int first_chunk;          /* index of chunks[0] in the job's chunk table */
    int n_chunks_total;       /* chunks of the whole job */
    float *params;            /* [n] */
    struct ldn_optim *opt;
    int64_t *version;      /* [C] updates applied to each chunk */
    atomic_int *inflight;  /* [C] zero-copy sends of the chunk's weights ZeroMQ still reads */
    uint8_t *mask;         /* [n] 1 = keep, 0 = pruned (held at zero); NULL: nothing pruned */
    float *mask_f;         /* [n] the mask as float32 for checkpoints (with mask) */
    int64_t mask_changes;  /* masked keys found changed after an update (a bug if ever > 0) */
    int64_t masked_pushed; /* entries of masked keys that pushes carried (server.c counts them;
                              the update drops them) */
    double timeout_s;      /* the longest wait for ZeroMQ to let go of a chunk */
};

struct ldn_store_opts {
    int rank;
    int64_t lo, hi;
    const float *init;              /* [hi - lo] initial weights, copied */
    const struct ldn_chunk *chunks; /* the job's chunk table (every server's), borrowed */
    int n_chunks;
    struct ldn_optim_config optim;
    double timeout_s;
};

/* A store for o; NULL with err (no chunk inside [lo, hi), or out of memory). */
struct ldn_store *ldn_store_new(const struct ldn_store_opts *o, char *err, size_t errlen);
/* Free *st and set it to NULL (accepts NULL). Waits for ZeroMQ to let go of the weights; if it
 * does not within timeout_s, leaves them allocated rather than free memory in use. */
void ldn_store_destroy(struct ldn_store **st);

/* The index of the chunk that is exactly the job's keys [lo, hi), or -1. */
int ldn_store_chunk_of(const struct ldn_store *st, uint64_t lo, uint64_t hi);

/* Update chunk k with grad (indexed like params: grad[i] for key lo + i, only chunk k's keys
 * read), as step number version[k] + 1 at learning rate lr; version[k] counts it. The gradient
 * of masked keys is set to zero first (pushes of pruned keys are dropped), so their weights and
 * optimizer state stay exactly zero. Returns 0, or LDN_ERR_TIMEOUT (logged) when ZeroMQ holds
 * the chunk's weights past timeout_s. */
int ldn_store_update(struct ldn_store *st, int k, float *grad, double lr);
/* The same for the m keys (store-relative, inside chunk k) that have a gradient, with an
 * optimizer for which that is the dense update (ldn_optim_sparse_ok). */
int ldn_store_update_keys(struct ldn_store *st, int k, float *grad, const uint32_t *keys, int64_t m,
                          double lr);
/* Chunk k counts one update without changing (a step every group sat out). */
int ldn_store_skip(struct ldn_store *st, int k);
/* Every chunk's version set to `step` (a fresh store at a plan switch, or a resume). */
void ldn_store_start_at(struct ldn_store *st, int64_t step);

/* Prune: keep[i] = 0 masks key lo + i (its weight and optimizer state are zeroed and stay
 * zero through every later update); NULL clears the mask. Returns 0, LDN_ERR_NOMEM, or
 * LDN_ERR_TIMEOUT when ZeroMQ holds the weights (as an update). */
int ldn_store_set_mask(struct ldn_store *st, const uint8_t *keep);
/* Keys masked (0 without a mask). */
int64_t ldn_store_masked(const struct ldn_store *st);

/* The store's rows of a checkpoint: /trunk, the optimizer's moments under /optimizer/{m,v}/trunk
 * (m only when the servers keep the momentum), /optimizer/trunk_updates and, with a mask, the
 * mask under /prune/trunk (common/job/prune.h). */
int ldn_store_ckpt_items(const struct ldn_store *st, const struct ldn_nn *trunk,
                         struct ldn_ckpt_items *it);
/* Read them back. `skip_m`: the checkpoint's servers kept no momentum (the workers did), so
 * this job's starts at zero. Versions are kept when the checkpoint has the same chunk table
 * (as many chunks, written by as many servers as this job's `servers`), else every chunk
 * counts the checkpoint's steps (exact under bsp). A checkpoint with masks sets them. */
int ldn_store_resume(struct ldn_store *st, const struct ldn_ckpt *ck, const struct ldn_nn *trunk,
                     int skip_m, int servers, char *err, size_t errlen);

#endif
