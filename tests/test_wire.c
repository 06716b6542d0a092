/* Wire format, protocol version 6: every message kind round-trips, and the decoder rejects
 * truncated headers, mistyped, missing and out-of-range fields (naming the field) and other
 * versions, and ignores unknown keys. The required keys are listed here, independently of
 * the schema in wire.c, so a schema that stops insisting on one fails the test. */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "cu_main.h"
#include "status.h"
#include "wire.h"

/* A message of each kind with every field set to a distinct, non-default value, and the keys a
 * decoder must insist on (besides the envelope's v, op and from). */
struct sample {
    enum ldn_wire_op op;
    const char *required[20];
};

static const struct sample SAMPLES[] = {
    {LDN_OP_HELLO, {NULL}},
    {LDN_OP_PUSH, {"step", "lo", "hi", "codec", NULL}},
    {LDN_OP_PULL, {"step", "lo", "hi", NULL}},
    {LDN_OP_PARAMS, {"step", "lo", "hi", "codec", NULL}},
    {LDN_OP_CLOCK, {"step", "lo", "hi", NULL}},
    {LDN_OP_PING, {NULL}},
    {LDN_OP_TRAIN, {"from_step", "to_step", NULL}},
    {LDN_OP_EVAL, {"step", NULL}},
    {LDN_OP_CKPT, {"step", NULL}},
    {LDN_OP_STOP, {NULL}},
    {LDN_OP_HEARTBEAT, {"step", NULL}},
    {LDN_OP_STATS_REQUEST, {NULL}},
    {LDN_OP_SERVER_STATS,
     {"steps_applied", "pushes", "pulls", "bad_messages", "bytes_in", "bytes_out", "max_staleness",
      NULL}},
    {LDN_OP_PROGRESS,
     {"task", "step", "samples", "loss_sum", "correct", "bytes_push", "bytes_pull", "staleness_sum",
      "pulls", "compute_s", "wait_s", "residual_norm", "bytes_dense", "kl_sum", "agree",
      "task_weight", NULL}},
    {LDN_OP_EVAL_RESULT, {"task", "step", "loss_sum", "correct", "rows", NULL}},
    {LDN_OP_ERROR, {"status", "msg", NULL}},
    {LDN_OP_DONE, {"step", NULL}},
    {LDN_OP_PLAN, {"step", "trunk", NULL}},
    {LDN_OP_AFFINITY_REQUEST, {"step", NULL}},
    {LDN_OP_AFFINITY, {"step", "from_step", "to_step", "groups", "layers", NULL}},
    {LDN_OP_LOST, {"rank", "step", NULL}},
    {LDN_OP_REGROUP_REQUEST, {"group", "step", NULL}},
    {LDN_OP_REGROUP, {"group", "epoch", "members", NULL}},
};

