/* Task-weighting state: DWA's loss history, uncertainty weighting's log-variances; their
 * checkpoint datasets. */
#include "weighting.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mtl_weight.h"
#include "status.h"

int ldn_dwa_init(struct ldn_dwa *d, int K, double T)
{
    memset(d, 0, sizeof *d);
    d->K = K;
    d->T = T;
    d->hist = calloc(2 * (size_t)K, sizeof *d->hist);
    d->loss_fx = calloc((size_t)K, sizeof *d->loss_fx);
    d->rows = calloc((size_t)K, sizeof *d->rows);
    d->w = malloc(sizeof *d->w * (size_t)K);
    if (!d->hist || !d->loss_fx || !d->rows || !d->w) {
        ldn_dwa_deinit(d);
        return LDN_ERR_NOMEM;
    }
    for (int t = 0; t < K; t++)
        d->w[t] = 1.0;
    return LDN_OK;
}

void ldn_dwa_deinit(struct ldn_dwa *d)
{
    free(d->hist);
    free(d->loss_fx);
    free(d->rows);
    free(d->w);
    d->hist = NULL;
    d->loss_fx = d->rows = NULL;
    d->w = NULL;
}

void ldn_dwa_add(struct ldn_dwa *d, int t, double loss_sum, int64_t rows)
{
    if (t < 0 || t >= d->K || rows <= 0)
        return;
    const double cap = 274877906944.0; /* 2^38 */
    double s = isfinite(loss_sum) && loss_sum > 0 ? (loss_sum < cap ? loss_sum : cap) : 0.0;
    d->loss_fx[t] += llround(s * LDN_DWA_FIXED_ONE);
    d->rows[t] += rows;
}

/* The weights from the history (1 until two epochs are in). */
static void dwa_weights(struct ldn_dwa *d)
{
    double *l = malloc(sizeof *l * 2 * (size_t)d->K);
    if (d->epochs < 2 || !l) {
        for (int t = 0; t < d->K; t++)
            d->w[t] = 1.0;
        free(l);
        return;
    }
    for (int t = 0; t < 2 * d->K; t++)
        l[t] = d->hist[t];
    ldn_mtl_dwa(l, l + d->K, d->K, d->T, d->w);
    free(l);
}

void ldn_dwa_end_epoch(struct ldn_dwa *d)
{
    for (int t = 0; t < d->K; t++) {
        float prev = d->hist[t];
        d->hist[d->K + t] = prev;
        if (d->rows[t] > 0)
            d->hist[t] = (float)((double)d->loss_fx[t] / LDN_DWA_FIXED_ONE / (double)d->rows[t]);
        d->loss_fx[t] = d->rows[t] = 0;
    }
    d->epochs++;
    dwa_weights(d);
}

void ldn_dwa_weights_f32(const struct ldn_dwa *d, float *w)
{
    for (int t = 0; t < d->K; t++)
        w[t] = (float)d->w[t];
}

int ldn_dwa_ckpt_add(const struct ldn_dwa *d, struct ldn_ckpt_items *it)
{
    int rc = ldn_ckpt_add(it, "/weighting/dwa/history", LDN_CKPT_F32, 2, 2, d->K, d->hist);
    rc |= ldn_ckpt_add(it, "/weighting/dwa/loss_sum", LDN_CKPT_I64, 1, d->K, 1, d->loss_fx);
    rc |= ldn_ckpt_add(it, "/weighting/dwa/rows", LDN_CKPT_I64, 1, d->K, 1, d->rows);
    rc |= ldn_ckpt_add(it, "/weighting/dwa/epochs", LDN_CKPT_I64, 1, 1, 1, &d->epochs);
    return rc;
}

