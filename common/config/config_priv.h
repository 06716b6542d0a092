/* Inside the config parser (common/config): what config.c and config_rounds.c share — the
 * sections, the parse context and the helpers that walk the YAML tree and report errors.
 * Not for use outside common/config. */
#ifndef LDN_CONFIG_PRIV_H
#define LDN_CONFIG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config.h"

/* Sections at the top level up to S_ROUND; S_TASKS, S_ROUND and S_TEACHER are row sections:
 * their keys are fields of one task, one round or one round's teacher. */
enum sect {
    S_RUN,
    S_DATA,
    S_MODEL,
    S_TASKS,
    S_TRAIN,
    S_PS,
    S_COMPRESS,
    S_CHECKPOINT,
    S_NET,
    S_PRUNE,
    S_ROUND,
    S_TEACHER,
    N_SECT
};

#define LDN__CFG_MAX_KEYS 256 /* rows of the key table, at most */

/* Parse context and error reporting */
struct ctx {
    const char *name;  /* file name for messages */
    char *const *over; /* override strings */
    char *err;
    size_t errlen;
    yaml_document_t doc;
    struct ldn_config *cfg;
    const yaml_node_t *where[LDN__CFG_MAX_KEYS]; /* value node of each non-row key seen */
    const yaml_node_t *rounds; /* the rounds list, walked after every other section */
    const yaml_node_t *round_at[LDN_MAX_ROUNDS]; /* each round's mapping */
};

/* Write "config PLACE: [KEY: ]MESSAGE" into c->err and return LDN_ERR_CONFIG (n == NULL: no
 * position). */
int __attribute__((format(printf, 4, 5)))
ldn__cfg_fail_at(struct ctx *c, const yaml_node_t *n, const char *key, const char *fmt, ...);
/* "config NAME: out of memory", LDN_ERR_NOMEM. */
int ldn__cfg_oom(struct ctx *c);
/* Node id of doc, or NULL. */
yaml_node_t *ldn__cfg_node(yaml_document_t *doc, int id);
/* Describe a value for "got ...": numbers bare, other text quoted, collections by kind. */
void ldn__cfg_describe(char *buf, size_t cap, const yaml_node_t *n);
/* The value node of key `key` in mapping m (NULL when absent or m is not a mapping). */
const yaml_node_t *ldn__cfg_value_of(struct ctx *c, const yaml_node_t *m, const char *key);
/* A task or round name: [A-Za-z0-9_-]+, shorter than LDN_NAME_MAX. */
bool ldn__cfg_valid_name(const char *s, size_t len);
/* Walk a section mapping into base (a row section: one task, round or teacher), key names
 * prefixed by prefix in messages. 0 or LDN_ERR_CONFIG. */
int ldn__cfg_walk_section(struct ctx *c, enum sect s, const yaml_node_t *m, void *base,
                          const char *prefix);
/* Join a directory and a relative path into out (LDN_PATH_MAX); false if too long. */
bool ldn__cfg_join_path(char *out, const char *dir, const char *file);
/* The resolved config as YAML text (malloc'd), or NULL when out of memory. */
char *ldn__cfg_emit_yaml(const struct ldn_config *cfg);

/* rounds: (config_rounds.c) the list, walked after every other section. */
int ldn__cfg_walk_rounds(struct ctx *c, const yaml_node_t *seq);

/* Checks of the prune section across keys (config_prune.c): 0, or -1 with the key that is wrong
 * ("layers") in *key and what is wrong in msg. */
int ldn__prune_check(const struct ldn_config *cfg, const char **key, char *msg, size_t cap);

/* Checks of ps.affinity across keys (config_affinity.c): 0, or -1 with what is wrong in msg. */
int ldn__affinity_check(const struct ldn_config *cfg, char *msg, size_t cap);
/* train.task_weighting and ps.task_gradients (config_weighting.c): the allowed values, and the
 * checks across keys: 0, or -1 with the section and key that is wrong in *sect, *key and what is
 * wrong in msg. */
extern const char *const ldn__cfg_weighting_names[];
extern const char *const ldn__cfg_gradients_names[];
int ldn__weighting_check(const struct ldn_config *cfg, enum sect *sect, const char **key, char *msg,
                         size_t cap);
/* Checks of ps.liveness_timeout and ps.on_worker_loss across keys (config_liveness.c): 0, or
 * -1 with the ps key that is wrong in *key and what is wrong in msg. */
int ldn__liveness_check(const struct ldn_config *cfg, const char **key, char *msg, size_t cap);

#endif