static void fill(struct ldn_wire_msg *m, enum ldn_wire_op op)
{
    ldn_wire_msg_init(m, op, 7);
    m->nframes = 2;
    m->lens[0] = 4000;
    m->lens[1] = 1ull << 40;
    switch (op) {
    case LDN_OP_PUSH:
    case LDN_OP_PARAMS: /* the same layout */
        m->push = (struct ldn_wire_push){.step = 123456789012,
                                         .lo = 1ull << 33,
                                         .hi = UINT64_MAX,
                                         .codec = LDN_CODEC_PACKED,
                                         .ncdesc = 3,
                                         .cdesc = {1, UINT64_MAX, 1ull << 50}};
        break;
    case LDN_OP_PULL:
    case LDN_OP_CLOCK:
        m->pull = (struct ldn_wire_pull){.step = 41, .lo = 5, .hi = 1ull << 35};
        break;
    case LDN_OP_TRAIN: m->train = (struct ldn_wire_train){.from = 300, .to = INT64_MAX}; break;
    case LDN_OP_EVAL: m->eval.step = 17; break;
    case LDN_OP_CKPT:
        m->ckpt.step = 18;
        m->ckpt.lost = 2;
        break;
    case LDN_OP_HEARTBEAT: m->heartbeat.step = 19; break;
    case LDN_OP_DONE: m->done.step = 20; break;
    case LDN_OP_LOST:
        m->lost.rank = 5;
        m->lost.step = 21;
        break;
    case LDN_OP_REGROUP_REQUEST:
        m->regroup_request.group = 1u << 20;
        m->regroup_request.step = 22;
        break;
    case LDN_OP_REGROUP:
        m->regroup = (struct ldn_wire_regroup){.group = 3, .epoch = UINT32_MAX, .members = 2};
        break;
    case LDN_OP_PLAN:
        m->plan.step = 40;
        m->plan.n_trunk = 3;
        m->plan.trunk[0] = 1;
        m->plan.trunk[1] = 24;
        m->plan.trunk[2] = 1000000;
        break;
    case LDN_OP_PRUNE:
        m->prune.step = 500;
        m->prune.level = LDN_WIRE_PRUNE_LEVELS;
        m->prune.n_thr = 2;
        m->prune.thr[0] = 0;
        m->prune.thr[1] = 1ull << 31;
        break;
    case LDN_OP_PRUNE_HIST:
        m->prune_hist.step = 501;
        m->prune_hist.level = 2;
        break;
    case LDN_OP_AFFINITY_REQUEST: m->affinity_request.step = 21; break;
    case LDN_OP_AFFINITY:
        m->affinity = (struct ldn_wire_affinity){
            .step = 300, .from = 200, .to = 300, .groups = 65536, .layers = 3};
        break;
    case LDN_OP_SERVER_STATS:
        m->server_stats =
            (struct ldn_wire_server_stats){1, 2, 3, 4, 5ll << 40, 6, 7, 8, 9, 10, 11, 12};
        break;
    case LDN_OP_PROGRESS: { /* field by field: the decoder leaves padding zero, a compound literal
                               may not */
        struct ldn_wire_progress *p = &m->progress;
        p->task = 2;
        p->step = 99;
        p->samples = 6400;
        p->loss_sum = 1234.5678901234;
        p->correct = 6000;
        p->bytes_push = 1ll << 35;
        p->bytes_pull = 3;
        p->staleness_sum = 4;
        p->pulls = 5;
        p->compute_s = 0.125;
        p->wait_s = 1e-9;
        p->residual_norm = 3.25;
        p->bytes_dense = 1ll << 36;
        p->kl_sum = 0.75;
        p->agree = 5000;
        p->task_weight = 1.25;
        p->log_var = -0.5; /* negative: a log-variance below 0 is a weight above 1 */
    } break;
    case LDN_OP_EVAL_RESULT:
        m->eval_result.task = 3;
        m->eval_result.step = 100;
        m->eval_result.loss_sum = 0.5;
        m->eval_result.correct = 9000;
        m->eval_result.rows = 10000;
        break;
    case LDN_OP_ERROR:
        m->error.status = LDN_ERR_PEER;
        m->error.step = -3;
        snprintf(m->error.msg, sizeof m->error.msg, "ps 1 rejected push: \"why\" \xc3\xa9");
        break;
    default: break;
    }
}

static int encode(const struct ldn_wire_msg *m, char *buf)
{
    int n = ldn_wire_encode(m, buf, LDN_WIRE_HDR_MAX);
    CU_ASSERT_FATAL(n > 0);
    return n;
}

static void test_round_trip(void)
{
    for (size_t i = 0; i < LDN_ARRAY_LEN(SAMPLES); i++) {
        struct ldn_wire_msg a, b;
        char buf[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN] = "";
        fill(&a, SAMPLES[i].op);
        int n = encode(&a, buf);
        int rc = ldn_wire_decode(buf, (size_t)n, &b, err, sizeof err);
        if (rc)
            printf("\n%s: %s\n", ldn_wire_op_name(a.op), err);
        CU_ASSERT_EQUAL(rc, 0);
        CU_ASSERT_EQUAL(b.version, LDN_WIRE_VERSION);
        CU_ASSERT_EQUAL(b.op, a.op);
        CU_ASSERT_EQUAL(b.from, 7);
        CU_ASSERT_EQUAL(b.nframes, 2);
        CU_ASSERT_EQUAL(b.lens[1], 1ull << 40);
        /* every field of the kind, bit for bit (both start zeroed) */
        CU_ASSERT(memcmp(&a, &b, sizeof a) == 0);
    }
    /* spot checks that the union member of each kind is the one that travels */
    struct ldn_wire_msg a, b;
    char buf[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN];
    fill(&a, LDN_OP_PROGRESS);
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)encode(&a, buf), &b, err, sizeof err), 0);
    CU_ASSERT_EQUAL(b.progress.bytes_dense, 1ll << 36);
    CU_ASSERT_EQUAL(b.progress.loss_sum, 1234.5678901234);
    fill(&a, LDN_OP_ERROR);
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)encode(&a, buf), &b, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(b.error.msg, a.error.msg);
    CU_ASSERT_EQUAL(b.error.step, -3);
}

