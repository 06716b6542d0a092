/* Losses and their gradients. */
#include "loss.h"

#include <math.h>

#include "status.h"

/* Softmax of one row of z/T into p; returns log of the normaliser of (z - max)/T. */
static double softmax_row(const float *z, float *p, int n, float temperature)
{
    float mx = z[0];
    for (int j = 1; j < n; j++)
        if (z[j] > mx)
            mx = z[j];
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
    float m = z[0];
    for (int j = 1; j < n; j++)
        if (z[j] > m)
            m = z[j];
    double sum = 0.0;
    for (int j = 0; j < n; j++)
        sum += exp((double)(z[j] - m) / t);
    *mx = m;
    return log(sum);
}

static int argmax_row(const float *z, int n)
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

double ldn_loss_xent(const float *logits, const int32_t *labels, int batch, int classes,
                     float scale, float *grad, int64_t *correct)
{
    double total = 0.0;
    int64_t ok = 0;
    float g = scale / (float)batch;
    for (int i = 0; i < batch; i++) {
        const float *z = logits + (int64_t)i * classes;
        int y = labels[i];
        LDN_ASSERT(y >= 0 && y < classes);
        float mx;
        double lse = log_sum_exp(z, classes, 1.0, &mx);
        total += lse - (double)(z[y] - mx);
        if (argmax_row(z, classes) == y)
            ok++;
        if (grad) {
            float *d = grad + (int64_t)i * classes;
            float inv = (float)exp(-lse); /* 1 / sum of exp(z - mx) */
            for (int j = 0; j < classes; j++)
                d[j] = g * (expf(z[j] - mx) * inv - (j == y ? 1.0f : 0.0f));
        }
    }
    if (correct)
        *correct = ok;
    return total / batch;
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

double ldn_loss_distill(const float *logits, const float *teacher_probs, const int32_t *labels,
                        int batch, int classes, float temperature, float alpha, float scale,
                        float *grad, int64_t *correct)
{
    /* Hard-label part first (fills grad with (1-alpha) * CE gradient). */
    double hard =
        ldn_loss_xent(logits, labels, batch, classes, scale * (1.0f - alpha), grad, correct);
    double soft = 0.0;
    float t = temperature;
    float g = scale * alpha * t / (float)batch; /* d/dz of T^2 KL = T (p_s - p_t) */
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
    return (double)alpha * t * t * soft / batch + (1.0 - alpha) * hard;
}
