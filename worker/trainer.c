/* The local (single-process) multi-task trainer. */
#define _POSIX_C_SOURCE 200809L
#include "trainer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckmodel.h"
#include "ckpt.h"
#include "clock.h"
#include "data.h"
#include "jobckpt.h"
#include "log.h"
#include "loss.h"
#include "metrics.h"
#include "model.h"
#include "mtl_weight.h"
#include "optim.h"
#include "phases.h"
#include "prune.h"
#include "rounds.h"
#include "rundir.h"
#include "schedule.h"
#include "status.h"
#include "teacher.h"
#include "weighting.h"

struct task_state {
    int64_t ckpt_state[2]; /* batcher pos, passes, as a checkpoint stores them */
    struct ldn_dataset *train, *test;
    struct ldn_batcher batcher;
    struct ldn_optim *head_opt;
    /* running training statistics since the last evaluation / progress line */
    double loss_sum;
    int64_t correct, seen;
    double kl_sum; /* distillation rounds: sum over rows of T^2 * KL, rows agreeing with it */
    int64_t agree;
    double last_test_acc;
    /* train.task_weighting: the factor of this task's loss at its last step; uncertainty: the
     * learned log-variance s and its optimizer */
    double weight_now;
    float log_var, lv_used; /* lv_used: the one of the last step (weight_now = e^-lv_used) */
    struct ldn_optim *lv_opt;
};

/* PCGrad's stream of random orders: seeded by the step, so a resumed run draws the same. */

/* What a round of a run with rounds adds to a local run (NULL: a run without rounds). */
struct round_run {
    const struct ldn_config *cfg; /* the run's config (with its rounds) */
    int index, n_rounds;          /* 0-based, of n */
    const struct ldn_round_config *rc;
    const char *init;           /* the snapshot the round starts from, or NULL */
    const char *const *members; /* rc->teacher.n_members checkpoint paths */
};

struct local_run {
    const struct ldn_config *cfg;
    int n_tasks;
    struct task_state *tasks;
    struct ldn_model *model;
    struct ldn_optim *trunk_opt;
    struct ldn_schedule sched;
    FILE *metrics;
    struct ldn_batch_buf buf;
    int64_t *idx;
    const struct ldn_phases *phases;
    /* throughput: training time excludes evaluations and checkpoints */
    double t_start, t_mark, train_time, paused;
    int64_t samples, samples_mark;
    double lr; /* of the last step trained */
    const struct round_run *round;
    FILE *run_metrics; /* a run with rounds: the run's metrics.jsonl (every round's records) */
    struct ldn_teacher teacher; /* a distillation round's soft targets */
    int distill;
    float *soft_rows;   /* [batch, max classes]: the batch's soft targets */
    int32_t *no_label;  /* [batch] of -1: rows of another task carry no label for a head */
    double alpha;       /* distillation weight of the last step */
    char *last_metrics; /* the last evaluation's metrics.jsonl rows, stored in checkpoints */
    /* pruning (prune.*): the trunk's mask (NULL until the first mask update or a resume with
     * masks), its units, the share of weights masked, a scratch for checkpoints */
    uint8_t *keep;
    struct ldn_prune_units units;
    int pruned;
    double sparsity;
    float *mask_buf;
    uint64_t init_id; /* of the weights the run started from (every checkpoint records it) */
    /* train.task_weighting and ps.task_gradients (common/nn/mtl_weight.h) */
    int method, pcgrad;
    struct ldn_dwa dwa;
    float *pc_g, *pc_p; /* pcgrad: [n_tasks, trunk params] each task's trunk gradient, projected */
    int *pc_perm;
    double *pc_norm2;
    int64_t pc_projections, pc_pairs; /* since the last evaluation */
};

static void run_free(struct local_run *r)
{
    if (r->tasks)
        for (int t = 0; t < r->n_tasks; t++) {
            ldn_dataset_destroy(&r->tasks[t].train);
            ldn_dataset_destroy(&r->tasks[t].test);
            ldn_batcher_deinit(&r->tasks[t].batcher);
            ldn_optim_destroy(&r->tasks[t].head_opt);
            ldn_optim_destroy(&r->tasks[t].lv_opt);
        }
    free(r->tasks);
    ldn_dwa_deinit(&r->dwa);
    free(r->pc_g);
    free(r->pc_p);
    free(r->pc_perm);
    free(r->pc_norm2);
    ldn_model_destroy(&r->model);
    ldn_optim_destroy(&r->trunk_opt);
    ldn_schedule_deinit(&r->sched);
    if (r->metrics)
        fclose(r->metrics);
    ldn_batch_buf_deinit(&r->buf);
    free(r->idx);
    ldn_teacher_deinit(&r->teacher);
    free(r->soft_rows);
    free(r->last_metrics);
    free(r->no_label);
    free(r->keep);
    free(r->mask_buf);
}

