/* Losses: forward value and gradient with respect to the network output.
 *
 * Every loss returns the batch MEAN loss and writes `scale * dL/dz` into grad (which may be
 * NULL for evaluation), where L is the mean over the batch; scale carries the task's loss
 * weight. Inputs are row-major [batch, dim]. */
#ifndef LDN_LOSS_H
#define LDN_LOSS_H

#include <stdint.h>

#include "config.h"

/* Softmax cross-entropy against class labels in [0, classes). If correct != NULL it receives
 * the number of rows whose argmax equals the label. */
double ldn_loss_xent(const float *logits, const int32_t *labels, int batch, int classes,
                     float scale, float *grad, int64_t *correct);

/* Mean squared error: mean over batch*dim of (pred - target)^2. */
double ldn_loss_mse(const float *pred, const float *target, int batch, int dim, float scale,
                    float *grad);

/* Knowledge distillation (Hinton et al.): the batch mean over all rows of
 *   alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(softmax(s), y)
 * with teacher_probs = softmax(teacher_logits / T) already computed (an ensemble passes the
 * average of its members' softened probabilities). A row whose label is negative (-1: no label
 * for this head, e.g. another task's input under `teacher.inputs: all`) has no label term: it
 * carries alpha * T^2 * KL alone, in loss and gradient, and still counts in the batch size of
 * the mean. correct, if not NULL, counts the labelled rows whose argmax equals the label. */
double ldn_loss_distill(const float *logits, const float *teacher_probs, const int32_t *labels,
                        int batch, int classes, float temperature, float alpha, float scale,
                        float *grad, int64_t *correct);

/* What ldn_loss_distill_ex measures on a batch, for the progress line and metrics. */
struct ldn_distill_report {
    double kl;        /* mean over all rows of T^2 * KL(p_teacher || softmax(s/T)), before alpha */
    int64_t agree;    /* rows whose student top-1 is the teacher's top-1 (first index on ties) */
    int64_t labelled; /* rows with a label >= 0 */
};

/* ldn_loss_distill, and if report is not NULL it is filled for the batch; the loss and grad
 * do not depend on report, and a NULL report costs nothing. */
double ldn_loss_distill_ex(const float *logits, const float *teacher_probs, const int32_t *labels,
                           int batch, int classes, float temperature, float alpha, float scale,
                           float *grad, int64_t *correct, struct ldn_distill_report *report);

/* The distillation weight in effect at step `step` of a round of steps [from, to), from < to
 * (annealing as teacher.annealing in config.h): alpha with LDN_ANNEAL_NONE; with LDN_ANNEAL_LINEAR
 * (BAM, teacher annealing) alpha is not used and the weight is 1 - (step - from) / (to - from)
 * clamped to [0, 1]: 1 at `from` (all teacher), 1 / (to - from) at the round's last step, 0 at `to`
 * (all label). */
double ldn_distill_alpha_at(enum ldn_teacher_annealing annealing, double alpha, int64_t step,
                            int64_t from, int64_t to);

/* out = the element-wise mean of n_members >= 1 probability matrices members[m], each
 * [batch, classes] row-major (an ensemble's averaged probabilities). out may be any of the
 * members (members[0], typically); the others must not overlap it. */
void ldn_ensemble_mean(const float *const *members, int n_members, int batch, int classes,
                       float *out);

/* Adds member `member` (0-based, called for 0, 1, ..., n_members - 1 in turn) of an ensemble to
 * acc [batch, classes]: member 0 sets acc to softmax(logits / T), later members add theirs, and
 * the last one scales by 1 / n_members, so that acc then holds the ensemble's softened mean, bit
 * for bit the ldn_ensemble_mean of each member's ldn_softmax, with no buffer per member. acc
 * must not overlap logits; between the calls acc holds a partial sum. */
void ldn_ensemble_add_softened(float *acc, const float *logits, int member, int n_members,
                               int batch, int classes, float temperature);

/* Index of the first largest of z[0..n) (a row's top-1). */
int ldn_argmax(const float *z, int n);

/* Row-wise softmax of z / T into p (p may equal z). */
void ldn_softmax(const float *z, float *p, int batch, int classes, float temperature);

#endif
