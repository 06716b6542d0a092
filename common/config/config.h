/* Configuration: YAML file + dotted command-line overrides -> validated struct ldn_config.
 *
 * Parsed with libyaml's document API so every error names file:line:column.
 * Overrides (`train.lr=0.05`, `tasks.category.weight=2`) are applied on top of
 * the file; the whole result is validated before it is returned, and every
 * problem is reported as one line:
 *   config configs/x.yaml:14:5: tasks.category.workers: must be >= 0, got -1
 * (overrides name `command line` as their place: `config override 'train.lr=x': ...`).
 * The full key reference is docs/config.md. */
#ifndef LDN_CONFIG_H
#define LDN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

#define LDN_MAX_LAYERS 16
#define LDN_MAX_TASKS 1024

enum ldn_activation {
    LDN_ACT_NONE = -1,
    LDN_ACT_RELU = 0,
    LDN_ACT_TANH = 1
}; /* NONE: layers only */
enum ldn_optim_kind { LDN_OPTIM_SGD = 0, LDN_OPTIM_ADAM = 1, LDN_OPTIM_ADAMW = 2 };
enum ldn_lr_kind { LDN_LR_CONSTANT = 0, LDN_LR_STEP = 1, LDN_LR_COSINE = 2 };
/* How the next step's task is drawn: proportional to |D|^alpha (alpha=1 proportional,
 * 0 uniform), or round-robin over tasks. */
enum ldn_sampling { LDN_SAMPLE_POWER = 0, LDN_SAMPLE_ROUND_ROBIN = 1 };
enum ldn_consistency { LDN_BSP = 0, LDN_SSP = 1, LDN_ASYNC = 2 };
/* ps.on_worker_loss: a worker silent for ps.liveness_timeout ends the job, or is dropped. */
enum ldn_worker_loss { LDN_LOSS_FAIL = 0, LDN_LOSS_CONTINUE = 1 };
/* compress.scope: select within each pushed chunk, or over the whole trunk */
/* compress.codec and compress.quant values; common/codec's enum ldn_codec_kind and
 * enum ldn_codec_quant use the same numbers (codec.c checks it at compile time). */
enum ldn_compress_codec {
    LDN_COMPRESS_DENSE = 0,
    LDN_COMPRESS_TOPK = 1,
    LDN_COMPRESS_RANDOMK = 2,
    LDN_COMPRESS_THRESHOLD = 3
};
enum ldn_compress_quant {
    LDN_COMPRESS_FP32 = 0,
    LDN_COMPRESS_FP16 = 1,
    LDN_COMPRESS_INT8 = 2,
    LDN_COMPRESS_SIGN = 3,
    LDN_COMPRESS_QSGD = 4
};
enum ldn_compress_scope { LDN_SCOPE_CHUNK = 0, LDN_SCOPE_GLOBAL = 1 };
/* compress.downlink: dense pulls, or what changed since the worker's last pull */
enum ldn_downlink { LDN_DOWNLINK_DENSE = 0, LDN_DOWNLINK_DELTA = 1 };

struct ldn_task_config {
    char name[LDN_NAME_MAX];  /* key under `tasks:`; [A-Za-z0-9_-]+ */
    char file[LDN_PATH_MAX];  /* task file; default <data.dir>/<name>.h5; relative paths
                                 are resolved against data.dir */
    double weight;            /* loss weight, > 0; default 1 */
    int workers;              /* worker ranks for this task (distributed); 0 = automatic */
    int head[LDN_MAX_LAYERS]; /* hidden widths of the head before its output layer; */
    int n_head;               /* default none: the head is one dense layer */
};

struct ldn_optim_config {
    enum ldn_optim_kind kind; /* optimizer: sgd | adam | adamw (default sgd) */
    double lr;                /* lr: base learning rate, > 0 (default 0.05) */
    double momentum;          /* momentum: [0,1) (default 0.9) */
    bool nesterov;            /* nesterov (default false) */
    double weight_decay;      /* weight_decay: >= 0 (default 0) */
    double beta1, beta2, eps; /* adam: beta1 (0.9) beta2 (0.999) eps (1e-8) */
};

struct ldn_lr_config {
    enum ldn_lr_kind kind; /* lr_schedule: constant | step | cosine (default constant) */
    int64_t warmup_steps;  /* warmup_steps: linear warm-up from 0 (default 0) */
    double step_epochs;    /* lr_step_epochs: for step, decay every this many epochs (default 10) */
    double gamma;          /* lr_gamma: for step, multiply by this (default 0.1) */
    double min_lr;         /* lr_min: for cosine, final learning rate (default 0) */
};