/* Load every task's data and check the tasks agree on the input size. */
static int load_tasks(struct local_run *r, char *err, size_t errlen)
{
    const struct ldn_config *cfg = r->cfg;
    for (int t = 0; t < cfg->n_tasks; t++) {
        struct task_state *ts = &r->tasks[t];
        ts->train = ldn_dataset_load(cfg->tasks[t].file, "train", 0, 1, err, errlen);
        if (!ts->train)
            return LDN_ERR_FORMAT;
        ts->test = ldn_dataset_load(cfg->tasks[t].file, "test", 0, 1, err, errlen);
        if (!ts->test)
            return LDN_ERR_FORMAT;
        if (ts->train->features != r->tasks[0].train->features)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "data %s: task '%s' has %d features but task '%s' has %d; tasks "
                            "sharing a trunk need the same input size",
                            cfg->tasks[t].file, cfg->tasks[t].name, ts->train->features,
                            cfg->tasks[0].name, r->tasks[0].train->features);
        if (ts->test->features != ts->train->features)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "data %s: test split has %d features, train split %d",
                            cfg->tasks[t].file, ts->test->features, ts->train->features);
        if (ldn_batcher_init(&ts->batcher, ts->train->n, cfg->seed,
                             LDN_STREAM_BATCH + (uint64_t)t * 4096u) != 0)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        LDN_INFO("task %s: %lld train rows, %lld test rows, %d classes, weight %g",
                 cfg->tasks[t].name, (long long)ts->train->n, (long long)ts->test->n,
                 ts->train->num_classes, cfg->tasks[t].weight);
    }
    return LDN_OK;
}

static void progress_line(struct local_run *r, int epoch, int64_t step, double sps, double lr)
{
    char buf[4096];
    int off = 0;
    if (r->round)
        off = snprintf(buf, sizeof buf, "round %s (%d/%d) | ", r->round->rc->name,
                       r->round->index + 1, r->round->n_rounds);
    off += snprintf(buf + off, sizeof buf - (size_t)off,
                    "epoch %d/%d step %lld/%lld | %.0f samples/s | lr %.4g", epoch, r->cfg->epochs,
                    (long long)step, (long long)r->sched.total_steps, sps, lr);
    if (r->distill)
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | alpha %.3f", r->alpha);
    if (r->pruned)
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | sparsity %.3f", r->sparsity);
    for (int t = 0; t < r->n_tasks && off < (int)sizeof buf - 64; t++) {
        struct task_state *ts = &r->tasks[t];
        if (ts->seen == 0)
            continue;
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | %s loss %.4f acc %.1f%%",
                        r->cfg->tasks[t].name, ts->loss_sum / (double)ts->seen,
                        100.0 * (double)ts->correct / (double)ts->seen);
        if (r->method != LDN_WEIGHT_STATIC && off < (int)sizeof buf - 64)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " w %.3f", ts->weight_now);
        if (r->distill && off < (int)sizeof buf - 64)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " agree %.1f%% kl %.4f",
                            100.0 * (double)ts->agree / (double)ts->seen,
                            ts->kl_sum / (double)ts->seen);
    }
    LDN_INFO("%s", buf);
}

static int evaluate(struct local_run *r, int64_t step, double sps, double lr, double elapsed)
{
    const struct ldn_config *cfg = r->cfg;
    double epoch = (double)step / (double)r->sched.steps_per_epoch;
    char buf[4096];
    int off = snprintf(buf, sizeof buf, "eval epoch %.2f step %lld:", epoch, (long long)step);
    char *text = NULL; /* this evaluation's records, stored in the next checkpoints */
    size_t text_len = 0;
    FILE *mem = open_memstream(&text, &text_len);
    if (!mem)
        return LDN_ERR_NOMEM;
    for (int t = 0; t < r->n_tasks; t++) {
        struct task_state *ts = &r->tasks[t];
        struct ldn_eval_record rec = {.task = cfg->tasks[t].name,
                                      .step = step,
                                      .epoch = epoch,
                                      .test_rows = ts->test->n,
                                      .samples_per_s = sps,
                                      .lr = lr,
                                      .elapsed_s = elapsed};
        ldn_model_evaluate(r->model, t, ts->test->x, ts->test->y, ts->test->n, &rec.loss,
                           &rec.accuracy);
        rec.train_loss = ts->seen ? ts->loss_sum / (double)ts->seen : NAN;
        rec.train_accuracy = ts->seen ? (double)ts->correct / (double)ts->seen : NAN;
        rec.round = r->round ? r->round->rc->name : NULL;
        rec.distill = r->distill;
        rec.teacher_agreement = ts->seen ? (double)ts->agree / (double)ts->seen : NAN;
        rec.distill_kl = ts->seen ? ts->kl_sum / (double)ts->seen : NAN;
        rec.distill_alpha = r->alpha;
        rec.pruned = r->pruned;
        rec.sparsity = r->sparsity;
        if (r->method != LDN_WEIGHT_STATIC || r->pcgrad) {
            rec.weighting = ldn_weighting_name(r->method);
            rec.task_weight = ts->weight_now;
            rec.has_log_var = r->method == LDN_WEIGHT_UNCERTAINTY;
            rec.log_var = ts->lv_used;
            rec.gradients = r->pcgrad ? ldn_task_gradients_name(LDN_GRAD_PCGRAD) : NULL;
        }
        ts->last_test_acc = rec.accuracy;
        ldn_metrics_write(mem, &rec);
        if (ldn_metrics_write(r->metrics, &rec) != 0 ||
            (r->run_metrics && ldn_metrics_write(r->run_metrics, &rec) != 0)) {
            fclose(mem);
            free(text);
            return LDN_ERR_IO;
        }
        if (off < (int)sizeof buf - 64)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " %s acc %.2f%% (loss %.4f)",
                            cfg->tasks[t].name, 100.0 * rec.accuracy, rec.loss);
    }
    LDN_INFO("%s", buf);
    if (r->pcgrad)
        LDN_INFO("pcgrad: %lld of %lld (task, other task, layer) pairs projected since the last "
                 "evaluation",
                 (long long)r->pc_projections, (long long)r->pc_pairs);
    r->pc_projections = r->pc_pairs = 0;
    if (fclose(mem) != 0) {
        free(text);
        return LDN_ERR_NOMEM;
    }
    free(r->last_metrics);
    r->last_metrics = text;
    return LDN_OK;
}

