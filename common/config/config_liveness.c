/* Checks of the liveness keys that span keys (ps.liveness_timeout, ps.on_worker_loss; the
 * per-key ranges are in config.c's table). */
#include <stdio.h>

#include "config.h"
#include "config_priv.h"

_Static_assert(sizeof(enum ldn_worker_loss) == sizeof(int), "enums are stored as int");

int ldn__liveness_check(const struct ldn_config *cfg, const char **key, char *msg, size_t cap)
{
    if (cfg->on_worker_loss != LDN_LOSS_CONTINUE)
        return 0;
    /* the survivors' own waits (a held pull, the group's head sum) last up to ps.timeout: the
     * loss must be found and announced well before they give up */
    if (2 * cfg->liveness_s > cfg->timeout_s) {
        *key = "liveness_timeout";
        snprintf(msg, cap,
                 "must be at most half of ps.timeout (%g s) with ps.on_worker_loss: continue, "
                 "got %g",
                 cfg->timeout_s, cfg->liveness_s);
        return -1;
    }
    if (cfg->n_rounds > 0) {
        *key = "on_worker_loss";
        snprintf(msg, cap,
                 "continue is not available with rounds (each round starts with collectives "
                 "over every rank), got continue");
        return -1;
    }
    return 0;
}
