/* The trunk's key space: server ranges and the chunk table. */
#include "keyspace.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "status.h"

int ldn_keyspace_partition(const struct ldn_nn *trunk, int n, struct ldn_range *out,
                           double *imbalance, char *err, size_t errlen)
{
    int64_t rows = 0;
    for (int l = 0; l < trunk->n_layers; l++)
        rows += trunk->layers[l].out_dim;
    if (rows < n)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "the trunk has %lld rows, too few to split over %d servers (ps.servers)",
                        (long long)rows, n);
    const double total = (double)trunk->n_params;
    int k = 0;         /* server being filled */
    int64_t row = 0;   /* global row index */
    int64_t start = 0; /* key where server k starts */
    for (int l = 0; l < trunk->n_layers && k < n - 1; l++) {
        const struct ldn_layer *ly = &trunk->layers[l];
        for (int j = 0; j < ly->out_dim && k < n - 1; j++, row++) {
            int64_t end = ly->offset + (int64_t)(j + 1) * ly->row_len; /* key after this row */
            double target = total * (k + 1) / n;
            int64_t rows_left = rows - (row + 1);
            /* Cut after this row when it is the boundary nearest the target, or when the
             * remaining servers need every remaining row. */
            int64_t next_end = end + ly->row_len;
            if (j + 1 == ly->out_dim && l + 1 < trunk->n_layers)
                next_end = end + trunk->layers[l + 1].row_len;
            bool nearest = fabs((double)end - target) <= fabs((double)next_end - target);
            if (nearest || rows_left == n - 1 - k) {
                out[k].lo = start;
                out[k].hi = end;
                start = end;
                k++;
            }
        }
    }
    out[n - 1].lo = start;
    out[n - 1].hi = trunk->n_params;
    double mx = 0;
    for (int s = 0; s < n; s++)
        mx = fmax(mx, (double)(out[s].hi - out[s].lo));
    *imbalance = mx / (total / n) - 1.0;
    return LDN_OK;
}

int ldn_keyspace_chunks(const struct ldn_nn *trunk, const struct ldn_range *ranges, int S,
                        int64_t chunk_bytes, struct ldn_chunk **out, char *err, size_t errlen)
{
    int cap = 16, n = 0;
    struct ldn_chunk *c = malloc(sizeof *c * (size_t)cap);
    if (!c)
        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for the chunk table");
    int server = 0;
    for (int l = 0; l < trunk->n_layers; l++) {
        const struct ldn_layer *ly = &trunk->layers[l];
        int br = ldn_nn_block_rows(ly, chunk_bytes);
        for (int r0 = 0; r0 < ly->out_dim; r0 += br) {
            int r1 = r0 + br < ly->out_dim ? r0 + br : ly->out_dim;
            int row = r0;
            while (row < r1) { /* cut the block where a server range ends */
                int64_t lo = ly->offset + (int64_t)row * ly->row_len;
                while (server < S - 1 && lo >= ranges[server].hi)
                    server++;
                int64_t end_rows = (ranges[server].hi - ly->offset) / ly->row_len;
                int stop = end_rows < r1 ? (int)end_rows : r1;
                if (stop <= row) /* server boundaries are on row boundaries */
                    stop = row + 1;
                if (n == cap) {
                    struct ldn_chunk *g = realloc(c, sizeof *c * (size_t)(cap *= 2));
                    if (!g) {
                        free(c);
                        return ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory");
                    }
                    c = g;
                }
                c[n++] = (struct ldn_chunk){
                    lo, ly->offset + (int64_t)stop * ly->row_len, server, l, row, stop};
                row = stop;
            }
        }
    }
    *out = c;
    return n;
}

int ldn_keyspace_find_chunk(const struct ldn_chunk *chunks, int n, int64_t lo)
{
    int a = 0, b = n - 1;
    while (a <= b) {
        int mid = (a + b) / 2;
        if (chunks[mid].lo == lo)
            return mid;
        if (chunks[mid].lo < lo)
            a = mid + 1;
        else
            b = mid - 1;
    }
    return -1;
}

struct ldn_keyspace *ldn_keyspace_new(int features, const int *widths, int n_widths,
                                      enum ldn_activation act, int n_servers, int64_t chunk_bytes,
                                      char *err, size_t errlen)
{
    struct ldn_keyspace *k = calloc(1, sizeof *k);
    if (!k || !(k->trunk = ldn_nn_new_mlp(features, widths, n_widths, 0, act, 1)) ||
        !(k->ranges = malloc(sizeof *k->ranges * (size_t)n_servers))) {
        ldn_keyspace_destroy(&k);
        ldn_fail(err, errlen, LDN_ERR_NOMEM, "out of memory for the trunk");
        return NULL;
    }
    k->n_servers = n_servers;
    int rc = ldn_keyspace_partition(k->trunk, n_servers, k->ranges, &k->imbalance, err, errlen);
    if (rc == 0)
        rc = k->n_chunks = ldn_keyspace_chunks(k->trunk, k->ranges, n_servers, chunk_bytes,
                                               &k->chunks, err, errlen);
    if (rc < 0)
        ldn_keyspace_destroy(&k);
    return k;
}

void ldn_keyspace_destroy(struct ldn_keyspace **pk)
{
    if (!pk || !*pk)
        return;
    struct ldn_keyspace *k = *pk;
    ldn_nn_destroy(&k->trunk);
    free(k->ranges);
    free(k->chunks);
    free(k);
    *pk = NULL;
}
