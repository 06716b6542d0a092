/* A run with rounds: snapshots, state, member checks, a round's starting weights. */
#include "rounds.h"

#include <stdio.h>
#include <string.h>

#include "ckmodel.h"
#include "ckpt.h"
#include "data.h"
#include "status.h"

/* The checkpoint directory of round j's snapshot. */
static void round_dir(const struct ldn_config *cfg, int j, char *out)
{
    snprintf(out, LDN_ROUND_PATH_MAX, "%.*s/rounds/%s/checkpoints", LDN_PATH_MAX - 1, cfg->run_dir,
             cfg->rounds[j].name);
}

void ldn_rounds_paths(const struct ldn_config *cfg, int i, struct ldn_round_paths *p)
{
    const struct ldn_round_config *rr = &cfg->rounds[i];
    for (int m = 0; m < rr->teacher.n_members; m++) {
        if (rr->teacher.member_round[m] >= 0)
            round_dir(cfg, rr->teacher.member_round[m], p->member_buf[m]);
        else
            snprintf(p->member_buf[m], LDN_ROUND_PATH_MAX, "%s", rr->teacher.members[m]);
        p->member[m] = p->member_buf[m];
    }
    p->init = NULL;
    if (rr->init_round >= 0) {
        round_dir(cfg, rr->init_round, p->init_buf);
        p->init = p->init_buf;
    }
}

int ldn_rounds_state(const struct ldn_config *rcfg)
{
    char path[LDN_PATH_MAX + 64], why[LDN_ERRLEN];
    struct ldn_ckpt ck;
    if (ldn_ckpt_resolve("latest", rcfg->ckpt.dir, path, sizeof path, why, sizeof why) ||
        ldn_ckpt_open(path, &ck, why, sizeof why))
        return 0;
    int done = ck.step == ck.total_steps;
    ldn_ckpt_close(&ck);
    return 1 + done;
}

/* Whether member L has a head for task tk with the classes of tk's data, and takes its input
 * width; 0 or a negative status with why. */
static int member_fits(const struct ldn_ckmodel *L, const struct ldn_task_config *tk, char *why,
                       size_t len)
{
    int h = ldn_config_task_index(L->cfg, tk->name), classes, features;
    int64_t n_train, n_test;
    char name[64];
    if (h < 0)
        return ldn_fail(why, len, LDN_ERR_CONFIG, "%s has no head for task '%s'", L->ck.path,
                        tk->name);
    int rc = ldn_dataset_probe(tk->file, name, sizeof name, &classes, &features, &n_train, &n_test,
                               why, len);
    if (rc == 0 && features != L->ck.features)
        rc = ldn_fail(why, len, LDN_ERR_CONFIG, "%s takes %d input features, task '%s' (%s) has %d",
                      L->ck.path, L->ck.features, tk->name, tk->file, features);
    if (rc == 0 && classes != L->classes[h])
        rc = ldn_fail(why, len, LDN_ERR_CONFIG,
                      "%s: head '%s' has %d classes, the task's data (%s) %d", L->ck.path, tk->name,
                      L->classes[h], tk->file, classes);
    return rc;
}

static int check_path_members(const struct ldn_config *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->n_rounds; i++) {
        const struct ldn_teacher_config *tc = &cfg->rounds[i].teacher;
        for (int m = 0; cfg->rounds[i].has_teacher && m < tc->n_members; m++) {
            if (tc->member_round[m] >= 0)
                continue;
            struct ldn_ckmodel L;
            char why[LDN_ERRLEN];
            int rc = ldn_ckmodel_load(tc->members[m], 0, &L, why, sizeof why);
            for (int t = 0; rc == 0 && t < cfg->n_tasks; t++)
                rc = member_fits(&L, &cfg->tasks[t], why, sizeof why);
            ldn_ckmodel_free(&L);
            if (rc)
                return ldn_fail(err, errlen, LDN_ERR_CONFIG, "rounds.%s.teacher: member '%s': %s",
                                cfg->rounds[i].name, tc->members[m], why);
        }
    }
    return 0;
}

int ldn_rounds_check(const struct ldn_config *cfg, const char *resume_arg, char *err, size_t errlen)
{
    if (resume_arg && strcmp(resume_arg, "latest") != 0 && strcmp(resume_arg, cfg->run_dir) != 0)
        return ldn_fail(err, errlen, LDN_ERR_ARG,
                        "a run with rounds resumes as a whole: --resume (latest) or --resume %s, "
                        "not %s",
                        cfg->run_dir, resume_arg);
    int rc = check_path_members(cfg, err, errlen), found = 0;
    for (int i = 0; resume_arg && i < cfg->n_rounds && rc == 0; i++) {
        struct ldn_config *rcfg = ldn_config_round(cfg, i, err, errlen);
        rc = rcfg ? 0 : LDN_ERR_CONFIG;
        found |= rcfg && ldn_rounds_state(rcfg) > 0;
        ldn_config_destroy(&rcfg);
    }
    if (rc == 0 && resume_arg && !found)
        rc = ldn_fail(err, errlen, LDN_ERR_ARG,
                      "--resume: no round of %s has a checkpoint yet (under %s/rounds)",
                      cfg->source, cfg->run_dir);
    return rc;
}

void ldn_rounds_widths_text(const struct ldn_nn *net, char *buf, size_t len)
{
    int off = snprintf(buf, len, "[");
    for (int l = 0; l < net->n_layers && off < (int)len - 16; l++)
        off +=
            snprintf(buf + off, len - (size_t)off, "%s%d", l ? ", " : "", net->layers[l].out_dim);
    snprintf(buf + off, len - (size_t)off, "]");
}

int ldn_rounds_load_init(const struct ldn_config *cfg, int i, const struct ldn_config *rcfg,
                         const char *path, struct ldn_nn *trunk, struct ldn_nn *const *heads,
                         char *err, size_t errlen)
{
    const struct ldn_round_config *round = &cfg->rounds[i];
    struct ldn_ckmodel L;
    char why[LDN_ERRLEN];
    if (ldn_ckmodel_load(path, 0, &L, why, sizeof why))
        return ldn_fail(err, errlen, LDN_ERR_CONFIG, "rounds.%s.init: round '%s': %s", round->name,
                        round->init, why);
    int rc = 0;
    if (trunk && !ldn_nn_same_shape(L.model->trunk, trunk)) {
        char a[128], b[128];
        ldn_rounds_widths_text(L.model->trunk, a, sizeof a);
        ldn_rounds_widths_text(trunk, b, sizeof b);
        rc = ldn_fail(err, errlen, LDN_ERR_CONFIG,
                      "rounds.%s.init: round '%s' trained trunk %s, this round's is %s",
                      round->name, round->init, a, b);
    } else if (trunk)
        memcpy(trunk->params, L.model->trunk->params, sizeof(float) * (size_t)trunk->n_params);
    for (int t = 0; rc == 0 && heads && t < rcfg->n_tasks; t++) {
        if (!heads[t])
            continue;
        int h = ldn_config_task_index(L.cfg, rcfg->tasks[t].name);
        if (h < 0 || !ldn_nn_same_shape(L.model->heads[h], heads[t]))
            rc = ldn_fail(err, errlen, LDN_ERR_CONFIG,
                          "rounds.%s.init: round '%s' has no head for task '%s' of this shape",
                          round->name, round->init, rcfg->tasks[t].name);
        else
            memcpy(heads[t]->params, L.model->heads[h]->params,
                   sizeof(float) * (size_t)heads[t]->n_params);
    }
    ldn_ckmodel_free(&L);
    return rc;
}
