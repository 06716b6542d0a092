/* metrics.jsonl: one JSON object per evaluation per task, appended to the run directory.
 *
 * Each line is {"task", "step", "epoch", "loss", "accuracy", "test_rows", "train_loss",
 * "train_accuracy", "samples_per_s", "lr", "elapsed_s", "push_bytes_per_step",
 * "pull_bytes_per_step", "compression_ratio", "residual_norm"} in that order (then "round",
 * the distillation keys, "sparsity" and the task-weighting keys when they apply): each field of
 * struct ldn_eval_record under its own name, except dense_bytes_per_step, which is written as
 * compression_ratio = dense_bytes_per_step / push_bytes_per_step (1 when nothing was pushed).
 * A number that is NaN or infinite is written as null. */
#ifndef LDN_METRICS_H
#define LDN_METRICS_H

#include <stdint.h>
#include <stdio.h>

struct ldn_eval_record {
    const char *task;
    int64_t step;
    double epoch;    /* fractional epoch at evaluation */
    double loss;     /* test loss */
    double accuracy; /* test accuracy in [0, 1] */
    int64_t test_rows;
    double train_loss; /* mean training loss since the previous evaluation */
    double train_accuracy;
    double samples_per_s; /* training throughput from the start to this evaluation */
    double lr;
    double elapsed_s;           /* wall time since training started */
    double push_bytes_per_step; /* per worker and step, all parts (0 in local training) */
    double pull_bytes_per_step;
    double dense_bytes_per_step; /* what the pushes would weigh as dense fp32 payloads */
    double residual_norm;        /* mean over workers of ||error-feedback residual||_2 */
    /* a run with rounds: the round's name (NULL: no "round" key); during a distillation round
     * (distill != 0) the training rows' top-1 agreement with the teacher, the mean T^2 * KL
     * term and the distillation weight in effect */
    const char *round;
    int distill;
    double teacher_agreement, distill_kl, distill_alpha;
    /* a pruned run (pruned != 0): the share of the trunk's weights masked ("sparsity") */
    int pruned;
    double sparsity;
    /* train.task_weighting other than static, or ps.task_gradients: pcgrad (weighting != NULL):
     * "task_weighting" (the method's name), "task_weight" (the factor this task's loss had at
     * the last step before the evaluation), "log_var" (uncertainty: the task's learned s_t,
     * when has_log_var), "task_gradients" (when gradients is not NULL) */
    const char *weighting;
    double task_weight;
    int has_log_var;
    double log_var;
    const char *gradients;
};

/* Open RUN_DIR/metrics.jsonl for writing (truncating when fresh, appending when append != 0).
 * Returns NULL with err on failure. */
FILE *ldn_metrics_open(const char *run_dir, int append, char *err, size_t errlen);
/* Write one record as a JSON line and flush (r->task is escaped; NULL is written as "").
 * Returns 0 or LDN_ERR_IO. */
int ldn_metrics_write(FILE *f, const struct ldn_eval_record *r);

/* The task affinity of an evaluation (ps.affinity): G groups, each named (a group of one task
 * by its task) with the tasks it holds; cos: [n_layers + 1][G][G] cosines, block n_layers the
 * whole trunk (NaN: a group that never trained in the window, written as null); together:
 * [G][G] steps each pair trained together in the window [from, to). */
struct ldn_affinity_record {
    int64_t step, from, to;
    double epoch;
    int G, n_layers;
    const char *const *group_names;  /* [G] */
    const int *n_group_tasks;        /* [G] */
    const char *const *const *tasks; /* [G][n_group_tasks[g]] task names */
    const double *cos;
    const uint64_t *together;
};
/* Write r as one JSON line {"kind":"affinity",...} (docs/metrics.md) and flush. Returns 0 or
 * LDN_ERR_IO. */
int ldn_metrics_write_affinity(FILE *f, const struct ldn_affinity_record *r);

#endif