static void reset_stats(struct local_run *r)
{
    for (int t = 0; t < r->n_tasks; t++) {
        r->tasks[t].loss_sum = 0.0;
        r->tasks[t].correct = 0;
        r->tasks[t].seen = 0;
        r->tasks[t].kl_sum = 0.0;
        r->tasks[t].agree = 0;
    }
}

/* The checkpoint datasets of a local run: the layout of a distributed run with one server
 * holding the whole trunk and one worker (rank 0) hosting every task. */
static int ckpt_items(struct local_run *r, struct ldn_ckpt_items *it)
{
    const struct ldn_nn *trunk = r->model->trunk;
    struct ldn_optim *o = r->trunk_opt;
    int rc = ldn_ckpt_add_net(it, trunk, "/trunk", trunk->params, 0, trunk->n_params);
    rc |= o->m ? ldn_ckpt_add_net(it, trunk, "/optimizer/m/trunk", o->m, 0, trunk->n_params) : 0;
    rc |= o->v ? ldn_ckpt_add_net(it, trunk, "/optimizer/v/trunk", o->v, 0, trunk->n_params) : 0;
    rc |= ldn_ckpt_add(it, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, 1, 1, &o->t);
    if (r->keep)
        rc |= ldn_prune_ckpt_add(it, trunk, r->keep, r->mask_buf, 0, trunk->n_params);
    for (int t = 0; t < r->n_tasks; t++)
        rc |= ldn_jobckpt_add_task(it, 0, r->cfg->tasks[t].name, r->model->heads[t],
                                   r->tasks[t].head_opt, &r->tasks[t].batcher,
                                   r->tasks[t].ckpt_state, 1);
    for (int t = 0; t < r->n_tasks && r->method == LDN_WEIGHT_UNCERTAINTY; t++)
        rc |= ldn_uw_ckpt_add(it, r->cfg->tasks[t].name, &r->tasks[t].log_var, r->tasks[t].lv_opt);
    if (r->method == LDN_WEIGHT_DWA)
        rc |= ldn_dwa_ckpt_add(&r->dwa, it);
    return rc;
}

static int checkpoint(struct local_run *r, int64_t step, char *err, size_t errlen)
{
    const struct ldn_config *cfg = r->cfg;
    struct ldn_ckpt_items it = {0};
    char path[LDN_PATH_MAX + 64];
    struct ldn_ckpt_meta meta = {.step = step,
                                 .steps_per_epoch = r->sched.steps_per_epoch,
                                 .total_steps = r->sched.total_steps,
                                 .n_servers = 1,
                                 .n_workers = 1,
                                 .features = r->model->features,
                                 .seed = cfg->seed,
                                 .init_id = r->init_id,
                                 .round = r->round ? r->round->index + 1 : 0,
                                 .config = cfg->resolved_yaml,
                                 .metrics = r->last_metrics ? r->last_metrics : ""};
    double t0 = ldn_clock_now();
    int rc = ckpt_items(r, &it);
    if (rc)
        rc = ldn_fail(err, errlen, LDN_ERR_NOMEM, "checkpoint items: out of memory");
    else
        rc = ldn_ckpt_write(MPI_COMM_NULL, cfg->ckpt.dir, &meta, &it, cfg->ckpt.keep_last, path,
                            sizeof path, err, errlen);
    ldn_ckpt_items_free(&it);
    if (rc == 0)
        LDN_INFO("checkpoint step %lld: %s (%.2f s)", (long long)step, path, ldn_clock_now() - t0);
    return rc;
}

/* Continue from the checkpoint at path (checked against the config by the caller). */
static int resume_from(struct local_run *r, const struct ldn_ckpt *ck, char *err, size_t errlen)
{
    const struct ldn_nn *trunk = r->model->trunk;
    struct ldn_optim *o = r->trunk_opt;
    const int64_t d1[2] = {1, 1};
    int had = 0, same = 1; /* the writer's compress state, and whether its one worker lines up */
    int rc = ldn_jobckpt_stored_state(ck, r->cfg, 1, &had, &same, err, errlen);
    if (rc == 0)
        rc = ldn_ckpt_read_net(ck, trunk, "/trunk", trunk->params, 0, trunk->n_params, err, errlen);
    /* a job with momentum correction kept the momentum on its workers: it starts at zero */
    if (rc == 0 && o->m && !(had & LDN_JOBCKPT_VELOCITY))
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/m/trunk", o->m, 0, trunk->n_params, err,
                               errlen);
    if (rc == 0 && o->v)
        rc = ldn_ckpt_read_net(ck, trunk, "/optimizer/v/trunk", o->v, 0, trunk->n_params, err,
                               errlen);
    /* a distributed checkpoint counts updates per chunk: its steps are the count */
    o->t = ck->step;
    int nd;
    int64_t dims[2];
    if (rc == 0 && ldn_ckpt_shape(ck, "/optimizer/trunk_updates", &nd, dims, NULL, 0) == 0 &&
        nd == 1 && dims[0] == 1)
        rc = ldn_ckpt_read_counts(ck, "/optimizer/trunk_updates", d1, 0, 1, &o->t, err, errlen);
    if (rc == 0 && r->pruned) { /* the masks as they were (none before the first update) */
        rc = ldn_prune_ckpt_read(ck, trunk, r->keep, r->mask_buf, 0, trunk->n_params, err, errlen);
        if (rc == 1) {
            int64_t masked[LDN_MAX_LAYERS];
            char what[512];
            ldn_prune_count(trunk, r->keep, 0, trunk->n_params, masked);
            r->sparsity = ldn_prune_describe(&r->units, masked, what, sizeof what);
            LDN_INFO("pruning masks from the checkpoint: sparsity %s", what);
            rc = 0;
        }
    }
    /* the one worker's state: rank 0 here, after the coordinator and servers in a job's; a
     * job with more workers leaves only its heads (every task starts a new pass) */
    const int src = r->n_tasks ? ldn_jobckpt_worker_source(ck, 0, r->cfg->tasks[0].name) : 0;
    for (int t = 0; t < r->n_tasks && rc == 0; t++)
        rc = ldn_jobckpt_read_task(ck, src, r->cfg->tasks[t].name, r->model->heads[t],
                                   r->tasks[t].head_opt, same ? &r->tasks[t].batcher : NULL, err,
                                   errlen);
    for (int t = 0; t < r->n_tasks && rc == 0 && r->method == LDN_WEIGHT_UNCERTAINTY; t++) {
        struct task_state *ts = &r->tasks[t];
        rc = ldn_uw_ckpt_read(ck, r->cfg->tasks[t].name, &ts->log_var, ts->lv_opt, err, errlen);
        if (rc == 1) {
            LDN_WARN("checkpoint %s has no log-variance of task %s: it starts at 0", ck->path,
                     r->cfg->tasks[t].name);
            rc = 0;
        }
        ts->lv_used = ts->log_var;
        ts->weight_now = r->cfg->tasks[t].weight * exp(-(double)ts->log_var);
    }
    if (rc == 0 && r->method == LDN_WEIGHT_DWA &&
        (rc = ldn_dwa_ckpt_read(&r->dwa, ck, err, errlen)) == 1) {
        LDN_WARN("checkpoint %s has no DWA loss history: weights 1 for the next two epochs",
                 ck->path);
        rc = 0;
    }
    return rc;
}

