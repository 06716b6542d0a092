/* The run's phase list. */
#include "phases.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "prune.h"
#include "status.h"

const char *ldn_phase_name(enum ldn_phase_kind k)
{
    static const char *names[LDN_PHASE_KINDS] = {"train", "eval", "checkpoint",
                                                 "plan",  "stop", "prune"};
    return k >= 0 && k < LDN_PHASE_KINDS ? names[k] : "phase?";
}

static int push(struct ldn_phases *p, int *cap, struct ldn_phase ph, char *err, size_t errlen)
{
    if (p->n == *cap) {
        int ncap = *cap ? 2 * *cap : 16;
        struct ldn_phase *g = realloc(p->list, sizeof *g * (size_t)ncap);
        if (!g)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "phase list: out of memory");
        p->list = g;
        *cap = ncap;
    }
    p->list[p->n++] = ph;
    return LDN_OK;
}

/* The next multiple of `period` after `from` (period > 0). */
static int64_t next_multiple(int64_t from, int64_t period)
{
    return (from / period + 1) * period;
}

int ldn_phases_build(const struct ldn_config *cfg, int64_t steps_per_epoch, int64_t total_steps,
                     int64_t start, struct ldn_phases *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (start < 0 || start > total_steps)
        return ldn_fail(err, errlen, LDN_ERR_ARG, "start step %lld is outside the run [0, %lld]",
                        (long long)start, (long long)total_steps);
    int64_t eval = (int64_t)llround(cfg->eval_every * (double)steps_per_epoch);
    out->eval_period = eval < 1 ? 1 : eval;
    out->total_steps = total_steps;
    const struct ldn_ckpt_config *ck = &cfg->ckpt;
    /* with checkpoint.every_minutes, phases end at least at every log mark: the clock is
     * looked at there */
    const int64_t look =
        ck->every_minutes > 0 ? (cfg->log_every > 0 ? cfg->log_every : out->eval_period) : 0;
    int cap = 0, rc = 0;
    for (int64_t from = start; from < total_steps && rc == 0;) {
        int64_t to = next_multiple(from, out->eval_period);
        if (ck->every_steps > 0 && next_multiple(from, ck->every_steps) < to)
            to = next_multiple(from, ck->every_steps);
        if (look > 0 && next_multiple(from, look) < to)
            to = next_multiple(from, look);
        /* dwa: the coordinator turns each finished epoch's losses into the next weights */
        if (cfg->weighting.method == LDN_WEIGHT_DWA && next_multiple(from, steps_per_epoch) < to)
            to = next_multiple(from, steps_per_epoch);
        if (to > total_steps)
            to = total_steps;
        rc = push(out, &cap, (struct ldn_phase){LDN_PHASE_TRAIN, from, to, 0, 0}, err, errlen);
        if (rc == 0 && (to % out->eval_period == 0 || to == total_steps))
            rc = push(out, &cap, (struct ldn_phase){LDN_PHASE_EVAL, to, to, 0, 0}, err, errlen);
        int always =
            (ck->every_steps > 0 && to % ck->every_steps == 0) || (ck->final && to == total_steps);
        if (rc == 0 && (always || ck->every_minutes > 0))
            rc = push(out, &cap, (struct ldn_phase){LDN_PHASE_CKPT, to, to, !always, 0}, err,
                      errlen);
        from = to;
    }
    if (rc == 0)
        rc = push(out, &cap, (struct ldn_phase){LDN_PHASE_STOP, total_steps, total_steps, 0, 0},
                  err, errlen);
    for (int64_t t = start; t < total_steps && rc == 0 && ldn_prune_on(&cfg->prune); t++)
        if (ldn_prune_is_step(&cfg->prune, total_steps, t))
            rc = ldn_phases_insert(out, &(struct ldn_phase){.kind = LDN_PHASE_PRUNE, .to = t}, err,
                                   errlen);
    if (rc)
        ldn_phases_deinit(out);
    return rc;
}

void ldn_phases_deinit(struct ldn_phases *p)
{
    free(p->list);
    p->list = NULL;
    p->n = 0;
}

int ldn_phases_insert(struct ldn_phases *p, const struct ldn_phase *ph, char *err, size_t errlen)
{
    const int64_t at = ph->to;
    int i = 0; /* the TRAIN phase holding step `at` as its end, or inside it */
    while (i < p->n && !(p->list[i].kind == LDN_PHASE_TRAIN && p->list[i].to >= at))
        i++;
    if (i == p->n || p->list[i].from > at || at >= p->total_steps)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "a %s phase at step %lld is outside the steps this run trains",
                        ldn_phase_name(ph->kind), (long long)at);
    int split = p->list[i].to > at && p->list[i].from < at;
    int grow = 1 + split;
    struct ldn_phase *g = realloc(p->list, sizeof *g * (size_t)(p->n + grow));
    if (!g)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "phase list: out of memory");
    p->list = g;
    /* where the new phase goes: after train [.., at) and whatever follows it at that step */
    int pos;
    if (split) {
        memmove(&g[i + 3], &g[i + 1], sizeof *g * (size_t)(p->n - i - 1));
        g[i + 2] = g[i];
        g[i + 2].from = at;
        g[i].to = at;
        pos = i + 1;
    } else if (p->list[i].from == at) { /* at the very start: before that TRAIN phase */
        memmove(&g[i + 1], &g[i], sizeof *g * (size_t)(p->n - i));
        pos = i;
    } else {
        pos = i + 1;
        while (pos < p->n && g[pos].kind != LDN_PHASE_TRAIN && g[pos].kind != LDN_PHASE_STOP)
            pos++;
        memmove(&g[pos + 1], &g[pos], sizeof *g * (size_t)(p->n - pos));
    }
    g[pos] = *ph;
    g[pos].from = at;
    p->n += grow;
    return LDN_OK;
}

int ldn_phases_run(const struct ldn_phases *p, const struct ldn_phase_ops *ops, void *ud,
                   double every_minutes, char *err, size_t errlen)
{
    double last_ckpt = ldn_clock_now();
    for (int i = 0; i < p->n; i++) {
        const struct ldn_phase *ph = &p->list[i];
        if (ph->kind == LDN_PHASE_CKPT && ph->if_due &&
            !(every_minutes > 0 && ldn_clock_now() - last_ckpt >= 60 * every_minutes))
            continue;
        ldn_phase_fn *fn = ops->fn[ph->kind];
        int rc = fn ? fn(ud, ph, err, errlen) : 0;
        if (rc)
            return rc;
        if (ph->kind == LDN_PHASE_CKPT)
            last_ckpt = ldn_clock_now();
    }
    return LDN_OK;
}
