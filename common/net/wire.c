/* Wire header encoding with msgpack-c. */
#define _POSIX_C_SOURCE 200809L
#include "wire.h"

#include <msgpack.h>
#include <string.h>

#include "status.h"

void ldn_wire_hdr_init(struct ldn_wire_hdr *h, enum ldn_wire_op op, int from)
{
    memset(h, 0, sizeof *h);
    h->version = LDN_WIRE_VERSION;
    h->op = op;
    h->from = from;
    h->task = -1;
}

const char *ldn_wire_op_name(uint32_t op)
{
    static const char *names[] = {"op?",     "hello", "push",   "pull",  "params", "clock",
                                  "control", "stats", "report", "error", "done"};
    return op <= LDN_OP_MAX_ ? names[op] : "op?";
}

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

static void pack_key(msgpack_packer *pk, const char *k)
{
    size_t n = strlen(k);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, k, n);
}

int ldn_wire_encode(const struct ldn_wire_hdr *h, char *buf, size_t cap)
{
    struct fixbuf f = {buf, 0, cap};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f, fixbuf_write);
    LDN_ASSERT(h->nframes <= LDN_WIRE_MAX_FRAMES && h->nvals <= LDN_WIRE_MAX_VALS);
    LDN_ASSERT(h->ncdesc <= LDN_WIRE_CDESC_WORDS);
    size_t n =
        9 + (h->nframes ? 1 : 0) + (h->nvals ? 1 : 0) + (h->msg[0] ? 1 : 0) + (h->ncdesc ? 1 : 0);
    int rc = msgpack_pack_map(&pk, n);
    pack_key(&pk, "v");
    rc |= msgpack_pack_uint32(&pk, h->version);
    pack_key(&pk, "op");
    rc |= msgpack_pack_uint32(&pk, h->op);
    pack_key(&pk, "from");
    rc |= msgpack_pack_int32(&pk, h->from);
    pack_key(&pk, "task");
    rc |= msgpack_pack_int32(&pk, h->task);
    pack_key(&pk, "step");
    rc |= msgpack_pack_int64(&pk, h->step);
    pack_key(&pk, "lo");
    rc |= msgpack_pack_uint64(&pk, h->lo);
    pack_key(&pk, "hi");
    rc |= msgpack_pack_uint64(&pk, h->hi);
    pack_key(&pk, "codec");
    rc |= msgpack_pack_uint32(&pk, h->codec);
    pack_key(&pk, "st");
    rc |= msgpack_pack_int32(&pk, h->status);
    if (h->nframes) {
        pack_key(&pk, "lens");
        rc |= msgpack_pack_array(&pk, h->nframes);
        for (uint32_t i = 0; i < h->nframes; i++)
            rc |= msgpack_pack_uint64(&pk, h->lens[i]);
    }
    if (h->ncdesc) {
        pack_key(&pk, "cd");
        rc |= msgpack_pack_array(&pk, h->ncdesc);
        for (uint32_t i = 0; i < h->ncdesc; i++)
            rc |= msgpack_pack_uint64(&pk, h->cdesc[i]);
    }
    if (h->nvals) {
        pack_key(&pk, "vals");
        rc |= msgpack_pack_array(&pk, h->nvals);
        for (uint32_t i = 0; i < h->nvals; i++)
            rc |= msgpack_pack_double(&pk, h->vals[i]);
    }
    if (h->msg[0]) {
        size_t m = strnlen(h->msg, sizeof h->msg);
        pack_key(&pk, "msg");
        rc |= msgpack_pack_str(&pk, m);
        rc |= msgpack_pack_str_body(&pk, h->msg, m);
    }
    return rc ? LDN_ERR_INTERNAL : (int)f.len;
}

static int key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && !memcmp(k->via.str.ptr, s, n);
}

/* An integer object within [lo, hi] into *out; 0 or -1. */
static int get_int(const msgpack_object *o, int64_t lo, uint64_t hi, int64_t *out, uint64_t *uout)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > hi)
            return -1;
        if (out)
            *out = (int64_t)o->via.u64;
        if (uout)
            *uout = o->via.u64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        if (o->via.i64 < lo || uout)
            return -1;
        *out = o->via.i64;
        return 0;
    }
    return -1;
}

