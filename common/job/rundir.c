/* The run directory's config.yaml, metrics.jsonl and trunk.f32. */
#include "rundir.h"

#include <string.h>

#include "fs.h"
#include "metrics.h"
#include "status.h"

FILE *ldn_rundir_start(const struct ldn_config *cfg, int resuming, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run_dir);
    if (ldn_mkdir_p(cfg->run_dir, err, errlen) != 0 ||
        ldn_write_file_atomic(path, cfg->resolved_yaml, strlen(cfg->resolved_yaml), err, errlen) !=
            0)
        return NULL;
    return ldn_metrics_open(cfg->run_dir, resuming, err, errlen);
}

int ldn_rundir_write_trunk(const struct ldn_config *cfg, const float *trunk, int64_t n, char *err,
                           size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/trunk.f32", cfg->run_dir);
    return ldn_write_file_atomic(path, trunk, sizeof(float) * (size_t)n, err, errlen);
}
