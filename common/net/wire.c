/* Wire header encoding with msgpack-c: one schema per message kind, walked by one generic
 * encoder and decoder. */
#define _POSIX_C_SOURCE 200809L
#include "wire.h"

#include <float.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdbool.h>
#include <string.h>

#include "status.h"

/* The C type of a field and the msgpack type it travels as. */
enum ftype {
    FT_U32, /* uint32_t, msgpack uint */
    FT_I32, /* int32_t, msgpack int */
    FT_U64, /* uint64_t, msgpack uint */
    FT_I64, /* int64_t, msgpack int */
    FT_F64, /* double, msgpack float (an int is accepted) */
    FT_STR, /* char[cap], msgpack str of at most cap - 1 bytes */
    FT_U64S /* uint64_t[cap] with a uint32_t count, msgpack array of uint */
};

/* One field of a kind: key, type, where it sits in struct ldn_wire_msg, whether a decoder
 * insists on it, and its allowed range (integers and array elements: [imin, imax]; floats:
 * [dmin, dmax], which also keeps NaN out). */
struct field {
    const char *key;
    uint8_t klen;
    uint8_t type; /* enum ftype */
    bool required;
    uint16_t off;       /* of the value */
    uint16_t count_off; /* FT_U64S: of the uint32_t count */
    uint16_t cap;       /* FT_U64S: most elements; FT_STR: buffer size */
    int64_t imin;
    uint64_t imax;
    double dmin, dmax;
};

struct kind {
    const char *name;
    const struct field *fields;
    int nfields;
};

#define OFF(member) ((uint16_t)offsetof(struct ldn_wire_msg, member))
#define KEY(k) k, (uint8_t)(sizeof k - 1)
#define INT(k, t, member, req, lo, hi)                                                             \
    {                                                                                              \
        KEY(k), t, req, OFF(member), 0, 0, lo, hi, 0, 0                                            \
    }
#define STEP(member) INT("step", FT_I64, member, true, 0, INT64_MAX)
#define COUNT(k, member) INT(k, FT_I64, member, true, 0, INT64_MAX)
#define KEYS(member) /* a key range [lo, hi) */                                                    \
    INT("lo", FT_U64, member.lo, true, 0, UINT64_MAX),                                             \
        INT("hi", FT_U64, member.hi, true, 0, UINT64_MAX)
#define CODEC(member) /* codec id and (with codec 1) its descriptor words */                       \
    INT("codec", FT_U32, member.codec, true, 0, LDN_CODEC_PACKED),                                 \
    {                                                                                              \
        KEY("cd"), FT_U64S, false, OFF(member.cdesc), OFF(member.ncdesc), LDN_WIRE_CDESC_WORDS, 0, \
            UINT64_MAX, 0, 0                                                                       \
    }
#define REAL(k, member)                                                                            \
    {                                                                                              \
        KEY(k), FT_F64, true, OFF(member), 0, 0, 0, 0, 0, DBL_MAX                                  \
    }

/* The envelope, common to every kind. */
static const struct field ENVELOPE[] = {
    INT("v", FT_U32, version, true, 0, UINT32_MAX),
    INT("op", FT_U32, op, true, 0, UINT32_MAX),
    INT("from", FT_I32, from, true, INT32_MIN, INT32_MAX),
    {KEY("lens"), FT_U64S, false, OFF(lens), OFF(nframes), LDN_WIRE_MAX_FRAMES, 0, UINT64_MAX, 0,
     0},
};

static const struct field PUSH[] = {STEP(push.step), KEYS(push), CODEC(push)};
static const struct field PARAMS[] = {STEP(params.step), KEYS(params), CODEC(params)};
static const struct field PULL[] = {STEP(pull.step), KEYS(pull)};
static const struct field CLOCK[] = {STEP(clock.step), KEYS(clock)};
static const struct field TRAIN[] = {INT("from_step", FT_I64, train.from, true, 0, INT64_MAX),
                                     INT("to_step", FT_I64, train.to, true, 0, INT64_MAX)};
static const struct field EVAL[] = {STEP(eval.step)};
static const struct field CKPT[] = {STEP(ckpt.step),
                                    INT("lost", FT_U32, ckpt.lost, false, 0, 1u << 20)};
static const struct field HEARTBEAT[] = {STEP(heartbeat.step)};
static const struct field DONE[] = {STEP(done.step)};
static const struct field LOST[] = {INT("rank", FT_I32, lost.rank, true, 1, INT32_MAX),
                                    STEP(lost.step)};
