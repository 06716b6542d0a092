/* Push/pull goodput of ladon's data plane against raw ZeroMQ PUSH/PULL, in one run.
 *
 *   mpirun -np S+W bench_pushpull S BYTES ITERS [curve]
 *
 * Ranks 0..S-1 are parameter servers (bsp, SGD with momentum) holding a key space of BYTES
 * float32 bytes split evenly on row boundaries; ranks S.. are workers that each step push a
 * dense gradient of BYTES and pull the BYTES of weights back (the real kv client and server,
 * chunked as in training). Goodput = payload bytes moved (push + pull, all workers) / time.
 * The peer: each worker streams ITERS messages of BYTES/S to every server over PUSH/PULL
 * sockets; goodput = bytes received by all servers / time. Prints one table row. With `curve`
 * ladon's sockets are CURVE-authenticated as in a job (net.curve; the raw peer stays plain). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "fs.h"
#include "keyspace.h"
#include "kv.h"
#include "net.h"
#include "nn.h"
#include "plan.h"
#include "server.h"
#include "status.h"

static const char *YAML = "data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}}\n"
                          "train: {lr: 0.01, momentum: 0.9}\nps: {consistency: bsp, timeout: 60}\n";

static void die(const char *what, const char *err)
{
    fprintf(stderr, "bench_pushpull: %s: %s\n", what, err);
    MPI_Abort(MPI_COMM_WORLD, 1);
}

/* Raw ZeroMQ: every worker streams iters messages of `bytes` to each server. Returns the
 * aggregate goodput in bytes/s measured by the slowest server (first to last message). */
static double raw_zmq(void *ctx, int rank, int S, int W, size_t bytes, int iters)
{
    char ep[LDN_NET_ENDPOINT_MAX] = "";
    void *sock = NULL;
    if (rank < S) {
        sock = ldn_net_socket(ctx, ZMQ_PULL, NULL, NULL, 0);
        if (ldn_net_bind(sock, "127.0.0.1", ep, sizeof ep, NULL, 0))
            die("bind", "raw pull");
    }
    char(*eps)[LDN_NET_ENDPOINT_MAX] = calloc((size_t)(S + W), sizeof *eps);
    MPI_Allgather(ep, LDN_NET_ENDPOINT_MAX, MPI_CHAR, eps, LDN_NET_ENDPOINT_MAX, MPI_CHAR,
                  MPI_COMM_WORLD);
    double rate = 0;
    if (rank < S) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = 0;
        long total = (long)W * iters;
        for (long i = 0; i < total; i++) {
            zmq_msg_recv(&m, sock, 0);
            if (i == 0)
                t0 = ldn_clock_now();
        }
        double dt = ldn_clock_now() - t0;
        zmq_msg_close(&m);
        /* the first message's bytes are not inside the timed window */
        rate = (double)(total - 1) * (double)bytes / dt;
    } else {
        void **socks = calloc((size_t)S, sizeof *socks);
        char *buf = malloc(bytes);
        memset(buf, 1, bytes);
        for (int s = 0; s < S; s++) {
            socks[s] = ldn_net_socket(ctx, ZMQ_PUSH, NULL, NULL, 0);
            zmq_connect(socks[s], eps[s]);
        }
        MPI_Barrier(MPI_COMM_WORLD);
        for (int i = 0; i < iters; i++)
            for (int s = 0; s < S; s++)
                zmq_send(socks[s], buf, bytes, 0);
        MPI_Barrier(MPI_COMM_WORLD); /* keep the sockets open until everything arrived */
        for (int s = 0; s < S; s++)
            zmq_close(socks[s]);
        free(socks);
        free(buf);
    }
    if (rank < S) {
        MPI_Barrier(MPI_COMM_WORLD);
        zmq_close(sock);
    }
    free(eps);
    double worst = 0;
    /* aggregate: sum over servers of their rates */
    MPI_Allreduce(&rate, &worst, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return worst;
}

/* net.curve as in a job: key pairs for job ranks 0..world (0 the coordinator "c0", whose key
 * the first worker also holds to stop the servers; 1+r bench rank r), a ZAP handler on the
 * servers. The bench hands every key to every rank (a job scatters the secret keys). */
