/* Collective checkpoint writes under mpiexec (any number of ranks): every rank holds a row
 * range of a trunk-shaped network (as servers do), one rank a head, every rank a dataset of
 * its own; the file written collectively with parallel HDF5 must read back (serial driver,
 * checksums verified) equal to the whole, `latest` must name it and keep_last must prune.
 * Exit 0 on success; every failure prints what differed. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt.h"
#include "nn.h"
#include "rng.h"
#include "status.h"

static int fails;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "ckpt_collective rank %d: ", rank);                                    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            fails++;                                                                               \
        }                                                                                          \
    } while (0)

int main(void)
{
    MPI_Init(NULL, NULL);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char dir[256];
    if (rank == 0)
        snprintf(dir, sizeof dir, "/tmp/ldn-ckpt-coll-%d", (int)getpid());
    MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);

    int widths[2] = {300, 70};
    struct ldn_nn *net = ldn_nn_new_mlp(33, widths, 2, 0, LDN_ACT_RELU, 1);
    struct ldn_nn *head = ldn_nn_new_mlp(70, NULL, 0, 5, LDN_ACT_RELU, 1);
    struct ldn_rng r;
    ldn_rng_init(&r, 7, 1);
    ldn_nn_init(net, &r);
    ldn_nn_init(head, &r);
    for (int64_t i = 0; i < net->n_params; i++) /* non-zero biases too */
        net->params[i] += (float)(ldn_rng_uniform(&r) - 0.5);
    /* rank k holds whole rows [k*N/size, (k+1)*N/size) of the key space, cut at row ends */
    int64_t cut[65];
    for (int k = 0; k <= size; k++) {
        int64_t want = net->n_params * k / size, best = 0;
        for (int l = 0; l < net->n_layers; l++)
            for (int64_t j = 0; j <= net->layers[l].out_dim; j++) {
                int64_t key = net->layers[l].offset + j * net->layers[l].row_len;
                if (llabs(key - want) < llabs(best - want))
                    best = key;
            }
        cut[k] = k == size ? net->n_params : best;
    }
    int64_t lo = cut[rank], hi = cut[rank + 1];
    struct ldn_ckpt_items items = {0};
    int rc = ldn_ckpt_add_net(&items, net, "/trunk", net->params + lo, lo, hi);
    if (rank == size - 1)
        rc |= ldn_ckpt_add_net(&items, head, "/heads/t0", head->params, 0, head->n_params);
    char name[64];
    int64_t mine[3] = {rank, 10 * rank, -rank};
    snprintf(name, sizeof name, "/workers/%d/state", rank);
    rc |= ldn_ckpt_add(&items, name, LDN_CKPT_I64, 1, 3, 1, mine);
    CHECK(rc == 0, "building items failed");

    struct ldn_ckpt_meta meta = {.steps_per_epoch = 10,
                                 .total_steps = 100,
                                 .n_servers = size,
                                 .n_workers = 1,
                                 .features = 33,
                                 .seed = 99,
                                 .config = "a: 1\n",
                                 .metrics = rank == 0 ? "{\"x\": 1}\n" : "ignored"};
    char path[1200], err[LDN_ERRLEN];
    for (int step = 1; step <= 3; step++) {
        meta.step = step * 10;
        rc = ldn_ckpt_write(MPI_COMM_WORLD, dir, &meta, &items, 2, path, sizeof path, err,
                            sizeof err);
        CHECK(rc == 0, "write step %d: %s", step * 10, err);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        char p[1200];
        rc = ldn_ckpt_resolve("latest", dir, p, sizeof p, err, sizeof err);
        CHECK(rc == 0 && strcmp(p, path) == 0, "latest: %s (%s vs %s)", err, p, path);
        char old[1200];
        snprintf(old, sizeof old, "%s/step-0000000010.h5", dir);
        CHECK(access(old, F_OK) != 0, "keep_last 2 left %s", old);
        snprintf(old, sizeof old, "%s/step-0000000020.h5", dir);
        CHECK(access(old, F_OK) == 0, "keep_last 2 removed %s", old);
        struct ldn_ckpt ck;
        rc = ldn_ckpt_open(path, &ck, err, sizeof err);
        CHECK(rc == 0, "open: %s", err);
        if (rc == 0) {
            CHECK(ck.step == 30 && ck.seed == 99 && ck.features == 33 && ck.n_servers == size,
                  "root attributes");
            CHECK(strcmp(ck.metrics, "{\"x\": 1}\n") == 0, "metrics attribute '%s'", ck.metrics);
            float *back = calloc((size_t)net->n_params, sizeof *back);
            float *hb = calloc((size_t)head->n_params, sizeof *hb);
            rc = ldn_ckpt_read_net(&ck, net, "/trunk", back, 0, net->n_params, err, sizeof err);
            CHECK(rc == 0, "read trunk: %s", err);
            CHECK(memcmp(back, net->params, sizeof *back * (size_t)net->n_params) == 0,
                  "trunk differs after the round trip");
            rc = ldn_ckpt_read_net(&ck, head, "/heads/t0", hb, 0, head->n_params, err, sizeof err);
            CHECK(rc == 0 && memcmp(hb, head->params, sizeof *hb * (size_t)head->n_params) == 0,
                  "head: %s", err);
            for (int k = 0; k < size; k++) {
                int64_t st[3], d[2] = {3, 1};
                snprintf(name, sizeof name, "/workers/%d/state", k);
                rc = ldn_ckpt_read(&ck, name, LDN_CKPT_I64, 1, d, 0, 3, st, 1, err, sizeof err);
                CHECK(rc == 0 && st[0] == k && st[1] == 10 * k && st[2] == -k, "%s: %s", name, err);
            }
            free(back);
            free(hb);
            ldn_ckpt_close(&ck);
        }
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    ldn_ckpt_items_free(&items);
    ldn_nn_destroy(&net);
    ldn_nn_destroy(&head);
    int all = 0;
    MPI_Allreduce(&fails, &all, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("ckpt_collective: %s on %d ranks\n", all ? "FAILED" : "ok", size);
    MPI_Finalize();
    return all ? 1 : 0;
}