static const struct field REGROUP_REQUEST[] = {
    INT("group", FT_U32, regroup_request.group, true, 0, 1u << 20), STEP(regroup_request.step)};
static const struct field REGROUP[] = {INT("group", FT_U32, regroup.group, true, 0, 1u << 20),
                                       INT("epoch", FT_U32, regroup.epoch, true, 1, UINT32_MAX),
                                       INT("members", FT_U32, regroup.members, true, 1, 1u << 20)};
static const struct field PLAN[] = {
    STEP(plan.step),
    {KEY("trunk"), FT_U64S, true, OFF(plan.trunk), OFF(plan.n_trunk), LDN_WIRE_MAX_LAYERS, 1,
     1000000, 0, 0},
};
static const struct field SERVER_STATS[] = {
    COUNT("steps_applied", server_stats.steps_applied),
    COUNT("pushes", server_stats.pushes),
    COUNT("pulls", server_stats.pulls),
    COUNT("bad_messages", server_stats.bad_messages),
    COUNT("bytes_in", server_stats.bytes_in),
    COUNT("bytes_out", server_stats.bytes_out),
    COUNT("max_staleness", server_stats.max_staleness),
    INT("mask_changes", FT_I64, server_stats.mask_changes, false, 0, INT64_MAX),
    INT("masked_pushed", FT_I64, server_stats.masked_pushed, false, 0, INT64_MAX),
    INT("pcgrad_projections", FT_I64, server_stats.pcgrad_projections, false, 0, INT64_MAX),
    INT("pcgrad_pairs", FT_I64, server_stats.pcgrad_pairs, false, 0, INT64_MAX),
    INT("dropped_connections", FT_I64, server_stats.dropped_connections, false, 0, INT64_MAX),
};
static const struct field PRUNE[] = {
    STEP(prune.step),
    INT("level", FT_U32, prune.level, true, 0, LDN_WIRE_PRUNE_LEVELS),
    {KEY("thr"), FT_U64S, true, OFF(prune.thr), OFF(prune.n_thr), LDN_WIRE_MAX_LAYERS, 0,
     (uint64_t)1 << 31, 0, 0},
};
static const struct field PRUNE_HIST[] = {
    STEP(prune_hist.step),
    INT("level", FT_U32, prune_hist.level, true, 0, LDN_WIRE_PRUNE_LEVELS),
};
static const struct field AFFINITY_REQUEST[] = {STEP(affinity_request.step)};
static const struct field AFFINITY[] = {
    STEP(affinity.step),
    COUNT("from_step", affinity.from),
    COUNT("to_step", affinity.to),
    INT("groups", FT_U32, affinity.groups, true, 1, 1u << 16),
    INT("layers", FT_U32, affinity.layers, true, 1, LDN_WIRE_MAX_LAYERS),
};
static const struct field PROGRESS[] = {
    INT("task", FT_I32, progress.task, true, 0, INT32_MAX),
    STEP(progress.step),
    COUNT("samples", progress.samples),
    REAL("loss_sum", progress.loss_sum),
    COUNT("correct", progress.correct),
    COUNT("bytes_push", progress.bytes_push),
    COUNT("bytes_pull", progress.bytes_pull),
    COUNT("staleness_sum", progress.staleness_sum),
    COUNT("pulls", progress.pulls),
    REAL("compute_s", progress.compute_s),
    REAL("wait_s", progress.wait_s),
    REAL("residual_norm", progress.residual_norm),
    COUNT("bytes_dense", progress.bytes_dense),
    REAL("kl_sum", progress.kl_sum),
    COUNT("agree", progress.agree),
    REAL("task_weight", progress.task_weight),
    {KEY("log_var"), FT_F64, false, OFF(progress.log_var), 0, 0, 0, 0, -DBL_MAX, DBL_MAX},
};
static const struct field EVAL_RESULT[] = {
    INT("task", FT_I32, eval_result.task, true, 0, INT32_MAX),
    STEP(eval_result.step),
    REAL("loss_sum", eval_result.loss_sum),
    COUNT("correct", eval_result.correct),
    COUNT("rows", eval_result.rows),
};
static const struct field ERROR_MSG[] = {
    INT("status", FT_I32, error.status, true, INT32_MIN, INT32_MAX),
    INT("step", FT_I64, error.step, false, INT64_MIN, INT64_MAX),
    {KEY("msg"), FT_STR, true, OFF(error.msg), 0, LDN_WIRE_MSG_MAX, 0, 0, 0, 0},
};

