/* Checks of ps.affinity that span keys (its range is in config.c's table). */
#include <stdio.h>

#include "config.h"
#include "config_priv.h"

int ldn__affinity_check(const struct ldn_config *cfg, char *msg, size_t cap)
{
    if (cfg->affinity > 0 && cfg->consistency != LDN_BSP) {
        snprintf(msg, cap,
                 "task affinity is measured under ps.consistency: bsp only (each step's group "
                 "gradients are seen together), got %s; set ps.affinity: 0",
                 ldn_consistency_name(cfg->consistency));
        return -1;
    }
    return 0;
}
