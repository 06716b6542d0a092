/* The parameter store of one server: weights, optimizer state, versions, mask. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "net.h"
#include "prune.h"
#include "status.h"

struct ldn_store *ldn_store_new(const struct ldn_store_opts *o, char *err, size_t errlen)
{
    int C = 0;
    for (int k = 0; k < o->n_chunks; k++)
        C += o->chunks[k].lo >= o->lo && o->chunks[k].hi <= o->hi;
    if (C == 0) {
        ldn_fail(err, errlen, LDN_ERR_INTERNAL, "ps %d: no chunk in [%lld, %lld)", o->rank,
                 (long long)o->lo, (long long)o->hi);
        return NULL;
    }
    struct ldn_store *st = calloc(1, sizeof *st);
    if (!st)
        goto nomem;
    *st = (struct ldn_store){.rank = o->rank,
                             .lo = o->lo,
                             .hi = o->hi,
                             .n = o->hi - o->lo,
                             .C = C,
                             .first_chunk = -1,
                             .n_chunks_total = o->n_chunks,
                             .timeout_s = o->timeout_s};
    st->params = malloc(sizeof(float) * (size_t)st->n);
    st->opt = ldn_optim_new(&o->optim, st->n);
    st->chunks = malloc(sizeof *st->chunks * (size_t)C);
    st->version = calloc((size_t)C, sizeof *st->version);
    st->inflight = calloc((size_t)C, sizeof *st->inflight);
    if (!st->params || !st->opt || !st->chunks || !st->version || !st->inflight)
        goto nomem;
    memcpy(st->params, o->init, sizeof(float) * (size_t)st->n);
    int c = 0;
    for (int k = 0; k < o->n_chunks; k++)
        if (o->chunks[k].lo >= o->lo && o->chunks[k].hi <= o->hi) {
            if (st->first_chunk < 0)
                st->first_chunk = k;
            st->chunks[c] = o->chunks[k];
            st->chunks[c].lo -= o->lo;
            st->chunks[c].hi -= o->lo;
            c++;
        }
    return st;
nomem:
    ldn_store_destroy(&st);
    ldn_fail(err, errlen, LDN_ERR_NOMEM, "ps %d: out of memory for %lld keys", o->rank,
             (long long)(o->hi - o->lo));
    return NULL;
}

void ldn_store_destroy(struct ldn_store **pst)
{
    if (!pst || !*pst)
        return;
    struct ldn_store *st = *pst;
    int in_use = 0;
    if (st->inflight)
        for (int k = 0; k < st->C; k++)
            in_use |= ldn_net_wait_sent(&st->inflight[k], st->timeout_s) != 0;
    if (in_use)
        LDN_WARN("ps %d: ZeroMQ still holds weights at shutdown; leaving them allocated", st->rank);
    else {
        free(st->params);
        free(st->inflight);
    }
    ldn_optim_destroy(&st->opt);
    free(st->chunks);
    free(st->version);
    free(st->mask);
    free(st->mask_f);
    free(st);
    *pst = NULL;
}

int ldn_store_chunk_of(const struct ldn_store *st, uint64_t lo, uint64_t hi)
{
    if (lo < (uint64_t)st->lo || lo >= (uint64_t)st->hi)
        return -1;
    int k = ldn_keyspace_find_chunk(st->chunks, st->C, (int64_t)lo - st->lo);
    return k >= 0 && hi == (uint64_t)(st->lo + st->chunks[k].hi) ? k : -1;
}

/* Chunk k's weights are about to change: wait for ZeroMQ to finish sending them. Under bsp
 * every answer was received before the next pushes could come, so this does not wait. */
static int before_update(const struct ldn_store *st, int k)
{
    if (ldn_net_wait_sent(&st->inflight[k], st->timeout_s) == 0)
        return 0;
    LDN_ERROR("ps %d: ZeroMQ did not finish sending chunk [%lld, %lld) within %.0f s", st->rank,
              (long long)(st->lo + st->chunks[k].lo), (long long)(st->lo + st->chunks[k].hi),
              st->timeout_s);
    return LDN_ERR_TIMEOUT;
}

/* Masked key i after an update: it must still be zero (its gradient and state are); a key that
 * moved is counted and put back. */
static inline void hold_masked(struct ldn_store *st, int64_t i)
{
    if (!st->mask[i] && st->params[i] != 0.0f) {
        st->mask_changes++;
        st->params[i] = 0.0f;
    }
}

int ldn_store_update(struct ldn_store *st, int k, float *grad, double lr)
{
    const struct ldn_chunk *c = &st->chunks[k];
    int rc = before_update(st, k);
    if (rc)
        return rc;
    if (st->mask)
        ldn_prune_zero(st->mask + c->lo, grad + c->lo, c->hi - c->lo);
    ldn_optim_update(st->opt, st->params, grad, c->lo, c->hi, st->version[k] + 1, lr);
    if (st->mask)
        for (int64_t i = c->lo; i < c->hi; i++)
            hold_masked(st, i);
    st->version[k]++;
    return 0;
}

