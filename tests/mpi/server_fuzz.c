/* MPI integration test (2 ranks): rank 1 runs a parameter server, rank 0 is a raw ZeroMQ
 * client that sends malformed and out-of-range messages. Each must be answered with an
 * ERROR and counted, the weights must stay unchanged, and the server must keep serving:
 * a valid push afterwards is applied and a pull returns the updated weights. */
#include <math.h>
#include <mpi.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "codec.h"
#include "config.h"
#include "keyspace.h"
#include "net.h"
#include "server.h"
#include "status.h"

#define N 1000
#define WORKER 5

static int failures;
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

static const char *YAML = "data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}}\n"
                          "train: {lr: 0.05, momentum: 0.9}\nps: {consistency: bsp, timeout: 20}\n"
                          "compress: {codec: topk, ratio: 0.01, quant: int8}\n";

/* The codec the fuzzed server runs with (YAML above): top-k 1% of int8 values, seed 1. */
static struct ldn_codec_desc fuzz_desc(void)
{
    struct ldn_codec_desc d = {.kind = LDN_CODEC_TOPK,
                               .quant = LDN_QUANT_INT8,
                               .ratio_ppm = 10000,
                               .chunk = 256,
                               .levels = 16,
                               .seed = 1};
    return d;
}

/* Send raw parts (NULL-terminated list of (ptr, len) pairs). */
static void send_parts(void *sock, int n, const void *const *p, const size_t *len)
{
    for (int i = 0; i < n; i++)
        zmq_send(sock, p[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

static void push_hdr(struct ldn_wire_msg *h, int64_t step, uint64_t lo, uint64_t hi, uint64_t bytes)
{
    ldn_wire_msg_init(h, LDN_OP_PUSH, WORKER);
    h->push.step = step;
    h->push.lo = lo;
    h->push.hi = hi;
    h->nframes = 1;
    h->lens[0] = bytes;
}

/* Expect one ERROR answer; returns 1 when it came. */
static int expect_error(void *sock, const char *what)
{
    struct ldn_msg m;
    char err[LDN_ERRLEN];
    int rc = ldn_net_recv(sock, 0, &m, 5000, err, sizeof err);
    if (rc != 0) {
        CHECK(0, "%s: no answer (%s)", what, rc == LDN_ERR_TIMEOUT ? "timeout" : err);
        return 0;
    }
    ldn_msg_close(&m);
    CHECK(m.hdr.op == LDN_OP_ERROR, "%s: answered %s instead of error", what,
          ldn_wire_op_name(m.hdr.op));
    if (m.hdr.op == LDN_OP_ERROR)
        printf("  %-32s -> error: %s\n", what, m.hdr.error.msg);
    return m.hdr.op == LDN_OP_ERROR;
}

static void pull(void *sock, int64_t clock, float *out)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, LDN_OP_PULL, WORKER);
    h.pull.step = clock;
    h.pull.lo = 0;
    h.pull.hi = N;
    ldn_net_send(sock, NULL, 0, &h, NULL, NULL, 0);
    struct ldn_msg m;
    char err[LDN_ERRLEN];
    int rc = ldn_net_recv(sock, 0, &m, 5000, err, sizeof err);
    CHECK(rc == 0 && m.hdr.op == LDN_OP_PARAMS && m.nframes == 1 &&
              m.hdr.lens[0] == N * sizeof(float),
          "pull at clock %lld failed (rc %d)", (long long)clock, rc);
    if (rc == 0) {
        if (m.nframes == 1 && m.hdr.lens[0] == N * sizeof(float))
            memcpy(out, zmq_msg_data(&m.frames[0]), N * sizeof(float));
        ldn_msg_close(&m);
    }
}

/* A DEALER whose routing id is the `len` bytes of id (NULs included). */
static void *dealer_with_id(void *ctx, const char *endpoint, const char *id, size_t len)
{
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(d, ZMQ_ROUTING_ID, id, len);
    zmq_connect(d, endpoint);
    return d;
}

/* Routing ids that are "c0" or "w5" followed by a NUL and more are neither the coordinator
 * nor worker 5: a STOP and a push from them are rejected (the server keeps serving). */
static int spoofed_idents(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *c = dealer_with_id(ctx, endpoint, "c0\0x", 4);
    void *w = dealer_with_id(ctx, endpoint, "w5\0junk", 7);
    static float grad[N];
    struct ldn_wire_msg h;
    int bad = 0;
    ldn_wire_msg_init(&h, LDN_OP_STOP, 0);
    ldn_net_send(c, NULL, 0, &h, NULL, NULL, 0);
    bad += expect_error(c, "stop from id c0\\0x");
    push_hdr(&h, 0, 0, N, N * 4);
    ldn_net_send(w, NULL, 0, &h, (const void *const[]){grad}, NULL, 0);
    bad += expect_error(w, "push from id w5\\0junk");
    CHECK(bad == 2, "spoofed routing ids: %d of 2 rejected", bad);
    zmq_close(c);
    zmq_close(w);
    zmq_ctx_term(ctx);
    return bad;
}

static int client(const char *endpoint)
{
    void *ctx = zmq_ctx_new();
    void *w = ldn_net_socket(ctx, ZMQ_DEALER, "w5", NULL, 0);
    void *c = ldn_net_socket(ctx, ZMQ_DEALER, "c0", NULL, 0);
    zmq_connect(w, endpoint);
    zmq_connect(c, endpoint);
    static float before[N], after[N], grad[N];
    pull(w, 0, before);
    for (int i = 0; i < N; i++)
        CHECK(before[i] == (float)i * 0.001f, "initial weight %d", i);

    int bad = 0;
    char buf[LDN_WIRE_HDR_MAX];
    struct ldn_wire_msg h;
    for (int i = 0; i < N; i++)
        grad[i] = 1.0f;

    { /* header is not msgpack */
        const char junk[] = "\xc1\xc1\xc1 not msgpack";
        const void *p[] = {junk};
        size_t l[] = {sizeof junk};
        send_parts(w, 1, p, l);
        bad += expect_error(w, "garbage header");
    }
    { /* msgpack, but an array */
        char arr[] = {(char)0x92, 0x01, 0x02};
        const void *p[] = {arr};
        size_t l[] = {sizeof arr};
        send_parts(w, 1, p, l);
        bad += expect_error(w, "header not a map");
    }
    { /* empty header frame */
        const void *p[] = {""};
        size_t l[] = {0};
        send_parts(w, 1, p, l);
        bad += expect_error(w, "empty header");
    }
    { /* another protocol version */
        push_hdr(&h, 0, 0, N, N * 4);
        h.version = 99;
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "protocol version 99");
    }
    { /* unknown op: a valid v2 envelope around op 77 (the encoder refuses unknown ops) */
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 4);
        const char *keys[] = {"v", "op", "from"};
        const int vals[] = {LDN_WIRE_VERSION, 77, WORKER};
        for (int i = 0; i < 3; i++) {
            msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
            msgpack_pack_int(&pk, vals[i]);
        }
        msgpack_pack_str_with_body(&pk, "lens", 4);
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, N * 4);
        int n = (int)sb.size;
        memcpy(buf, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "unknown op");
    }
    { /* key range past the server's */
        push_hdr(&h, 0, 0, N + 10, (N + 10) * 4);
        static float big[N + 10];
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, big};
        size_t l[] = {(size_t)n, (N + 10) * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "range out of bounds");
    }
    { /* frame shorter than the header says */
        push_hdr(&h, 0, 0, N, N * 4);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4 - 8};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "truncated payload");
    }
    { /* consistent lengths, but not the dense size */
        push_hdr(&h, 0, 0, N, 40);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, 40};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "payload size for codec");
    }
    { /* header lists no frames but one follows */
        push_hdr(&h, 0, 0, N, N * 4);
        h.nframes = 0;
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "frame count mismatch");
    }
    { /* NaN in the values */
        static float nan_grad[N];
        memcpy(nan_grad, grad, sizeof grad);
        nan_grad[N / 2] = NAN;
        push_hdr(&h, 0, 0, N, N * 4);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, nan_grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "non-finite value");
    }
    { /* wrong step */
        push_hdr(&h, 5, 0, N, N * 4);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "push for a future step");
    }
    { /* sender claims another rank than its connection */
        push_hdr(&h, 0, 0, N, N * 4);
        h.from = 9;
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "spoofed sender");
    }
    { /* unknown codec */
        push_hdr(&h, 0, 0, N, N * 4);
        h.push.codec = 42;
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, N * 4};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "unknown codec");
    }
    { /* pull far ahead of the worker's clock */
        ldn_wire_msg_init(&h, LDN_OP_PULL, WORKER);
        h.pull.step = 100;
        h.pull.hi = N;
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf};
        size_t l[] = {(size_t)n};
        send_parts(w, 1, p, l);
        bad += expect_error(w, "pull from the future");
    }
    { /* control from a worker */
        ldn_wire_msg_init(&h, LDN_OP_STOP, WORKER);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf};
        size_t l[] = {(size_t)n};
        send_parts(w, 1, p, l);
        bad += expect_error(w, "stop from a worker");
    }
    { /* too many frames */
        push_hdr(&h, 0, 0, N, N * 4);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad, grad, grad, grad, grad, grad};
        size_t l[] = {(size_t)n, 4, 4, 4, 4, 4, 4};
        send_parts(w, 7, p, l);
        bad += expect_error(w, "too many frames");
    }
    { /* packed push with another job's codec descriptor */
        struct ldn_codec_desc d = fuzz_desc();
        d.ratio_ppm = 20000;
        push_hdr(&h, 0, 0, N, 16);
        h.push.codec = LDN_CODEC_PACKED;
        h.push.ncdesc = LDN_CODEC_DESC_WORDS;
        ldn_codec_desc_pack(&d, h.push.cdesc);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, grad};
        size_t l[] = {(size_t)n, 16};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "foreign codec descriptor");
    }
    { /* the job's descriptor, but a payload cut short */
        struct ldn_codec_desc d = fuzz_desc();
        struct ldn_codec_ctx *cc = ldn_codec_ctx_new(1);
        static uint8_t packed[N * 8];
        size_t plen = 0;
        char cerr[LDN_ERRLEN];
        CHECK(ldn_codec_compress(cc, &d, ldn_wire_codec_step(0, 0), grad, NULL, N, packed,
                                 sizeof packed, &plen, NULL, NULL, cerr, sizeof cerr) == 0,
              "compress: %s", cerr);
        ldn_codec_ctx_destroy(&cc);
        push_hdr(&h, 0, 0, N, plen - 3);
        h.push.codec = LDN_CODEC_PACKED;
        h.push.ncdesc = LDN_CODEC_DESC_WORDS;
        ldn_codec_desc_pack(&d, h.push.cdesc);
        int n = ldn_wire_encode(&h, buf, sizeof buf);
        const void *p[] = {buf, packed};
        size_t l[] = {(size_t)n, plen - 3};
        send_parts(w, 2, p, l);
        bad += expect_error(w, "truncated codec payload");
    }
    printf("%d malformed messages answered with an error\n", bad);
    CHECK(bad == 18, "expected 18 errors, got %d", bad);

    bad += spoofed_idents(endpoint);

    pull(w, 0, after);
    CHECK(memcmp(before, after, sizeof before) == 0, "weights changed by rejected messages");

    /* The server keeps serving: a valid push is applied (SGD, lr 0.05, g = 1). */
    push_hdr(&h, 0, 0, N, N * 4);
    ldn_net_send(w, NULL, 0, &h, (const void *const[]){grad}, NULL, 0);
    pull(w, 1, after);
    for (int i = 0; i < N; i++)
        CHECK(fabsf(after[i] - (before[i] - 0.05f)) < 1e-6f, "weight %d after a valid push", i);

    /* CLOCK (a group sitting a step out): a stale one and a duplicate are rejected, a valid
     * one closes the step without changing the weights. */
    static float clocked[N];
    ldn_wire_msg_init(&h, LDN_OP_CLOCK, WORKER);
    h.clock.step = 0; /* already pushed */
    h.clock.hi = N;
    ldn_net_send(w, NULL, 0, &h, NULL, NULL, 0);
    bad += expect_error(w, "clock for a pushed step");
    h.clock.step = 1;
    ldn_net_send(w, NULL, 0, &h, NULL, NULL, 0); /* valid: step 1 closes with no gradient */
    ldn_net_send(w, NULL, 0, &h, NULL, NULL, 0); /* duplicate */
    bad += expect_error(w, "duplicate clock");
    pull(w, 2, clocked);
    CHECK(memcmp(clocked, after, sizeof after) == 0, "a step of clocks only changed weights");

    /* Counters: every rejected message was counted. */
    ldn_wire_msg_init(&h, LDN_OP_STATS_REQUEST, 0);
    ldn_net_send(c, NULL, 0, &h, NULL, NULL, 0);
    struct ldn_msg m;
    char err[LDN_ERRLEN];
    int rc = ldn_net_recv(c, 0, &m, 5000, err, sizeof err);
    CHECK(rc == 0 && m.hdr.op == LDN_OP_SERVER_STATS, "stats answer");
    if (rc == 0) {
        ldn_msg_close(&m);
        const struct ldn_wire_server_stats *st = &m.hdr.server_stats;
        printf("server counted %lld bad messages, %lld pushes, %lld pulls\n",
               (long long)st->bad_messages, (long long)st->pushes, (long long)st->pulls);
        CHECK(st->bad_messages == bad, "server counted %lld bad messages, sent %d",
              (long long)st->bad_messages, bad);
        CHECK(st->pushes == 1, "pushes received: %lld", (long long)st->pushes);
    }
    ldn_wire_msg_init(&h, LDN_OP_STOP, 0);
    ldn_net_send(c, NULL, 0, &h, NULL, NULL, 0);
    rc = ldn_net_recv(c, 0, &m, 5000, err, sizeof err);
    CHECK(rc == 0 && m.hdr.op == LDN_OP_SERVER_STATS, "stop acknowledged with the counters");
    if (rc == 0)
        ldn_msg_close(&m);
    zmq_close(w);
    zmq_close(c);
    zmq_ctx_term(ctx);
    return failures;
}