static void test_truncated(void)
{
    for (size_t i = 0; i < LDN_ARRAY_LEN(SAMPLES); i++) {
        struct ldn_wire_msg a, b;
        char buf[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN];
        fill(&a, SAMPLES[i].op);
        int n = encode(&a, buf);
        for (int len = 0; len < n; len++)
            CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)len, &b, err, sizeof err), LDN_ERR_FORMAT);
        CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)n, &b, err, sizeof err), 0);
        buf[n] = 0; /* trailing bytes */
        CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)n + 1, &b, err, sizeof err), LDN_ERR_FORMAT);
        CU_ASSERT(strstr(err, "trailing") != NULL);
    }
}

/* How to rewrite a header: drop `key`, replace its value (a string, or an integer for string
 * fields), or add an unknown key. */
enum edit { DROP, MISTYPE, ADD_UNKNOWN };

/* The header buf[0..n) re-packed with one edit into out; returns the new length. */
static size_t rewrite(const char *buf, int n, enum edit e, const char *key, char *out)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    CU_ASSERT_FATAL(msgpack_unpack_next(&up, buf, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS);
    const msgpack_object_map *map = &up.data.via.map;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, map->size - (e == DROP) + (e == ADD_UNKNOWN ? 2 : 0));
    if (e == ADD_UNKNOWN) { /* before and after the known ones, of any type */
        msgpack_pack_str_with_body(&pk, "zz_later", 8);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str_with_body(&pk, "step", 4);
        msgpack_pack_str_with_body(&pk, "x", 1);
    }
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key, *v = &map->ptr[i].val;
        int is = key && k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, strlen(key));
        if (is && e == DROP)
            continue;
        msgpack_pack_object(&pk, *k);
        if (is && e == MISTYPE && v->type == MSGPACK_OBJECT_STR)
            msgpack_pack_int(&pk, 7);
        else if (is && e == MISTYPE)
            msgpack_pack_str_with_body(&pk, "7", 1);
        else
            msgpack_pack_object(&pk, *v);
    }
    if (e == ADD_UNKNOWN) {
        msgpack_pack_str_with_body(&pk, "zz_more", 7);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_double(&pk, NAN);
        msgpack_pack_nil(&pk);
    }
    CU_ASSERT_FATAL(sb.size <= LDN_WIRE_HDR_MAX);
    memcpy(out, sb.data, sb.size);
    size_t len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    return len;
}

/* The keys of the encoded header, in order. */
static int keys_of(const char *buf, int n, char keys[][32])
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    CU_ASSERT_FATAL(msgpack_unpack_next(&up, buf, (size_t)n, &off) == MSGPACK_UNPACK_SUCCESS);
    int nk = (int)up.data.via.map.size;
    for (int i = 0; i < nk; i++) {
        const msgpack_object *k = &up.data.via.map.ptr[i].key;
        snprintf(keys[i], 32, "%.*s", (int)k->via.str.size, k->via.str.ptr);
    }
    msgpack_unpacked_destroy(&up);
    return nk;
}

static int is_required(const struct sample *s, const char *key)
{
    if (!strcmp(key, "v") || !strcmp(key, "op") || !strcmp(key, "from"))
        return 1;
    for (int i = 0; s->required[i]; i++)
        if (!strcmp(s->required[i], key))
            return 1;
    return 0;
}

/* Every key of every kind: mistyped is rejected naming it; dropped is rejected naming it when
 * required, and accepted otherwise. */