int ldn_store_update_keys(struct ldn_store *st, int k, float *grad, const uint32_t *keys, int64_t m,
                          double lr)
{
    int rc = before_update(st, k);
    if (rc)
        return rc;
    if (st->mask)
        for (int64_t j = 0; j < m; j++)
            if (!st->mask[keys[j]])
                grad[keys[j]] = 0.0f;
    ldn_optim_update_keys(st->opt, st->params, grad, keys, m, lr);
    if (st->mask)
        for (int64_t j = 0; j < m; j++)
            hold_masked(st, keys[j]);
    st->version[k]++;
    return 0;
}

int ldn_store_skip(struct ldn_store *st, int k)
{
    int rc = before_update(st, k);
    if (rc == 0)
        st->version[k]++;
    return rc;
}

void ldn_store_start_at(struct ldn_store *st, int64_t step)
{
    for (int k = 0; k < st->C; k++)
        st->version[k] = step;
}

int ldn_store_set_mask(struct ldn_store *st, const uint8_t *keep)
{
    if (!keep) {
        free(st->mask);
        st->mask = NULL;
        return 0;
    }
    if (!st->mask && !(st->mask = malloc((size_t)st->n)))
        return LDN_ERR_NOMEM;
    if (!st->mask_f && !(st->mask_f = malloc(sizeof(float) * (size_t)st->n)))
        return LDN_ERR_NOMEM;
    for (int k = 0; k < st->C; k++) { /* the weights change: as in an update */
        int rc = before_update(st, k);
        if (rc)
            return rc;
    }
    for (int64_t i = 0; i < st->n; i++) {
        st->mask[i] = keep[i] != 0;
        if (keep[i])
            continue;
        st->params[i] = 0.0f;
        if (st->opt->m)
            st->opt->m[i] = 0.0f;
        if (st->opt->v)
            st->opt->v[i] = 0.0f;
    }
    return 0;
}

int64_t ldn_store_masked(const struct ldn_store *st)
{
    int64_t m = 0;
    if (st->mask)
        for (int64_t i = 0; i < st->n; i++)
            m += !st->mask[i];
    return m;
}

int ldn_store_ckpt_items(const struct ldn_store *st, const struct ldn_nn *trunk,
                         struct ldn_ckpt_items *it)
{
    int rc = ldn_ckpt_add_net(it, trunk, "/trunk", st->params, st->lo, st->hi);
    if (rc == 0 && st->opt->m)
        rc = ldn_ckpt_add_net(it, trunk, "/optimizer/m/trunk", st->opt->m, st->lo, st->hi);
    if (rc == 0 && st->opt->v)
        rc = ldn_ckpt_add_net(it, trunk, "/optimizer/v/trunk", st->opt->v, st->lo, st->hi);
    if (rc == 0)
        rc = ldn_ckpt_add_rows(it, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, st->n_chunks_total,
                               1, st->first_chunk, st->C, st->version);
    if (rc == 0 && st->mask)
        rc = ldn_prune_ckpt_add(it, trunk, st->mask, st->mask_f, st->lo, st->hi);
    return rc;
}

int ldn_store_resume(struct ldn_store *st, const struct ldn_ckpt *ck, const struct ldn_nn *trunk,
                     int skip_m, int servers, char *err, size_t errlen)
{
    const int64_t lo = st->lo, hi = st->hi;
    int rc = ldn_ckpt_read_net(ck, trunk, "/trunk", st->params, lo, hi, err, errlen);
    if (rc == 0 && st->opt->m && !skip_m)
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/m/trunk", st->opt->m, lo, hi, err, errlen);
    if (rc == 0 && st->opt->v)
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/v/trunk", st->opt->v, lo, hi, err, errlen);
    if (rc)
        return rc;
    if (ldn_ckpt_has(ck, "/prune/trunk/0/weight")) {
        uint8_t *keep = malloc((size_t)st->n);
        float *buf = malloc(sizeof(float) * (size_t)st->n);
        rc = keep && buf ? ldn_prune_ckpt_read(ck, trunk, keep, buf, lo, hi, err, errlen)
                         : ldn_fail(err, errlen, LDN_ERR_NOMEM, "ps %d: out of memory", st->rank);
        if (rc == 1 && (rc = ldn_store_set_mask(st, keep)) != 0)
            ldn_fail(err, errlen, rc, "ps %d: setting the checkpoint's mask failed", st->rank);
        free(keep);
        free(buf);
        if (rc < 0)
            return rc;
    }
    int nd;
    int64_t dims[2];
    if (ldn_ckpt_shape(ck, "/optimizer/trunk_updates", &nd, dims, NULL, 0) == 0 && nd == 1 &&
        dims[0] == st->n_chunks_total && ck->n_servers == servers)
        return ldn_ckpt_read_counts(ck, "/optimizer/trunk_updates", dims, st->first_chunk, st->C,
                                    st->version, err, errlen);
    ldn_store_start_at(st, ck->step);
    return 0;
}
