/* Configuration: YAML (libyaml document API) + dotted overrides -> struct ldn_config.
 *
 * The file is loaded into a yaml_document_t; each override is parsed as a tiny YAML
 * document and grafted into that tree, its nodes marked with line == SIZE_MAX and
 * index == the override's number. One walk over the tree then fills the struct,
 * driven by the key table below (one row per key), so every error can name its place. */
#define _POSIX_C_SOURCE 200809L

#include "config.h"
#include "config_priv.h"

#include "fs.h"
#include "status.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define MSG_MAX 1024
#define FILE_MAX_BYTES (16u << 20)
#define OVERRIDE_LINE SIZE_MAX /* start_mark.line of nodes made from overrides */
#define GOT_MAX 48             /* longest value quoted back in a message */
#define MAX_DEPTH 32           /* deepest YAML nesting accepted */

/* ---------------------------------------------------------------------------------------------
 * Schema */

#define N_ROOT_SECT (S_ROUND + 1)
static const char *const SECT_NAMES[N_SECT] = {"run",   "data",  "model",    "tasks",
                                               "train", "ps",    "compress", "checkpoint",
                                               "net",   "prune", "rounds",   "teacher"};
#define ROOT_KEYS "run, data, model, tasks, train, ps, compress, checkpoint, net, prune, rounds"

static bool row_sect(enum sect s)
{
    return s == S_TASKS || s == S_ROUND || s == S_TEACHER;
}

/* T_STRLIST: a list of strings (entries of `elem` bytes); T_SUB: a mapping whose keys are the
 * section `sub`, with a bool at count_off saying it was given. */
enum ktype { T_STR, T_INT, T_I64, T_U64, T_DBL, T_BOOL, T_ENUM, T_LIST, T_DLIST, T_STRLIST, T_SUB };
enum { LO_EXCL = 1, HI_EXCL = 2, NO_HI = 4, REQUIRED = 8 };

static const char *const ACT_NAMES[] = {"relu", "tanh", NULL};
static const char *const OPTIM_NAMES[] = {"sgd", "adam", "adamw", NULL};
static const char *const LR_NAMES[] = {"constant", "step", "cosine", NULL};
static const char *const SAMPLING_NAMES[] = {"power", "round_robin", NULL};
static const char *const CONS_NAMES[] = {"bsp", "ssp", "async", NULL};
static const char *const CODEC_NAMES[] = {"dense", "topk", "randomk", "threshold", NULL};
static const char *const QUANT_NAMES[] = {"fp32", "fp16", "int8", "sign", "qsgd", NULL};
static const char *const DOWNLINK_NAMES[] = {"dense", "delta", NULL};
static const char *const SCOPE_NAMES[] = {"chunk", "global", NULL};
static const char *const ANNEAL_NAMES[] = {"none", "linear", NULL};
static const char *const INPUTS_NAMES[] = {"own", "all", NULL};
static const char *const PRUNE_SCOPES[] = {"layer", "global", NULL};
static const char *const LOSS_NAMES[] = {"fail", "continue", NULL};

_Static_assert(sizeof(enum ldn_optim_kind) == sizeof(int), "enums are stored as int");
_Static_assert(sizeof(enum ldn_consistency) == sizeof(int), "enums are stored as int");

struct key_def {
    enum sect sect; /* S_TASKS rows are fields of struct ldn_task_config */
    const char *key;
    enum ktype type;
    unsigned flags;
    double lo, hi;            /* value range (list: range of each entry) */
    size_t off;               /* field offset */
    size_t size;              /* T_STR: buffer size; T_LIST: most entries */
    size_t count_off;         /* T_LIST: offset of the int entry count */
    int min_n;                /* T_LIST: fewest entries */
    const char *const *names; /* T_ENUM: allowed values, NULL-terminated */
    const char *def;          /* default as YAML text; NULL = none, computed or required */
    size_t elem;              /* T_STRLIST: bytes of one entry */
    enum sect sub;            /* T_SUB: the section of its keys */
};

#define C(f) offsetof(struct ldn_config, f)
#define TK(f) offsetof(struct ldn_task_config, f)
#define RD(f) offsetof(struct ldn_round_config, f)
#define TE(f) offsetof(struct ldn_teacher_config, f)
/* clang-format off */
#define STR(s, k, f, sz, fl, d) {s, k, T_STR, fl, 0, 0, f, sz, 0, 0, NULL, d, 0, 0}
#define NUM(s, k, t, f, fl, lo, hi, d) {s, k, t, fl, lo, hi, f, 0, 0, 0, NULL, d, 0, 0}
#define ENUM(s, k, f, names, d) {s, k, T_ENUM, 0, 0, 0, f, 0, 0, 0, names, d, 0, 0}
#define LIST(s, k, f, cnt, maxn, minn, fl) {s, k, T_LIST, fl, 1, 1000000, f, maxn, cnt, minn, NULL, NULL, 0, 0}
#define DLIST(s, k, f, cnt, maxn, fl, lo, hi) {s, k, T_DLIST, fl, lo, hi, f, maxn, cnt, 0, NULL, NULL, 0, 0}
#define STRLIST(s, k, f, cnt, maxn, minn, el) {s, k, T_STRLIST, 0, 0, 0, f, maxn, cnt, minn, NULL, NULL, el, 0}
#define SUB(s, k, f, flag, sb) {s, k, T_SUB, 0, 0, 0, f, 0, flag, 0, NULL, NULL, 0, sb}
/* clang-format on */

