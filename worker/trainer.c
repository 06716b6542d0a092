/* The local (single-process) multi-task trainer. */
#include "trainer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "clock.h"
#include "data.h"
#include "jobckpt.h"
#include "log.h"
#include "loss.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "phases.h"
#include "rundir.h"
#include "schedule.h"
#include "status.h"

struct task_state {
    int64_t ckpt_state[2]; /* batcher pos, passes, as a checkpoint stores them */
    struct ldn_dataset *train, *test;
    struct ldn_batcher batcher;
    struct ldn_optim *head_opt;
    /* running training statistics since the last evaluation / progress line */
    double loss_sum;
    int64_t correct, seen;
    double last_test_acc;
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
};

static void run_free(struct local_run *r)
{
    if (r->tasks)
        for (int t = 0; t < r->n_tasks; t++) {
            ldn_dataset_destroy(&r->tasks[t].train);
            ldn_dataset_destroy(&r->tasks[t].test);
            ldn_batcher_deinit(&r->tasks[t].batcher);
            ldn_optim_destroy(&r->tasks[t].head_opt);
        }
    free(r->tasks);
    ldn_model_destroy(&r->model);
    ldn_optim_destroy(&r->trunk_opt);
    ldn_schedule_deinit(&r->sched);
    if (r->metrics)
        fclose(r->metrics);
    ldn_batch_buf_deinit(&r->buf);
    free(r->idx);
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
    int off =
        snprintf(buf, sizeof buf, "epoch %d/%d step %lld/%lld | %.0f samples/s | lr %.4g", epoch,
                 r->cfg->epochs, (long long)step, (long long)r->sched.total_steps, sps, lr);
    for (int t = 0; t < r->n_tasks && off < (int)sizeof buf - 64; t++) {
        struct task_state *ts = &r->tasks[t];
        if (ts->seen == 0)
            continue;
        off += snprintf(buf + off, sizeof buf - (size_t)off, " | %s loss %.4f acc %.1f%%",
                        r->cfg->tasks[t].name, ts->loss_sum / (double)ts->seen,
                        100.0 * (double)ts->correct / (double)ts->seen);
    }
    LDN_INFO("%s", buf);
}

static int evaluate(struct local_run *r, int64_t step, double sps, double lr, double elapsed)
{
    const struct ldn_config *cfg = r->cfg;
    double epoch = (double)step / (double)r->sched.steps_per_epoch;
    char buf[4096];
    int off = snprintf(buf, sizeof buf, "eval epoch %.2f step %lld:", epoch, (long long)step);
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
        ts->last_test_acc = rec.accuracy;
        if (ldn_metrics_write(r->metrics, &rec) != 0)
            return LDN_ERR_IO;
        if (off < (int)sizeof buf - 64)
            off += snprintf(buf + off, sizeof buf - (size_t)off, " %s acc %.2f%% (loss %.4f)",
                            cfg->tasks[t].name, 100.0 * rec.accuracy, rec.loss);
    }
    LDN_INFO("%s", buf);
    return LDN_OK;
}

static void reset_stats(struct local_run *r)
{
    for (int t = 0; t < r->n_tasks; t++) {
        r->tasks[t].loss_sum = 0.0;
        r->tasks[t].correct = 0;
        r->tasks[t].seen = 0;
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
    for (int t = 0; t < r->n_tasks; t++)
        rc |= ldn_jobckpt_add_task(it, 0, r->cfg->tasks[t].name, r->model->heads[t],
                                   r->tasks[t].head_opt, &r->tasks[t].batcher,
                                   r->tasks[t].ckpt_state, 1);
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
                                 .config = cfg->resolved_yaml,
                                 .metrics = ""};
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
        rc = ldn_ckpt_read(ck, "/optimizer/trunk_updates", LDN_CKPT_I64, 1, d1, 0, 1, &o->t, 1, err,
                           errlen);
    /* the one worker's state: rank 0 here, after the coordinator and servers in a job's; a
     * job with more workers leaves only its heads (every task starts a new pass) */
    const int src = r->n_tasks ? ldn_jobckpt_worker_source(ck, 0, r->cfg->tasks[0].name) : 0;
    for (int t = 0; t < r->n_tasks && rc == 0; t++)
        rc = ldn_jobckpt_read_task(ck, src, r->cfg->tasks[t].name, r->model->heads[t],
                                   r->tasks[t].head_opt, same ? &r->tasks[t].batcher : NULL, err,
                                   errlen);
    return rc;
}

/* One training step on task t: batch, forward, loss, backward, update head and trunk. */
static void train_step(struct local_run *r, int t, double lr)
{
    struct task_state *ts = &r->tasks[t];
    int b = ldn_batcher_next(&ts->batcher, r->cfg->batch_size, r->idx);
    int64_t ok = 0;
    double loss = ldn_model_train_batch(r->model, t, ts->train->x, ts->train->y, r->idx, b,
                                        (float)r->cfg->tasks[t].weight, &r->buf, &ok);
    struct ldn_nn *head = r->model->heads[t], *trunk = r->model->trunk;
    ldn_optim_step(ts->head_opt, head->params, head->grads, lr);
    ldn_optim_step(r->trunk_opt, trunk->params, trunk->grads, lr);
    ts->loss_sum += loss * b;
    ts->correct += ok;
    ts->seen += b;
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
    if (!r->trunk_opt || !r->idx ||
        ldn_batch_buf_init(&r->buf, cfg->batch_size, r->model->features, max_classes) != 0)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
    return LDN_OK;
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
        train_step(r, t, r->lr);
        r->samples +=
            cfg->batch_size < r->tasks[t].train->n ? cfg->batch_size : r->tasks[t].train->n;
        const int64_t done = step + 1;
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

int ldn_train_local(const struct ldn_config *cfg, const char *resume_arg, char *err, size_t errlen)
{
    struct local_run r = {.cfg = cfg, .n_tasks = cfg->n_tasks, .lr = cfg->optim.lr};
    struct ldn_phases phases = {0};
    openblas_set_num_threads(cfg->threads);
    int64_t start = 0;
    int rc = prepare(&r, err, errlen);
    if (rc == 0 && resume_arg)
        rc = resume(&r, resume_arg, &start, err, errlen);
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
                                                        [LDN_PHASE_STOP] = phase_stop}};
        r.phases = &phases;
        r.t_start = r.t_mark = ldn_clock_now();
        rc = ldn_phases_run(&phases, &ops, &r, cfg->ckpt.every_minutes, err, errlen);
    }
    ldn_phases_deinit(&phases);
    run_free(&r);
    return rc;
}