/* A distillation step's loss and backward on the batch idx[0..b) of task t: alpha * T^2 * KL to
 * the teacher's soft targets of those rows + (1 - alpha) * cross-entropy, scaled by weight; with
 * teacher.inputs: all every other head u also learns the teacher's head u on these rows (no
 * label: alpha * T^2 * KL only, scaled by task u's weight). */
static double distill_batch(struct local_run *r, int t, int b, float weight, int64_t *ok)
{
    struct task_state *ts = &r->tasks[t];
    const struct ldn_teacher_config *tc = &r->round->rc->teacher;
    const float temp = (float)tc->temperature, alpha = (float)r->alpha;
    struct ldn_model *m = r->model;
    const float *z = ldn_model_forward_rows(m, t, ts->train->x, ts->train->y, r->idx, b, &r->buf);
    ldn_teacher_rows(&r->teacher, t, t, r->idx, r->buf.x, b, r->soft_rows);
    struct ldn_distill_report rep = {0};
    double loss = ldn_loss_distill_ex(z, r->soft_rows, r->buf.y, b, m->classes[t], temp, alpha,
                                      weight, r->buf.dz, ok, &rep);
    ts->kl_sum += rep.kl * b;
    ts->agree += rep.agree;
    ldn_model_backward_head(m, t, r->buf.dz, b, 0);
    for (int u = 0; r->teacher.all && u < r->n_tasks; u++) {
        if (u == t)
            continue;
        const float *zu = ldn_model_forward_head(m, u, b);
        ldn_teacher_rows(&r->teacher, t, u, r->idx, r->buf.x, b, r->soft_rows);
        ldn_loss_distill(zu, r->soft_rows, r->no_label, b, m->classes[u], temp, alpha,
                         (float)r->cfg->tasks[u].weight, r->buf.dz, NULL);
        ldn_model_backward_head(m, u, r->buf.dz, b, 1);
    }
    ldn_model_backward_trunk(m, r->buf.x, b);
    return loss;
}

/* The factor of task t's loss this step: tasks.<t>.weight, times the DWA weight of the epoch or
 * exp(-s_t) (uncertainty). Static weights are the config's, exactly as before. */
static float task_weight(struct local_run *r, int t)
{
    struct task_state *ts = &r->tasks[t];
    const double w = r->cfg->tasks[t].weight;
    ts->lv_used = ts->log_var;
    ts->weight_now = r->method == LDN_WEIGHT_DWA           ? w * r->dwa.w[t]
                     : r->method == LDN_WEIGHT_UNCERTAINTY ? w * exp(-(double)ts->log_var)
                                                           : w;
    return (float)ts->weight_now;
}

/* After task t's batch of b rows with mean loss `loss`: DWA counts it; uncertainty steps s_t
 * with d/ds (w * (L e^-s + s)) = w * (1 - L e^-s). */
static void after_task_loss(struct local_run *r, int t, double loss, int b, double lr)
{
    struct task_state *ts = &r->tasks[t];
    if (r->method == LDN_WEIGHT_DWA)
        ldn_dwa_add(&r->dwa, t, loss * b, b);
    if (r->method == LDN_WEIGHT_UNCERTAINTY) {
        double wl, gs;
        ldn_mtl_uncertainty(loss, (double)ts->log_var, &wl, &gs);
        float g = (float)(r->cfg->tasks[t].weight * gs);
        ldn_optim_step(ts->lv_opt, &ts->log_var, &g, lr);
    }
}

/* ps.task_gradients: pcgrad: one step trains every task with training rows on a batch of its
 * own; each task's trunk gradient is kept apart, every trunk layer's G gradients are projected
 * (ldn_mtl_pcgrad) and summed, then the trunk takes one step. */
