/* The coordinator's part of ps.affinity: the servers' partials summed into cosines. */
#include "affinity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "job.h"
#include "metrics.h"
#include "net.h"
#include "status.h"

/* Server rank 1 + s's answer to the affinity request of `step`, added into dots and counts.
 * Frames may sit at any byte offset: copied value by value. */
static int recv_one(const struct ldn_job *job, void *sock, int s, int64_t step, int G, int L,
                    double *dots, uint64_t *counts, int64_t *from, int64_t *to, char *err,
                    size_t errlen)
{
    const double timeout = job->cfg->timeout_s;
    const double deadline = ldn_clock_now() + timeout;
    const size_t GG = (size_t)G * (size_t)G, nd = GG * (size_t)L;
    while (ldn_clock_now() < deadline) {
        struct ldn_msg m;
        char why[LDN_ERRLEN];
        if (ldn_net_recv(sock, 0, &m, 200, why, sizeof why) != 0)
            continue;
        const struct ldn_wire_affinity *h = &m.hdr.affinity;
        if (m.hdr.op == LDN_OP_ERROR) {
            ldn_msg_close(&m);
            return ldn_fail(err, errlen, LDN_ERR_PEER, "server rank %d: %s", 1 + s,
                            m.hdr.error.msg);
        }
        if (m.hdr.op != LDN_OP_AFFINITY || h->step != step) {
            ldn_msg_close(&m);
            continue;
        }
        int ok = h->groups == (uint32_t)G && h->layers == (uint32_t)L && m.nframes == 2 &&
                 m.hdr.lens[0] == nd * sizeof(double) && m.hdr.lens[1] == GG * sizeof(uint64_t);
        const char *pd = ok ? zmq_msg_data(&m.frames[0]) : NULL;
        const char *pc = ok ? zmq_msg_data(&m.frames[1]) : NULL;
        for (size_t i = 0; ok && i < nd; i++) {
            double v;
            memcpy(&v, pd + i * sizeof v, sizeof v);
            ok = isfinite(v);
            dots[i] += v;
        }
        for (size_t i = 0; ok && i < GG; i++) {
            uint64_t v;
            memcpy(&v, pc + i * sizeof v, sizeof v);
            if (s == 0)
                counts[i] = v; /* every server counts the same steps */
            else
                ok = counts[i] == v;
        }
        if (ok && s == 0) {
            *from = h->from;
            *to = h->to;
        } else if (ok)
            ok = *from == h->from && *to == h->to;
        ldn_msg_close(&m);
        return ok ? 0
                  : ldn_fail(err, errlen, LDN_ERR_PEER,
                             "server rank %d: affinity of step %lld is not %d groups x %d layers "
                             "of finite values over the other servers' window",
                             1 + s, (long long)step, G, L);
    }
    return ldn_fail(err, errlen, LDN_ERR_TIMEOUT,
                    "server rank %d did not answer the affinity request of step %lld within "
                    "%.0f s (ps.timeout)",
                    1 + s, (long long)step, timeout);
}

/* The affinity row: cosines of the summed partials; a group of one task is called by its
 * task, others "group<g>" with their tasks listed. */
static int write_row(const struct ldn_job *job, int64_t step, double epoch, int64_t from,
                     int64_t to, const double *dots, const uint64_t *counts, FILE *const *out,
                     int n_out)
{
    const struct ldn_plan *p = job->plan;
    const int G = p->n_groups, L = job->trunk->n_layers;
    const size_t GG = (size_t)G * (size_t)G;
    double *sum = malloc(sizeof *sum * GG * (size_t)(L + 1));
    double *cos = malloc(sizeof *cos * GG * (size_t)(L + 1));
    char(*names)[32] = malloc(sizeof *names * (size_t)G);
    const char **gname = malloc(sizeof *gname * (size_t)G);
    const char **tnames = malloc(sizeof *tnames * (size_t)job->cfg->n_tasks);
    const char *const **tasks = malloc(sizeof *tasks * (size_t)G);
    int *nt = malloc(sizeof *nt * (size_t)G);
    int rc = LDN_ERR_NOMEM;
    if (sum && cos && names && gname && tnames && tasks && nt) {
        ldn_affinity_total(dots, G, L, sum);
        for (int l = 0; l <= L; l++)
            ldn_affinity_cosine(sum + (size_t)l * GG, G, cos + (size_t)l * GG);
        for (int t = 0; t < job->cfg->n_tasks; t++)
            tnames[t] = job->cfg->tasks[t].name;
        for (int g = 0; g < G; g++) {
            nt[g] = p->groups[g].n_tasks;
            snprintf(names[g], sizeof names[g], "group%d", g);
            gname[g] = nt[g] == 1 ? job->cfg->tasks[p->groups[g].tasks[0]].name : names[g];
        }
        rc = 0;
    }
    /* the tasks of each group, as pointers into a flat array ordered by group */
    const char **flat = rc == 0 ? malloc(sizeof *flat * (size_t)job->cfg->n_tasks) : NULL;
    if (rc == 0 && !flat)
        rc = LDN_ERR_NOMEM;
    if (rc == 0) {
        size_t at = 0;
        for (int g = 0; g < G; g++) {
            tasks[g] = flat + at;
            for (int t = 0; t < nt[g]; t++)
                flat[at++] = tnames[p->groups[g].tasks[t]];
        }
        struct ldn_affinity_record r = {.step = step,
                                        .from = from,
                                        .to = to,
                                        .epoch = epoch,
                                        .G = G,
                                        .n_layers = L,
                                        .group_names = gname,
                                        .n_group_tasks = nt,
                                        .tasks = tasks,
                                        .cos = cos,
                                        .together = counts};
        for (int i = 0; i < n_out && rc == 0; i++)
            if (out[i])
                rc = ldn_metrics_write_affinity(out[i], &r);
    }
    free(flat);
    free(sum);
    free(cos);
    free(names);
    free(gname);
    free(tnames);
    free(tasks);
    free(nt);
    return rc;
}

int ldn_affinity_gather(const struct ldn_job *job, void *const *servers, int64_t step, double epoch,
                        FILE *const *out, int n_out, char *err, size_t errlen)
{
    const int G = job->plan->n_groups, L = job->trunk->n_layers, S = job->plan->n_servers;
    const size_t GG = (size_t)G * (size_t)G;
    double *dots = calloc(GG * (size_t)L, sizeof *dots);
    uint64_t *counts = calloc(GG, sizeof *counts);
    int64_t from = 0, to = 0;
    int rc = dots && counts ? 0 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "affinity: out of memory");
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_AFFINITY_REQUEST, 0);
    h.affinity_request.step = step;
    for (int s = 0; s < S && rc == 0; s++)
        if (ldn_net_send(servers[s], NULL, 0, &h, NULL, err, errlen) < 0)
            rc = LDN_ERR_IO;
    for (int s = 0; s < S && rc == 0; s++)
        rc = recv_one(job, servers[s], s, step, G, L, dots, counts, &from, &to, err, errlen);
    if (rc == 0 && write_row(job, step, epoch, from, to, dots, counts, out, n_out) != 0)
        rc = ldn_fail(err, errlen, LDN_ERR_IO, "affinity: writing metrics.jsonl failed");
    free(dots);
    free(counts);
    return rc;
}