/* compress: how workers encode trunk-gradient pushes (common/codec.h, docs/codec.md). */
struct ldn_compress_config {
    int codec;    /* compress.codec: dense | topk | randomk | threshold (enum ldn_codec_kind) */
    int quant;    /* compress.quant: fp32 | fp16 | int8 | sign | qsgd (enum ldn_codec_quant) */
    double ratio; /* compress.ratio: fraction of elements sent by sparse codecs, (0, 1] */
    int chunk;    /* compress.chunk: values per scale (int8, sign, qsgd) */
    int levels;   /* compress.levels: qsgd levels */
    bool error_feedback;      /* compress.error_feedback: keep what was not sent (default true) */
    double warmup_epochs;     /* compress.warmup_epochs: DGC warm-up, the sent ratio falls from
                                 0.25 by x0.25 per epoch to `ratio` over this many epochs */
    bool momentum_correction; /* compress.momentum_correction: DGC; workers keep the momentum
                                 (train.momentum) and mask it where sent; servers apply plain SGD */
    bool momentum_masking;    /* compress.momentum_masking: with momentum_correction, zero the
                                 velocity where sent (DGC's momentum factor masking, default) */
    int scope;                /* compress.scope: chunk (select within each pushed chunk) | global
                                 (top-k over the whole trunk once backward is done) */
    int64_t min_elements;     /* compress.min_elements: chunks with fewer keys are pushed dense
                                 (with the residual folded in), default 0 */
    double clip_norm;         /* compress.clip_norm: DGC local gradient clipping, 0 = off; each
                                 chunk of n keys is clipped to clip_norm * sqrt(n / trunk keys) */
    int downlink;             /* compress.downlink: dense | delta (pulls send what changed since the
                                 worker's last pull, dense when that is smaller) */
    int downlink_quant;       /* compress.downlink_quant: fp32 (changed values, exact) | fp16 | int8
                                 (quantized deltas; what is lost is sent later) */
};

/* checkpoint: when and where distributed runs write HDF5 checkpoints (docs/checkpoint.md). */
struct ldn_ckpt_config {
    int64_t every_steps;    /* checkpoint.every_steps: 0 = not by steps (default 0) */
    double every_minutes;   /* checkpoint.every_minutes: 0 = not by time (default 0) */
    int keep_last;          /* checkpoint.keep_last >= 1: older ones are deleted (default 3) */
    bool final;             /* checkpoint.final: one at the end of training (default true) */
    char dir[LDN_PATH_MAX]; /* checkpoint.dir (default <run.dir>/checkpoints) */
    double timeout_s;       /* checkpoint.timeout: seconds one write may take (default 600) */
};

/* rounds: (optional) an ordered list of training rounds run in one job (docs/config.md); a
 * config without it is one round of the train section. */
#define LDN_MAX_ROUNDS 64
#define LDN_MAX_MEMBERS 8
enum ldn_teacher_annealing { LDN_ANNEAL_NONE = 0, LDN_ANNEAL_LINEAR = 1 };
enum ldn_teacher_inputs { LDN_TEACHER_OWN = 0, LDN_TEACHER_ALL = 1 };

/* rounds[].teacher: the ensemble a round distils from. */
struct ldn_teacher_config {
    char members[LDN_MAX_MEMBERS][LDN_PATH_MAX]; /* teacher.members: earlier rounds' names or
                                                    checkpoint paths (1..8, required) */
    int n_members;
    int member_round[LDN_MAX_MEMBERS]; /* the earlier round a member names, or -1 (a path) */
    double temperature;                /* teacher.temperature > 0 (default 2) */
    double alpha;    /* teacher.alpha in [0,1]: weight of the distillation term (default 0.5) */
    int annealing;   /* teacher.annealing: none | linear (the label weight rises from 0 to 1
                        over the round; default none) */
    int inputs;      /* teacher.inputs: own | all (every head also learns the teacher's soft
                        targets on the other tasks' inputs; default own) */
    double cache_mb; /* teacher.cache_mb >= 0: soft targets are computed once and kept when they
                        fit in this many MiB, else per batch (default 1024) */
};