static struct ldn_auth *bench_auth(void *ctx, int rank, int S, int world, struct ldn_auth **coord)
{
    const int n = world + 1;
    struct ldn_auth_peer *peers = calloc((size_t)n, sizeof *peers);
    char(*sec)[LDN_AUTH_KEY_Z85] = calloc((size_t)n, sizeof *sec);
    char err[LDN_ERRLEN] = "";
    if (!peers || !sec || (rank == 0 && ldn_auth_keypairs(n, peers, sec, err, sizeof err)))
        die("keys", err);
    for (int j = 0; j < n; j++)
        if (j == 0 || j > S)
            snprintf(peers[j].name, sizeof peers[j].name, j == 0 ? "c0" : "w%d", j);
    MPI_Bcast(peers, (int)(sizeof *peers * (size_t)n), MPI_BYTE, 0, MPI_COMM_WORLD);
    MPI_Bcast(sec, (int)(sizeof *sec * (size_t)n), MPI_BYTE, 0, MPI_COMM_WORLD);
    struct ldn_auth *a =
        ldn_auth_new(ctx, n, 1 + rank, peers, sec[1 + rank], rank < S, err, sizeof err);
    if (!a || (rank == S && !(*coord = ldn_auth_new(ctx, n, 0, peers, sec[0], 0, err, sizeof err))))
        die("auth", err);
    free(peers);
    free(sec);
    return a;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, world;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    if (argc < 4) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np S+W bench_pushpull S BYTES ITERS\n");
        MPI_Finalize();
        return 2;
    }
    const int S = atoi(argv[1]), W = world - S;
    const long bytes = atol(argv[2]);
    const int iters = atoi(argv[3]);
    const int curve = argc > 4 && strcmp(argv[4], "curve") == 0;
    if (S < 1 || W < 1 || bytes < 1024 || iters < 2)
        die("arguments", "need S >= 1, at least one worker rank, BYTES >= 1024, ITERS >= 2");
    char err[LDN_ERRLEN] = "";
    struct ldn_config *cfg =
        ldn_config_parse(YAML, strlen(YAML), "bench", 0, NULL, err, sizeof err);
    if (!cfg)
        die("config", err);
    /* A one-layer "trunk" with 1 KiB rows holding BYTES of float32 keys. */
    int rows = (int)(bytes / 1024);
    if (rows < S)
        rows = S;
    struct ldn_nn *trunk = ldn_nn_new_mlp(255, &rows, 1, 0, LDN_ACT_RELU, 1);
    struct ldn_range *ranges = malloc(sizeof *ranges * (size_t)S);
    double imb;
    if (!trunk || !ranges || ldn_keyspace_partition(trunk, S, ranges, &imb, err, sizeof err))
        die("partition", err);
    struct ldn_chunk *chunks = NULL;
    int n_chunks = ldn_keyspace_chunks(trunk, ranges, S, (int64_t)cfg->chunk_kb * 1024, &chunks,
                                       err, sizeof err);
    if (n_chunks < 0)
        die("chunks", err);
    const size_t payload = sizeof(float) * (size_t)trunk->n_params;
    void *ctx = zmq_ctx_new();

    /* Enough raw messages to time a stream, not a burst: at least 256 MiB per worker. */
    long raw_iters = (256l << 20) / (long)(payload / (size_t)S);
    if (raw_iters < iters)
        raw_iters = iters;
    if (raw_iters > 200000)
        raw_iters = 200000;
    double raw = raw_zmq(ctx, rank, S, W, payload / (size_t)S, (int)raw_iters);

    /* ladon: servers on ranks 0..S-1 (rank r+1 in the job's numbering), workers after. */
    char ep[LDN_NET_ENDPOINT_MAX] = "";
    void *router = NULL;
    struct ldn_server *srv = NULL;
    int *workers = malloc(sizeof(int) * (size_t)W);
    for (int i = 0; i < W; i++)
        workers[i] = 1 + S + i;
    struct ldn_auth *auth = NULL, *coord_auth = NULL;
    if (curve) {
        auth = bench_auth(ctx, rank, S, world, &coord_auth);
        ldn_net_use_auth(auth);
    }
    if (rank < S) {
        router = ldn_net_socket(ctx, ZMQ_ROUTER, NULL, NULL, 0);
        if ((auth && ldn_auth_server(auth, router, err, sizeof err)) ||
            ldn_net_bind(router, "127.0.0.1", ep, sizeof ep, err, sizeof err))
            die("bind", err);
        struct ldn_server_opts o = {.rank = 1 + rank,
                                    .lo = ranges[rank].lo,
                                    .hi = ranges[rank].hi,
                                    .init = trunk->params + ranges[rank].lo,
                                    .cfg = cfg,
                                    .total_steps = iters + 1,
                                    .steps_per_epoch = iters + 1,
                                    .n_workers = W,
                                    .worker_ranks = workers,
                                    .chunks = chunks,
                                    .n_chunks = n_chunks};
        if (!(srv = ldn_server_new(&o, err, sizeof err)))
            die("server", err);
    }
    char(*eps)[LDN_NET_ENDPOINT_MAX] = calloc((size_t)world, sizeof *eps);
    MPI_Allgather(ep, LDN_NET_ENDPOINT_MAX, MPI_CHAR, eps, LDN_NET_ENDPOINT_MAX, MPI_CHAR,
                  MPI_COMM_WORLD);
    for (int r = 0; r < S && auth; r++) {
        ldn_auth_set_endpoint(auth, 1 + r, eps[r], NULL, 0);
        if (coord_auth)
            ldn_auth_set_endpoint(coord_auth, 1 + r, eps[r], NULL, 0);
    }
    MPI_Comm wcomm; /* the workers among themselves */
    MPI_Comm_split(MPI_COMM_WORLD, rank < S ? 0 : 1, rank, &wcomm);
    double rate = 0;
    if (rank < S) {
        /* serve until the workers are done: they send stop through a coordinator socket */
        if (ldn_server_run(srv, router, err, sizeof err))
            die("server run", err);
    } else {
        struct ldn_kv *kv =
            ldn_kv_new(ctx, 1 + rank, S, eps, ranges, chunks, n_chunks, 60.0, err, sizeof err);
        if (!kv)
            die("kv", err);
        float *grad = calloc((size_t)trunk->n_params, sizeof(float));
        for (int64_t i = 0; i < trunk->n_params; i++)
            grad[i] = 1e-3f;
        double t0 = 0;
        for (int i = 0; i <= iters; i++) {
            if (i == 1)
                t0 = ldn_clock_now(); /* the first step warms up connections and buffers */
            if (ldn_kv_pull_begin(kv, i + 1, err, sizeof err) ||
                ldn_kv_push_range(kv, i, grad, 0, trunk->n_params, NULL, err, sizeof err) ||
                ldn_kv_pull_end(kv, trunk->params, err, sizeof err))
                die("push/pull", err);
        }
        rate = 2.0 * (double)payload * iters / (ldn_clock_now() - t0);
        free(grad);
        ldn_kv_destroy(&kv);
        MPI_Barrier(wcomm); /* every worker finished */
        if (rank == S) {    /* stop the servers, as the coordinator would */
            if (coord_auth)
                ldn_net_use_auth(coord_auth);
            for (int s = 0; s < S; s++) {
                void *c = ldn_net_connect(ctx, "c0", eps[s], "server", err, sizeof err);
                if (!c)
                    die("connect", err);
                struct ldn_wire_msg h;
                ldn_wire_msg_init(&h, LDN_OP_STOP, 0);
                ldn_net_send(c, NULL, 0, &h, NULL, NULL, 0);
                struct ldn_msg m;
                if (ldn_net_recv(c, 0, &m, 10000, err, sizeof err) == 0)
                    ldn_msg_close(&m);
                zmq_close(c);
            }
        }
    }
    MPI_Comm_free(&wcomm);
    double total = 0;
    MPI_Reduce(&rate, &total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("| %s | %d | %d | %.2f | %.2f | %.2f |\n", argv[2], S, W, total / 1e9, raw / 1e9,
               total / raw);
    ldn_server_destroy(&srv);
    if (router)
        zmq_close(router);
    ldn_net_use_auth(NULL);
    ldn_auth_destroy(&auth);
    ldn_auth_destroy(&coord_auth);
    zmq_ctx_term(ctx);
    free(eps);
    free(workers);
    free(chunks);
    free(ranges);
    ldn_nn_destroy(&trunk);
    ldn_config_destroy(&cfg);
    MPI_Finalize();
    return 0;
}