static const struct key_def KEYS[] = {
    STR(S_RUN, "name", C(run_name), LDN_NAME_MAX, 0, NULL),
    STR(S_RUN, "dir", C(run_dir), LDN_PATH_MAX, 0, NULL),
    NUM(S_RUN, "seed", T_U64, C(seed), NO_HI, 0, 0, "1"),
    NUM(S_RUN, "overwrite", T_BOOL, C(overwrite), 0, 0, 0, "false"),
    STR(S_DATA, "dir", C(data_dir), LDN_PATH_MAX, REQUIRED, NULL),
    NUM(S_DATA, "max_memory_mb", T_DBL, C(data_max_memory_mb), 0, 0, 1 << 30, "0"),
    LIST(S_MODEL, "trunk", C(trunk), C(n_trunk), LDN_MAX_LAYERS, 1, REQUIRED),
    ENUM(S_MODEL, "activation", C(activation), ACT_NAMES, "relu"),
    STR(S_TASKS, "file", TK(file), LDN_PATH_MAX, 0, NULL),
    NUM(S_TASKS, "weight", T_DBL, TK(weight), LO_EXCL | NO_HI, 0, 0, "1"),
    NUM(S_TASKS, "workers", T_INT, TK(workers), NO_HI, 0, 0, "0"),
    LIST(S_TASKS, "head", TK(head), TK(n_head), LDN_MAX_LAYERS - 1, 0, 0),
    NUM(S_TRAIN, "epochs", T_INT, C(epochs), NO_HI, 1, 0, "10"),
    NUM(S_TRAIN, "batch_size", T_INT, C(batch_size), 0, 1, 65536, "128"),
    NUM(S_TRAIN, "steps_per_epoch", T_I64, C(steps_per_epoch), NO_HI, 0, 0, "0"),
    ENUM(S_TRAIN, "optimizer", C(optim.kind), OPTIM_NAMES, "sgd"),
    NUM(S_TRAIN, "lr", T_DBL, C(optim.lr), LO_EXCL | NO_HI, 0, 0, "0.05"),
    NUM(S_TRAIN, "momentum", T_DBL, C(optim.momentum), HI_EXCL, 0, 1, "0.9"),
    NUM(S_TRAIN, "nesterov", T_BOOL, C(optim.nesterov), 0, 0, 0, "false"),
    NUM(S_TRAIN, "weight_decay", T_DBL, C(optim.weight_decay), NO_HI, 0, 0, "0"),
    NUM(S_TRAIN, "beta1", T_DBL, C(optim.beta1), HI_EXCL, 0, 1, "0.9"),
    NUM(S_TRAIN, "beta2", T_DBL, C(optim.beta2), HI_EXCL, 0, 1, "0.999"),
    NUM(S_TRAIN, "eps", T_DBL, C(optim.eps), LO_EXCL | NO_HI, 0, 0, "1e-8"),
    ENUM(S_TRAIN, "lr_schedule", C(lr.kind), LR_NAMES, "constant"),
    NUM(S_TRAIN, "warmup_steps", T_I64, C(lr.warmup_steps), NO_HI, 0, 0, "0"),
    NUM(S_TRAIN, "lr_step_epochs", T_DBL, C(lr.step_epochs), LO_EXCL | NO_HI, 0, 0, "10"),
    NUM(S_TRAIN, "lr_gamma", T_DBL, C(lr.gamma), LO_EXCL, 0, 1, "0.1"),
    NUM(S_TRAIN, "lr_min", T_DBL, C(lr.min_lr), NO_HI, 0, 0, "0"),
    ENUM(S_TRAIN, "sampling", C(sampling), SAMPLING_NAMES, "power"),
    NUM(S_TRAIN, "sampling_alpha", T_DBL, C(sampling_alpha), 0, 0, 1, "0.75"),
    NUM(S_TRAIN, "log_every", T_I64, C(log_every), NO_HI, 0, 0, "100"),
    NUM(S_TRAIN, "eval_every", T_DBL, C(eval_every), LO_EXCL | NO_HI, 0, 0, "1"),
    NUM(S_TRAIN, "threads", T_INT, C(threads), 0, 1, 64, "1"),
    ENUM(S_TRAIN, "task_weighting", C(weighting.method), ldn__cfg_weighting_names, "static"),
    NUM(S_TRAIN, "dwa_temperature", T_DBL, C(weighting.dwa_temperature), LO_EXCL | NO_HI, 0, 0,
        "2"),
    NUM(S_PS, "servers", T_INT, C(servers), 0, 1, 1024, "1"),
    ENUM(S_PS, "consistency", C(consistency), CONS_NAMES, "bsp"),
    NUM(S_PS, "staleness", T_INT, C(staleness), 0, 0, 1000000, "2"),
    NUM(S_PS, "timeout", T_DBL, C(timeout_s), LO_EXCL | NO_HI, 0, 0, "60"),
    NUM(S_PS, "liveness_timeout", T_DBL, C(liveness_s), NO_HI, 2, 0, "10"),
    ENUM(S_PS, "on_worker_loss", C(on_worker_loss), LOSS_NAMES, "fail"),
    STR(S_PS, "interface", C(iface), LDN_NAME_MAX, 0, "auto"),
    NUM(S_PS, "chunk_kb", T_INT, C(chunk_kb), 0, 4, 1048576, "256"),
    NUM(S_PS, "record_clocks", T_BOOL, C(record_clocks), 0, 0, 0, "false"),
    NUM(S_PS, "affinity", T_I64, C(affinity), NO_HI, 0, 0, "0"),
    ENUM(S_PS, "task_gradients", C(weighting.gradients), ldn__cfg_gradients_names, "sum"),
    ENUM(S_COMPRESS, "codec", C(compress.codec), CODEC_NAMES, "dense"),
    ENUM(S_COMPRESS, "quant", C(compress.quant), QUANT_NAMES, "fp32"),
    NUM(S_COMPRESS, "ratio", T_DBL, C(compress.ratio), LO_EXCL, 0, 1, "0.01"),
    NUM(S_COMPRESS, "chunk", T_INT, C(compress.chunk), 0, 1, 1048576, "256"),
    NUM(S_COMPRESS, "levels", T_INT, C(compress.levels), 0, 1, 127, "16"),
    NUM(S_COMPRESS, "error_feedback", T_BOOL, C(compress.error_feedback), 0, 0, 0, "true"),
    NUM(S_COMPRESS, "warmup_epochs", T_DBL, C(compress.warmup_epochs), NO_HI, 0, 0, "0"),
    NUM(S_COMPRESS, "momentum_correction", T_BOOL, C(compress.momentum_correction), 0, 0, 0,
        "false"),
    NUM(S_COMPRESS, "momentum_masking", T_BOOL, C(compress.momentum_masking), 0, 0, 0, "true"),
    ENUM(S_COMPRESS, "scope", C(compress.scope), SCOPE_NAMES, "chunk"),
    NUM(S_COMPRESS, "min_elements", T_I64, C(compress.min_elements), NO_HI, 0, 0, "0"),
    NUM(S_COMPRESS, "clip_norm", T_DBL, C(compress.clip_norm), NO_HI, 0, 0, "0"),
    ENUM(S_COMPRESS, "downlink", C(compress.downlink), DOWNLINK_NAMES, "dense"),
    ENUM(S_COMPRESS, "downlink_quant", C(compress.downlink_quant), QUANT_NAMES, "fp32"),
    NUM(S_CHECKPOINT, "every_steps", T_I64, C(ckpt.every_steps), NO_HI, 0, 0, "0"),
    NUM(S_CHECKPOINT, "every_minutes", T_DBL, C(ckpt.every_minutes), NO_HI, 0, 0, "0"),
    NUM(S_CHECKPOINT, "keep_last", T_INT, C(ckpt.keep_last), 0, 1, 1000000, "3"),
    NUM(S_CHECKPOINT, "final", T_BOOL, C(ckpt.final), 0, 0, 0, "true"),
    STR(S_CHECKPOINT, "dir", C(ckpt.dir), LDN_PATH_MAX, 0, NULL),
    NUM(S_CHECKPOINT, "timeout", T_DBL, C(ckpt.timeout_s), LO_EXCL | NO_HI, 0, 0, "600"),
    NUM(S_NET, "curve", T_BOOL, C(curve), 0, 0, 0, "true"),
    NUM(S_NET, "max_message_mb", T_DBL, C(max_message_mb), 0, 0, 1 << 20, "0"),
    NUM(S_NET, "queue_messages", T_INT, C(queue_messages), 0, 1, 10000000, "10000"),
    NUM(S_PRUNE, "sparsity", T_DBL, C(prune.sparsity), HI_EXCL, 0, 1, "0"),
    NUM(S_PRUNE, "initial", T_DBL, C(prune.initial), HI_EXCL, 0, 1, "0"),
    NUM(S_PRUNE, "start", T_I64, C(prune.start), NO_HI, 0, 0, "0"),
    NUM(S_PRUNE, "end", T_I64, C(prune.end), NO_HI, 0, 0, "0"),
    NUM(S_PRUNE, "every", T_I64, C(prune.every), NO_HI, 1, 0, "100"),
    ENUM(S_PRUNE, "scope", C(prune.scope), PRUNE_SCOPES, "layer"),
    DLIST(S_PRUNE, "layers", C(prune.layers), C(prune.n_layers), LDN_MAX_LAYERS, HI_EXCL, 0, 1),
    STRLIST(S_PRUNE, "rounds", C(prune.rounds), C(prune.n_rounds), LDN_MAX_ROUNDS, 0, LDN_NAME_MAX),
    /* one round; what has no default here is inherited from model/train/run (inherit_round) */
    STR(S_ROUND, "name", RD(name), LDN_NAME_MAX, 0, NULL),
    NUM(S_ROUND, "epochs", T_INT, RD(epochs), NO_HI, 1, 0, NULL),
    NUM(S_ROUND, "steps", T_I64, RD(steps), NO_HI, 1, 0, NULL),
    NUM(S_ROUND, "seed", T_U64, RD(seed), NO_HI, 0, 0, NULL),
    LIST(S_ROUND, "trunk", RD(trunk), RD(n_trunk), LDN_MAX_LAYERS, 1, 0),
    NUM(S_ROUND, "lr", T_DBL, RD(lr), LO_EXCL | NO_HI, 0, 0, NULL),
    ENUM(S_ROUND, "lr_schedule", RD(lr_schedule.kind), LR_NAMES, NULL),
    NUM(S_ROUND, "warmup_steps", T_I64, RD(lr_schedule.warmup_steps), NO_HI, 0, 0, NULL),
    NUM(S_ROUND, "lr_step_epochs", T_DBL, RD(lr_schedule.step_epochs), LO_EXCL | NO_HI, 0, 0, NULL),
    NUM(S_ROUND, "lr_gamma", T_DBL, RD(lr_schedule.gamma), LO_EXCL, 0, 1, NULL),
    NUM(S_ROUND, "lr_min", T_DBL, RD(lr_schedule.min_lr), NO_HI, 0, 0, NULL),
    STR(S_ROUND, "init", RD(init), LDN_NAME_MAX, 0, NULL),
    SUB(S_ROUND, "teacher", RD(teacher), RD(has_teacher), S_TEACHER),
    STRLIST(S_TEACHER, "members", TE(members), TE(n_members), LDN_MAX_MEMBERS, 1, LDN_PATH_MAX),
    NUM(S_TEACHER, "temperature", T_DBL, TE(temperature), LO_EXCL | NO_HI, 0, 0, "2"),
    NUM(S_TEACHER, "alpha", T_DBL, TE(alpha), 0, 0, 1, "0.5"),
    ENUM(S_TEACHER, "annealing", TE(annealing), ANNEAL_NAMES, "none"),
    ENUM(S_TEACHER, "inputs", TE(inputs), INPUTS_NAMES, "own"),
    NUM(S_TEACHER, "cache_mb", T_DBL, TE(cache_mb), NO_HI, 0, 0, "1024"),
};
#define N_KEYS ((int)LDN_ARRAY_LEN(KEYS))
_Static_assert(LDN_ARRAY_LEN(KEYS) <= LDN__CFG_MAX_KEYS, "raise LDN__CFG_MAX_KEYS (config_priv.h)");