struct ldn_round_config {
    char name[LDN_NAME_MAX];   /* rounds[].name (required, unique, [A-Za-z0-9_-]+) */
    int epochs;                /* rounds[].epochs >= 1 (default train.epochs) */
    int64_t steps;             /* rounds[].steps: the length in steps instead (0: by epochs) */
    uint64_t seed;             /* rounds[].seed (default run.seed) */
    int trunk[LDN_MAX_LAYERS]; /* rounds[].trunk: the round's hidden widths (default model.trunk) */
    int n_trunk;
    double lr;                        /* rounds[].lr (default train.lr) */
    struct ldn_lr_config lr_schedule; /* rounds[].lr_schedule, warmup_steps, lr_step_epochs,
                                         lr_gamma, lr_min (default: train's) */
    char init[LDN_NAME_MAX];          /* rounds[].init: start from that earlier round's result
                                         (default: fresh weights from the seed) */
    int init_round;                   /* its index, or -1 */
    bool has_teacher;                 /* a teacher block: the round distils */
    struct ldn_teacher_config teacher;
};

/* prune: gradual magnitude pruning of the trunk's weights (Zhu & Gupta's cubic schedule,
 * common/job/prune.h, docs/config.md "prune"). Biases are never pruned. */
enum ldn_prune_scope { LDN_PRUNE_LAYER = 0, LDN_PRUNE_GLOBAL = 1 };
struct ldn_prune_config {
    double sparsity;               /* prune.sparsity in [0,1): the final share of the weights
                                      masked, 0 = off (default 0) */
    double initial;                /* prune.initial in [0,1): the share at `start` (default 0) */
    int64_t start;                 /* prune.start: the first masking step (default 0) */
    int64_t end;                   /* prune.end > start: the step the target is reached;
                                      0 = three quarters of the run (default 0) */
    int64_t every;                 /* prune.every >= 1: steps between mask updates (100) */
    int scope;                     /* prune.scope: layer | global (enum ldn_prune_scope) */
    double layers[LDN_MAX_LAYERS]; /* prune.layers: per trunk layer targets instead of */
    int n_layers;                  /* sparsity (scope layer; none or one per layer) */
    /* prune.rounds: in a run with rounds, the rounds pruned (each from its own step 0, with
     * its own trunk); required there, refused without rounds */
    char rounds[LDN_MAX_ROUNDS][LDN_NAME_MAX];
    int n_rounds;
};

/* train.task_weighting, train.dwa_temperature, ps.task_gradients (config_weighting.c,
 * common/nn/mtl_weight.h, docs/config.md). */
enum ldn_task_weighting { LDN_WEIGHT_STATIC = 0, LDN_WEIGHT_UNCERTAINTY = 1, LDN_WEIGHT_DWA = 2 };
enum ldn_task_gradients { LDN_GRAD_SUM = 0, LDN_GRAD_PCGRAD = 1 };
struct ldn_weighting_config {
    int method;             /* train.task_weighting: static | uncertainty | dwa (default static) */
    double dwa_temperature; /* train.dwa_temperature > 0 (default 2) */
    int gradients;          /* ps.task_gradients: sum | pcgrad (default sum; pcgrad: local
                               trainer only, for now) */
};

struct ldn_config {
    char source[LDN_PATH_MAX]; /* the file it was read from */

    /* run: */
    char run_name[LDN_NAME_MAX]; /* run.name (default: file's base name without .yaml) */
    char run_dir[LDN_PATH_MAX];  /* run.dir (default runs/<run.name>) */
    uint64_t seed;               /* run.seed (default 1) */
    bool overwrite; /* run.overwrite: a fresh run deletes an earlier run's checkpoints */

    /* data: */
    char data_dir[LDN_PATH_MAX]; /* data.dir (required) */
    double data_max_memory_mb;   /* data.max_memory_mb: MiB a rank may hold of loaded task-file
                                    splits; 0 = automatic (half the host's physical memory) */

    /* model: */
    int trunk[LDN_MAX_LAYERS]; /* model.trunk: hidden widths, e.g. [256, 256] (required, >= 1 layer)
                                */
    int n_trunk;
    enum ldn_activation activation; /* model.activation: relu | tanh (default relu) */

    /* tasks: (map name -> task; at least one) */
    struct ldn_task_config *tasks;
    int n_tasks;

