/* Checks of the prune section that span keys (the per-key ranges are in config.c's table). */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_priv.h"

/* prune.rounds: every entry an existing round, once; the per-layer targets fit each of their
 * trunks. */
static int check_rounds(const struct ldn_config *cfg, const char **key, char *msg, size_t cap)
{
    const struct ldn_prune_config *p = &cfg->prune;
    *key = "rounds";
    if (cfg->n_rounds == 0) {
        snprintf(msg, cap, "names rounds to prune, but the config has no rounds");
        return -1;
    }
    for (int i = 0; i < p->n_rounds; i++) {
        int r = ldn_config_round_index(cfg, p->rounds[i]);
        if (r < 0) {
            snprintf(msg, cap, "'%s' is not a round of this config", p->rounds[i]);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(p->rounds[j], p->rounds[i])) {
                snprintf(msg, cap, "round '%s' is listed twice", p->rounds[i]);
                return -1;
            }
        if (p->n_layers > 0 && p->n_layers != cfg->rounds[r].n_trunk) {
            *key = "layers";
            snprintf(msg, cap, "must have one entry per trunk layer of round %s (%d), got %d",
                     p->rounds[i], cfg->rounds[r].n_trunk, p->n_layers);
            return -1;
        }
    }
    return 0;
}

int ldn__prune_check(const struct ldn_config *cfg, const char **key, char *msg, size_t cap)
{
    const struct ldn_prune_config *p = &cfg->prune;
    double lowest = p->sparsity; /* the initial share must not exceed any target */
    if (p->n_rounds > 0 && check_rounds(cfg, key, msg, cap) < 0)
        return -1;
    if (p->n_layers > 0 && p->n_rounds == 0 && p->n_layers != cfg->n_trunk) {
        *key = "layers";
        snprintf(msg, cap, "must have one entry per trunk layer (%d), got %d", cfg->n_trunk,
                 p->n_layers);
        return -1;
    }
    if (p->n_layers > 0 && p->scope == LDN_PRUNE_GLOBAL) {
        *key = "layers";
        snprintf(msg, cap, "per-layer targets need prune.scope: layer, got global");
        return -1;
    }
    int on = p->n_layers == 0 && p->sparsity > 0; /* layers replace sparsity when given */
    for (int i = 0; i < p->n_layers; i++) {
        lowest = i == 0 || p->layers[i] < lowest ? p->layers[i] : lowest;
        on |= p->layers[i] > 0;
    }
    if (!on)
        return 0;
    if (p->initial > lowest) {
        *key = "initial";
        snprintf(msg, cap, "must be <= the target sparsity (%g), got %g", lowest, p->initial);
        return -1;
    }
    if (p->end != 0 && p->end <= p->start) {
        *key = "end";
        snprintf(msg, cap, "must be > prune.start (%lld), got %lld", (long long)p->start,
                 (long long)p->end);
        return -1;
    }
    if (cfg->consistency != LDN_BSP) {
        *key = "sparsity";
        snprintf(msg, cap, "pruning needs ps.consistency: bsp (masks change between steps), got %s",
                 ldn_consistency_name(cfg->consistency));
        return -1;
    }
    if (cfg->n_rounds > 0 && p->n_rounds == 0) {
        *key = "rounds";
        snprintf(msg, cap,
                 "required with rounds: the rounds to prune (for example [student]); each is "
                 "pruned from its own step 0 with its own trunk");
        return -1;
    }
    return 0;
}
