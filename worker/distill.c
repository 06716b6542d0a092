/* A distillation round on a distributed worker. */
#include "distill.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rng.h"
#include "status.h"

/* The random stream of step `step`'s extra rows on shard `shard` (far above the batch and
 * initialisation streams). */
#define LDN_STREAM_DISTILL (1ull << 40)

void ldn_wdistill_deinit(struct ldn_wdistill *D)
{
    ldn_teacher_deinit(&D->teacher);
    for (int t = 0; D->rows && D->owned && t < D->n_tasks; t++)
        if (D->owned[t])
            ldn_dataset_destroy(&D->rows[t]);
    free(D->rows);
    free(D->owned);
    free(D->soft);
    free(D->no_label);
    free(D->idx);
    memset(D, 0, sizeof *D);
}

int ldn_wdistill_init(struct ldn_wdistill *D, const struct ldn_job *job, int shard, int nshards,
                      struct ldn_dataset *const *train, int batch, void (*tick)(void *),
                      void *tick_ud, char *err, size_t errlen)
{
    memset(D, 0, sizeof *D);
    const struct ldn_config *cfg = job->cfg;
    const struct ldn_round_config *rc = &job->run_cfg->rounds[job->round_index];
    const int n = cfg->n_tasks;
    D->rc = rc;
    D->n_tasks = n;
    D->features = job->features;
    D->shard = shard;
    D->seed = cfg->seed;
    D->total_steps = job->total_steps;
    const int all = rc->teacher.inputs == LDN_TEACHER_ALL && n > 1;
    int max_classes = 1;
    for (int t = 0; t < n; t++)
        max_classes = job->classes[t] > max_classes ? job->classes[t] : max_classes;
    D->rows = calloc((size_t)n, sizeof *D->rows);
    D->owned = calloc((size_t)n, 1);
    char *heads = calloc((size_t)n, 1);
    struct ldn_dataset **none = calloc((size_t)n, sizeof *none);
    D->soft = malloc(sizeof(float) * 2 * (size_t)batch * (size_t)max_classes);
    D->no_label = malloc(sizeof(int32_t) * (size_t)batch);
    D->idx = malloc(sizeof(int64_t) * (size_t)batch);
    int rc_ = D->rows && D->owned && heads && none && D->soft && D->no_label && D->idx
                  ? 0
                  : ldn_fail(err, errlen, LDN_ERR_NOMEM, "rounds.%s: out of memory", rc->name);
    for (int i = 0; rc_ == 0 && i < batch; i++)
        D->no_label[i] = -1;
    for (int t = 0; rc_ == 0 && t < n; t++) {
        heads[t] = train[t] != NULL;
        D->rows[t] = train[t];
        if (!train[t] && all) {
            D->rows[t] = ldn_dataset_load(cfg->tasks[t].file, "train", shard, nshards, err, errlen);
            D->owned[t] = D->rows[t] != NULL;
            if (!D->rows[t])
                rc_ = LDN_ERR_FORMAT;
        }
    }
    if (rc_ == 0) {
        const struct ldn_teacher_data d = {.train = D->rows,
                                           .test = none,
                                           .classes = job->classes,
                                           .features = job->features,
                                           .heads = heads,
                                           .tick = tick,
                                           .tick_ud = tick_ud};
        rc_ = ldn_teacher_build(&D->teacher, cfg, rc->name, &rc->teacher, job->round_members, &d,
                                err, errlen);
    }
    free(heads);
    free(none);
    if (rc_) {
        ldn_wdistill_deinit(D);
        return rc_;
    }
    ldn_teacher_log_targets(&D->teacher, rc->name, &rc->teacher);
    if (D->teacher.all && n > 1)
        LDN_INFO("round %s: teacher.inputs: all: each step also trains its head on %d rows of "
                 "another task's inputs (this worker's shard of them), distillation term only",
                 rc->name, batch);
    return 0;
}

int ldn_wdistill_gather_extra(struct ldn_wdistill *D, int t, int64_t step,
                              struct ldn_batch_buf *buf, int b)
{
    if (!D->teacher.all || D->n_tasks < 2)
        return 0;
    const int k = (int)(step % (D->n_tasks - 1));
    const int u = k < t ? k : k + 1; /* the tasks other than t in turn */
    const struct ldn_dataset *rows = D->rows[u];
    if (!rows || rows->n == 0)
        return 0;
    struct ldn_rng r;
    ldn_rng_init(&r, D->seed, LDN_STREAM_DISTILL + (uint64_t)step * 4096u + (uint64_t)D->shard);
    for (int i = 0; i < b; i++)
        D->idx[i] = (int64_t)ldn_rng_below(&r, (uint64_t)rows->n);
    ldn_batch_gather(buf, b, rows->x, NULL, D->idx, b, D->features);
    D->extra_task = u;
    return b;
}

double ldn_wdistill_alpha(const struct ldn_wdistill *D, int64_t step)
{
    return ldn_distill_alpha_at(D->rc->teacher.annealing, D->rc->teacher.alpha, step, 0,
                                D->total_steps);
}

double ldn_wdistill_loss(struct ldn_wdistill *D, int t, int64_t step, const float *z,
                         const int64_t *idx, int b, int extra, struct ldn_batch_buf *buf,
                         float weight, int64_t *correct, struct ldn_distill_report *rep)
{
    const int c = D->teacher.classes[t];
    const float temp = (float)D->rc->teacher.temperature,
                alpha = (float)ldn_wdistill_alpha(D, step);
    ldn_teacher_rows(&D->teacher, t, t, idx, buf->x, b, D->soft);
    double loss =
        ldn_loss_distill_ex(z, D->soft, buf->y, b, c, temp, alpha, weight, buf->dz, correct, rep);
    if (extra > 0) {
        const int64_t off = (int64_t)b * c;
        ldn_teacher_rows(&D->teacher, D->extra_task, t, D->idx, buf->x + (int64_t)b * D->features,
                         extra, D->soft + off);
        ldn_loss_distill(z + off, D->soft + off, D->no_label, extra, c, temp, alpha, weight,
                         buf->dz + off, NULL);
    }
    return loss;
}
