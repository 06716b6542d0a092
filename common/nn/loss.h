/* Losses: forward value and gradient with respect to the network output.
 *
 * Every loss returns the batch MEAN loss and writes `scale * dL/dz` into grad (which may be
 * NULL for evaluation), where L is the mean over the batch; scale carries the task's loss
 * weight. Inputs are row-major [batch, dim]. */
#ifndef LDN_LOSS_H
#define LDN_LOSS_H

#include <stdint.h>

/* Softmax cross-entropy against class labels in [0, classes). If correct != NULL it receives
 * the number of rows whose argmax equals the label. */
double ldn_loss_xent(const float *logits, const int32_t *labels, int batch, int classes,
                     float scale, float *grad, int64_t *correct);

/* Mean squared error: mean over batch*dim of (pred - target)^2. */
double ldn_loss_mse(const float *pred, const float *target, int batch, int dim, float scale,
                    float *grad);

/* Knowledge distillation (Hinton et al.):
 *   alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(softmax(s), y)
 * with teacher_probs = softmax(teacher_logits / T) already computed (an ensemble passes the
 * average of its members' softened probabilities). */
double ldn_loss_distill(const float *logits, const float *teacher_probs, const int32_t *labels,
                        int batch, int classes, float temperature, float alpha, float scale,
                        float *grad, int64_t *correct);

/* Row-wise softmax of z / T into p (p may equal z). */
void ldn_softmax(const float *z, float *p, int batch, int classes, float temperature);

#endif
