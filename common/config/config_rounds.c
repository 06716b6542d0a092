/* Configuration: the rounds list (docs/config.md, rounds) — walked after every other section
 * so that what a round does not set comes from model, train and run — and a round as a run of
 * its own (ldn_config_round). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_priv.h"
#include "status.h"

/* What a round takes from the rest of the config unless it says otherwise. */
static void inherit_round(const struct ldn_config *cfg, struct ldn_round_config *r)
{
    r->epochs = cfg->epochs;
    r->seed = cfg->seed;
    memcpy(r->trunk, cfg->trunk, sizeof r->trunk);
    r->n_trunk = cfg->n_trunk;
    r->lr = cfg->optim.lr;
    r->lr_schedule = cfg->lr;
    r->init_round = -1;
}

/* Round i's teacher: every member names an earlier round (not itself, not a later one) or is
 * a checkpoint path (it has a '/' or ends in .h5; it is opened at start-up). */
static int check_teacher(struct ctx *c, int i)
{
    struct ldn_round_config *r = &c->cfg->rounds[i];
    struct ldn_teacher_config *t = &r->teacher;
    const yaml_node_t *tn = ldn__cfg_value_of(c, c->round_at[i], "teacher");
    const yaml_node_t *mn = ldn__cfg_value_of(c, tn, "members");
    char key[LDN_NAME_MAX + 40];
    snprintf(key, sizeof key, "rounds.%s.teacher.members", r->name);
    if (t->n_members == 0)
        return ldn__cfg_fail_at(
            c, mn ? mn : tn, key,
            "required: the earlier rounds (or checkpoint paths) to distil from");
    for (int m = 0; m < t->n_members; m++) {
        const char *name = t->members[m];
        int j = ldn_config_round_index(c->cfg, name);
        size_t len = strlen(name);
        t->member_round[m] = j;
        if (j == i)
            return ldn__cfg_fail_at(c, mn, key, "round '%s' cannot be its own teacher", name);
        if (j > i)
            return ldn__cfg_fail_at(
                c, mn, key,
                "member '%s' comes later (round %d of %d): a teacher learns from "
                "earlier rounds",
                name, j + 1, c->cfg->n_rounds);
        if (j < 0 && !strchr(name, '/') && !(len > 3 && !strcmp(name + len - 3, ".h5")))
            return ldn__cfg_fail_at(c, mn, key,
                                    "unknown member '%s': not the name of an earlier round, nor a "
                                    "checkpoint path (with a '/' or ending in .h5)",
                                    name);
        for (int q = 0; q < m; q++)
            if (!strcmp(t->members[q], name))
                return ldn__cfg_fail_at(c, mn, key, "member '%s' is listed twice", name);
    }
    return 0;
}

/* Checks of round i once every round is known: its name, its length, init and teacher. */
static int check_round(struct ctx *c, int i)
{
    struct ldn_round_config *r = &c->cfg->rounds[i];
    const yaml_node_t *m = c->round_at[i];
    char key[LDN_NAME_MAX + 24];
    snprintf(key, sizeof key, "rounds.%s", r->name);
    for (int j = 0; j < i; j++)
        if (!strcmp(c->cfg->rounds[j].name, r->name))
            return ldn__cfg_fail_at(c, ldn__cfg_value_of(c, m, "name"), key,
                                    "duplicate round name (also round %d)", j + 1);
    if (ldn__cfg_value_of(c, m, "epochs") && ldn__cfg_value_of(c, m, "steps"))
        return ldn__cfg_fail_at(c, ldn__cfg_value_of(c, m, "steps"), key,
                                "give the round's length as epochs or as steps, not both");
    if (r->init[0]) {
        int j = ldn_config_round_index(c->cfg, r->init);
        if (j < 0 || j >= i)
            return ldn__cfg_fail_at(
                c, ldn__cfg_value_of(c, m, "init"), key,
                "init: '%s' is not an earlier round (init starts a round from an "
                "earlier round's result)",
                r->init);
        r->init_round = j;
    }
    return r->has_teacher ? check_teacher(c, i) : 0;
}

/* rounds: a list of mappings, each one round (walked after every other section, so that what a
 * round does not set comes from model, train and run). */