static int decode_map(const msgpack_object *root, struct ldn_wire_hdr *h, char *err, size_t errlen)
{
    if (root->type != MSGPACK_OBJECT_MAP)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header is not a msgpack map");
    int have_version = 0;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object *k = &root->via.map.ptr[i].key, *v = &root->via.map.ptr[i].val;
        int64_t x = 0;
        uint64_t u = 0;
        const char *bad = NULL;
        if (key_is(k, "v")) {
            if (get_int(v, 0, UINT32_MAX, NULL, &u))
                bad = "v";
            h->version = (uint32_t)u;
            have_version = 1;
        } else if (key_is(k, "op")) {
            if (get_int(v, 0, UINT32_MAX, NULL, &u))
                bad = "op";
            h->op = (uint32_t)u;
        } else if (key_is(k, "from")) {
            if (get_int(v, INT32_MIN, INT32_MAX, &x, NULL))
                bad = "from";
            h->from = (int32_t)x;
        } else if (key_is(k, "task")) {
            if (get_int(v, INT32_MIN, INT32_MAX, &x, NULL))
                bad = "task";
            h->task = (int32_t)x;
        } else if (key_is(k, "step")) {
            if (get_int(v, INT64_MIN, INT64_MAX, &x, NULL))
                bad = "step";
            h->step = x;
        } else if (key_is(k, "lo")) {
            if (get_int(v, 0, UINT64_MAX, NULL, &h->lo))
                bad = "lo";
        } else if (key_is(k, "hi")) {
            if (get_int(v, 0, UINT64_MAX, NULL, &h->hi))
                bad = "hi";
        } else if (key_is(k, "codec")) {
            if (get_int(v, 0, UINT32_MAX, NULL, &u))
                bad = "codec";
            h->codec = (uint32_t)u;
        } else if (key_is(k, "st")) {
            if (get_int(v, INT32_MIN, INT32_MAX, &x, NULL))
                bad = "st";
            h->status = (int32_t)x;
        } else if (key_is(k, "lens")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > LDN_WIRE_MAX_FRAMES)
                bad = "lens";
            else {
                h->nframes = v->via.array.size;
                for (uint32_t j = 0; j < h->nframes && !bad; j++)
                    if (get_int(&v->via.array.ptr[j], 0, UINT64_MAX, NULL, &h->lens[j]))
                        bad = "lens";
            }
        } else if (key_is(k, "cd")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > LDN_WIRE_CDESC_WORDS)
                bad = "cd";
            else {
                h->ncdesc = v->via.array.size;
                for (uint32_t j = 0; j < h->ncdesc && !bad; j++)
                    if (get_int(&v->via.array.ptr[j], 0, UINT64_MAX, NULL, &h->cdesc[j]))
                        bad = "cd";
            }
        } else if (key_is(k, "vals")) {
            if (v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size > LDN_WIRE_MAX_VALS)
                bad = "vals";
            else {
                h->nvals = v->via.array.size;
                for (uint32_t j = 0; j < h->nvals && !bad; j++) {
                    const msgpack_object *e = &v->via.array.ptr[j];
                    if (e->type == MSGPACK_OBJECT_FLOAT64 || e->type == MSGPACK_OBJECT_FLOAT32)
                        h->vals[j] = e->via.f64;
                    else if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        h->vals[j] = (double)e->via.u64;
                    else if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
                        h->vals[j] = (double)e->via.i64;
                    else
                        bad = "vals";
                }
            }
        } else if (key_is(k, "msg")) {
            if (v->type != MSGPACK_OBJECT_STR)
                bad = "msg";
            else {
                size_t m =
                    v->via.str.size < sizeof h->msg - 1 ? v->via.str.size : sizeof h->msg - 1;
                memcpy(h->msg, v->via.str.ptr, m);
                h->msg[m] = '\0';
            }
        }
        if (bad)
            return ldn_fail(err, errlen, LDN_ERR_FORMAT,
                            "header field '%s' has a wrong type or "
                            "an out-of-range value",
                            bad);
    }
    if (!have_version)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header has no protocol version ('v')");
    if (h->version != LDN_WIRE_VERSION)
        return ldn_fail(err, errlen, LDN_ERR_PEER,
                        "protocol version %u, this peer speaks version %d", h->version,
                        LDN_WIRE_VERSION);
    if (h->op == 0 || h->op > LDN_OP_MAX_)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "unknown op %u", h->op);
    return LDN_OK;
}

int ldn_wire_decode(const void *buf, size_t len, struct ldn_wire_hdr *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->task = -1;
    if (len == 0 || len > LDN_WIRE_HDR_MAX)
        return ldn_fail(err, errlen, LDN_ERR_FORMAT, "header frame of %zu bytes (allowed 1..%d)",
                        len, LDN_WIRE_HDR_MAX);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc;
    msgpack_unpack_return r = msgpack_unpack_next(&up, buf, len, &off);
    if (r != MSGPACK_UNPACK_SUCCESS)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "header is not valid msgpack");
    else if (off != len)
        rc = ldn_fail(err, errlen, LDN_ERR_FORMAT, "%zu trailing bytes after the header map",
                      len - off);
    else
        rc = decode_map(&up.data, h, err, errlen);
    msgpack_unpacked_destroy(&up);
    return rc;
}