#define KIND(op, name, f) [op] = {name, f, (int)LDN_ARRAY_LEN(f)}
#define BARE(op, name) [op] = {name, NULL, 0}
static const struct kind KINDS[LDN_OP_COUNT_] = {
    BARE(LDN_OP_HELLO, "hello"),
    KIND(LDN_OP_PUSH, "push", PUSH),
    KIND(LDN_OP_PULL, "pull", PULL),
    KIND(LDN_OP_PARAMS, "params", PARAMS),
    KIND(LDN_OP_CLOCK, "clock", CLOCK),
    BARE(LDN_OP_PING, "ping"),
    KIND(LDN_OP_TRAIN, "train", TRAIN),
    KIND(LDN_OP_EVAL, "eval", EVAL),
    KIND(LDN_OP_CKPT, "ckpt", CKPT),
    BARE(LDN_OP_STOP, "stop"),
    KIND(LDN_OP_HEARTBEAT, "heartbeat", HEARTBEAT),
    BARE(LDN_OP_STATS_REQUEST, "stats_request"),
    KIND(LDN_OP_SERVER_STATS, "server_stats", SERVER_STATS),
    KIND(LDN_OP_PROGRESS, "progress", PROGRESS),
    KIND(LDN_OP_EVAL_RESULT, "eval_result", EVAL_RESULT),
    KIND(LDN_OP_ERROR, "error", ERROR_MSG),
    KIND(LDN_OP_DONE, "done", DONE),
    KIND(LDN_OP_PLAN, "plan", PLAN),
    KIND(LDN_OP_PRUNE, "prune", PRUNE),
    KIND(LDN_OP_PRUNE_HIST, "prune_hist", PRUNE_HIST),
    KIND(LDN_OP_AFFINITY_REQUEST, "affinity_request", AFFINITY_REQUEST),
    KIND(LDN_OP_AFFINITY, "affinity", AFFINITY),
    KIND(LDN_OP_LOST, "lost", LOST),
    KIND(LDN_OP_REGROUP_REQUEST, "regroup_request", REGROUP_REQUEST),
    KIND(LDN_OP_REGROUP, "regroup", REGROUP),
};

static const struct kind *kind_of(uint32_t op)
{
    return op < LDN_OP_COUNT_ && KINDS[op].name ? &KINDS[op] : NULL;
}

void ldn_wire_msg_init(struct ldn_wire_msg *m, enum ldn_wire_op op, int from)
{
    memset(m, 0, sizeof *m);
    m->version = LDN_WIRE_VERSION;
    m->op = op;
    m->from = from;
}

const char *ldn_wire_op_name(uint32_t op)
{
    const struct kind *k = kind_of(op);
    return k ? k->name : "op?";
}

int ldn_wire_msg_step(const struct ldn_wire_msg *m, int64_t *step)
{
    const struct kind *k = kind_of(m->op);
    for (int i = 0; k && i < k->nfields; i++)
        if (k->fields[i].klen == 4 && !memcmp(k->fields[i].key, "step", 4)) {
            memcpy(step, (const char *)m + k->fields[i].off, sizeof *step);
            return 1;
        }
    *step = 0;
    return 0;
}

/* ---- encoding ---- */

/* A msgpack write target over a fixed buffer (no allocation on the hot path). */
struct fixbuf {
    char *p;
    size_t len, cap;
};

static int fixbuf_write(void *data, const char *buf, size_t len)
{
    struct fixbuf *f = data;
    if (f->len + len > f->cap)
        return -1;
    memcpy(f->p + f->len, buf, len);
    f->len += len;
    return 0;
}

static uint32_t count_of(const struct ldn_wire_msg *m, const struct field *f)
{
    uint32_t n;
    memcpy(&n, (const char *)m + f->count_off, sizeof n);
    return n;
}

/* Fields written: all but empty optional arrays. */
static int written(const struct ldn_wire_msg *m, const struct field *f)
{
    return f->type != FT_U64S || f->required || count_of(m, f) > 0;
}