static void train_step_pcgrad(struct local_run *r, int64_t step, double lr)
{
    struct ldn_nn *trunk = r->model->trunk;
    const int64_t n = trunk->n_params;
    int G = 0;
    const float *g[LDN_MAX_TASKS];
    float *p[LDN_MAX_TASKS];
    for (int t = 0; t < r->n_tasks; t++) {
        struct task_state *ts = &r->tasks[t];
        if (ts->train->n == 0)
            continue;
        int b = ldn_batcher_next(&ts->batcher, r->cfg->batch_size, r->idx);
        int64_t ok = 0;
        ldn_nn_use_grads(trunk, r->pc_g + (int64_t)G * n);
        double loss = ldn_model_train_batch(r->model, t, ts->train->x, ts->train->y, r->idx, b,
                                            task_weight(r, t), &r->buf, &ok);
        struct ldn_nn *head = r->model->heads[t];
        ldn_optim_step(ts->head_opt, head->params, head->grads, lr);
        after_task_loss(r, t, loss, b, lr);
        ts->loss_sum += loss * b;
        ts->correct += ok;
        ts->seen += b;
        r->samples += b;
        g[G] = r->pc_g + (int64_t)G * n;
        p[G] = r->pc_p + (int64_t)G * n;
        G++;
    }
    ldn_nn_use_grads(trunk, NULL);
    struct ldn_rng rng;
    ldn_rng_init(&rng, r->cfg->seed, LDN_STREAM_PCGRAD + (uint64_t)step);
    for (int l = 0; l < trunk->n_layers; l++) { /* layer-wise, as GradVac */
        const struct ldn_layer *ly = &trunk->layers[l];
        const float *gl[LDN_MAX_TASKS];
        float *pl[LDN_MAX_TASKS];
        for (int i = 0; i < G; i++) {
            gl[i] = g[i] + ly->offset;
            pl[i] = p[i] + ly->offset;
        }
        r->pc_projections += ldn_mtl_pcgrad(gl, pl, G, ly->n_params, &rng, r->pc_perm, r->pc_norm2);
        r->pc_pairs += (int64_t)G * (G - 1);
        ldn_mtl_sum((const float *const *)pl, G, ly->n_params, trunk->grads + ly->offset);
    }
    ldn_prune_zero(r->keep, trunk->grads, n);
    ldn_optim_step(r->trunk_opt, trunk->params, trunk->grads, lr);
}

/* One training step on task t: batch, forward, loss, backward, update head and trunk. */
static void train_step(struct local_run *r, int t, double lr)
{
    struct task_state *ts = &r->tasks[t];
    int b = ldn_batcher_next(&ts->batcher, r->cfg->batch_size, r->idx);
    int64_t ok = 0;
    const float weight = task_weight(r, t);
    double loss = r->distill ? distill_batch(r, t, b, weight, &ok)
                             : ldn_model_train_batch(r->model, t, ts->train->x, ts->train->y,
                                                     r->idx, b, weight, &r->buf, &ok);
    struct ldn_nn *head = r->model->heads[t], *trunk = r->model->trunk;
    ldn_optim_step(ts->head_opt, head->params, head->grads, lr);
    after_task_loss(r, t, loss, b, lr);
    for (int u = 0; r->distill && r->teacher.all && u < r->n_tasks; u++) /* inputs: all */
        if (u != t)
            ldn_optim_step(r->tasks[u].head_opt, r->model->heads[u]->params,
                           r->model->heads[u]->grads, lr);
    ldn_prune_zero(r->keep, trunk->grads, trunk->n_params); /* masked keys get no update */
    ldn_optim_step(r->trunk_opt, trunk->params, trunk->grads, lr);
    ts->loss_sum += loss * b;
    ts->correct += ok;
    ts->seen += b;
}

/* train.task_weighting and ps.task_gradients: their state, and with pcgrad the schedule of
 * multi-task steps. */
static int prepare_weighting(struct local_run *r, char *err, size_t errlen)
{
    const struct ldn_config *cfg = r->cfg;
    r->method = cfg->weighting.method;
    r->pcgrad = cfg->weighting.gradients == LDN_GRAD_PCGRAD;
    for (int t = 0; t < r->n_tasks; t++) {
        r->tasks[t].weight_now = cfg->tasks[t].weight;
        if (r->method == LDN_WEIGHT_UNCERTAINTY &&
            !(r->tasks[t].lv_opt = ldn_uw_optim_new(&cfg->optim)))
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    if (r->method == LDN_WEIGHT_DWA &&
        ldn_dwa_init(&r->dwa, r->n_tasks, cfg->weighting.dwa_temperature) != 0)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    if (r->method != LDN_WEIGHT_STATIC)
        LDN_INFO("train.task_weighting: %s%s", ldn_weighting_name(r->method),
                 r->method == LDN_WEIGHT_DWA ? " (weights 1 for the first two epochs)"
                                             : " (loss L e^-s + s, s learned per task from 0)");
    if (!r->pcgrad)
        return LDN_OK;
    const int64_t n = r->model->trunk->n_params;
    int active = 0;
    for (int t = 0; t < r->n_tasks; t++)
        active += r->tasks[t].train->n > 0;
    const size_t bytes = sizeof(float) * 2 * (size_t)active * (size_t)n;
    r->pc_g = malloc(sizeof(float) * (size_t)active * (size_t)n);
    r->pc_p = malloc(sizeof(float) * (size_t)active * (size_t)n);
    r->pc_perm = malloc(sizeof(int) * (size_t)r->n_tasks);
    r->pc_norm2 = malloc(sizeof(double) * (size_t)r->n_tasks);
    if (!r->pc_g || !r->pc_p || !r->pc_perm || !r->pc_norm2)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM,
                        "ps.task_gradients: pcgrad: out of memory for %d tasks' trunk gradients "
                        "(%.1f MB)",
                        active, (double)bytes / 1e6);
    /* every step trains every task: without train.steps_per_epoch, an epoch has 1/active of
     * the steps, so that it still sees about the same rows */
    if (cfg->steps_per_epoch == 0 && active > 0) {
        r->sched.steps_per_epoch = (r->sched.steps_per_epoch + active - 1) / active;
        r->sched.total_steps = r->sched.steps_per_epoch * cfg->epochs;
    }
    LDN_INFO("ps.task_gradients: pcgrad: each step trains all %d tasks (one batch each), "
             "projects their trunk gradients layer by layer and sums them; %lld steps per epoch, "
             "%.1f MB of gradient buffers",
             active, (long long)r->sched.steps_per_epoch, (double)bytes / 1e6);
    return LDN_OK;
}