int main(void)
{
    MPI_Init(NULL, NULL);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (world != 2) {
        if (rank == 0)
            fprintf(stderr, "server_fuzz: run with 2 ranks\n");
        MPI_Finalize();
        return 2;
    }
    char endpoint[LDN_NET_ENDPOINT_MAX] = "";
    int rc = 0;
    if (rank == 1) {
        char err[LDN_ERRLEN];
        struct ldn_config *cfg =
            ldn_config_parse(YAML, strlen(YAML), "fuzz.yaml", 0, NULL, err, sizeof err);
        static float init[N];
        for (int i = 0; i < N; i++)
            init[i] = (float)i * 0.001f;
        int workers[1] = {WORKER};
        struct ldn_chunk chunk = {
            .lo = 0, .hi = N, .server = 0, .layer = 0, .row_lo = 0, .row_hi = 1};
        struct ldn_server_opts o = {.rank = 1,
                                    .lo = 0,
                                    .hi = N,
                                    .init = init,
                                    .cfg = cfg,
                                    .total_steps = 10,
                                    .steps_per_epoch = 10,
                                    .n_workers = 1,
                                    .worker_ranks = workers,
                                    .chunks = &chunk,
                                    .n_chunks = 1};
        struct ldn_server *s = cfg ? ldn_server_new(&o, err, sizeof err) : NULL;
        void *ctx = zmq_ctx_new();
        void *router = ldn_net_socket(ctx, ZMQ_ROUTER, NULL, NULL, 0);
        if (!s || ldn_net_bind(router, "127.0.0.1", endpoint, sizeof endpoint, err, sizeof err))
            fprintf(stderr, "server set-up: %s\n", err);
        MPI_Send(endpoint, sizeof endpoint, MPI_CHAR, 0, 0, MPI_COMM_WORLD);
        rc = s ? ldn_server_run(s, router, err, sizeof err) : 1;
        if (rc)
            fprintf(stderr, "server: %s\n", err);
        ldn_server_destroy(&s);
        ldn_config_destroy(&cfg);
        zmq_close(router);
        zmq_ctx_term(ctx);
    } else {
        MPI_Recv(endpoint, sizeof endpoint, MPI_CHAR, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        rc = client(endpoint);
    }
    int worst = 0;
    MPI_Reduce(&rc, &worst, 1, MPI_INT, MPI_MAX, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%s\n", worst ? "server fuzz: FAILED" : "server fuzz: ok");
    MPI_Finalize();
    return rank == 0 ? (worst != 0) : 0;
}