int ldn_dwa_ckpt_read(struct ldn_dwa *d, const struct ldn_ckpt *ck, char *err, size_t errlen)
{
    if (!ldn_ckpt_has(ck, "/weighting/dwa/history")) {
        memset(d->hist, 0, sizeof *d->hist * 2 * (size_t)d->K);
        memset(d->loss_fx, 0, sizeof *d->loss_fx * (size_t)d->K);
        memset(d->rows, 0, sizeof *d->rows * (size_t)d->K);
        d->epochs = 0;
        dwa_weights(d);
        return 1;
    }
    const int64_t dh[2] = {2, d->K}, dk[2] = {d->K, 1}, d1[2] = {1, 1};
    int rc = ldn_ckpt_read(ck, "/weighting/dwa/history", LDN_CKPT_F32, 2, dh, 0, 2, d->hist, d->K,
                           err, errlen);
    if (rc == 0)
        rc = ldn_ckpt_read_counts(ck, "/weighting/dwa/loss_sum", dk, 0, d->K, d->loss_fx, err,
                                  errlen);
    if (rc == 0)
        rc = ldn_ckpt_read_counts(ck, "/weighting/dwa/rows", dk, 0, d->K, d->rows, err, errlen);
    if (rc == 0)
        rc = ldn_ckpt_read_counts(ck, "/weighting/dwa/epochs", d1, 0, 1, &d->epochs, err, errlen);
    for (int t = 0; t < 2 * d->K && rc == 0; t++)
        if (d->hist[t] < 0)
            rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                          "checkpoint %s: /weighting/dwa/history holds a negative loss (%g)",
                          ck->path, (double)d->hist[t]);
    if (rc == 0)
        dwa_weights(d);
    return rc;
}

struct ldn_optim *ldn_uw_optim_new(const struct ldn_optim_config *head)
{
    struct ldn_optim_config c = *head;
    c.weight_decay = 0; /* a log-variance has no prior pulling it to 0 */
    return ldn_optim_new(&c, 1);
}

int ldn_uw_ckpt_add(struct ldn_ckpt_items *it, const char *task, const float *s,
                    struct ldn_optim *o)
{
    char name[LDN_CKPT_NAME_MAX];
    snprintf(name, sizeof name, "/weighting/log_var/%s", task);
    int rc = ldn_ckpt_add(it, name, LDN_CKPT_F32, 1, 1, 1, s);
    snprintf(name, sizeof name, "/weighting/optimizer/m/%s", task);
    rc |= o->m ? ldn_ckpt_add(it, name, LDN_CKPT_F32, 1, 1, 1, o->m) : 0;
    snprintf(name, sizeof name, "/weighting/optimizer/v/%s", task);
    rc |= o->v ? ldn_ckpt_add(it, name, LDN_CKPT_F32, 1, 1, 1, o->v) : 0;
    snprintf(name, sizeof name, "/weighting/optimizer/t/%s", task);
    rc |= ldn_ckpt_add(it, name, LDN_CKPT_I64, 1, 1, 1, &o->t);
    return rc;
}

int ldn_uw_ckpt_read(const struct ldn_ckpt *ck, const char *task, float *s, struct ldn_optim *o,
                     char *err, size_t errlen)
{
    char name[LDN_CKPT_NAME_MAX];
    const int64_t d1[2] = {1, 1};
    snprintf(name, sizeof name, "/weighting/log_var/%s", task);
    if (!ldn_ckpt_has(ck, name))
        return 1;
    int rc = ldn_ckpt_read(ck, name, LDN_CKPT_F32, 1, d1, 0, 1, s, 1, err, errlen);
    if (rc == 0 && fabsf(*s) > 80.0f)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "checkpoint %s: %s is %g, outside [-80, 80] (a task weight of e^%g)",
                      ck->path, name, (double)*s, (double)-*s);
    snprintf(name, sizeof name, "/weighting/optimizer/m/%s", task);
    if (rc == 0 && o->m)
        rc = ldn_ckpt_read(ck, name, LDN_CKPT_F32, 1, d1, 0, 1, o->m, 1, err, errlen);
    snprintf(name, sizeof name, "/weighting/optimizer/v/%s", task);
    if (rc == 0 && o->v)
        rc = ldn_ckpt_read(ck, name, LDN_CKPT_F32, 1, d1, 0, 1, o->v, 1, err, errlen);
    snprintf(name, sizeof name, "/weighting/optimizer/t/%s", task);
    if (rc == 0)
        rc = ldn_ckpt_read_counts(ck, name, d1, 0, 1, &o->t, err, errlen);
    return rc;
}
