/* The consistency rule of one server: which workers a step waits for and when a pull may be
 * answered. Workers are indexed 0..W-1; the step waits for the live set (every worker at
 * first; a worker taken out no longer counts, and what it sent for the open step is
 * dropped).
 *
 *  - bsp: chunk k of the open step is complete when every live worker's chunk k is in (pushed,
 *    or the worker's group sat the step out with a clock); the step is complete when every
 *    chunk has been applied. A pull for clock c gets chunk k once it has c updates.
 *  - ssp: a push is applied when it arrives; worker w's pull for clock c is answered once w's
 *    own c pushes are in and the slowest live worker is within `staleness` clocks of c.
 *  - async: as ssp without the bound.
 *
 * The fields are readable; change them only through the functions below. */
#ifndef LDN_CONSISTENCY_H
#define LDN_CONSISTENCY_H

#include <stdint.h>

#include "config.h"

struct ldn_cons {
    enum ldn_consistency mode;
    int staleness; /* ssp */
    int W, C;      /* workers, chunks held */
    char *live;    /* [W] the step waits for worker w */
    int n_live;
    int64_t *clock;       /* [W] complete pushes (or clocks) received from worker w */
    int *recv;            /* [W] chunks received from worker w for its current clock */
    char *got;            /* [W*C] chunk k of worker w's open step (bsp) or clock is in */
    char *pushed;         /* [W] bsp: worker w pushed (not clocked) in the open step */
    int *cnt;             /* [C] bsp: live workers whose chunk k of the open step is in */
    int64_t step;         /* bsp: steps completed */
    int applied_in_step;  /* bsp: chunks of the open step applied */
    int n_pending;        /* bsp: pushes and clocks received for the open step */
    double pending_since; /* when the first of them arrived */
};

/* A rule for W workers and C chunks, every worker live, at step 0; NULL when out of memory. */
struct ldn_cons *ldn_cons_new(enum ldn_consistency mode, int staleness, int W, int C);
void ldn_cons_destroy(struct ldn_cons **c);
/* Every clock and the step set to `step` (a fresh server at a plan switch, or a resume). */
void ldn_cons_start_at(struct ldn_cons *c, int64_t step);

/* The step worker w's next push is for (bsp: the open step; else w's own clock). */
int64_t ldn_cons_expected(const struct ldn_cons *c, int w);
/* Worker w's chunk k of that step is already in. */
int ldn_cons_has(const struct ldn_cons *c, int w, int k);

enum {
    LDN_CONS_CLOCKED = 1, /* the push completed worker w's clock */
    LDN_CONS_READY = 2    /* bsp: chunk k of the open step is complete */
};
/* Worker w's chunk k arrived (received at time `now`). Returns LDN_CONS_* flags. */
int ldn_cons_push(struct ldn_cons *c, int w, int k, double now);
/* A clock from worker w for `step` may be taken: it is the expected step and w sent no chunk
 * of it. */
int ldn_cons_clock_ok(const struct ldn_cons *c, int w, int64_t step);
/* Worker w's group sat the expected step out: w counts as having pushed every chunk of it,
 * with nothing to add. */
void ldn_cons_clock(struct ldn_cons *c, int w, double now);
/* bsp: chunk k of the open step is complete (every live worker's chunk is in). */
int ldn_cons_ready(const struct ldn_cons *c, int k);
/* bsp: chunk k of the open step was applied. Returns 1 when that completed the step. */
int ldn_cons_applied(struct ldn_cons *c, int k);
/* bsp: worker w's gradient is part of the open step (live, and pushed rather than clocked). */
int ldn_cons_in_step(const struct ldn_cons *c, int w);
/* bsp: some push or clock of the open step is in; *since = when the first arrived. */
int ldn_cons_step_open(const struct ldn_cons *c, double *since);

/* ssp/async: worker w's pull for clock `clock` may be answered now. */
int ldn_cons_may_serve(const struct ldn_cons *c, int w, int64_t clock);
/* The slowest live worker's clock (INT64_MAX with none live). */
int64_t ldn_cons_min_clock(const struct ldn_cons *c);
/* Every push of the steps before `step` is in: bsp, the step is complete and nothing of the
 * next is in; ssp/async, every live worker's clock has reached it. */
int ldn_cons_settled(const struct ldn_cons *c, int64_t step);

/* Take worker w out of the live set; what it sent for the open step no longer counts.
 * Returns 1 when it was live. Chunks may be complete afterwards (ldn_cons_ready). */
int ldn_cons_remove(struct ldn_cons *c, int w);
/* The live workers whose chunks of the open bsp step are missing, as their `ranks` joined by
 * ", " into buf. */
void ldn_cons_missing(const struct ldn_cons *c, const int *ranks, char *buf, size_t len);

#endif