/* Set up the run: data, schedule, model, optimizers, buffers. */
static int prepare(struct local_run *r, char *err, size_t errlen)
{
    const struct ldn_config *cfg = r->cfg;
    r->tasks = calloc((size_t)cfg->n_tasks, sizeof *r->tasks);
    if (!r->tasks)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    int rc = load_tasks(r, err, errlen);
    if (rc)
        return rc;
    int64_t *n_train = malloc(sizeof(int64_t) * (size_t)cfg->n_tasks);
    int *classes = malloc(sizeof(int) * (size_t)cfg->n_tasks);
    if (!n_train || !classes) {
        free(n_train);
        free(classes);
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < cfg->n_tasks; t++) {
        n_train[t] = r->tasks[t].train->n;
        classes[t] = r->tasks[t].train->num_classes;
    }
    rc = ldn_schedule_init(&r->sched, cfg, n_train, err, errlen);
    int max_batch = cfg->batch_size > 1024 ? cfg->batch_size : 1024;
    if (rc == 0 && !(r->model = ldn_model_new(cfg, r->tasks[0].train->features, classes, max_batch,
                                              err, errlen)))
        rc = LDN_ERR_NOMEM;
    free(n_train);
    free(classes);
    if (rc)
        return rc;
    r->trunk_opt = ldn_optim_new(&cfg->optim, r->model->trunk->n_params);
    int max_classes = 1;
    for (int t = 0; t < cfg->n_tasks; t++) {
        if (!(r->tasks[t].head_opt = ldn_optim_new(&cfg->optim, r->model->heads[t]->n_params)))
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
        if (r->model->classes[t] > max_classes)
            max_classes = r->model->classes[t];
    }
    r->idx = malloc(sizeof(int64_t) * (size_t)cfg->batch_size);
    if ((r->pruned = ldn_prune_on(&cfg->prune))) {
        const int64_t n = r->model->trunk->n_params;
        ldn_prune_units_init(&r->units, &cfg->prune, r->model->trunk);
        r->keep = malloc((size_t)n);
        r->mask_buf = malloc(sizeof(float) * (size_t)n);
        if (!r->keep || !r->mask_buf)
            return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for the pruning mask");
        memset(r->keep, 1, (size_t)n);
    }
    if (!r->trunk_opt || !r->idx ||
        ldn_batch_buf_init(&r->buf, cfg->batch_size, r->model->features, max_classes) != 0)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    return prepare_weighting(r, err, errlen);
}

/* Continue from the checkpoint `resume` names: *start receives its step. */
static int resume(struct local_run *r, const char *arg, int64_t *start, char *err, size_t errlen)
{
    const struct ldn_config *cfg = r->cfg;
    char ckpath[LDN_PATH_MAX + 64];
    struct ldn_ckpt ck;
    int rc;
    if ((rc = ldn_ckpt_resolve(arg, cfg->ckpt.dir, ckpath, sizeof ckpath, err, errlen)) ||
        (rc = ldn_ckpt_open(ckpath, &ck, err, errlen)))
        return rc;
    rc = ldn_jobckpt_check(&ck, cfg, r->model->features, 1, r->sched.total_steps, err, errlen);
    if (rc == 0)
        rc = resume_from(r, &ck, err, errlen);
    *start = ck.step;
    r->init_id = ck.init_id;
    ldn_ckpt_close(&ck);
    if (rc == 0)
        LDN_INFO("resuming from %s (step %lld of %lld)", ckpath, (long long)*start,
                 (long long)r->sched.total_steps);
    return rc;
}

/* Training time and samples since the last mark (a progress line or an evaluation). */
static double take_mark(struct local_run *r)
{
    double dt = ldn_clock_now() - r->t_mark - r->paused;
    r->train_time += dt;
    r->paused = 0.0;
    double sps = (double)(r->samples - r->samples_mark) / dt;
    r->samples_mark = r->samples;
    r->t_mark = ldn_clock_now();
    return sps;
}

/* The end of an epoch under DWA: the next epoch's weights from the last two epochs' losses. */
static void dwa_epoch(struct local_run *r, int64_t step)
{
    ldn_dwa_end_epoch(&r->dwa);
    char buf[2048];
    int off = 0;
    for (int t = 0; t < r->n_tasks && off < (int)sizeof buf - 64; t++)
        off += snprintf(buf + off, sizeof buf - (size_t)off, " %s %.4f", r->cfg->tasks[t].name,
                        r->dwa.w[t]);
    LDN_INFO("dwa: epoch %lld ended at step %lld; weights of the next epoch:%s",
             (long long)r->dwa.epochs, (long long)step, buf);
}