static void test_mistyped_and_missing(void)
{
    for (size_t i = 0; i < LDN_ARRAY_LEN(SAMPLES); i++) {
        struct ldn_wire_msg a, b;
        char buf[LDN_WIRE_HDR_MAX], out[LDN_WIRE_HDR_MAX], keys[24][32], want[40];
        fill(&a, SAMPLES[i].op);
        int n = encode(&a, buf);
        int nk = keys_of(buf, n, keys);
        int required = 0;
        for (int k = 0; k < nk; k++) {
            char err[LDN_ERRLEN] = "";
            snprintf(want, sizeof want, "'%.31s'", keys[k]);
            size_t len = rewrite(buf, n, MISTYPE, keys[k], out);
            CU_ASSERT_EQUAL(ldn_wire_decode(out, len, &b, err, sizeof err), LDN_ERR_FORMAT);
            if (!strstr(err, want))
                printf("\n%s, %s mistyped: '%s'\n", ldn_wire_op_name(a.op), keys[k], err);
            CU_ASSERT(strstr(err, want) != NULL);
            err[0] = '\0';
            len = rewrite(buf, n, DROP, keys[k], out);
            int rc = ldn_wire_decode(out, len, &b, err, sizeof err);
            if (is_required(&SAMPLES[i], keys[k])) {
                required++;
                CU_ASSERT_EQUAL(rc, LDN_ERR_FORMAT);
                CU_ASSERT(strstr(err, want) != NULL && strstr(err, "missing") != NULL);
            } else {
                if (rc)
                    printf("\n%s without %s: %s\n", ldn_wire_op_name(a.op), keys[k], err);
                CU_ASSERT_EQUAL(rc, 0);
            }
        }
        int listed = 3;
        while (SAMPLES[i].required[listed - 3])
            listed++;
        CU_ASSERT_EQUAL(required, listed); /* every required key is encoded */
    }
}

static void test_unknown_keys_ignored(void)
{
    for (size_t i = 0; i < LDN_ARRAY_LEN(SAMPLES); i++) {
        struct ldn_wire_msg a, b;
        char buf[LDN_WIRE_HDR_MAX], out[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN] = "";
        fill(&a, SAMPLES[i].op);
        int n = encode(&a, buf);
        size_t len = rewrite(buf, n, ADD_UNKNOWN, NULL, out);
        CU_ASSERT_EQUAL(ldn_wire_decode(out, len, &b, err, sizeof err), 0);
        CU_ASSERT(memcmp(&a, &b, sizeof a) == 0);
    }
}

static void test_other_version(void)
{
    struct ldn_wire_msg a, b;
    char buf[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN];
    fill(&a, LDN_OP_PUSH);
    a.version = 1;
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, (size_t)encode(&a, buf), &b, err, sizeof err),
                    LDN_ERR_PEER);
    CU_ASSERT_STRING_EQUAL(err, "protocol version 1, this peer speaks version 6");
    /* the version is judged before anything else: a v6 header of another layout */
    fill(&a, LDN_OP_PING);
    a.version = LDN_WIRE_VERSION + 1;
    char out[LDN_WIRE_HDR_MAX];
    size_t len = rewrite(buf, encode(&a, buf), MISTYPE, "op", out);
    CU_ASSERT_EQUAL(ldn_wire_decode(out, len, &b, err, sizeof err), LDN_ERR_PEER);
    CU_ASSERT(strstr(err, "version 6") != NULL);
}

/* The sample header of op with the value of `key` replaced (kind and x: test_out_of_range). */
static size_t one_field(enum ldn_wire_op op, const char *key, int kind, double x, char *out)
{
    struct ldn_wire_msg a;
    char buf[LDN_WIRE_HDR_MAX];
    fill(&a, op);
    int n = encode(&a, buf);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_next(&up, buf, (size_t)n, &off);
    const msgpack_object_map *map = &up.data.via.map;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, map->size);
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        msgpack_pack_object(&pk, *k);
        if (k->via.str.size != strlen(key) || memcmp(k->via.str.ptr, key, strlen(key)))
            msgpack_pack_object(&pk, map->ptr[i].val);
        else if (kind == 'i')
            msgpack_pack_int64(&pk, (int64_t)x);
        else if (kind == 'f')
            msgpack_pack_double(&pk, x);
        else if (kind == 's') { /* a string of x bytes */
            static const char big[600] = {0};
            msgpack_pack_str_with_body(&pk, big, (size_t)x);
        } else { /* an array of x unsigned integers */
            msgpack_pack_array(&pk, (size_t)x);
            for (int j = 0; j < (int)x; j++)
                msgpack_pack_uint64(&pk, 1);
        }
    }
    memcpy(out, sb.data, sb.size);
    size_t len = sb.size;
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    return len;
}

