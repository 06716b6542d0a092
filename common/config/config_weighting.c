/* train.task_weighting, train.dwa_temperature and ps.task_gradients: the values and the checks
 * that span keys (the per-key ranges are in config.c's table). */
#include <stdio.h>

#include "config.h"
#include "config_priv.h"

const char *const ldn__cfg_weighting_names[] = {"static", "uncertainty", "dwa", NULL};
const char *const ldn__cfg_gradients_names[] = {"sum", "pcgrad", NULL};

const char *ldn_weighting_name(int method)
{
    return method >= LDN_WEIGHT_STATIC && method <= LDN_WEIGHT_DWA
               ? ldn__cfg_weighting_names[method]
               : "?";
}

const char *ldn_task_gradients_name(int gradients)
{
    return gradients >= LDN_GRAD_SUM && gradients <= LDN_GRAD_PCGRAD
               ? ldn__cfg_gradients_names[gradients]
               : "?";
}

int ldn__weighting_check(const struct ldn_config *cfg, enum sect *sect, const char **key, char *msg,
                         size_t cap)
{
    const struct ldn_weighting_config *w = &cfg->weighting;
    if (w->method != LDN_WEIGHT_STATIC && cfg->n_rounds > 0) {
        *sect = S_TRAIN;
        *key = "task_weighting";
        snprintf(msg, cap,
                 "%s is not supported with rounds yet (distillation rounds keep static "
                 "weights)",
                 ldn_weighting_name(w->method));
        return -1;
    }
    if (w->gradients == LDN_GRAD_PCGRAD && cfg->n_rounds > 0) {
        *sect = S_PS;
        *key = "task_gradients";
        snprintf(msg, cap, "pcgrad is not supported with rounds yet");
        return -1;
    }
    if (w->gradients == LDN_GRAD_PCGRAD && cfg->n_tasks < 2) {
        *sect = S_PS;
        *key = "task_gradients";
        snprintf(msg, cap,
                 "pcgrad combines the gradients of several tasks: it needs at least 2 "
                 "tasks, got %d",
                 cfg->n_tasks);
        return -1;
    }
    return 0;
}
