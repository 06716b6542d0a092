/* Wire format of the data plane and the control messages, protocol version 6 (docs/wire.md).
 *
 * A message is a ZeroMQ multipart message: one msgpack-encoded header frame (a map) followed
 * by `nframes` raw little-endian payload frames whose byte lengths the header lists, so large
 * payloads travel without copies. The header is a common envelope (version "v", op, sender
 * "from", frame lengths "lens") plus the named fields of the message's kind (op): each kind
 * has one C struct below and one schema entry in wire.c (key, msgpack type, offset, required,
 * allowed range) that the generic encoder and decoder walk. A peer with another version gets
 * an ERROR reply naming both versions. Decoding validates types, ranges and sizes; the
 * receiver validates the meaning (key ranges, steps, codec descriptors).
 *
 * Adding a kind: an op number, a struct in the union of struct ldn_wire_msg, one schema entry
 * in wire.c. */
#ifndef LDN_WIRE_H
#define LDN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define LDN_WIRE_VERSION 6
#define LDN_WIRE_MAX_FRAMES 4
#define LDN_WIRE_MSG_MAX 256
#define LDN_WIRE_HDR_MAX 1024 /* encoded header never exceeds this */

/* Message kinds; the op number travels as "op". Who sends what is in docs/wire.md. */
enum ldn_wire_op {
    LDN_OP_HELLO = 1,             /* worker -> coordinator: checked in */
    LDN_OP_PUSH = 2,              /* worker -> server: gradient of one chunk (push) */
    LDN_OP_PULL = 3,              /* worker/coordinator -> server: ask for weights (pull) */
    LDN_OP_PARAMS = 4,            /* server -> worker/coordinator: weights of one chunk (params) */
    LDN_OP_CLOCK = 5,             /* worker -> server: sat a step out (clock) */
    LDN_OP_PING = 6,              /* coordinator -> any: liveness only */
    LDN_OP_TRAIN = 7,             /* coordinator -> worker: train steps [from, to) (train) */
    LDN_OP_EVAL = 8,              /* coordinator -> worker: evaluate at step (eval) */
    LDN_OP_CKPT = 9,              /* coordinator -> any: join the checkpoint of step (ckpt) */
    LDN_OP_STOP = 10,             /* coordinator -> any: finish (workers: done, servers: stats) */
    LDN_OP_HEARTBEAT = 11,        /* worker -> coordinator: alive at step (heartbeat) */
    LDN_OP_STATS_REQUEST = 12,    /* coordinator -> server: send your counters */
    LDN_OP_SERVER_STATS = 13,     /* server -> coordinator: counters (server_stats) */
    LDN_OP_PROGRESS = 14,         /* worker -> coordinator: training figures (progress) */
    LDN_OP_EVAL_RESULT = 15,      /* worker -> coordinator: evaluation figures (eval_result) */
    LDN_OP_ERROR = 16,            /* any -> sender of a bad message (error) */
    LDN_OP_DONE = 17,             /* worker/server -> coordinator: phase finished (done) */
    LDN_OP_PLAN = 18,             /* coordinator -> any: switch to another trunk (plan) */
    LDN_OP_PRUNE = 19,            /* coordinator -> server: a pass of a mask update (prune) */
    LDN_OP_PRUNE_HIST = 20,       /* server -> coordinator: its answer (prune_hist) */
    LDN_OP_AFFINITY_REQUEST = 21, /* coordinator -> server: task affinity as of step */
    LDN_OP_AFFINITY = 22,         /* server -> coordinator: its partials (affinity) */
    LDN_OP_LOST = 23,             /* coordinator -> any: a worker was lost, go on without it */
    LDN_OP_REGROUP_REQUEST =
        24,              /* worker -> coordinator: my group must re-form (regroup_request) */
    LDN_OP_REGROUP = 25, /* coordinator -> worker: re-form with these members (regroup) */
    LDN_OP_COUNT_        /* one past the last op */
};

/* Payload codec of a push or params: raw float32, or a common/codec payload whose descriptor
 * travels in "cd". */
enum ldn_codec_id { LDN_CODEC_DENSE_F32 = 0, LDN_CODEC_PACKED = 1 };
#define LDN_WIRE_CDESC_WORDS 3

/* The step a codec sees for the chunk starting at key lo of global step `step` (random-k
 * derives its indices from it, so sender and receiver compute it the same way). */
static inline uint64_t ldn_wire_codec_step(int64_t step, uint64_t lo)
{
    return (uint64_t)step * 0x9e3779b97f4a7c15ull ^ lo;
}

