/* The worker's key-value client: push trunk gradients to and pull trunk weights from every
 * parameter server (ps-lite's KVWorker shape, blocking). One DEALER per server. */
#ifndef LDN_KV_H
#define LDN_KV_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "plan.h"

struct ldn_kv {
    int rank;
    int n_servers;
    void **socks;             /* DEALER per server */
    struct ldn_range *ranges; /* server s holds [lo, hi) */
    int *server_ranks;
    double timeout_s;
    int64_t bytes_push, bytes_pull; /* cumulative, all parts */
    int64_t last_version;           /* min over servers of the version served by the last pull */
};

/* Connect to n servers at endpoints[s] holding ranges[s]. Returns NULL with err. */
struct ldn_kv *ldn_kv_new(void *zctx, int rank, int n, char (*endpoints)[LDN_NET_ENDPOINT_MAX],
                          const int *server_ranks, const struct ldn_range *ranges, double timeout_s,
                          char *err, size_t errlen);
void ldn_kv_destroy(struct ldn_kv **kv);

/* Push grad (the whole trunk's gradient, borrowed until return) for `step`. */
int ldn_kv_push(struct ldn_kv *kv, int64_t step, const float *grad, char *err, size_t errlen);

/* Pull the whole trunk as of clock `clock` into params; waits (at most timeout_s) for every
 * server's answer. An ERROR answer becomes an error naming the server. */
int ldn_kv_pull(struct ldn_kv *kv, int64_t clock, float *params, char *err, size_t errlen);

#endif