/* Pack field f of m (key and value); nonzero on a write failure. */
static int pack_field(msgpack_packer *pk, const struct ldn_wire_msg *m, const struct field *f)
{
    const char *p = (const char *)m + f->off;
    int rc = msgpack_pack_str(pk, f->klen) | msgpack_pack_str_body(pk, f->key, f->klen);
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    double d;
    switch (f->type) {
    case FT_U32: memcpy(&u32, p, sizeof u32); return rc | msgpack_pack_uint32(pk, u32);
    case FT_I32: memcpy(&i32, p, sizeof i32); return rc | msgpack_pack_int32(pk, i32);
    case FT_U64: memcpy(&u64, p, sizeof u64); return rc | msgpack_pack_uint64(pk, u64);
    case FT_I64: memcpy(&i64, p, sizeof i64); return rc | msgpack_pack_int64(pk, i64);
    case FT_F64: memcpy(&d, p, sizeof d); return rc | msgpack_pack_double(pk, d);
    case FT_STR: {
        size_t n = strnlen(p, f->cap - 1u);
        return rc | msgpack_pack_str(pk, n) | msgpack_pack_str_body(pk, p, n);
    }
    default: {
        uint32_t n = count_of(m, f);
        rc |= msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            memcpy(&u64, p + i * sizeof u64, sizeof u64);
            rc |= msgpack_pack_uint64(pk, u64);
        }
        return rc;
    }
    }
}

static int fields_ok(const struct ldn_wire_msg *m, const struct field *f, int n)
{
    for (int i = 0; i < n; i++)
        if (f[i].type == FT_U64S && count_of(m, &f[i]) > f[i].cap)
            return 0;
    return 1;
}

int ldn_wire_encode(const struct ldn_wire_msg *m, char *buf, size_t cap)
{
    const struct kind *k = kind_of(m->op);
    const int ne = (int)LDN_ARRAY_LEN(ENVELOPE);
    if (!k || !fields_ok(m, ENVELOPE, ne) || !fields_ok(m, k->fields, k->nfields))
        return LDN_ERR_ARG;
    struct fixbuf fb = {buf, 0, cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, fixbuf_write);
    size_t n = 0;
    for (int i = 0; i < ne; i++)
        n += (size_t)written(m, &ENVELOPE[i]);
    for (int i = 0; i < k->nfields; i++)
        n += (size_t)written(m, &k->fields[i]);
    int rc = msgpack_pack_map(&pk, n);
    for (int i = 0; i < ne; i++)
        if (written(m, &ENVELOPE[i]))
            rc |= pack_field(&pk, m, &ENVELOPE[i]);
    for (int i = 0; i < k->nfields; i++)
        if (written(m, &k->fields[i]))
            rc |= pack_field(&pk, m, &k->fields[i]);
    return rc ? LDN_ERR_INTERNAL : (int)fb.len;
}

/* ---- decoding ---- */

static const char *type_name(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return "an unsigned integer";
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "a negative integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    default: return "binary";
    }
}

static const char *want_name(const struct field *f)
{
    static const char *names[] = {"an unsigned integer",
                                  "an integer",
                                  "an unsigned integer",
                                  "an integer",
                                  "a number",
                                  "a string",
                                  "an array of unsigned integers"};
    return names[f->type];
}

static int bad_type(const char *kind, const struct field *f, const msgpack_object *o, char *err,
                    size_t errlen)
{
    return ldn_fail(err, errlen, LDN_ERR_FORMAT, "%s header: field '%s' is %s, expected %s", kind,
                    f->key, type_name(o), want_name(f));
}

static int out_of_range(const char *kind, const struct field *f, char *err, size_t errlen)
{
    if (f->type == FT_F64)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "%s header: field '%s' out of range (allowed %g..%g, finite)", kind, f->key,
                        f->dmin, f->dmax);
    if (f->type == FT_STR || f->type == FT_U64S)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                        "%s header: field '%s' too long (at most %u %s)", kind, f->key,
                        f->type == FT_STR ? f->cap - 1u : f->cap,
                        f->type == FT_STR ? "bytes" : "elements");
    return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                    "%s header: field '%s' out of range (allowed %" PRId64 "..%" PRIu64 ")", kind,
                    f->key, f->imin, f->imax);
}

/* An integer object within [f->imin, f->imax] into *out (as raw 64 bits); 0, or 1 when it is
 * not an integer, 2 when out of range. */