/* push: the gradient of chunk [lo, hi) at the worker's clock `step`. */
struct ldn_wire_push {
    int64_t step;    /* "step" */
    uint64_t lo, hi; /* "lo", "hi": key range [lo, hi) */
    uint32_t codec;  /* "codec": enum ldn_codec_id */
    uint32_t ncdesc; /* "cd": codec descriptor words (with LDN_CODEC_PACKED) */
    uint64_t cdesc[LDN_WIRE_CDESC_WORDS];
};

/* params: the weights of chunk [lo, hi) as of version `step`. */
struct ldn_wire_params {
    int64_t step; /* "step": version served */
    uint64_t lo, hi;
    uint32_t codec;
    uint32_t ncdesc;
    uint64_t cdesc[LDN_WIRE_CDESC_WORDS];
};

/* pull: the weights of [lo, hi) after `step` updates. */
struct ldn_wire_pull {
    int64_t step; /* "step": clock wanted */
    uint64_t lo, hi;
};

/* clock: the sender's group sits step `step` out. */
struct ldn_wire_clock {
    int64_t step;
    uint64_t lo, hi;
};

/* train: steps [from, to). With train.task_weighting: dwa it carries one payload frame of
 * n_tasks little-endian float32: every task's loss weight for these steps (docs/wire.md). */
struct ldn_wire_train {
    int64_t from, to; /* "from_step", "to_step" */
};

struct ldn_wire_eval {
    int64_t step;
};

/* ckpt: join the checkpoint of `step`, written by every rank but the `lost` workers the
 * coordinator has announced (each rank checks it knows as many; optional, 0). */
struct ldn_wire_ckpt {
    int64_t step;
    uint32_t lost;
};

struct ldn_wire_heartbeat {
    int64_t step; /* the step the worker is at */
};

/* lost: worker rank `rank` fell silent for ps.liveness_timeout at about step `step`; the job
 * goes on without it (ps.on_worker_loss: continue). */
struct ldn_wire_lost {
    int32_t rank;
    int64_t step;
};

/* regroup_request: the sender, a worker of task group `group` at step `step`, learnt that a
 * member of its group was lost and waits for the coordinator to name the survivors. */
struct ldn_wire_regroup_request {
    uint32_t group;
    int64_t step;
};

/* regroup: task group `group` re-forms for the `epoch`-th time (1, 2, ...) among `members`
 * workers, whose world ranks travel in one payload frame of little-endian int32, ascending.
 * Sent to each of them once every survivor has asked, so all of them re-form with the same
 * members (docs/faults.md). */
struct ldn_wire_regroup {
    uint32_t group, epoch, members;
};

struct ldn_wire_done {
    int64_t step; /* end of the phase */
};

/* plan: from step `step` on, the trunk has hidden widths trunk[0..n_trunk) (fresh weights
 * from the seed); every rank rebuilds its key layout and trunk state, then answers done. */
#define LDN_WIRE_MAX_LAYERS 16
struct ldn_wire_plan {
    int64_t step;
    uint32_t n_trunk; /* "trunk": array of widths, 1..LDN_WIRE_MAX_LAYERS entries */
    uint64_t trunk[LDN_WIRE_MAX_LAYERS];
};

/* prune: pass `level` of the mask update before step `step` (common/job/prune.h). Levels
 * 0..LDN_WIRE_PRUNE_LEVELS-1: "thr" holds each unit's threshold prefix, and the server answers
 * prune_hist with its histogram; level LDN_WIRE_PRUNE_LEVELS: "thr" holds each unit's
 * threshold + 1 (0: mask nothing), the server masks and answers with its masked counts. */
#define LDN_WIRE_PRUNE_LEVELS 4
#define LDN_WIRE_PRUNE_BINS 256
struct ldn_wire_prune {
    int64_t step;
    uint32_t level; /* 0..LDN_WIRE_PRUNE_LEVELS */
    uint32_t n_thr; /* "thr": one per unit, 1..LDN_WIRE_MAX_LAYERS */
    uint64_t thr[LDN_WIRE_MAX_LAYERS];
};

/* prune_hist: one frame of little-endian uint64: at a histogram level, units x
 * LDN_WIRE_PRUNE_BINS counts of the server's weights; after the mask, each trunk layer's masked
 * weights on the server. */
struct ldn_wire_prune_hist {
    int64_t step;
    uint32_t level;
};

/* server_stats: a server's counters (struct ldn_server_stats); mask_changes: masked keys found
 * changed after an update (always 0 unless something is wrong); masked_pushed: gradient entries
 * of masked keys that pushes carried and the server dropped (both optional on the wire). */
struct ldn_wire_server_stats {
    int64_t steps_applied, pushes, pulls, bad_messages, bytes_in, bytes_out, max_staleness;
    int64_t mask_changes, masked_pushed;
    int64_t pcgrad_projections, pcgrad_pairs; /* ps.task_gradients: pcgrad (optional) */
    int64_t dropped_connections; /* closed unannounced at its listening socket (optional) */
};

