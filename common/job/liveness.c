/* Liveness: names of ranks, silence tracking, the record of lost workers. */
#include "liveness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"

#define LOST_MAX 65536

struct ldn_liveness {
    int n;
    double timeout_s;
    double *last; /* [n] */
};

static char lost_ranks[LOST_MAX];
static int n_lost;

double ldn_liveness_timeout(const struct ldn_config *cfg)
{
    return cfg->liveness_s < cfg->timeout_s ? cfg->liveness_s : cfg->timeout_s;
}

const char *ldn_liveness_name(const struct ldn_job *job, int rank, char *buf, size_t len)
{
    const char *host = job->hosts && rank >= 0 && rank < job->world ? job->hosts[rank] : "?";
    if (rank == 0) {
        snprintf(buf, len, "the coordinator (rank 0, host %s)", host);
        return buf;
    }
    int role = rank > 0 && rank < job->world ? (int)ldn_plan_role(job->plan, rank) : -1;
    if (role == LDN_ROLE_SERVER) {
        snprintf(buf, len, "server rank %d (host %s)", rank, host);
        return buf;
    }
    if (role != LDN_ROLE_WORKER) {
        snprintf(buf, len, "rank %d", rank);
        return buf;
    }
    int g = job->plan->group_of_rank[rank];
    const struct ldn_group *gr = &job->plan->groups[g];
    char tasks[160] = "";
    size_t off = 0;
    for (int i = 0; i < gr->n_tasks && off + 40 < sizeof tasks; i++)
        off += (size_t)snprintf(tasks + off, sizeof tasks - off, "%s%s", i ? "," : "",
                                job->cfg->tasks[gr->tasks[i]].name);
    snprintf(buf, len, "worker rank %d (group %d: task%s %s; host %s)", rank, g,
             gr->n_tasks > 1 ? "s" : "", tasks, host);
    return buf;
}

struct ldn_liveness *ldn_liveness_new(int n, double timeout_s, double now)
{
    struct ldn_liveness *l = calloc(1, sizeof *l);
    if (!l || !(l->last = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)))) {
        free(l);
        return NULL;
    }
    l->n = n;
    l->timeout_s = timeout_s;
    for (int r = 0; r < n; r++)
        l->last[r] = now;
    return l;
}

void ldn_liveness_destroy(struct ldn_liveness **l)
{
    if (!l || !*l)
        return;
    free((*l)->last);
    free(*l);
    *l = NULL;
}

void ldn_liveness_seen(struct ldn_liveness *l, int r, double now)
{
    if (r >= 0 && r < l->n)
        l->last[r] = now;
}

double ldn_liveness_silent(const struct ldn_liveness *l, int r, double now)
{
    return r >= 0 && r < l->n ? now - l->last[r] : 0.0;
}

int ldn_liveness_expired(const struct ldn_liveness *l, int lo, int hi, double now)
{
    for (int r = lo < 0 ? 0 : lo; r < hi && r < l->n; r++)
        if (!ldn_liveness_is_lost(r) && now - l->last[r] > l->timeout_s)
            return r;
    return -1;
}

int ldn_liveness_note_lost(int r)
{
    if (r < 0 || r >= LOST_MAX || lost_ranks[r])
        return 0;
    lost_ranks[r] = 1;
    n_lost++;
    return 1;
}

int ldn_liveness_is_lost(int r)
{
    return r >= 0 && r < LOST_MAX && lost_ranks[r];
}

int ldn_liveness_lost_count(void)
{
    return n_lost;
}

const char *ldn_liveness_lost_list(char *buf, size_t len)
{
    size_t off = 0;
    if (len)
        buf[0] = '\0';
    for (int r = 0; r < LOST_MAX && off + 16 < len; r++)
        if (lost_ranks[r])
            off += (size_t)snprintf(buf + off, len - off, "%s%d", off ? ", " : "", r);
    return buf;
}

void ldn_liveness_reset_lost(void)
{
    memset(lost_ranks, 0, sizeof lost_ranks);
    n_lost = 0;
}

int ldn_liveness_recovery_on(void)
{
    const char *e = getenv("OMPI_MCA_orte_enable_recovery");
    return e && (!strcmp(e, "1") || !strcmp(e, "true") || !strcmp(e, "yes"));
}