static int find_key(enum sect s, const char *key, size_t len)
{
    for (int i = 0; i < N_KEYS; i++)
        if (KEYS[i].sect == s && strlen(KEYS[i].key) == len && !memcmp(KEYS[i].key, key, len))
            return i;
    return -1;
}

const char *ldn_optim_name(enum ldn_optim_kind k)
{
    return (unsigned)k < 3 ? OPTIM_NAMES[k] : "?";
}
const char *ldn_lr_name(enum ldn_lr_kind k)
{
    return (unsigned)k < 3 ? LR_NAMES[k] : "?";
}
const char *ldn_consistency_name(enum ldn_consistency c)
{
    return (unsigned)c < 3 ? CONS_NAMES[c] : "?";
}
const char *ldn_activation_name(enum ldn_activation a)
{
    return (unsigned)a < 2 ? ACT_NAMES[a] : "?";
}

/* ---------------------------------------------------------------------------------------------
 * Small text helpers */

/* Append to a fixed buffer, truncating; keeps it NUL-terminated. */
static void __attribute__((format(printf, 3, 4)))
bprintf(char *buf, size_t cap, const char *fmt, ...)
{
    size_t n = strlen(buf);
    if (n + 1 >= cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

/* Copy text into a message, at most max bytes, control characters shown as '?'. */
static void put_clean(char *buf, size_t cap, const char *s, size_t len, size_t max)
{
    size_t n = strlen(buf), i;
    for (i = 0; i < len && i < max && n + 1 < cap; i++)
        buf[n++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[n] = '\0';
    if (i < len)
        bprintf(buf, cap, "...");
}

static bool is_null_scalar(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') ||
           (len == 4 && (!memcmp(v, "null", 4) || !memcmp(v, "Null", 4) || !memcmp(v, "NULL", 4)));
}

static bool parse_double(const char *s, size_t len, double *out)
{
    if (len == 0 || len > 64 || strlen(s) != len ||
        !(s[0] == '-' || s[0] == '+' || s[0] == '.' || (s[0] >= '0' && s[0] <= '9') ||
          s[0] == 'n' || s[0] == 'N' || s[0] == 'i' || s[0] == 'I'))
        return false;
    char *end;
    *out = strtod(s, &end);
    return end == s + len;
}

/* Describe a value for "got ...": numbers bare, other text quoted, collections by kind. */
void ldn__cfg_describe(char *buf, size_t cap, const yaml_node_t *n)
{
    double d;
    if (n->type == YAML_SEQUENCE_NODE) {
        bprintf(buf, cap, "a list");
    } else if (n->type == YAML_MAPPING_NODE) {
        bprintf(buf, cap, "a mapping");
    } else if (is_null_scalar(n)) {
        bprintf(buf, cap, "nothing (null)");
    } else {
        const char *v = (const char *)n->data.scalar.value;
        size_t len = n->data.scalar.length;
        bool bare = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && parse_double(v, len, &d);
        bprintf(buf, cap, bare ? "" : "'");
        put_clean(buf, cap, v, len, GOT_MAX);
        bprintf(buf, cap, bare ? "" : "'");
    }
}

/* ---------------------------------------------------------------------------------------------
 * Parse context and error reporting */

/* Write "config PLACE: [KEY: ]MESSAGE" and return LDN_ERR_CONFIG. n == NULL: no position. */
int ldn__cfg_fail_at(struct ctx *c, const yaml_node_t *n, const char *key, const char *fmt, ...)
{
    char msg[MSG_MAX] = "config ";
    if (n && n->start_mark.line == OVERRIDE_LINE) {
        const char *o = c->over[n->start_mark.index];
        bprintf(msg, sizeof msg, "override '");
        put_clean(msg, sizeof msg, o, strlen(o), 200);
        bprintf(msg, sizeof msg, "': ");
    } else if (n) {
        bprintf(msg, sizeof msg, "%s:%zu:%zu: ", c->name, n->start_mark.line + 1,
                n->start_mark.column + 1);
    } else {
        bprintf(msg, sizeof msg, "%s: ", c->name);
    }
    if (key)
        bprintf(msg, sizeof msg, "%s: ", key);
    size_t len = strlen(msg);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + len, sizeof msg - len, fmt, ap);
    va_end(ap);
    return ldn_fail(c->err, c->errlen, LDN_ERR_CONFIG, "%s", msg);
}

int ldn__cfg_oom(struct ctx *c)
{
    return ldn_fail(c->err, c->errlen, LDN_ERR_NOMEM, "config %s: out of memory", c->name);
}

yaml_node_t *ldn__cfg_node(yaml_document_t *doc, int id)
{
    return yaml_document_get_node(doc, id);
}

/* ---------------------------------------------------------------------------------------------
 * Values */

/* What a key accepts, e.g. "an integer in [1, 65536]" or "one of sgd, adam, adamw". */
static void want_text(char *buf, size_t cap, const struct key_def *k)
{
    switch (k->type) {
    case T_STR: bprintf(buf, cap, "a non-empty string"); return;
    case T_BOOL: bprintf(buf, cap, "true or false"); return;
    case T_ENUM:
        bprintf(buf, cap, "one of ");
        for (int i = 0; k->names[i]; i++)
            bprintf(buf, cap, "%s%s", i ? ", " : "", k->names[i]);
        return;
    case T_DBL:
    case T_DLIST: bprintf(buf, cap, "a number"); break;
    default: bprintf(buf, cap, "an integer"); break;
    }
    if (k->flags & NO_HI)
        bprintf(buf, cap, " %s %.17g", (k->flags & LO_EXCL) ? ">" : ">=", k->lo);
    else
        bprintf(buf, cap, " in %c%.17g, %.17g%c", (k->flags & LO_EXCL) ? '(' : '[', k->lo, k->hi,
                (k->flags & HI_EXCL) ? ')' : ']');
}

static bool in_range(const struct key_def *k, double v)
{
    if ((k->flags & LO_EXCL) ? !(v > k->lo) : !(v >= k->lo))
        return false;
    return (k->flags & NO_HI) || ((k->flags & HI_EXCL) ? v < k->hi : v <= k->hi);
}

/* A whole decimal number; *big when it does not fit in 64 bits. */
static bool parse_int(const char *s, size_t len, bool is_unsigned, int64_t *iv, uint64_t *uv,
                      bool *big)
{
    size_t i = (len > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    if (i == len || strlen(s) != len || strspn(s + i, "0123456789") != len - i)
        return false;
    errno = 0;
    if (is_unsigned && s[0] != '-')
        *uv = strtoull(s, NULL, 10);
    else
        *iv = strtoll(s, NULL, 10);
    *big = errno == ERANGE;
    return true;
}

/* Store the value of scalar text s into field; false if it is not allowed for k. */
static bool parse_value(const struct key_def *k, const char *s, size_t len, void *field, bool *big)
{
    static const char *const BOOLS[] = {"false", "no", "off", "true", "yes", "on"};
    int64_t iv = 0;
    uint64_t uv = 0;
    double d;
    switch (k->type) {
    case T_STR:
        if (len == 0 || len >= k->size || strlen(s) != len)
            return false;
        memcpy(field, s, len + 1);
        return true;
    case T_BOOL:
        for (int i = 0; i < 6; i++)
            if (strlen(BOOLS[i]) == len && !strncasecmp(s, BOOLS[i], len))
                return *(bool *)field = i >= 3, true;
        return false;
    case T_ENUM:
        for (int i = 0; k->names[i]; i++)
            if (strlen(k->names[i]) == len && !memcmp(k->names[i], s, len))
                return memcpy(field, &i, sizeof i), true;
        return false;
    case T_DBL:
        if (!parse_double(s, len, &d) || !isfinite(d) || !in_range(k, d))
            return false;
        *(double *)field = d;
        return true;
    case T_U64:
        if (!parse_int(s, len, true, &iv, &uv, big) || *big || s[0] == '-')
            return false;
        *(uint64_t *)field = uv;
        return true;
    case T_I64:
    case T_INT:
    case T_LIST:
        if (!parse_int(s, len, false, &iv, &uv, big))
            return false;
        *big |= k->type != T_I64 && (iv < INT32_MIN || iv > INT32_MAX);
        if (*big || !in_range(k, (double)iv))
            return false;
        if (k->type == T_I64)
            *(int64_t *)field = iv;
        else
            *(int *)field = (int)iv;
        return true;
    case T_DLIST:
    case T_STRLIST: /* lists and mappings: set_value */
    case T_SUB: return false;
    }
    return false;
}

/* Set field k of base from node n, or report what is allowed and what was given. */
static int set_scalar(struct ctx *c, const struct key_def *k, void *base, const yaml_node_t *n,
                      const char *key)
{
    char want[256] = "", got[128] = "";
    bool big = false, scalar = n->type == YAML_SCALAR_NODE && !is_null_scalar(n);
    const char *s = scalar ? (const char *)n->data.scalar.value : "";
    size_t len = scalar ? n->data.scalar.length : 0;
    if (scalar && k->type == T_STR && len >= k->size)
        return ldn__cfg_fail_at(c, n, key, "must be at most %zu characters long, got %zu",
                                k->size - 1, len);
    if (scalar && parse_value(k, s, len, (char *)base + k->off, &big))
        return 0;
    want_text(want, sizeof want, k);
    ldn__cfg_describe(got, sizeof got, n);
    return ldn__cfg_fail_at(c, n, key, "%smust be %s, got %s%s",
                            k->type == T_LIST ? "each entry " : "", want, got,
                            big && (k->flags & NO_HI) ? " (too large)" : "");
}

static void apply_defaults(enum sect s, void *base);

/* Set one key of a section (or task, round) from its value node. */
static int set_value(struct ctx *c, const struct key_def *k, void *base, const yaml_node_t *v,
                     const char *key)
{
    if (k->type == T_SUB) { /* a mapping of the keys of section k->sub */
        void *sub = (char *)base + k->off;
        apply_defaults(k->sub, sub);
        *(bool *)((char *)base + k->count_off) = true;
        return ldn__cfg_walk_section(c, k->sub, v, sub, key);
    }
    if (k->type != T_LIST && k->type != T_DLIST && k->type != T_STRLIST)
        return set_scalar(c, k, base, v, key);
    /* a list of integers, numbers or strings; null is an empty list */
    const bool strs = k->type == T_STRLIST, dbls = k->type == T_DLIST;
    char got[128] = "";
    ptrdiff_t n = 0;
    if (v->type == YAML_SEQUENCE_NODE) {
        n = v->data.sequence.items.top - v->data.sequence.items.start;
    } else if (!is_null_scalar(v)) {
        ldn__cfg_describe(got, sizeof got, v);
        return ldn__cfg_fail_at(c, v, key, "must be a list of %d to %zu %s, got %s", k->min_n,
                                k->size,
                                strs   ? "strings, e.g. [a, b]"
                                : dbls ? "numbers, e.g. [0.5, 0.9]"
                                       : "integers, e.g. [256, 256]",
                                got);
    }
    if (n < k->min_n || n > (ptrdiff_t)k->size)
        return ldn__cfg_fail_at(c, v, key, "must have %d to %zu entries, got %td", k->min_n,
                                k->size, n);
    for (int i = 0; i < (int)n; i++) {
        const yaml_node_t *item = ldn__cfg_node(&c->doc, v->data.sequence.items.start[i]);
        struct key_def one = *k;
        one.off = k->off + (size_t)i * (strs ? k->elem : dbls ? sizeof(double) : sizeof(int));
        one.type = dbls ? T_DBL : one.type;
        if (strs) {
            one.type = T_STR;
            one.size = k->elem;
        }
        if (!item)
            return ldn__cfg_fail_at(c, v, key, "unreadable list entry");
        if (set_scalar(c, &one, base, item, key) < 0)
            return LDN_ERR_CONFIG;
    }
    *(int *)((char *)base + k->count_off) = (int)n;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Walking the document */

/* Check that pair i of mapping m has a plain key not used before in m. Sets *kn. */
static int check_key(struct ctx *c, const yaml_node_t *m, int i, const char *parent,
                     const yaml_node_t **kn)
{
    yaml_node_pair_t *pairs = m->data.mapping.pairs.start;
    const yaml_node_t *k = ldn__cfg_node(&c->doc, pairs[i].key);
    *kn = k;
    if (!k || k->type != YAML_SCALAR_NODE)
        return ldn__cfg_fail_at(c, k ? k : m, parent, "keys must be plain names, got %s",
                                k && k->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping");
    for (int j = 0; j < i; j++) {
        const yaml_node_t *o = ldn__cfg_node(&c->doc, pairs[j].key);
        if (o && o->type == YAML_SCALAR_NODE && o->data.scalar.length == k->data.scalar.length &&
            !memcmp(o->data.scalar.value, k->data.scalar.value, k->data.scalar.length)) {
            char key[MSG_MAX] = "";
            if (parent)
                bprintf(key, sizeof key, "%s.", parent);
            put_clean(key, sizeof key, (const char *)k->data.scalar.value, k->data.scalar.length,
                      GOT_MAX);
            if (o->start_mark.line == OVERRIDE_LINE)
                return ldn__cfg_fail_at(c, k, key, "duplicate key");
            return ldn__cfg_fail_at(c, k, key, "duplicate key (first at line %zu)",
                                    o->start_mark.line + 1);
        }
    }
    return 0;
}

/* Walk a section mapping (or one task's mapping: sect == S_TASKS, base = the task). */
int ldn__cfg_walk_section(struct ctx *c, enum sect s, const yaml_node_t *m, void *base,
                          const char *prefix)
{
    char got[128] = "";
    if (is_null_scalar(m))
        return 0; /* `section:` with nothing under it: defaults */
    if (m->type != YAML_MAPPING_NODE) {
        ldn__cfg_describe(got, sizeof got, m);
        return ldn__cfg_fail_at(c, m, prefix, "must be a mapping of keys, got %s", got);
    }
    int n = (int)(m->data.mapping.pairs.top - m->data.mapping.pairs.start);
    for (int i = 0; i < n; i++) {
        const yaml_node_t *kn, *v = ldn__cfg_node(&c->doc, m->data.mapping.pairs.start[i].value);
        if (check_key(c, m, i, prefix, &kn) < 0)
            return LDN_ERR_CONFIG;
        const char *ks = (const char *)kn->data.scalar.value;
        char key[MSG_MAX];
        snprintf(key, sizeof key, "%s.", prefix);
        put_clean(key, sizeof key, ks, kn->data.scalar.length, GOT_MAX);
        int r = find_key(s, ks, kn->data.scalar.length);
        if (r < 0) {
            char allowed[MSG_MAX] = "";
            for (int j = 0; j < N_KEYS; j++)
                if (KEYS[j].sect == s)
                    bprintf(allowed, sizeof allowed, "%s%s", allowed[0] ? ", " : "", KEYS[j].key);
            return ldn__cfg_fail_at(c, kn, key, "unknown key (allowed in %s: %s)", prefix, allowed);
        }
        if (!v)
            return ldn__cfg_fail_at(c, kn, key, "internal error: missing value node");
        if (set_value(c, &KEYS[r], base, v, key) < 0)
            return LDN_ERR_CONFIG;
        if (!row_sect(s))
            c->where[r] = v;
    }
    return 0;
}

static void apply_defaults(enum sect s, void *base)
{
    bool big;
    for (int i = 0; i < N_KEYS; i++)
        if (KEYS[i].sect == s && KEYS[i].def)
            LDN_ASSERT(parse_value(&KEYS[i], KEYS[i].def, strlen(KEYS[i].def),
                                   (char *)base + KEYS[i].off, &big));
}

bool ldn__cfg_valid_name(const char *s, size_t len)
{
    if (len == 0 || len >= LDN_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static int walk_tasks(struct ctx *c, const yaml_node_t *m)
{
    char got[128] = "";
    if (is_null_scalar(m))
        return ldn__cfg_fail_at(c, m, "tasks", "must name at least one task, got none");
    if (m->type != YAML_MAPPING_NODE) {
        ldn__cfg_describe(got, sizeof got, m);
        return ldn__cfg_fail_at(c, m, "tasks", "must be a mapping of task name -> settings, got %s",
                                got);
    }
    ptrdiff_t n = m->data.mapping.pairs.top - m->data.mapping.pairs.start;
    if (n == 0)
        return ldn__cfg_fail_at(c, m, "tasks", "must name at least one task, got none");
    if (n > LDN_MAX_TASKS)
        return ldn__cfg_fail_at(c, m, "tasks", "must have at most %d tasks, got %td", LDN_MAX_TASKS,
                                n);
    struct ldn_config *cfg = c->cfg;
    cfg->tasks = calloc((size_t)n, sizeof *cfg->tasks);
    if (!cfg->tasks)
        return ldn__cfg_oom(c);
    for (int i = 0; i < (int)n; i++) {
        const yaml_node_t *kn, *v = ldn__cfg_node(&c->doc, m->data.mapping.pairs.start[i].value);
        if (check_key(c, m, i, "tasks", &kn) < 0)
            return LDN_ERR_CONFIG;
        const char *name = (const char *)kn->data.scalar.value;
        size_t len = kn->data.scalar.length;
        if (!ldn__cfg_valid_name(name, len) || strlen(name) != len) {
            ldn__cfg_describe(got, sizeof got, kn);
            return ldn__cfg_fail_at(
                c, kn, "tasks",
                "task names must match [A-Za-z0-9_-]+ and be at most %d characters, "
                "got %s",
                LDN_NAME_MAX - 1, got);
        }
        struct ldn_task_config *t = &cfg->tasks[cfg->n_tasks++];
        memcpy(t->name, name, len + 1);
        apply_defaults(S_TASKS, t);
        char prefix[LDN_NAME_MAX + 8];
        snprintf(prefix, sizeof prefix, "tasks.%s", t->name);
        if (v && !is_null_scalar(v) && v->type != YAML_MAPPING_NODE) {
            ldn__cfg_describe(got, sizeof got, v);
            return ldn__cfg_fail_at(
                c, v, prefix, "must be a mapping (file, weight, workers, head) or empty, got %s",
                got);
        }
        if (v && ldn__cfg_walk_section(c, S_TASKS, v, t, prefix) < 0)
            return LDN_ERR_CONFIG;
    }
    return 0;
}

/* The value node of key `key` in mapping m (NULL when absent or m is not a mapping). */
const yaml_node_t *ldn__cfg_value_of(struct ctx *c, const yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (const yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = ldn__cfg_node(&c->doc, p->key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == strlen(key) &&
            !memcmp(k->data.scalar.value, key, strlen(key)))
            return ldn__cfg_node(&c->doc, p->value);
    }
    return NULL;
}

static int walk_root(struct ctx *c, const yaml_node_t *root)
{
    char got[128] = "";
    if (root->type != YAML_MAPPING_NODE) {
        ldn__cfg_describe(got, sizeof got, root);
        return ldn__cfg_fail_at(
            c, root, NULL, "the top level must be a mapping with data, model, tasks, got %s", got);
    }
    bool have_tasks = false;
    int n = (int)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
    for (int i = 0; i < n; i++) {
        const yaml_node_t *kn, *v = ldn__cfg_node(&c->doc, root->data.mapping.pairs.start[i].value);
        if (check_key(c, root, i, NULL, &kn) < 0)
            return LDN_ERR_CONFIG;
        int s;
        for (s = 0; s < N_ROOT_SECT; s++)
            if (strlen(SECT_NAMES[s]) == kn->data.scalar.length &&
                !memcmp(SECT_NAMES[s], kn->data.scalar.value, kn->data.scalar.length))
                break;
        if (s == N_ROOT_SECT || !v) {
            char key[MSG_MAX] = "";
            put_clean(key, sizeof key, (const char *)kn->data.scalar.value, kn->data.scalar.length,
                      GOT_MAX);
            return ldn__cfg_fail_at(c, kn, key,
                                    "unknown key (allowed at the top level: " ROOT_KEYS ")");
        }
        if (s == S_ROUND) {
            c->rounds = v;
            continue;
        }
        int rc = s == S_TASKS ? walk_tasks(c, v)
                              : ldn__cfg_walk_section(c, (enum sect)s, v, c->cfg, SECT_NAMES[s]);
        if (rc < 0)
            return rc;
        have_tasks |= s == S_TASKS;
    }
    if (!have_tasks)
        return ldn__cfg_fail_at(c, NULL, "tasks", "required key is missing (at least one task)");
    return c->rounds ? ldn__cfg_walk_rounds(c, c->rounds) : 0;
}

/* Join data.dir and a relative path into out (size LDN_PATH_MAX); false if too long. */
bool ldn__cfg_join_path(char *out, const char *dir, const char *file)
{
    size_t dl = strlen(dir);
    const char *sep = (dl == 0 || dir[dl - 1] == '/') ? "" : "/";
    int w = snprintf(out, LDN_PATH_MAX, "%s%s%s", dir, sep, file);
    return w >= 0 && w < LDN_PATH_MAX;
}

/* Checks across keys and computed defaults, after the walk. */
static int finish(struct ctx *c)
{
    struct ldn_config *cfg = c->cfg;
    for (int i = 0; i < N_KEYS; i++)
        if ((KEYS[i].flags & REQUIRED) && !c->where[i]) {
            char key[64];
            snprintf(key, sizeof key, "%s.%s", SECT_NAMES[KEYS[i].sect], KEYS[i].key);
            return ldn__cfg_fail_at(c, NULL, key, "required key is missing");
        }
    int nest = find_key(S_TRAIN, "nesterov", 8);
    if (cfg->optim.nesterov && cfg->optim.momentum == 0)
        return ldn__cfg_fail_at(c, c->where[nest], "train.nesterov",
                                "true needs train.momentum > 0, got momentum 0");
    if (cfg->compress.scope == LDN_SCOPE_GLOBAL && cfg->compress.codec != LDN_COMPRESS_TOPK) {
        int k = find_key(S_COMPRESS, "scope", 5);
        return ldn__cfg_fail_at(
            c, c->where[k], "compress.scope",
            "global selects the top-k of the whole trunk: it needs compress.codec: "
            "topk, got %s",
            CODEC_NAMES[cfg->compress.codec]);
    }
    if (cfg->compress.momentum_correction && cfg->optim.kind != LDN_OPTIM_SGD) {
        int k = find_key(S_COMPRESS, "momentum_correction", 19);
        return ldn__cfg_fail_at(
            c, c->where[k], "compress.momentum_correction",
            "true needs train.optimizer: sgd (the workers keep an SGD velocity and the "
            "servers apply plain SGD), got optimizer %s",
            OPTIM_NAMES[cfg->optim.kind]);
    }
    if (cfg->compress.downlink_quant > LDN_COMPRESS_INT8) {
        int k = find_key(S_COMPRESS, "downlink_quant", 14);
        return ldn__cfg_fail_at(
            c, c->where[k], "compress.downlink_quant",
            "must be fp32, fp16 or int8 (pulls are not sign- or qsgd-coded), got %s",
            QUANT_NAMES[cfg->compress.downlink_quant]);
    }
    const char *pk = NULL;
    char msg[256];
    if (ldn__affinity_check(cfg, msg, sizeof msg) < 0)
        return ldn__cfg_fail_at(c, c->where[find_key(S_PS, "affinity", 8)], "ps.affinity", "%s",
                                msg);
    if (ldn__liveness_check(cfg, &pk, msg, sizeof msg) < 0) {
        char key[64];
        snprintf(key, sizeof key, "ps.%s", pk);
        return ldn__cfg_fail_at(c, c->where[find_key(S_PS, pk, strlen(pk))], key, "%s", msg);
    }
    if (ldn__prune_check(cfg, &pk, msg, sizeof msg) < 0) {
        char key[64];
        snprintf(key, sizeof key, "prune.%s", pk);
        return ldn__cfg_fail_at(c, c->where[find_key(S_PRUNE, pk, strlen(pk))], key, "%s", msg);
    }
    enum sect ws;
    if (ldn__weighting_check(cfg, &ws, &pk, msg, sizeof msg) < 0) {
        char key[64];
        snprintf(key, sizeof key, "%s.%s", SECT_NAMES[ws], pk);
        return ldn__cfg_fail_at(c, c->where[find_key(ws, pk, strlen(pk))], key, "%s", msg);
    }
    if (!cfg->run_name[0]) {
        const char *b = strrchr(cfg->source, '/');
        b = b ? b + 1 : cfg->source;
        size_t len = strlen(b);
        if (len > 5 && !strcmp(b + len - 5, ".yaml"))
            len -= 5;
        else if (len > 4 && !strcmp(b + len - 4, ".yml"))
            len -= 4;
        if (len == 0)
            b = "run", len = 3;
        if (len >= LDN_NAME_MAX)
            return ldn__cfg_fail_at(c, NULL, "run.name",
                                    "the file name is longer than %d characters; set run.name",
                                    LDN_NAME_MAX - 1);
        memcpy(cfg->run_name, b, len);
        cfg->run_name[len] = '\0';
    }
    if (!cfg->run_dir[0] && !ldn__cfg_join_path(cfg->run_dir, "runs", cfg->run_name))
        return ldn__cfg_fail_at(c, NULL, "run.dir", "default path is too long"); /* cannot happen */
    if (!cfg->ckpt.dir[0] && !ldn__cfg_join_path(cfg->ckpt.dir, cfg->run_dir, "checkpoints"))
        return ldn__cfg_fail_at(c, NULL, "checkpoint.dir",
                                "default path (run.dir/checkpoints) is longer "
                                "than %d characters",
                                LDN_PATH_MAX - 1);
    for (int t = 0; t < cfg->n_tasks; t++) {
        struct ldn_task_config *tk = &cfg->tasks[t];
        char rel[LDN_PATH_MAX];
        if (!tk->file[0])
            snprintf(rel, sizeof rel, "%s.h5", tk->name);
        else
            memcpy(rel, tk->file, sizeof rel);
        if (rel[0] == '/')
            continue;
        if (!ldn__cfg_join_path(tk->file, cfg->data_dir, rel)) {
            char key[LDN_NAME_MAX + 16];
            snprintf(key, sizeof key, "tasks.%s.file", tk->name);
            return ldn__cfg_fail_at(
                c, NULL, key, "path under data.dir is longer than %d characters", LDN_PATH_MAX - 1);
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Overrides: grafted into the document before the walk */

static void mark_override(yaml_document_t *doc, int id, int which)
{
    yaml_node_t *n = ldn__cfg_node(doc, id);
    n->start_mark.line = OVERRIDE_LINE;
    n->start_mark.index = (size_t)which;
    n->start_mark.column = 0;
}

/* Copy node sid of src into dst, marked as override `which`; returns the id, 0 when out of
 * memory. A list keeps its entries; anything deeper is copied empty: no key takes it, and the
 * walk reports "got a list" or "got a mapping". */
static int copy_node(yaml_document_t *dst, yaml_document_t *src, int sid, int which, bool top)
{
    const yaml_node_t *s = ldn__cfg_node(src, sid);
    int id;
    if (s->type == YAML_SCALAR_NODE)
        id = yaml_document_add_scalar(dst, NULL, s->data.scalar.value, (int)s->data.scalar.length,
                                      s->data.scalar.style);
    else if (s->type == YAML_MAPPING_NODE)
        id = yaml_document_add_mapping(dst, NULL, YAML_FLOW_MAPPING_STYLE);
    else
        id = yaml_document_add_sequence(dst, NULL, YAML_FLOW_SEQUENCE_STYLE);
    if (!id)
        return 0;
    mark_override(dst, id, which);
    for (int i = 0; top && s->type == YAML_SEQUENCE_NODE &&
                    i < s->data.sequence.items.top - s->data.sequence.items.start;
         i++) {
        int item = copy_node(dst, src, s->data.sequence.items.start[i], which, false);
        if (!item || !yaml_document_append_sequence_item(dst, id, item))
            return 0;
    }
    return id;
}

/* Index of the pair whose key is the scalar name in mapping id, or -1. */
static int find_pair(yaml_document_t *doc, int id, const char *name, size_t len)
{
    yaml_node_t *m = ldn__cfg_node(doc, id);
    for (int i = 0; i < m->data.mapping.pairs.top - m->data.mapping.pairs.start; i++) {
        yaml_node_t *k = ldn__cfg_node(doc, m->data.mapping.pairs.start[i].key);
        if (k && k->type == YAML_SCALAR_NODE && k->data.scalar.length == len &&
            !memcmp(k->data.scalar.value, name, len))
            return i;
    }
    return -1;
}

/* Set key name of mapping map to node value (replacing or adding). False: out of memory. */
static bool set_pair(yaml_document_t *doc, int map, const char *name, size_t len, int value,
                     int which)
{
    int pi = find_pair(doc, map, name, len), k;
    if (pi >= 0) {
        ldn__cfg_node(doc, map)->data.mapping.pairs.start[pi].value = value;
        return true;
    }
    k = yaml_document_add_scalar(doc, NULL, (yaml_char_t *)(uintptr_t)name, (int)len,
                                 YAML_PLAIN_SCALAR_STYLE);
    if (k)
        mark_override(doc, k, which);
    return k && yaml_document_append_mapping_pair(doc, map, k, value);
}

/* Id of the mapping under key name of mapping map, made if missing or null; 0 when the value
 * there is something else (the walk reports it at its place), -1 when out of memory. */
static int child_map(yaml_document_t *doc, int map, const char *name, size_t len, int which)
{
    int pi = find_pair(doc, map, name, len);
    if (pi >= 0) {
        int vid = ldn__cfg_node(doc, map)->data.mapping.pairs.start[pi].value;
        yaml_node_t *v = ldn__cfg_node(doc, vid);
        if (v && v->type == YAML_MAPPING_NODE)
            return vid;
        if (!v || !is_null_scalar(v))
            return 0;
    }
    int id = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
    if (!id)
        return -1;
    mark_override(doc, id, which);
    return set_pair(doc, map, name, len, id, which) ? id : -1;
}

/* The id of the mapping of the round called name in the document's rounds list; 0 with the
 * error reported when there is none. */
static int round_item(struct ctx *c, const yaml_node_t *place, const char *name, size_t len)
{
    int pi = find_pair(&c->doc, 1, "rounds", 6);
    yaml_node_t *seq =
        pi < 0
            ? NULL
            : ldn__cfg_node(&c->doc, ldn__cfg_node(&c->doc, 1)->data.mapping.pairs.start[pi].value);
    char list[MSG_MAX] = "";
    for (int i = 0; seq && seq->type == YAML_SEQUENCE_NODE &&
                    i < seq->data.sequence.items.top - seq->data.sequence.items.start;
         i++) {
        int id = seq->data.sequence.items.start[i];
        const yaml_node_t *nm = ldn__cfg_value_of(c, ldn__cfg_node(&c->doc, id), "name");
        if (!nm || nm->type != YAML_SCALAR_NODE)
            continue;
        if (nm->data.scalar.length == len && !memcmp(nm->data.scalar.value, name, len))
            return id;
        bprintf(list, sizeof list, "%s", list[0] ? ", " : "");
        put_clean(list, sizeof list, (const char *)nm->data.scalar.value, nm->data.scalar.length,
                  GOT_MAX);
    }
    ldn__cfg_fail_at(c, place, NULL, "unknown round '%.*s' (rounds: %s)", (int)len, name,
                     list[0] ? list : "none");
    return 0;
}

/* Graft override number `which` (KEY=VALUE) into the document. */
static int apply_override(struct ctx *c, int which)
{
    const char *o = c->over[which], *eq = strchr(o, '=');
    yaml_node_t place = {.start_mark = {.index = (size_t)which, .line = OVERRIDE_LINE}};
    if (!eq)
        return ldn__cfg_fail_at(c, &place, NULL, "expected KEY=VALUE, e.g. train.lr=0.05");
    if (eq == o)
        return ldn__cfg_fail_at(c, &place, NULL,
                                "empty key (expected KEY=VALUE, e.g. train.lr=0.05)");
    const char *part[4];
    size_t plen[4];
    int np = 0;
#define KEY_FORMS "SECTION.KEY, tasks.NAME.KEY or rounds.NAME[.teacher].KEY"
    for (const char *p = o;; p++) {
        size_t l = strcspn(p, ".=");
        if (np == 4 || !ldn__cfg_valid_name(p, l))
            return ldn__cfg_fail_at(c, &place, NULL,
                                    "key must be " KEY_FORMS " of names [A-Za-z0-9_-]+");
        part[np] = p;
        plen[np++] = l;
        if ((p += l) == eq)
            break;
    }
    bool is_task = plen[0] == 5 && !memcmp(part[0], "tasks", 5);
    bool is_round = plen[0] == 6 && !memcmp(part[0], "rounds", 6);
    bool in_teacher = is_round && np == 4 && plen[2] == 7 && !memcmp(part[2], "teacher", 7);
    if (np != (is_task ? 3 : is_round ? 3 + in_teacher : 2))
        return ldn__cfg_fail_at(c, &place, NULL, "key must be " KEY_FORMS);
#undef KEY_FORMS
    if (is_round && !round_item(c, &place, part[1], plen[1]))
        return LDN_ERR_CONFIG; /* before the value is parsed: nothing to free */

    /* the value: a one-node YAML document (empty: null), copied into ours */
    yaml_parser_t parser;
    yaml_document_t vdoc;
    if (!yaml_parser_initialize(&parser))
        return ldn__cfg_oom(c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)eq + 1, strlen(eq + 1));
    if (!yaml_parser_load(&parser, &vdoc)) {
        int rc = ldn__cfg_fail_at(c, &place, NULL, "value is not valid YAML: %s%s%s",
                                  parser.problem ? parser.problem : "error",
                                  parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_parser_delete(&parser);
    int vid = yaml_document_get_root_node(&vdoc)
                  ? copy_node(&c->doc, &vdoc, 1, which, true)
                  : yaml_document_add_scalar(&c->doc, NULL, (yaml_char_t *)"", 0,
                                             YAML_PLAIN_SCALAR_STYLE);
    yaml_document_delete(&vdoc);
    if (!vid)
        return ldn__cfg_oom(c);
    mark_override(&c->doc, vid, which);

    /* down to the mapping that holds the key, making sections as needed */
    int map = is_round ? round_item(c, &place, part[1], plen[1])
                       : child_map(&c->doc, 1, part[0], plen[0], which);
    if (map > 0 && in_teacher)
        map = child_map(&c->doc, map, part[2], plen[2], which);
    if (map > 0 && is_task) {
        if (find_pair(&c->doc, map, part[1], plen[1]) < 0) {
            char list[MSG_MAX] = "";
            yaml_node_t *tm = ldn__cfg_node(&c->doc, map);
            for (int j = 0; j < tm->data.mapping.pairs.top - tm->data.mapping.pairs.start; j++) {
                yaml_node_t *k = ldn__cfg_node(&c->doc, tm->data.mapping.pairs.start[j].key);
                bprintf(list, sizeof list, "%s", j ? ", " : "");
                if (k && k->type == YAML_SCALAR_NODE)
                    put_clean(list, sizeof list, (const char *)k->data.scalar.value,
                              k->data.scalar.length, GOT_MAX);
            }
            return ldn__cfg_fail_at(c, &place, NULL, "unknown task '%.*s' (tasks: %s)",
                                    (int)plen[1], part[1], list[0] ? list : "none");
        }
        map = child_map(&c->doc, map, part[1], plen[1], which);
    }
    if (map < 0 || (map > 0 && !set_pair(&c->doc, map, part[np - 1], plen[np - 1], vid, which)))
        return ldn__cfg_oom(c);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Resolved YAML */

/* A string as a YAML scalar: plain when unambiguous, else double-quoted with escapes. */
static void put_string(FILE *b, const char *s)
{
    bool plain = s[0] &&
                 strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                           "0123456789_./-") == strlen(s) &&
                 s[0] != '-' && strcmp(s, "null") && strcmp(s, "Null") && strcmp(s, "NULL");
    if (plain) {
        fputs(s, b);
        return;
    }
    fputc('"', b);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(b, "\\x%02x", *p);
        else if (p[0] == 0xc2 && (p[1] & 0xe0) == 0x80) /* U+0080..U+009F, incl. NEL */
            fprintf(b, "\\x%02x", *++p);
        else if ((p[0] == 0xe2 || p[0] == 0xef) && p[1] && p[2]) {
            unsigned cp = (p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu);
            bool esc = cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp >= 0xfffe;
            if (esc)
                fprintf(b, "\\u%04x", cp), p += 2; /* line breaks, BOM, non-characters */
            else
                fputc(*p, b);
        } else
            fputc(*p, b);
    }
    fputc('"', b);
}

/* Shortest text that reads back as the same double, in a form YAML 1.1 tools read as a float
 * (1.0e-08, not 1e-08); whole numbers without exponent. */
static void put_double(FILE *b, double d)
{
    char t[48];
    if (d == floor(d) && fabs(d) < 1e15) {
        snprintf(t, sizeof t, "%.0f", d);
    } else {
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(t, sizeof t, "%.*g", prec, d);
            if (strtod(t, NULL) == d)
                break;
        }
    }
    char *e = strchr(t, 'e');
    if (e && !strchr(t, '.')) {
        memmove(e + 2, e, strlen(e) + 1);
        memcpy(e, ".0", 2);
    }
    fputs(t, b);
}

/* A comment line end: text after `lead`, anything but printable ASCII shown as '?' (libyaml
 * would read some of it as a line break, or refuse it). */
static void put_comment(FILE *b, const char *lead, const char *text)
{
    fputs(lead, b);
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        fputc(*p >= 0x20 && *p < 0x7f ? *p : '?', b);
    fputc('\n', b);
}

static void emit_key(FILE *b, const struct key_def *k, const void *base, const char *indent,
                     const char *data_dir)
{
    const char *f = (const char *)base + k->off;
    fprintf(b, "%s%s: ", indent, k->key);
    switch (k->type) {
    case T_STR:
        if (k->sect == S_TASKS && data_dir) { /* file: relative to data.dir when under it */
            size_t dl = strlen(data_dir);
            size_t pl = dl + (dl && data_dir[dl - 1] != '/');
            if (!strncmp(f, data_dir, dl) && (pl == dl || f[dl] == '/') && f[pl] && f[pl] != '/') {
                put_string(b, f + pl);
                put_comment(b, "  # ", f);
                return;
            }
        }
        put_string(b, f);
        break;
    case T_INT: fprintf(b, "%d", *(const int *)f); break;
    case T_I64: fprintf(b, "%lld", (long long)*(const int64_t *)f); break;
    case T_U64: fprintf(b, "%llu", (unsigned long long)*(const uint64_t *)f); break;
    case T_DBL: put_double(b, *(const double *)f); break;
    case T_BOOL: fputs(*(const bool *)f ? "true" : "false", b); break;
    case T_ENUM: fputs(k->names[*(const int *)f], b); break;
    case T_LIST:
    case T_DLIST: {
        int n = *(const int *)((const char *)base + k->count_off);
        fprintf(b, "[");
        for (int i = 0; i < n; i++) {
            fputs(i ? ", " : "", b);
            if (k->type == T_LIST)
                fprintf(b, "%d", ((const int *)f)[i]);
            else
                put_double(b, ((const double *)f)[i]);
        }
        fprintf(b, "]");
        break;
    }
    case T_STRLIST: {
        int n = *(const int *)((const char *)base + k->count_off);
        fprintf(b, "[");
        for (int i = 0; i < n; i++) {
            fputs(i ? ", " : "", b);
            put_string(b, f + (size_t)i * k->elem);
        }
        fprintf(b, "]");
        break;
    }
    case T_SUB: /* emitted by emit_round */ break;
    }
    fprintf(b, "\n");
}

/* One round as a list entry: its length as steps or epochs (the one it has), init only when
 * set, the teacher block only when it has one. */
static void emit_round(FILE *b, const struct ldn_round_config *r)
{
    fprintf(b, "  - ");
    const char *indent = "";
    for (int i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &KEYS[i];
        if (k->sect != S_ROUND || (!strcmp(k->key, "init") && !r->init[0]) ||
            (!strcmp(k->key, "epochs") && r->steps > 0) ||
            (!strcmp(k->key, "steps") && r->steps == 0) || (k->type == T_SUB && !r->has_teacher))
            continue;
        if (k->type == T_SUB) {
            fprintf(b, "%steacher:\n", indent);
            for (int j = 0; j < N_KEYS; j++)
                if (KEYS[j].sect == S_TEACHER)
                    emit_key(b, &KEYS[j], &r->teacher, "      ", NULL);
        } else
            emit_key(b, k, r, indent, NULL);
        indent = "    ";
    }
}

char *ldn__cfg_emit_yaml(const struct ldn_config *cfg)
{
    char *text = NULL;
    size_t size = 0;
    FILE *b = open_memstream(&text, &size);
    if (!b)
        return NULL;
    put_comment(b, "# ladon resolved config, from ", cfg->source);
    for (int s = 0; s < S_ROUND; s++) {
        fprintf(b, "%s:\n", SECT_NAMES[s]);
        if (s != S_TASKS) {
            for (int i = 0; i < N_KEYS; i++)
                if (KEYS[i].sect == (enum sect)s &&
                    !(s == S_PRUNE && KEYS[i].off == C(prune.rounds) &&
                      cfg->prune.n_rounds == 0)) /* prune.rounds only with rounds */
                    emit_key(b, &KEYS[i], cfg, "  ", NULL);
            continue;
        }
        for (int t = 0; t < cfg->n_tasks; t++) {
            fprintf(b, "  ");
            put_string(b, cfg->tasks[t].name);
            fprintf(b, ":\n");
            for (int i = 0; i < N_KEYS; i++)
                if (KEYS[i].sect == S_TASKS)
                    emit_key(b, &KEYS[i], &cfg->tasks[t], "    ", cfg->data_dir);
        }
    }
    if (cfg->n_rounds)
        fprintf(b, "rounds:\n");
    for (int r = 0; r < cfg->n_rounds; r++)
        emit_round(b, &cfg->rounds[r]);
    if (ferror(b) | fclose(b)) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---------------------------------------------------------------------------------------------
 * Public API */

static int yaml_error(struct ctx *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR)
        return ldn__cfg_oom(c);
    if (p->error == YAML_READER_ERROR)
        return ldn_fail(c->err, c->errlen, LDN_ERR_CONFIG,
                        "config %s: YAML syntax error: %s (byte offset %zu)", c->name,
                        p->problem ? p->problem : "unreadable input", p->problem_offset);
    return ldn_fail(
        c->err, c->errlen, LDN_ERR_CONFIG, "config %s:%zu:%zu: YAML syntax error: %s%s%s", c->name,
        p->problem_mark.line + 1, p->problem_mark.column + 1, p->problem ? p->problem : "error",
        p->context ? " " : "", p->context ? p->context : "");
}

/* libyaml's scanner slows down with the square of the nesting depth (200k levels: minutes),
 * so a first pass over the events refuses anything nested deeper than MAX_DEPTH. */
static int check_depth(struct ctx *c, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = 0;
    if (!yaml_parser_initialize(&parser))
        return ldn__cfg_oom(c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    for (bool done = false; !done && rc == 0;) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = yaml_error(c, &parser);
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
            depth++;
        else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT)
            depth--;
        done = ev.type == YAML_STREAM_END_EVENT;
        if (depth > MAX_DEPTH)
            rc = ldn_fail(c->err, c->errlen, LDN_ERR_CONFIG,
                          "config %s:%zu:%zu: YAML nested deeper than %d levels", c->name,
                          ev.start_mark.line + 1, ev.start_mark.column + 1, MAX_DEPTH);
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int parse_into(struct ctx *c, const char *yaml, size_t len, int n_over)
{
    if (!yaml)
        yaml = "", len = 0;
    int rc = check_depth(c, yaml, len);
    if (rc < 0)
        return rc;
    yaml_parser_t parser;
    yaml_document_t extra;
    if (!yaml_parser_initialize(&parser))
        return ldn__cfg_oom(c);
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &c->doc)) {
        rc = yaml_error(c, &parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&c->doc);
    if (!root || is_null_scalar(root)) {
        rc = ldn__cfg_fail_at(c, NULL, NULL,
                              "empty document (expected a mapping with data, model, tasks)");
    } else if (!yaml_parser_load(&parser, &extra)) {
        rc = yaml_error(c, &parser);
    } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        if (r2)
            rc = ldn__cfg_fail_at(c, r2, NULL, "a second YAML document (expected only one)");
        yaml_document_delete(&extra);
    }
    yaml_parser_delete(&parser);
    if (rc < 0)
        return rc;
    if (root->type == YAML_MAPPING_NODE)
        for (int i = 0; i < n_over; i++)
            if ((rc = apply_override(c, i)) < 0)
                return rc;

    struct ldn_config *cfg = c->cfg;
    apply_defaults(S_RUN, cfg);
    apply_defaults(S_DATA, cfg);
    apply_defaults(S_MODEL, cfg);
    apply_defaults(S_TRAIN, cfg);
    apply_defaults(S_PS, cfg);
    apply_defaults(S_COMPRESS, cfg);
    apply_defaults(S_CHECKPOINT, cfg);
    apply_defaults(S_NET, cfg);
    apply_defaults(S_PRUNE, cfg);
    root = yaml_document_get_root_node(&c->doc); /* overrides may have moved the nodes */
    if ((rc = walk_root(c, root)) < 0 || (rc = finish(c)) < 0)
        return rc;
    if (!(cfg->resolved_yaml = ldn__cfg_emit_yaml(cfg)))
        return ldn__cfg_oom(c);
    return 0;
}

struct ldn_config *ldn_config_parse(const char *yaml, size_t len, const char *name, int n_over,
                                    char *const *over, char *err, size_t errlen)
{
    struct ctx c = {.name = name ? name : "<config>", .over = over, .err = err, .errlen = errlen};
    if (!over || n_over < 0)
        n_over = 0;
    if (strlen(c.name) >= LDN_PATH_MAX) {
        ldn_fail(err, errlen, LDN_ERR_ARG, "config: file name is longer than %d characters",
                 LDN_PATH_MAX - 1);
        return NULL;
    }
    if (!(c.cfg = calloc(1, sizeof *c.cfg))) {
        ldn__cfg_oom(&c);
        return NULL;
    }
    memset(&c.doc, 0, sizeof c.doc);
    snprintf(c.cfg->source, sizeof c.cfg->source, "%s", c.name);
    int rc = parse_into(&c, yaml, len, n_over);
    yaml_document_delete(&c.doc);
    if (rc < 0)
        ldn_config_destroy(&c.cfg);
    return c.cfg;
}

struct ldn_config *ldn_config_load(const char *path, int n_over, char *const *over, char *err,
                                   size_t errlen)
{
    FILE *f = ldn_fopen_regular("config", path, err, errlen);
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got = 1;
    while (got > 0 && len < FILE_MAX_BYTES) {
        char *nb = len < cap ? buf : realloc(buf, cap = cap ? 2 * cap : 65536);
        if (!nb)
            break;
        buf = nb;
        len += got = fread(buf + len, 1, cap - len, f);
    }
    int rc = ferror(f) ? errno : 0;
    fclose(f);
    if (got > 0 || rc) {
        ldn_fail(err, errlen, LDN_ERR_IO, "config %s: cannot read: %s", path,
                 rc                      ? strerror(rc)
                 : len >= FILE_MAX_BYTES ? "larger than 16 MiB"
                                         : "out of memory");
        free(buf);
        return NULL;
    }
    struct ldn_config *cfg = ldn_config_parse(buf, len, path, n_over, over, err, errlen);
    free(buf);
    return cfg;
}

void ldn_config_destroy(struct ldn_config **cfg)
{
    if (!cfg || !*cfg)
        return;
    free((*cfg)->tasks);
    free((*cfg)->rounds);
    free((*cfg)->resolved_yaml);
    free(*cfg);
    *cfg = NULL;
}

int ldn_config_task_index(const struct ldn_config *cfg, const char *name)
{
    if (!cfg || !name)
        return -1;
    for (int i = 0; i < cfg->n_tasks; i++)
        if (!strcmp(cfg->tasks[i].name, name))
            return i;
    return -1;
}