static int get_int(const struct field *f, const msgpack_object *o, uint64_t *out)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > f->imax || (f->imin > 0 && o->via.u64 < (uint64_t)f->imin))
            return 2;
        *out = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (o->via.i64 < f->imin)
            return 2;
        *out = (uint64_t)o->via.i64;
        return 0;
    }
    return 1;
}

/* Store the integer bits x into the field's C type. */
static void put_int(const struct field *f, char *p, uint64_t x)
{
    uint32_t u32 = (uint32_t)x;
    int32_t i32 = (int32_t)(int64_t)x;
    if (f->type == FT_U32)
        memcpy(p, &u32, sizeof u32);
    else if (f->type == FT_I32)
        memcpy(p, &i32, sizeof i32);
    else
        memcpy(p, &x, sizeof x);
}

/* Field f of kind `kind` from object o into m; 0 or LDN_ERR_FORMAT naming the field. */
static int get_field(const char *kind, const struct field *f, const msgpack_object *o,
                     struct ldn_wire_msg *m, char *err, size_t errlen)
{
    char *p = (char *)m + f->off;
    uint64_t x = 0;
    int r;
    switch (f->type) {
    case FT_F64: {
        double d;
        if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
            d = o->via.f64;
        else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            d = (double)o->via.u64;
        else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            d = (double)o->via.i64;
        else
            return bad_type(kind, f, o, err, errlen);
        if (!(d >= f->dmin && d <= f->dmax))
            return out_of_range(kind, f, err, errlen);
        memcpy(p, &d, sizeof d);
        return 0;
    }
    case FT_STR:
        if (o->type != MSGPACK_OBJECT_STR)
            return bad_type(kind, f, o, err, errlen);
        if (o->via.str.size > f->cap - 1u)
            return out_of_range(kind, f, err, errlen);
        memcpy(p, o->via.str.ptr, o->via.str.size);
        p[o->via.str.size] = '\0';
        return 0;
    case FT_U64S:
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return bad_type(kind, f, o, err, errlen);
        if (o->via.array.size > f->cap) /* bounded before anything is stored */
            return out_of_range(kind, f, err, errlen);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if ((r = get_int(f, &o->via.array.ptr[i], &x)))
                return r == 1 ? bad_type(kind, f, &o->via.array.ptr[i], err, errlen)
                              : out_of_range(kind, f, err, errlen);
            memcpy(p + i * sizeof x, &x, sizeof x);
        }
        memcpy((char *)m + f->count_off, &o->via.array.size, sizeof(uint32_t));
        return 0;
    default:
        if ((r = get_int(f, o, &x)))
            return r == 1 ? bad_type(kind, f, o, err, errlen) : out_of_range(kind, f, err, errlen);
        put_int(f, p, x);
        return 0;
    }
}

static int key_is(const msgpack_object *k, const struct field *f)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == f->klen &&
           !memcmp(k->via.str.ptr, f->key, f->klen);
}

/* The value of field f in map o, or NULL (the last one wins when a key repeats). */
static const msgpack_object *lookup(const msgpack_object *o, const struct field *f)
{
    const msgpack_object *v = NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++)
        if (key_is(&o->via.map.ptr[i].key, f))
            v = &o->via.map.ptr[i].val;
    return v;
}

/* Every field of fields[0..n) from map o into m: present ones checked, required ones
 * insisted on; other keys ignored. */
static int get_fields(const char *kind, const struct field *fields, int n, const msgpack_object *o,
                      struct ldn_wire_msg *m, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const msgpack_object *v = lookup(o, &fields[i]);
        if (!v && fields[i].required)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "%s header: required field '%s' is missing", kind, fields[i].key);
        int rc = v ? get_field(kind, &fields[i], v, m, err, errlen) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

static int decode_map(const msgpack_object *o, struct ldn_wire_msg *m, char *err, size_t errlen)
{
    if (o->type != MSGPACK_OBJECT_MAP)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header is %s, not a msgpack map",
                        type_name(o));
    /* The version first: a peer of another version may lay out everything else differently. */
    int rc = get_fields("message", ENVELOPE, 1, o, m, err, errlen);
    if (rc)
        return rc;
    if (m->version != LDN_WIRE_VERSION)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "protocol version %" PRIu32 ", this peer speaks version %d", m->version,
                        LDN_WIRE_VERSION);
    if ((rc = get_fields("message", ENVELOPE + 1, 1, o, m, err, errlen)))
        return rc;
    const struct kind *k = kind_of(m->op);
    if (!k)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "unknown op %" PRIu32, m->op);
    if ((rc = get_fields(k->name, ENVELOPE + 2, (int)LDN_ARRAY_LEN(ENVELOPE) - 2, o, m, err,
                         errlen)))
        return rc;
    return get_fields(k->name, k->fields, k->nfields, o, m, err, errlen);
}