/* affinity_request: the server's task-affinity partials once every step before `step` is
 * applied (ps.affinity). */
struct ldn_wire_affinity_request {
    int64_t step;
};

/* affinity: a server's partials over its rows for the window of steps [from, to): frame 0,
 * little-endian float64 [layers][groups][groups] dot products of the groups' gradients; frame
 * 1, little-endian uint64 [groups][groups] steps each pair of groups trained together. */
struct ldn_wire_affinity {
    int64_t step, from, to; /* "step", "from_step", "to_step" */
    uint32_t groups, layers;
};

/* progress: training figures of task `task` since the worker's previous report; the byte and
 * time figures only in the first task's report of a worker (0 in the others). */
struct ldn_wire_progress {
    int32_t task;
    int64_t step, samples;
    double loss_sum;
    int64_t correct, bytes_push, bytes_pull, staleness_sum, pulls;
    double compute_s, wait_s, residual_norm;
    int64_t bytes_dense;
    double kl_sum;      /* a distillation round: sum over the rows of T^2 * KL (0 otherwise) */
    int64_t agree;      /* and the rows whose top-1 is the teacher's */
    double task_weight; /* the factor of the task's loss at the worker's last step (wire 5) */
    double log_var;     /* uncertainty weighting: the task's learned log-variance (optional) */
};

/* eval_result: evaluation of task `task` at `step` over the worker's test shard. */
struct ldn_wire_eval_result {
    int32_t task;
    int64_t step;
    double loss_sum;
    int64_t correct, rows;
};

/* error: why the message at `step` (0 when it had none) was rejected. */
struct ldn_wire_error {
    int32_t status; /* negative enum ldn_status */
    int64_t step;
    char msg[LDN_WIRE_MSG_MAX]; /* "msg" */
};

/* A decoded or to-be-encoded header: the envelope and the fields of kind `op` (hello, ping,
 * stop and stats_request have none). */
struct ldn_wire_msg {
    uint32_t version; /* "v" */
    uint32_t op;      /* "op": enum ldn_wire_op */
    int32_t from;     /* "from": sender's MPI rank */
    uint32_t nframes; /* number of payload frames ("lens" array length) */
    uint64_t lens[LDN_WIRE_MAX_FRAMES];
    union {
        struct ldn_wire_push push;
        struct ldn_wire_pull pull;
        struct ldn_wire_params params;
        struct ldn_wire_clock clock;
        struct ldn_wire_train train;
        struct ldn_wire_eval eval;
        struct ldn_wire_ckpt ckpt;
        struct ldn_wire_heartbeat heartbeat;
        struct ldn_wire_server_stats server_stats;
        struct ldn_wire_progress progress;
        struct ldn_wire_eval_result eval_result;
        struct ldn_wire_error error;
        struct ldn_wire_done done;
        struct ldn_wire_plan plan;
        struct ldn_wire_prune prune;
        struct ldn_wire_prune_hist prune_hist;
        struct ldn_wire_affinity_request affinity_request;
        struct ldn_wire_affinity affinity;
        struct ldn_wire_lost lost;
        struct ldn_wire_regroup_request regroup_request;
        struct ldn_wire_regroup regroup;
    };
};

/* Initialise m for op from rank `from`: version set, no frames, every field 0. */
void ldn_wire_msg_init(struct ldn_wire_msg *m, enum ldn_wire_op op, int from);

/* Encode m (its version as set, normally LDN_WIRE_VERSION) into buf of capacity cap (>=
 * LDN_WIRE_HDR_MAX always suffices); no allocation. Returns the length, or LDN_ERR_ARG for an
 * unknown op or a count over its bound, LDN_ERR_INTERNAL when buf is too small. */
int ldn_wire_encode(const struct ldn_wire_msg *m, char *buf, size_t cap);

/* Decode a header frame into m. Checks: a msgpack map with nothing after it, the version, a
 * known op, every required field of the kind present with the right type and in range,
 * counts within their bounds; unknown keys are ignored (forward compatibility within a
 * version). Returns 0, LDN_ERR_FORMAT with err naming the field, or LDN_ERR_PEER when the
 * version differs (err names both, for the ERROR reply). */
int ldn_wire_decode(const void *buf, size_t len, struct ldn_wire_msg *m, char *err, size_t errlen);

/* Name of an op ("push"), or "op?" for unknown values. */
const char *ldn_wire_op_name(uint32_t op);

/* The "step" field of m's kind into *step; returns 1, or 0 (and *step = 0) when the kind has
 * none. */
int ldn_wire_msg_step(const struct ldn_wire_msg *m, int64_t *step);

#endif
