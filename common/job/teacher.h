/* A distillation round's teacher, where the data is: the members' models are loaded from their
 * checkpoints (trunk and the heads of this process's tasks) and the ensemble's soft targets,
 * the mean over members of softmax(z / T), are computed for every training row of every task at
 * round start, batched, and kept in memory when they fit in teacher.cache_mb; otherwise the
 * members stay loaded and each batch's targets are computed when it is trained. Only weights are
 * read; no per-example target crosses the network. The members' and the ensemble's test accuracy
 * per task are measured on the way.
 *
 * The member checks (each clear error names the round and the member): the checkpoint opens and
 * verifies, takes the same input width, has a head for every task with the same classes. */
#ifndef LDN_TEACHER_H
#define LDN_TEACHER_H

#include <stddef.h>
#include <stdint.h>

#include "ckmodel.h"
#include "config.h"
#include "data.h"

struct ldn_teacher {
    int n_tasks;
    int *classes; /* [n_tasks] */
    float **soft; /* [t * n_tasks + u][rows of task t * classes of task u]: the ensemble's
                     softened probabilities of head u on task t's training rows (u == t, or every
                     u with teacher.inputs: all), when they fit in teacher.cache_mb (cached) */
    int cached, all;
    struct ldn_ckmodel *members_loaded; /* not cached: the members, kept for per-batch targets */
    int *head;                          /* [n_members * n_tasks]: member m's head for task u */
    float temperature;
    double **member_acc;  /* [n_tasks][n_members]: each member's test accuracy */
    double *ensemble_acc; /* [n_tasks]: the ensemble's (mean probabilities at T = 1); NaN for a
                             task whose test rows were not given */
    int64_t *test_rows;   /* [n_tasks]: the test rows those accuracies are over (0: none) */
    int n_members;
    double seconds, gflops; /* the soft targets' computation (forward passes): time, GFLOP/s */
    double load_seconds;    /* opening, verifying and loading the members */
};

/* What a teacher is built over. train[t] / test[t] are task t's splits as this process holds
 * them, NULL for a task whose rows are not here (no soft targets on them, no test accuracy);
 * classes[t] is task t's number of classes, features the input width; heads, when not NULL,
 * says which heads need soft targets (heads[u] != 0), NULL for every head. */
struct ldn_teacher_data {
    struct ldn_dataset *const *train, *const *test;
    const int *classes;
    int features;
    const char *heads;
    void (*tick)(void *ud); /* when not NULL, called after each batch of the build (liveness) */
    void *tick_ud;
};

/* Build the teacher of a round: `members` are checkpoint paths (files, checkpoint or run
 * directories). Soft targets are made for the rows of task t and head u where train[t] is here,
 * head u is wanted and u == t or teacher.inputs is all. Returns 0 or a negative status with err
 * naming the round and the member. */
int ldn_teacher_build(struct ldn_teacher *T, const struct ldn_config *cfg, const char *round,
                      const struct ldn_teacher_config *tc, const char *const *members,
                      const struct ldn_teacher_data *d, char *err, size_t errlen);
void ldn_teacher_deinit(struct ldn_teacher *T);

/* Head u's soft targets of rows idx[0..b) of task t's training split into out [b, classes[u]]
 * (u == t, or any u with inputs: all); x holds those rows' inputs [b, features] (used when the
 * targets are not cached). Returns out. */
float *ldn_teacher_rows(struct ldn_teacher *T, int t, int u, const int64_t *idx, const float *x,
                        int b, float *out);

/* Log how the soft targets were made (time, GFLOP/s) or that they are made per batch. */
void ldn_teacher_log_targets(const struct ldn_teacher *T, const char *round,
                             const struct ldn_teacher_config *tc);
/* Log the ensemble's and each member's test accuracy, per task whose test rows were given. */
void ldn_teacher_log_accuracy(const struct ldn_teacher *T, const struct ldn_config *cfg,
                              const char *round, const struct ldn_teacher_config *tc);

#endif