    /* train: */
    int epochs;                    /* train.epochs >= 1 (default 10) */
    int batch_size;                /* train.batch_size >= 1 (default 128) */
    int64_t steps_per_epoch;       /* train.steps_per_epoch: 0 = sum over tasks of ceil(N/batch) */
    struct ldn_optim_config optim; /* train.optimizer, train.lr, train.momentum, ... */
    struct ldn_lr_config lr;       /* train.lr_schedule, train.warmup_steps, ... */
    enum ldn_sampling sampling;    /* train.sampling: power | round_robin (default power) */
    double sampling_alpha;         /* train.sampling_alpha in [0,1] (default 0.75) */
    int64_t log_every;             /* train.log_every steps (default 100, 0 = only at eval) */
    double eval_every;             /* train.eval_every epochs, > 0 (default 1) */
    int threads;                   /* train.threads BLAS threads per rank (default 1) */

    /* ps: (distributed engine) */
    int servers;                      /* ps.servers >= 1 (default 1) */
    enum ldn_consistency consistency; /* ps.consistency: bsp | ssp | async (default bsp) */
    int staleness;                    /* ps.staleness >= 0, for ssp (default 2) */
    double timeout_s;                 /* ps.timeout: seconds any wait may last (default 60) */
    double liveness_s; /* ps.liveness_timeout: seconds of silence after which a rank is taken for
                          dead or hung and named (default 10, >= 2; capped by ps.timeout) */
    enum ldn_worker_loss on_worker_loss; /* ps.on_worker_loss: fail | continue (default fail) */
    char iface[LDN_NAME_MAX]; /* ps.interface: network interface to bind (default: auto) */
    int chunk_kb;             /* ps.chunk_kb: size of one push/pull message (default 256) */
    bool record_clocks;       /* ps.record_clocks: servers write RUN_DIR/clocks-ps<r>.tsv,
                                 one line per served pull (default false) */
    int64_t affinity; /* ps.affinity: window in steps of the task affinity the servers measure
                         (bsp only); 0 = off (default) */
    bool
        curve; /* net.curve: CURVE-authenticated data plane, keys made at start-up (default true) */
    double max_message_mb; /* net.max_message_mb: largest frame (MiB) a socket accepts; 0 =
                              automatic, from the key layout (launch/dist.c) */
    int queue_messages;    /* net.queue_messages: messages queued per peer and direction
                              (ZMQ_SNDHWM and ZMQ_RCVHWM; default 10000) */

    struct ldn_compress_config compress;
    struct ldn_ckpt_config ckpt;
    struct ldn_prune_config prune;
    struct ldn_weighting_config weighting;

    struct ldn_round_config *rounds; /* rounds: [n_rounds], NULL when the config has none */
    int n_rounds;

    char *resolved_yaml; /* the resolved config as YAML text (owned) */
};

/* Parse `path`, apply `n_over` overrides of the form key=value, validate everything.
 * Returns a new config (free with ldn_config_destroy) or NULL with one line in err. */
struct ldn_config *ldn_config_load(const char *path, int n_over, char *const *over, char *err,
                                   size_t errlen);
/* Same from YAML text in memory; `name` is used as the file name in messages. */
struct ldn_config *ldn_config_parse(const char *yaml, size_t len, const char *name, int n_over,
                                    char *const *over, char *err, size_t errlen);
void ldn_config_destroy(struct ldn_config **cfg);

/* The config of round i of cfg (0-based) as a run of its own: cfg without rounds, with the
 * round's trunk, seed, length (a round given in steps is one epoch of that many steps), learning
 * rate and schedule; run.name "<run>.<round>", run.dir and checkpoint.dir under
 * <run.dir>/rounds/<round>, and a final checkpoint (the round's snapshot). The teacher and
 * init are not in it: the caller takes them from cfg->rounds[i]. NULL with err on failure. */
struct ldn_config *ldn_config_round(const struct ldn_config *cfg, int i, char *err, size_t errlen);

/* Index of the round called name, or -1. */
int ldn_config_round_index(const struct ldn_config *cfg, const char *name);

/* Index of the task called name, or -1. */
int ldn_config_task_index(const struct ldn_config *cfg, const char *name);

const char *ldn_optim_name(enum ldn_optim_kind k);
const char *ldn_lr_name(enum ldn_lr_kind k);
const char *ldn_consistency_name(enum ldn_consistency c);
const char *ldn_activation_name(enum ldn_activation a);
/* "static", "uncertainty", "dwa"; "sum", "pcgrad" (config_weighting.c). */
const char *ldn_weighting_name(int method);
const char *ldn_task_gradients_name(int gradients);

#endif
