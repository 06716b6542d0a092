/* Wire format of the data plane and the control messages (docs/wire.md).
 *
 * A message is a ZeroMQ multipart message: one msgpack-encoded header frame (a map) followed
 * by `nframes` raw little-endian payload frames whose byte lengths the header lists, so large
 * payloads travel without copies. Every header carries the protocol version; a peer with
 * another version gets an ERROR reply naming both versions. Decoding validates the header's
 * types and sizes; the receiver validates the meaning (ranges, steps, codec). */
#ifndef LDN_WIRE_H
#define LDN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define LDN_WIRE_VERSION 1
#define LDN_WIRE_MAX_FRAMES 4
#define LDN_WIRE_MAX_VALS 32
#define LDN_WIRE_MSG_MAX 256
#define LDN_WIRE_HDR_MAX 1024 /* encoded header never exceeds this */

enum ldn_wire_op {
    LDN_OP_HELLO = 1,   /* worker -> coordinator: checked in (from) */
    LDN_OP_PUSH = 2,    /* worker -> server: gradient for [lo, hi) at clock `step` */
    LDN_OP_PULL = 3,    /* worker -> server: ask for [lo, hi) as of clock `step` */
    LDN_OP_PARAMS = 4,  /* server -> worker: answer to PULL, weights [lo, hi) */
    LDN_OP_CLOCK = 5,   /* worker -> server: finished clock `step` without a push */
    LDN_OP_CONTROL = 6, /* coordinator -> any: phase command (kind in vals[0], see ps/) */
    LDN_OP_STATS = 7,   /* any -> coordinator: counters (vals), or a request for them */
    LDN_OP_REPORT = 8,  /* worker -> coordinator: training/eval figures (vals) */
    LDN_OP_ERROR = 9,   /* any -> sender of a bad message: status + msg */
    LDN_OP_DONE = 10,   /* any -> coordinator: phase finished (vals: figures) */
    LDN_OP_MAX_ = 10
};

/* Payload codec of a push: raw float32, or a common/codec payload whose descriptor travels in
 * the header's "cd" words. */
enum ldn_codec_id { LDN_CODEC_DENSE_F32 = 0, LDN_CODEC_PACKED = 1 };
#define LDN_WIRE_CDESC_WORDS 3

/* The step a codec sees for the chunk starting at key lo of global step `step` (random-k
 * derives its indices from it, so sender and receiver compute it the same way). */
static inline uint64_t ldn_wire_codec_step(int64_t step, uint64_t lo)
{
    return (uint64_t)step * 0x9e3779b97f4a7c15ull ^ lo;
}

/* CONTROL commands (vals[0]); the phase arguments follow in vals[1..]. */
enum ldn_control {
    LDN_CTL_PING = 0,  /* liveness only */
    LDN_CTL_TRAIN = 1, /* vals[1] = first step, vals[2] = end step (exclusive) */
    LDN_CTL_EVAL = 2,  /* vals[1] = step */
    LDN_CTL_STOP = 3,  /* finish: answer DONE (servers with their stats) and exit */
    LDN_CTL_CKPT = 4   /* vals[1] = step: join the collective checkpoint write of that step */
};

/* REPORT kinds (vals[0]); the layouts are in docs/wire.md. */
enum ldn_report {
    LDN_REP_PROGRESS = 0, /* [kind, step, samples, loss_sum, correct, bytes_push, bytes_pull,
                             staleness_sum, pulls, compute_s, wait_s, residual_norm, bytes_dense]
                             for task `task` */
    LDN_REP_EVAL = 1      /* [kind, step, loss_sum, correct, rows] for task `task` */
};

struct ldn_wire_hdr {
    uint32_t version; /* "v" */
    uint32_t op;      /* "op" */
    int32_t from;     /* "from": sender's MPI rank */
    int32_t task;     /* "task": task index, -1 for none */
    int64_t step;     /* "step": clock / global step */
    uint64_t lo, hi;  /* "lo", "hi": key range [lo, hi) */
    uint32_t codec;   /* "codec": enum ldn_codec_id */
    uint32_t ncdesc;  /* "cd": codec descriptor words (LDN_CODEC_PACKED) */
    uint64_t cdesc[LDN_WIRE_CDESC_WORDS];
    uint32_t nframes; /* number of payload frames ("lens" array length) */
    uint64_t lens[LDN_WIRE_MAX_FRAMES];
    int32_t status;             /* "st": for ERROR */
    char msg[LDN_WIRE_MSG_MAX]; /* "msg": for ERROR and REPORT labels */
    uint32_t nvals;             /* "vals": small numeric payload */
    double vals[LDN_WIRE_MAX_VALS];
};

/* Initialise h for op from rank `from` (version set, task -1, everything else 0). */
void ldn_wire_hdr_init(struct ldn_wire_hdr *h, enum ldn_wire_op op, int from);

/* Encode h into buf (capacity cap >= LDN_WIRE_HDR_MAX); returns the length or a negative
 * status. */
int ldn_wire_encode(const struct ldn_wire_hdr *h, char *buf, size_t cap);

/* Decode a header frame into h. Checks: a msgpack map, known keys of the right types and
 * ranges, version present; unknown keys are ignored (forward compatibility). A version
 * other than LDN_WIRE_VERSION is decoded but reported as LDN_ERR_PEER with err set, so the
 * receiver can answer with an ERROR naming both versions. Returns 0 or negative status. */
int ldn_wire_decode(const void *buf, size_t len, struct ldn_wire_hdr *h, char *err, size_t errlen);

/* Name of an op ("push"), or "op?" for unknown values. */
const char *ldn_wire_op_name(uint32_t op);

#endif
