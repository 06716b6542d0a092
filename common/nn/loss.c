/* Losses and their gradients. */
#include "loss.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "status.h"

/* The largest of z[0..n). */
static float row_max(const float *z, int n)
{
    float mx = z[0];
    for (int j = 1; j < n; j++)
        if (z[j] > mx)
            mx = z[j];
    return mx;
}

/* Softmax of one row of z/T into p; returns log of the normaliser of (z - max)/T. */
static double softmax_row(const float *z, float *p, int n, float temperature)
{
    const float mx = row_max(z, n);
    double sum = 0.0;
    float inv_t = 1.0f / temperature;
    for (int j = 0; j < n; j++) {
        float e = expf((z[j] - mx) * inv_t);
        p[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++)
        p[j] *= inv;
    return log(sum);
}

/* Row maximum into *mx; returns log sum_j exp((z_j - mx) / t), in double. */
static double log_sum_exp(const float *z, int n, double t, float *mx)
{
    const float m = row_max(z, n);
    double sum = 0.0;
    for (int j = 0; j < n; j++)
        sum += exp((double)(z[j] - m) / t);
    *mx = m;
    return log(sum);
}

int ldn_argmax(const float *z, int n)
{
    int best = 0;
    for (int j = 1; j < n; j++)
        if (z[j] > z[best])
            best = j;
    return best;
}

void ldn_softmax(const float *z, float *p, int batch, int classes, float temperature)
{
    for (int i = 0; i < batch; i++)
        softmax_row(z + (int64_t)i * classes, p + (int64_t)i * classes, classes, temperature);
}

/* Sum over the rows of the softmax cross-entropy; grad rows (if grad) get g * (p - onehot(y)).
 * With skip_unlabelled a row whose label is negative adds nothing and gets a zero gradient row;
 * without it every label must be in [0, classes). */
static double xent_sum(const float *logits, const int32_t *labels, int batch, int classes, float g,
                       bool skip_unlabelled, float *grad, int64_t *correct)
{
    double total = 0.0;
    int64_t ok = 0;
    for (int i = 0; i < batch; i++) {
        const float *z = logits + (int64_t)i * classes;
        float *d = grad ? grad + (int64_t)i * classes : NULL;
        int y = labels[i];
        if (y < 0 && skip_unlabelled) {
            if (d)
                memset(d, 0, (size_t)classes * sizeof *d);
            continue;
        }
        LDN_ASSERT(y >= 0 && y < classes);
        float mx;
        double lse = log_sum_exp(z, classes, 1.0, &mx);
        total += lse - (double)(z[y] - mx);
        if (ldn_argmax(z, classes) == y)
            ok++;
        if (d) {
            float inv = (float)exp(-lse); /* 1 / sum of exp(z - mx) */
            for (int j = 0; j < classes; j++)
                d[j] = g * (expf(z[j] - mx) * inv - (j == y ? 1.0f : 0.0f));
        }
    }
    if (correct)
        *correct = ok;
    return total;
}

double ldn_loss_xent(const float *logits, const int32_t *labels, int batch, int classes,
                     float scale, float *grad, int64_t *correct)
{
    float g = scale / (float)batch;
    return xent_sum(logits, labels, batch, classes, g, false, grad, correct) / batch;
}

double ldn_loss_mse(const float *pred, const float *target, int batch, int dim, float scale,
                    float *grad)
{
    double total = 0.0;
    int64_t n = (int64_t)batch * dim;
    float g = 2.0f * scale / (float)n;
    for (int64_t i = 0; i < n; i++) {
        float e = pred[i] - target[i];
        total += (double)e * e;
        if (grad)
            grad[i] = g * e;
    }
    return total / (double)n;
}

/* Sum over the rows of KL(pt || softmax(z/T)); adds g * (softmax(z/T) - pt) into grad. */
static double kl_sum(const float *logits, const float *teacher_probs, int batch, int classes,
                     float t, float g, float *grad)
{
    double soft = 0.0;
    for (int i = 0; i < batch; i++) {
        const float *z = logits + (int64_t)i * classes;
        const float *pt = teacher_probs + (int64_t)i * classes;
        float mx;
        double lse = log_sum_exp(z, classes, t, &mx);
        double kl = 0.0;
        for (int j = 0; j < classes; j++) {
            double log_ps = (double)(z[j] - mx) / t - lse;
            if (pt[j] > 0.0f)
                kl += pt[j] * (log((double)pt[j]) - log_ps);
            if (grad)
                grad[(int64_t)i * classes + j] += g * ((float)exp(log_ps) - pt[j]);
        }
        soft += kl;
    }
    return soft;
}

/* Top-1 agreement and labelled rows of a batch into r (r->kl is the caller's). */
static void distill_counts(const float *logits, const float *teacher_probs, const int32_t *labels,
                           int batch, int classes, struct ldn_distill_report *r)
{
    r->agree = 0;
    r->labelled = 0;
    for (int i = 0; i < batch; i++) {
        const float *z = logits + (int64_t)i * classes;
        const float *pt = teacher_probs + (int64_t)i * classes;
        if (ldn_argmax(z, classes) == ldn_argmax(pt, classes))
            r->agree++;
        if (labels[i] >= 0)
            r->labelled++;
    }
}

double ldn_loss_distill_ex(const float *logits, const float *teacher_probs, const int32_t *labels,
                           int batch, int classes, float temperature, float alpha, float scale,
                           float *grad, int64_t *correct, struct ldn_distill_report *report)
{
    /* Label part first: fills grad with the (1-alpha) CE gradient, zero on unlabelled rows. */
    float g_hard = scale * (1.0f - alpha) / (float)batch;
    double hard = xent_sum(logits, labels, batch, classes, g_hard, true, grad, correct) / batch;
    float t = temperature;
    float g_soft = scale * alpha * t / (float)batch; /* d/dz of T^2 KL = T (p_s - p_t) */
    double soft = kl_sum(logits, teacher_probs, batch, classes, t, g_soft, grad);
    if (report) {
        report->kl = (double)t * t * soft / batch;
        distill_counts(logits, teacher_probs, labels, batch, classes, report);
    }
    return (double)alpha * t * t * soft / batch + (1.0 - alpha) * hard;
}

double ldn_loss_distill(const float *logits, const float *teacher_probs, const int32_t *labels,
                        int batch, int classes, float temperature, float alpha, float scale,
                        float *grad, int64_t *correct)
{
    return ldn_loss_distill_ex(logits, teacher_probs, labels, batch, classes, temperature, alpha,
                               scale, grad, correct, NULL);
}

double ldn_distill_alpha_at(enum ldn_teacher_annealing annealing, double alpha, int64_t step,
                            int64_t from, int64_t to)
{
    switch (annealing) {
    case LDN_ANNEAL_NONE: return alpha;
    case LDN_ANNEAL_LINEAR: {
        LDN_ASSERT(from < to);
        double w = 1.0 - (double)(step - from) / (double)(to - from);
        return w < 0.0 ? 0.0 : w > 1.0 ? 1.0 : w;
    }
    }
    LDN_ASSERT(!"unknown annealing");
    return alpha;
}

void ldn_ensemble_mean(const float *const *members, int n_members, int batch, int classes,
                       float *out)
{
    LDN_ASSERT(n_members >= 1);
    int64_t n = (int64_t)batch * classes;
    float inv = 1.0f / (float)n_members;
    for (int64_t k = 0; k < n; k++) {
        float s = members[0][k];
        for (int m = 1; m < n_members; m++)
            s += members[m][k];
        out[k] = s * inv;
    }
}

/* acc += softmax(z / T) for one row: the same values as softmax_row writes. */
static void softmax_add_row(const float *z, float *acc, int n, float temperature)
{
    const float mx = row_max(z, n);
    double sum = 0.0;
    float inv_t = 1.0f / temperature;
    for (int j = 0; j < n; j++)
        sum += expf((z[j] - mx) * inv_t);
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < n; j++)
        acc[j] += expf((z[j] - mx) * inv_t) * inv;
}

void ldn_ensemble_add_softened(float *acc, const float *logits, int member, int n_members,
                               int batch, int classes, float temperature)
{
    LDN_ASSERT(member >= 0 && member < n_members);
    if (member == 0)
        ldn_softmax(logits, acc, batch, classes, temperature);
    else
        for (int i = 0; i < batch; i++)
            softmax_add_row(logits + (int64_t)i * classes, acc + (int64_t)i * classes, classes,
                            temperature);
    if (member == n_members - 1) {
        int64_t n = (int64_t)batch * classes;
        float inv = 1.0f / (float)n_members;
        for (int64_t k = 0; k < n; k++)
            acc[k] *= inv;
    }
}