/* Big-endian unsigned of n (1, 2, 4 or 8) bytes at p. */
static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One msgpack object head at p[0..left): sets *hdr (bytes of the head), *body (bytes that
 * follow it: str, bin, ext data, scalars) and *items (objects a container adds: 2 per map
 * entry). Returns the container or string kind's name for errors, "" for a scalar, NULL when
 * the head itself is cut short or invalid (msgpack-c reports that). */
static const char *head(const uint8_t *p, size_t left, size_t *hdr, uint64_t *body, uint64_t *items)
{
    static const uint8_t SCALAR[] = {/* 0xc0..0xdf: extra bytes after the type byte */
                                     0, 0, 0, 0, 1, 2, 4, 1, 2,  4, 4, 8, 1, 2, 4, 8,
                                     1, 2, 4, 8, 2, 3, 5, 9, 17, 1, 2, 4, 2, 4, 2, 4};
    uint8_t b = p[0];
    *hdr = 1, *body = 0, *items = 0;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return "";
    if (b <= 0x8f)
        return *items = 2u * (b & 0x0f), "map";
    if (b <= 0x9f)
        return *items = b & 0x0f, "array";
    if (b <= 0xbf)
        return *body = b & 0x1f, "str";
    if (b == 0xc1)
        return NULL;
    int n = SCALAR[b - 0xc0];
    if ((size_t)n + 1 > left)
        return NULL;
    if ((b >= 0xca && b <= 0xd3) || (b >= 0xd4 && b <= 0xd8))
        return *body = (uint64_t)n, ""; /* numbers, fixext (type byte + data) */
    uint64_t v = be(p + 1, n);
    *hdr = 1 + (size_t)n;
    if (b >= 0xc7 && b <= 0xc9) /* ext: length, type byte, data */
        return *hdr += 1, *body = v, "ext";
    if (b >= 0xdc && b <= 0xdd)
        return *items = v, "array";
    if (b >= 0xde)
        return *items = 2 * v, "map";
    return *body = v, b <= 0xc6 ? "bin" : "str";
}

/* Walk the msgpack objects in buf before msgpack-c sees them: a container count or a
 * str/bin/ext length larger than the bytes left could encode is refused here, because
 * msgpack-c allocates a container's elements from its count (a map32 header claiming 2^32
 * entries asks for 128 GiB). Cut-short input is left to msgpack-c ("truncated"). */
static int check_counts(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    uint64_t need = 1;
    size_t pos = 0;
    while (need > 0 && pos < len) {
        size_t hdr;
        uint64_t body, items;
        const char *what = head(buf + pos, len - pos, &hdr, &body, &items);
        if (!what || hdr > len - pos)
            return 0;
        pos += hdr;
        need--;
        uint64_t claim = body ? body : items;
        if (claim > len - pos)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "header is malformed: a msgpack %s of %llu %s at byte %zu, but "
                            "only %zu bytes follow",
                            what,
                            (unsigned long long)(items ? items / (*what == 'm' ? 2 : 1) : body),
                            items ? "entries" : "bytes", pos - hdr, len - pos);
        pos += (size_t)body;
        need += items;
    }
    return 0;
}

int ldn_wire_decode(const void *buf, size_t len, struct ldn_wire_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (len == 0 || len > LDN_WIRE_HDR_MAX)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header frame of %zu bytes (allowed 1..%d)",
                        len, LDN_WIRE_HDR_MAX);
    int rc = check_counts(buf, len, err, errlen);
    if (rc)
        return rc;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return r = msgpack_unpack_next(&up, buf, len, &off);
    if (r == MSGPACK_UNPACK_CONTINUE)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT,
                      "header is truncated (%zu bytes end inside the msgpack map)", len);
    else if (r != MSGPACK_UNPACK_SUCCESS)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "header is not valid msgpack");
    else if (off != len)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "%zu trailing bytes after the header map",
                      len - off);
    else
        rc = decode_map(&up.data, m, err, errlen);
    msgpack_unpacked_destroy(&up);
    return rc;
}
