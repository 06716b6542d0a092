/* A server's consistency rule: the live set, clocks, and the open bsp step. */
#include "consistency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ldn_cons *ldn_cons_new(enum ldn_consistency mode, int staleness, int W, int C)
{
    struct ldn_cons *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    *c = (struct ldn_cons){.mode = mode, .staleness = staleness, .W = W, .C = C, .n_live = W};
    const size_t w = (size_t)W;
    c->live = malloc(w);
    c->clock = calloc(w, sizeof *c->clock);
    c->recv = calloc(w, sizeof *c->recv);
    c->got = calloc(w * (size_t)C, 1);
    c->pushed = calloc(w, 1);
    c->cnt = calloc((size_t)C, sizeof *c->cnt);
    if (!c->live || !c->clock || !c->recv || !c->got || !c->pushed || !c->cnt) {
        ldn_cons_destroy(&c);
        return NULL;
    }
    memset(c->live, 1, w);
    return c;
}

void ldn_cons_destroy(struct ldn_cons **pc)
{
    if (!pc || !*pc)
        return;
    struct ldn_cons *c = *pc;
    free(c->live);
    free(c->clock);
    free(c->recv);
    free(c->got);
    free(c->pushed);
    free(c->cnt);
    free(c);
    *pc = NULL;
}

void ldn_cons_start_at(struct ldn_cons *c, int64_t step)
{
    c->step = step;
    for (int w = 0; w < c->W; w++)
        c->clock[w] = step;
}

int64_t ldn_cons_expected(const struct ldn_cons *c, int w)
{
    return c->mode == LDN_BSP ? c->step : c->clock[w];
}

int ldn_cons_has(const struct ldn_cons *c, int w, int k)
{
    return c->got[(size_t)w * (size_t)c->C + (size_t)k];
}

/* Worker w's chunk k of the open bsp step counts (a live worker only). */
static int count_in(struct ldn_cons *c, int w, int k)
{
    if (!c->live[w])
        return 0;
    ++c->cnt[k];
    return ldn_cons_ready(c, k) ? LDN_CONS_READY : 0;
}

int ldn_cons_push(struct ldn_cons *c, int w, int k, double now)
{
    char *got = c->got + (size_t)w * (size_t)c->C;
    const int bsp = c->mode == LDN_BSP;
    int flags = 0;
    got[k] = 1;
    c->pushed[w] = 1;
    if (++c->recv[w] == c->C) { /* the worker's whole push of this clock is in */
        c->recv[w] = 0;
        c->clock[w]++;
        flags |= LDN_CONS_CLOCKED;
        if (!bsp)
            memset(got, 0, (size_t)c->C);
    }
    if (bsp) {
        if (c->n_pending++ == 0)
            c->pending_since = now;
        flags |= count_in(c, w, k);
    }
    return flags;
}

int ldn_cons_clock_ok(const struct ldn_cons *c, int w, int64_t step)
{
    /* under bsp a worker that already pushed (or clocked) this step has moved past it */
    return step == ldn_cons_expected(c, w) && c->clock[w] == step && c->recv[w] == 0;
}

void ldn_cons_clock(struct ldn_cons *c, int w, double now)
{
    c->clock[w]++;
    if (c->mode != LDN_BSP)
        return;
    if (c->n_pending++ == 0)
        c->pending_since = now;
    for (int k = 0; k < c->C; k++) {
        c->got[(size_t)w * (size_t)c->C + (size_t)k] = 1;
        count_in(c, w, k);
    }
}

int ldn_cons_ready(const struct ldn_cons *c, int k)
{
    return c->mode == LDN_BSP && c->n_live > 0 && c->cnt[k] == c->n_live;
}

int ldn_cons_applied(struct ldn_cons *c, int k)
{
    c->cnt[k] = 0; /* every live worker's chunk k is in: no more can come this step */
    if (++c->applied_in_step < c->C)
        return 0;
    c->applied_in_step = 0;
    c->n_pending = 0;
    c->step++;
    memset(c->got, 0, (size_t)c->W * (size_t)c->C);
    memset(c->pushed, 0, (size_t)c->W);
    return 1;
}

int ldn_cons_in_step(const struct ldn_cons *c, int w)
{
    return c->live[w] && c->pushed[w];
}

int ldn_cons_step_open(const struct ldn_cons *c, double *since)
{
    if (since)
        *since = c->pending_since;
    return c->n_pending > 0;
}

int64_t ldn_cons_min_clock(const struct ldn_cons *c)
{
    int64_t m = INT64_MAX;
    for (int w = 0; w < c->W; w++)
        if (c->live[w] && c->clock[w] < m)
            m = c->clock[w];
    return m;
}

int ldn_cons_may_serve(const struct ldn_cons *c, int w, int64_t clock)
{
    if (c->clock[w] < clock)
        return 0;
    return c->mode != LDN_SSP || ldn_cons_min_clock(c) >= clock - c->staleness;
}

int ldn_cons_settled(const struct ldn_cons *c, int64_t step)
{
    if (c->mode == LDN_BSP)
        return c->step >= step && c->n_pending == 0;
    return ldn_cons_min_clock(c) >= step;
}

int ldn_cons_remove(struct ldn_cons *c, int w)
{
    if (!c->live[w])
        return 0;
    c->live[w] = 0;
    c->n_live--;
    if (c->mode == LDN_BSP)
        for (int k = 0; k < c->C; k++)
            if (c->cnt[k] > 0 && c->got[(size_t)w * (size_t)c->C + (size_t)k])
                c->cnt[k]--;
    return 1;
}

void ldn_cons_missing(const struct ldn_cons *c, const int *ranks, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int w = 0; w < c->W && off + 16 < len; w++) {
        if (!c->live[w])
            continue;
        const char *got = c->got + (size_t)w * (size_t)c->C;
        int all = 1;
        for (int k = 0; k < c->C; k++)
            all &= got[k];
        if (!all)
            off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? ", " : "", ranks[w]);
    }
}