static void test_out_of_range(void)
{
    static const struct {
        enum ldn_wire_op op;
        const char *key;
        int kind; /* 'i' int, 'f' float, 's' string of x bytes, 'a' array of x elements */
        double x;
        int ok;
    } CASES[] = {
        {LDN_OP_PUSH, "step", 'i', -1, 0},
        {LDN_OP_PUSH, "step", 'i', 0, 1},
        {LDN_OP_PUSH, "lo", 'i', -5, 0},
        {LDN_OP_PUSH, "codec", 'i', 2, 0},
        {LDN_OP_PUSH, "codec", 'i', 1, 1},
        {LDN_OP_PUSH, "cd", 'a', 4, 0},
        {LDN_OP_PUSH, "cd", 'a', 3, 1},
        {LDN_OP_PUSH, "lens", 'a', 5, 0},
        {LDN_OP_PUSH, "lens", 'a', 4, 1},
        {LDN_OP_PUSH, "from", 'i', 1ll << 31, 0},
        {LDN_OP_PUSH, "from", 'i', -(1ll << 31), 1},
        {LDN_OP_PUSH, "op", 'i', -1, 0},
        {LDN_OP_PARAMS, "codec", 'i', 9, 0},
        {LDN_OP_PULL, "step", 'i', -2, 0},
        {LDN_OP_CLOCK, "hi", 'i', -1, 0},
        {LDN_OP_TRAIN, "to_step", 'i', -1, 0},
        {LDN_OP_CKPT, "step", 'i', -1, 0},
        {LDN_OP_SERVER_STATS, "bad_messages", 'i', -1, 0},
        {LDN_OP_PROGRESS, "task", 'i', -1, 0},
        {LDN_OP_PROGRESS, "task", 'i', 1ll << 31, 0},
        {LDN_OP_PROGRESS, "loss_sum", 'f', -0.5, 0},
        {LDN_OP_PROGRESS, "loss_sum", 'f', NAN, 0},
        {LDN_OP_PROGRESS, "wait_s", 'f', INFINITY, 0},
        {LDN_OP_PROGRESS, "compute_s", 'i', 3, 1}, /* an integer is a number */
        {LDN_OP_PROGRESS, "samples", 'f', 3.0, 0}, /* a float is not an integer */
        {LDN_OP_EVAL_RESULT, "rows", 'i', -1, 0},
        {LDN_OP_ERROR, "msg", 's', LDN_WIRE_MSG_MAX, 0},
        {LDN_OP_ERROR, "msg", 's', LDN_WIRE_MSG_MAX - 1, 1},
        {LDN_OP_ERROR, "status", 'i', -(1ll << 40), 0},
    };
    for (size_t i = 0; i < LDN_ARRAY_LEN(CASES); i++) {
        char out[2 * LDN_WIRE_HDR_MAX], err[LDN_ERRLEN] = "", want[40];
        struct ldn_wire_msg b;
        size_t len = one_field(CASES[i].op, CASES[i].key, CASES[i].kind, CASES[i].x, out);
        int rc = ldn_wire_decode(out, len, &b, err, sizeof err);
        snprintf(want, sizeof want, "'%s'", CASES[i].key);
        if ((rc == 0) != CASES[i].ok)
            printf("\ncase %zu (%s %s): rc %d %s\n", i, ldn_wire_op_name(CASES[i].op), CASES[i].key,
                   rc, err);
        CU_ASSERT_EQUAL(rc, CASES[i].ok ? 0 : LDN_ERR_FORMAT);
        if (!CASES[i].ok)
            CU_ASSERT(strstr(err, want) != NULL);
    }
}

static void test_envelope_checks(void)
{
    struct ldn_wire_msg a, b;
    char buf[LDN_WIRE_HDR_MAX], err[LDN_ERRLEN];
    /* not a map, unknown op */
    const char arr[] = {(char)0x92, 0x01, 0x02};
    CU_ASSERT_EQUAL(ldn_wire_decode(arr, sizeof arr, &b, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT(strstr(err, "not a msgpack map") != NULL);
    size_t len = one_field(LDN_OP_PING, "op", 'i', 77, buf);
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, len, &b, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err, "unknown op 77");
    len = one_field(LDN_OP_PING, "op", 'i', 0, buf);
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, len, &b, err, sizeof err), LDN_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(err, "unknown op 0");
    len = one_field(LDN_OP_PING, "op", 'i', LDN_OP_COUNT_, buf);
    CU_ASSERT_EQUAL(ldn_wire_decode(buf, len, &b, err, sizeof err), LDN_ERR_FORMAT);
    /* the encoder refuses what it cannot describe */
    fill(&a, LDN_OP_PING);
    a.op = 77;
    CU_ASSERT_EQUAL(ldn_wire_encode(&a, buf, sizeof buf), LDN_ERR_ARG);
    fill(&a, LDN_OP_PUSH);
    a.nframes = LDN_WIRE_MAX_FRAMES + 1;
    CU_ASSERT_EQUAL(ldn_wire_encode(&a, buf, sizeof buf), LDN_ERR_ARG);
    fill(&a, LDN_OP_PUSH);
    a.push.ncdesc = LDN_WIRE_CDESC_WORDS + 1;
    CU_ASSERT_EQUAL(ldn_wire_encode(&a, buf, sizeof buf), LDN_ERR_ARG);
    fill(&a, LDN_OP_PUSH);
    int n = ldn_wire_encode(&a, buf, sizeof buf);
    CU_ASSERT_EQUAL(ldn_wire_encode(&a, buf, (size_t)n - 1), LDN_ERR_INTERNAL);
    /* the largest header fits the bound */
    fill(&a, LDN_OP_ERROR);
    memset(a.error.msg, 'x', sizeof a.error.msg - 1);
    a.nframes = LDN_WIRE_MAX_FRAMES;
    CU_ASSERT(ldn_wire_encode(&a, buf, sizeof buf) > 0);
    fill(&a, LDN_OP_PROGRESS);
    a.nframes = LDN_WIRE_MAX_FRAMES;
    CU_ASSERT(ldn_wire_encode(&a, buf, sizeof buf) > 0);
}