/* TRAIN phase: steps [from, to), a progress line every train.log_every steps. */
static int phase_train(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct local_run *r = ud;
    const struct ldn_config *cfg = r->cfg;
    (void)err;
    (void)errlen;
    for (int64_t step = ph->from; step < ph->to; step++) {
        int t = ldn_schedule_task(&r->sched, step);
        r->lr = ldn_lr_at(&cfg->lr, cfg->optim.lr, step, r->sched.total_steps,
                          r->sched.steps_per_epoch);
        if (r->distill)
            r->alpha =
                ldn_distill_alpha_at(r->round->rc->teacher.annealing, r->round->rc->teacher.alpha,
                                     step, 0, r->sched.total_steps);
        if (r->pcgrad) {
            train_step_pcgrad(r, step, r->lr);
        } else {
            train_step(r, t, r->lr);
            r->samples +=
                cfg->batch_size < r->tasks[t].train->n ? cfg->batch_size : r->tasks[t].train->n;
        }
        const int64_t done = step + 1;
        if (r->method == LDN_WEIGHT_DWA && done % r->sched.steps_per_epoch == 0)
            dwa_epoch(r, done);
        const int do_log = cfg->log_every > 0 && done % cfg->log_every == 0;
        if (do_log || done % r->phases->eval_period == 0 || done == r->sched.total_steps) {
            double sps = take_mark(r);
            if (do_log)
                progress_line(r, (int)(step / r->sched.steps_per_epoch) + 1, done, sps, r->lr);
        }
    }
    return LDN_OK;
}

static int phase_eval(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct local_run *r = ud;
    double now = ldn_clock_now();
    if (evaluate(r, ph->to, (double)r->samples / r->train_time, r->lr, now - r->t_start) != 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "metrics: write to %s/metrics.jsonl failed",
                        r->cfg->run_dir);
    reset_stats(r);
    r->t_mark = ldn_clock_now();
    return LDN_OK;
}

static int phase_ckpt(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct local_run *r = ud;
    double t0 = ldn_clock_now();
    int rc = checkpoint(r, ph->to, err, errlen);
    r->paused += ldn_clock_now() - t0;
    return rc;
}

/* PRUNE phase: the masks of step ph->to from the trunk's weights (common/job/prune.h). */
static int phase_prune(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct local_run *r = ud;
    struct ldn_nn *trunk = r->model->trunk;
    int64_t masked[LDN_MAX_LAYERS];
    char what[512];
    if (ldn_prune_local(trunk, &r->units, &r->cfg->prune, r->sched.total_steps, ph->to,
                        trunk->params, 0, trunk->n_params, r->keep, masked) != 0)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "prune: out of memory");
    ldn_prune_zero(r->keep, r->trunk_opt->m, r->trunk_opt->m ? trunk->n_params : 0);
    ldn_prune_zero(r->keep, r->trunk_opt->v, r->trunk_opt->v ? trunk->n_params : 0);
    r->sparsity = ldn_prune_describe(&r->units, masked, what, sizeof what);
    LDN_INFO("prune step %lld: target %.4f, sparsity %s", (long long)ph->to,
             ldn_prune_target_at(&r->units, &r->cfg->prune, r->sched.total_steps, ph->to), what);
    return LDN_OK;
}

static int phase_stop(void *ud, const struct ldn_phase *ph, char *err, size_t errlen)
{
    struct local_run *r = ud;
    (void)ph;
    int rc = ldn_rundir_write_trunk(r->cfg, r->model->trunk->params, r->model->trunk->n_params, err,
                                    errlen);
    if (rc == 0)
        LDN_INFO("done: %lld steps, %.0f samples/s (training only), %.1f s in all",
                 (long long)r->sched.total_steps, (double)r->samples / r->train_time,
                 ldn_clock_now() - r->t_start);
    return rc;
}

/* rounds[].init: the trunk and every head from an earlier round's snapshot (optimizer state
 * starts afresh). */
static int init_from(struct local_run *r, const char *path, char *err, size_t errlen)
{
    int rc = ldn_rounds_load_init(r->round->cfg, r->round->index, r->cfg, path, r->model->trunk,
                                  r->model->heads, err, errlen);
    if (rc == 0)
        LDN_INFO("round %s: starts from round %s (%s: trunk and %d heads)", r->round->rc->name,
                 r->round->rc->init, path, r->n_tasks);
    return rc;
}

/* A distillation round's start: the teacher's soft targets and the ensemble's report. */
static int start_teacher(struct local_run *r, char *err, size_t errlen)
{
    const struct ldn_round_config *rc = r->round->rc;
    struct ldn_dataset **sets = malloc(sizeof *sets * 2 * (size_t)r->n_tasks);
    if (!sets)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    int max_classes = 1;
    for (int t = 0; t < r->n_tasks; t++) {
        sets[t] = r->tasks[t].train;
        sets[r->n_tasks + t] = r->tasks[t].test;
        max_classes = r->model->classes[t] > max_classes ? r->model->classes[t] : max_classes;
    }
    const struct ldn_teacher_data d = {.train = sets,
                                       .test = sets + r->n_tasks,
                                       .classes = r->model->classes,
                                       .features = r->model->features};
    int rc_ = ldn_teacher_build(&r->teacher, r->cfg, rc->name, &rc->teacher, r->round->members, &d,
                                err, errlen);
    free(sets);
    if (rc_)
        return rc_;
    ldn_teacher_log_targets(&r->teacher, rc->name, &rc->teacher);
    ldn_teacher_log_accuracy(&r->teacher, r->cfg, rc->name, &rc->teacher);
    r->distill = 1;
    r->alpha = rc->teacher.alpha;
    r->soft_rows = malloc(sizeof(float) * (size_t)r->cfg->batch_size * (size_t)max_classes);
    r->no_label = malloc(sizeof(int32_t) * (size_t)r->cfg->batch_size);
    for (int i = 0; r->no_label && i < r->cfg->batch_size; i++)
        r->no_label[i] = -1;
    if (r->teacher.all)
        LDN_INFO("round %s: teacher.inputs: all: every head also learns the teacher's soft "
                 "targets on the other tasks' inputs",
                 rc->name);
    return r->soft_rows && r->no_label ? 0 : ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
}