int ldn__cfg_walk_rounds(struct ctx *c, const yaml_node_t *seq)
{
    char got[128] = "";
    if (seq->type != YAML_SEQUENCE_NODE) {
        ldn__cfg_describe(got, sizeof got, seq);
        return ldn__cfg_fail_at(c, seq, "rounds", "must be a list of rounds (- name: ...), got %s",
                                got);
    }
    ptrdiff_t n = seq->data.sequence.items.top - seq->data.sequence.items.start;
    if (n < 1 || n > LDN_MAX_ROUNDS)
        return ldn__cfg_fail_at(c, seq, "rounds", "must list 1 to %d rounds, got %td",
                                LDN_MAX_ROUNDS, n);
    struct ldn_config *cfg = c->cfg;
    if (!(cfg->rounds = calloc((size_t)n, sizeof *cfg->rounds)))
        return ldn__cfg_oom(c);
    for (int i = 0; i < (int)n; i++) {
        const yaml_node_t *m = ldn__cfg_node(&c->doc, seq->data.sequence.items.start[i]);
        char prefix[LDN_NAME_MAX + 24];
        snprintf(prefix, sizeof prefix, "rounds[%d]", i + 1);
        if (!m || m->type != YAML_MAPPING_NODE) {
            ldn__cfg_describe(got, sizeof got, m);
            return ldn__cfg_fail_at(c, m ? m : seq, prefix,
                                    "must be a mapping (name, epochs, ...), got %s", got);
        }
        const yaml_node_t *nm = ldn__cfg_value_of(c, m, "name");
        if (!nm || nm->type != YAML_SCALAR_NODE ||
            !ldn__cfg_valid_name((const char *)nm->data.scalar.value, nm->data.scalar.length))
            return ldn__cfg_fail_at(c, nm ? nm : m, prefix,
                                    "name: required, [A-Za-z0-9_-]+ of at most %d characters",
                                    LDN_NAME_MAX - 1);
        snprintf(prefix, sizeof prefix, "rounds.%.*s", (int)nm->data.scalar.length,
                 (const char *)nm->data.scalar.value);
        struct ldn_round_config *r = &cfg->rounds[cfg->n_rounds++];
        inherit_round(cfg, r);
        c->round_at[i] = m;
        if (ldn__cfg_walk_section(c, S_ROUND, m, r, prefix) < 0)
            return LDN_ERR_CONFIG;
        if (ldn__cfg_value_of(c, m, "steps"))
            r->epochs = 0; /* the length is the steps */
    }
    for (int i = 0; i < cfg->n_rounds; i++)
        if (check_round(c, i) < 0)
            return LDN_ERR_CONFIG;
    return 0;
}

int ldn_config_round_index(const struct ldn_config *cfg, const char *name)
{
    if (!cfg || !name)
        return -1;
    for (int i = 0; i < cfg->n_rounds; i++)
        if (!strcmp(cfg->rounds[i].name, name))
            return i;
    return -1;
}

struct ldn_config *ldn_config_round(const struct ldn_config *cfg, int i, char *err, size_t errlen)
{
    const struct ldn_round_config *r = &cfg->rounds[i];
    struct ldn_config *c = calloc(1, sizeof *c);
    if (c) {
        *c = *cfg;
        c->rounds = NULL;
        c->n_rounds = 0;
        c->resolved_yaml = NULL;
        c->tasks = malloc(sizeof *c->tasks * (size_t)cfg->n_tasks);
    }
    if (!c || !c->tasks) {
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "config: out of memory");
        goto fail;
    }
    memcpy(c->tasks, cfg->tasks, sizeof *c->tasks * (size_t)cfg->n_tasks);
    memcpy(c->trunk, r->trunk, sizeof c->trunk);
    c->n_trunk = r->n_trunk;
    c->seed = r->seed;
    c->optim.lr = r->lr;
    c->lr = r->lr_schedule;
    c->epochs = r->steps > 0 ? 1 : r->epochs;
    if (r->steps > 0)
        c->steps_per_epoch = r->steps;
    c->ckpt.final = true;
    int pruned = 0; /* prune.rounds: the rounds that prune; the others do not */
    for (int j = 0; j < cfg->prune.n_rounds; j++)
        pruned |= !strcmp(cfg->prune.rounds[j], r->name);
    if (!pruned) {
        c->prune.sparsity = 0;
        c->prune.n_layers = 0;
    }
    c->prune.n_rounds = 0;
    char sub[LDN_NAME_MAX + 8];
    snprintf(sub, sizeof sub, "rounds/%s", r->name);
    int w = snprintf(c->run_name, sizeof c->run_name, "%s.%s", cfg->run_name, r->name);
    if (w < 0 || w >= (int)sizeof c->run_name ||
        !ldn__cfg_join_path(c->run_dir, cfg->run_dir, sub) ||
        !ldn__cfg_join_path(c->ckpt.dir, c->run_dir, "checkpoints")) {
        ldn_fail(err, errlen, LDN_ERR_CONFIG,
                 "config %s: rounds.%s: the round's run name or directory under %s is too long",
                 cfg->source, r->name, cfg->run_dir);
        goto fail;
    }
    if (!(c->resolved_yaml = ldn__cfg_emit_yaml(c))) {
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "config: out of memory");
        goto fail;
    }
    return c;
fail:
    ldn_config_destroy(&c);
    return NULL;
}