static void test_names_and_steps(void)
{
    CU_ASSERT_STRING_EQUAL(ldn_wire_op_name(LDN_OP_PUSH), "push");
    CU_ASSERT_STRING_EQUAL(ldn_wire_op_name(LDN_OP_SERVER_STATS), "server_stats");
    CU_ASSERT_STRING_EQUAL(ldn_wire_op_name(LDN_OP_DONE), "done");
    CU_ASSERT_STRING_EQUAL(ldn_wire_op_name(0), "op?");
    CU_ASSERT_STRING_EQUAL(ldn_wire_op_name(LDN_OP_COUNT_), "op?");
    struct ldn_wire_msg a;
    int64_t step = 5;
    fill(&a, LDN_OP_PUSH);
    CU_ASSERT(ldn_wire_msg_step(&a, &step) == 1 && step == 123456789012);
    fill(&a, LDN_OP_EVAL_RESULT);
    CU_ASSERT(ldn_wire_msg_step(&a, &step) == 1 && step == 100);
    fill(&a, LDN_OP_STOP);
    CU_ASSERT(ldn_wire_msg_step(&a, &step) == 0 && step == 0);
    fill(&a, LDN_OP_TRAIN);
    CU_ASSERT(ldn_wire_msg_step(&a, &step) == 0);
}

/* A tiny header whose container count or string length claims far more than it holds is
 * refused before msgpack-c allocates for it (a map32 of 2^32-1 entries would be 128 GiB);
 * the error names the claim. */
static void test_huge_counts(void)
{
    static const struct {
        const char *what;
        unsigned char bytes[16];
        size_t len;
    } CASES[] = {
        {"map", {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x02}, 8},
        {"array", {0x81, 0xa4, 'l', 'e', 'n', 's', 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01}, 12},
        {"str", {0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 'v', 0x02}, 8},
        {"bin", {0x81, 0xa1, 'v', 0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00}, 9},
        {"map", {0x81, 0xa1, 'x', 0xde, 0xff, 0xff, 0x01}, 7},
    };
    for (size_t i = 0; i < LDN_ARRAY_LEN(CASES); i++) {
        struct ldn_wire_msg m;
        char err[LDN_ERRLEN] = "";
        int rc = ldn_wire_decode(CASES[i].bytes, CASES[i].len, &m, err, sizeof err);
        CU_ASSERT_EQUAL(rc, LDN_ERR_FORMAT);
        char want[32];
        snprintf(want, sizeof want, "msgpack %s of ", CASES[i].what);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "only"));
        if (!strstr(err, want))
            printf("\n  case %zu (%s): %s\n", i, CASES[i].what, err);
    }
}

static const struct ldn_cu_test TESTS[] = {
    {"round_trip", test_round_trip},
    {"truncated", test_truncated},
    {"mistyped_and_missing", test_mistyped_and_missing},
    {"unknown_keys_ignored", test_unknown_keys_ignored},
    {"other_version", test_other_version},
    {"out_of_range", test_out_of_range},
    {"envelope_checks", test_envelope_checks},
    {"names_and_steps", test_names_and_steps},
    {"huge_counts", test_huge_counts},
    {NULL, NULL},
};

LDN_CU_MAIN("wire", TESTS)