/* One run of cfg (a run without rounds, or one round of a run with them). */
static int train_one(const struct ldn_config *cfg, const struct round_run *round, FILE *run_metrics,
                     const char *resume_arg, char *err, size_t errlen)
{
    struct local_run r = {.cfg = cfg,
                          .n_tasks = cfg->n_tasks,
                          .lr = cfg->optim.lr,
                          .round = round,
                          .run_metrics = run_metrics};
    struct ldn_phases phases = {0};
    openblas_set_num_threads(cfg->threads);
    int64_t start = 0;
    int rc = prepare(&r, err, errlen);
    if (rc == 0 && resume_arg)
        rc = resume(&r, resume_arg, &start, err, errlen);
    else if (rc == 0 && round && round->init)
        rc = init_from(&r, round->init, err, errlen);
    if (rc == 0 && !resume_arg)
        r.init_id = ldn_model_init_id(r.model->trunk, r.model->heads, r.n_tasks);
    if (rc == 0 && round && round->rc->has_teacher)
        rc = start_teacher(&r, err, errlen);
    if (rc == 0 && !(r.metrics = ldn_rundir_start(cfg, resume_arg != NULL, err, errlen)))
        rc = LDN_ERR_IO;
    if (rc == 0)
        rc = ldn_phases_build(cfg, r.sched.steps_per_epoch, r.sched.total_steps, start, &phases,
                              err, errlen);
    if (rc == 0) {
        LDN_INFO("local training: %d tasks, trunk %lld parameters, %lld steps per epoch, %d "
                 "epochs, run dir %s",
                 cfg->n_tasks, (long long)r.model->trunk->n_params,
                 (long long)r.sched.steps_per_epoch, cfg->epochs, cfg->run_dir);
        static const struct ldn_phase_ops ops = {.fn = {[LDN_PHASE_TRAIN] = phase_train,
                                                        [LDN_PHASE_EVAL] = phase_eval,
                                                        [LDN_PHASE_CKPT] = phase_ckpt,
                                                        [LDN_PHASE_PRUNE] = phase_prune,
                                                        [LDN_PHASE_STOP] = phase_stop}};
        r.phases = &phases;
        r.t_start = r.t_mark = ldn_clock_now();
        rc = ldn_phases_run(&phases, &ops, &r, cfg->ckpt.every_minutes, err, errlen);
    }
    ldn_phases_deinit(&phases);
    run_free(&r);
    return rc;
}

/* A run with rounds: each round is a run of its own under run.dir/rounds/NAME (its config,
 * metrics, checkpoints, final snapshot); the run's metrics.jsonl gets every round's records.
 * Resuming skips the rounds whose snapshot is there and resumes the first that is not. */
static int train_rounds(const struct ldn_config *cfg, const char *resume_arg, char *err,
                        size_t errlen)
{
    int rc = ldn_rounds_check(cfg, resume_arg, err, errlen);
    if (rc)
        return rc;
    FILE *metrics = ldn_rundir_start(cfg, resume_arg != NULL, err, errlen);
    if (!metrics)
        return LDN_ERR_IO;
    for (int i = 0; i < cfg->n_rounds && rc == 0; i++) {
        const struct ldn_round_config *rr = &cfg->rounds[i];
        struct ldn_config *rcfg = ldn_config_round(cfg, i, err, errlen);
        if (!rcfg) {
            rc = LDN_ERR_CONFIG;
            break;
        }
        int state = resume_arg ? ldn_rounds_state(rcfg) : 0;
        struct ldn_round_paths paths;
        ldn_rounds_paths(cfg, i, &paths);
        struct round_run run = {.cfg = cfg,
                                .index = i,
                                .n_rounds = cfg->n_rounds,
                                .rc = rr,
                                .init = paths.init,
                                .members = paths.member};
        if (state == 2) {
            LDN_INFO("round %s (%d/%d): done (its snapshot is in %s)", rr->name, i + 1,
                     cfg->n_rounds, rcfg->ckpt.dir);
        } else {
            char from[512] = "";
            for (int m = 0, off = 0; m < rr->teacher.n_members && off < (int)sizeof from - 80; m++)
                off += snprintf(from + off, sizeof from - (size_t)off, "%s%.64s", m ? ", " : "",
                                rr->teacher.members[m]);
            LDN_INFO("round %s (%d/%d): %d trunk layer(s), %s%s", rr->name, i + 1, cfg->n_rounds,
                     rr->n_trunk, rr->has_teacher ? "distilling from " : "on labels", from);
            rc = train_one(rcfg, &run, metrics, state == 1 ? "latest" : NULL, err, errlen);
        }
        ldn_config_destroy(&rcfg);
    }
    fclose(metrics);
    return rc;
}

int ldn_train_local(const struct ldn_config *cfg, const char *resume_arg, char *err, size_t errlen)
{
    if (cfg->affinity > 0)
        LDN_WARN("ps.affinity: task affinity is measured by the servers of a distributed run; "
                 "the local trainer writes no affinity rows");
    if (cfg->n_rounds > 0)
        return train_rounds(cfg, resume_arg, err, errlen);
    return train_one(cfg, NULL, NULL, resume_arg, err, errlen);
}
