/* The commands held while a worker is busy (cmdqueue.h). */
#include "cmdqueue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ldn_cmdq_init(struct ldn_cmdq *q, int n_weights)
{
    memset(q, 0, sizeof *q);
    q->n_weights = n_weights > 0 ? n_weights : 0;
    if (q->n_weights && !(q->weights = malloc(sizeof(float) * LDN_CMDQ_MAX * (size_t)q->n_weights)))
        return LDN_ERR_NOMEM;
    return 0;
}

void ldn_cmdq_free(struct ldn_cmdq *q)
{
    free(q->weights);
    memset(q, 0, sizeof *q);
}

int ldn_cmdq_add(struct ldn_cmdq *q, const struct ldn_wire_msg *h, int rank, int with_weights,
                 float **slot)
{
    *slot = NULL;
    if (q->bad)
        return -1;
    if (q->n == LDN_CMDQ_MAX) {
        q->bad = LDN_CMDQ_MAX + 1; /* after the ones held */
        snprintf(q->err, sizeof q->err,
                 "worker %d: %s from the coordinator while %d earlier commands still wait: the "
                 "coordinator sends one command at a time (a protocol fault)",
                 rank, ldn_wire_op_name(h->op), LDN_CMDQ_MAX);
        return -1;
    }
    const int i = q->n++;
    q->held[i] = *h;
    q->weighted[i] = with_weights && q->weights;
    if (q->weighted[i])
        *slot = q->weights + (size_t)i * (size_t)q->n_weights;
    return 0;
}

void ldn_cmdq_fail_last(struct ldn_cmdq *q, const char *why)
{
    if (q->bad || q->n == 0)
        return;
    q->bad = q->n;
    snprintf(q->err, sizeof q->err, "%s", why);
}

int ldn_cmdq_faulted(const struct ldn_cmdq *q)
{
    return q->bad != 0;
}

int ldn_cmdq_holds(const struct ldn_cmdq *q, int op)
{
    for (int i = 0; i < q->n; i++)
        if ((int)q->held[i].op == op)
            return 1;
    return 0;
}

int ldn_cmdq_next(struct ldn_cmdq *q, struct ldn_wire_msg *h, float *weights, char *err,
                  size_t errlen)
{
    if (q->n == 0 && !q->bad)
        return 0;
    if (q->bad == 1 || q->n == 0)
        return ldn_fail(err, errlen, LDN_ERR_PEER, "%s", q->err);
    const size_t K = (size_t)q->n_weights;
    *h = q->held[0];
    if (weights && q->weighted[0])
        memcpy(weights, q->weights, sizeof(float) * K);
    q->n--;
    memmove(q->held, q->held + 1, sizeof *q->held * (size_t)q->n);
    memmove(q->weighted, q->weighted + 1, sizeof *q->weighted * (size_t)q->n);
    if (K)
        memmove(q->weights, q->weights + K, sizeof(float) * K * (size_t)q->n);
    if (q->bad)
        q->bad--;
    return 1;
}
