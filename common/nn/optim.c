/* Optimizers and learning-rate schedules. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

#include "status.h"

struct ldn_optim *ldn_optim_new(const struct ldn_optim_config *cfg, int64_t n)
{
    struct ldn_optim *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->cfg = *cfg;
    o->n = n;
    o->m = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (cfg->kind != LDN_OPTIM_SGD)
        o->v = calloc((size_t)(n > 0 ? n : 1), sizeof(float));
    if (!o->m || (cfg->kind != LDN_OPTIM_SGD && !o->v))
        ldn_optim_destroy(&o);
    return o;
}

void ldn_optim_destroy(struct ldn_optim **po)
{
    if (!po || !*po)
        return;
    free((*po)->m);
    free((*po)->v);
    free(*po);
    *po = NULL;
}

static void sgd_step(struct ldn_optim *o, float *restrict p, const float *restrict grad,
                     float *restrict buf, int64_t n, float lr)
{
    const float mu = (float)o->cfg.momentum, wd = (float)o->cfg.weight_decay;
    if (mu == 0.0f) {
        for (int64_t i = 0; i < n; i++)
            p[i] -= lr * (grad[i] + wd * p[i]);
    } else if (o->cfg.nesterov) {
        for (int64_t i = 0; i < n; i++) {
            float g = grad[i] + wd * p[i];
            float b = mu * buf[i] + g;
            buf[i] = b;
            p[i] -= lr * (g + mu * b);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float b = mu * buf[i] + grad[i] + wd * p[i];
            buf[i] = b;
            p[i] -= lr * b;
        }
    }
}

static void adam_step(struct ldn_optim *o, float *restrict p, const float *restrict grad,
                      float *restrict m, float *restrict v, int64_t n, int64_t t_step, float lr)
{
    const float b1 = (float)o->cfg.beta1, b2 = (float)o->cfg.beta2, eps = (float)o->cfg.eps;
    const float wd = (float)o->cfg.weight_decay;
    const bool decoupled = o->cfg.kind == LDN_OPTIM_ADAMW;
    const double t = (double)t_step;
    const float c1 = (float)(1.0 - pow(o->cfg.beta1, t)), c2 = (float)(1.0 - pow(o->cfg.beta2, t));
    const float step = lr / c1, inv_sqrt_c2 = 1.0f / sqrtf(c2);
    for (int64_t i = 0; i < n; i++) {
        float g = grad[i];
        if (decoupled)
            p[i] -= lr * wd * p[i];
        else
            g += wd * p[i];
        m[i] = b1 * m[i] + (1.0f - b1) * g;
        v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        p[i] -= step * m[i] / (sqrtf(v[i]) * inv_sqrt_c2 + eps);
    }
}

void ldn_optim_update(struct ldn_optim *o, float *params, const float *grad, int64_t lo, int64_t hi,
                      int64_t t, double lr)
{
    LDN_ASSERT(lo >= 0 && lo <= hi && hi <= o->n && t >= 1);
    if (o->cfg.kind == LDN_OPTIM_SGD)
        sgd_step(o, params + lo, grad + lo, o->m + lo, hi - lo, (float)lr);
    else
        adam_step(o, params + lo, grad + lo, o->m + lo, o->v + lo, hi - lo, t, (float)lr);
}

bool ldn_optim_sparse_ok(const struct ldn_optim *o)
{
    return o->cfg.kind == LDN_OPTIM_SGD && o->cfg.momentum == 0.0 && o->cfg.weight_decay == 0.0;
}

void ldn_optim_update_keys(struct ldn_optim *o, float *params, const float *grad,
                           const uint32_t *keys, int64_t m, double lr)
{
    LDN_ASSERT(ldn_optim_sparse_ok(o));
    const float lrf = (float)lr, wd = (float)o->cfg.weight_decay; /* 0: as sgd_step computes */
    for (int64_t j = 0; j < m; j++) {
        const uint32_t i = keys[j];
        params[i] -= lrf * (grad[i] + wd * params[i]);
    }
}

void ldn_optim_step(struct ldn_optim *o, float *params, const float *grad, double lr)
{
    o->t++;
    ldn_optim_update(o, params, grad, 0, o->n, o->t, lr);
}

double ldn_lr_at(const struct ldn_lr_config *lr, double base_lr, int64_t step, int64_t total_steps,
                 int64_t steps_per_epoch)
{
    if (step < lr->warmup_steps)
        return base_lr * (double)(step + 1) / (double)lr->warmup_steps;
    switch (lr->kind) {
    case LDN_LR_CONSTANT: return base_lr;
    case LDN_LR_STEP: {
        double period = lr->step_epochs * (double)steps_per_epoch;
        int64_t k = period > 0 ? (int64_t)floor((double)step / period) : 0;
        return base_lr * pow(lr->gamma, (double)k);
    }
    case LDN_LR_COSINE: {
        int64_t span = total_steps - lr->warmup_steps;
        double progress = span > 0 ? (double)(step - lr->warmup_steps) / (double)span : 1.0;
        if (progress > 1.0)
            progress = 1.0;
        return lr->min_lr +
               0.5 * (base_lr - lr->min_lr) * (1.0 + cos(3.14159265358979323846 * progress));
    }
    }
    return base_lr;
}
