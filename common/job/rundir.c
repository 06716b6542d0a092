/* The run directory's config.yaml, metrics.jsonl and trunk.f32, and the claim of a fresh run
 * on its checkpoint directories. */
#define _POSIX_C_SOURCE 200809L
#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

/* A checkpoint file's name (step-N.h5, or step-N.h5.tmp left by an interrupted write) or the
 * latest pointer. */
static int is_ckpt_file(const char *name)
{
    long long s;
    int len = 0;
    if (strcmp(name, "latest") == 0)
        return 1;
    if (sscanf(name, "step-%lld.h5%n", &s, &len) != 1)
        return 0;
    return name[len] == '\0' || strcmp(name + len, ".tmp") == 0;
}

/* The checkpoint files in dir: their count into *n (0 when dir does not exist) and the name
 * `latest` points at (or "") into newest; with `remove`, each is deleted. 0 or LDN_ERR_IO. */
static int scan(const char *dir, int remove, int *n, char *newest, size_t len, char *err,
                size_t errlen)
{
    *n = 0;
    newest[0] = '\0';
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT || errno == ENOTDIR
                   ? 0
                   : ldn_fail(err, errlen, LDN_ERR_IO, "checkpoint.dir %s: %s", dir,
                              strerror(errno));
    char path[LDN_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/latest", dir);
    FILE *f = ldn_fopen_regular("checkpoint pointer", path, NULL, 0);
    if (f) {
        if (fgets(newest, (int)len, f))
            newest[strcspn(newest, "\r\n")] = '\0';
        else
            newest[0] = '\0';
        fclose(f);
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) && rc == 0) {
        if (!is_ckpt_file(e->d_name))
            continue;
        (*n)++;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (remove && unlink(path) != 0)
            rc = ldn_fail(err, errlen, LDN_ERR_IO, "--overwrite: cannot delete %s: %s", path,
                          strerror(errno));
    }
    closedir(d);
    return rc;
}

/* Refuse (or, with run.overwrite, clear) the checkpoints of an earlier run in dir. */
static int claim_dir(const struct ldn_config *cfg, const char *dir, char *err, size_t errlen)
{
    char newest[LDN_PATH_MAX];
    int n, rc = scan(dir, 0, &n, newest, sizeof newest, err, errlen);
    if (rc || n == 0)
        return rc;
    if (!cfg->overwrite)
        return ldn_fail(err, errlen, LDN_ERR_CONFIG,
                        "run.dir %s already holds an earlier run's checkpoints (%d file%s in %s%s%s"
                        "): continue it with --resume, give this run another run.dir, or start "
                        "over with --overwrite (deletes them)",
                        cfg->run_dir, n, n == 1 ? "" : "s", dir, newest[0] ? ", latest " : "",
                        newest);
    if ((rc = scan(dir, 1, &n, newest, sizeof newest, err, errlen)))
        return rc;
    LDN_WARN("--overwrite: deleted %d checkpoint file%s of an earlier run from %s%s%s%s; its "
             "metrics.jsonl and trunk.f32 in %s are replaced too",
             n, n == 1 ? "" : "s", dir, newest[0] ? " (latest was " : "", newest,
             newest[0] ? ")" : "", cfg->run_dir);
    return 0;
}

int ldn_rundir_claim(const struct ldn_config *cfg, char *err, size_t errlen)
{
    int rc = claim_dir(cfg, cfg->ckpt.dir, err, errlen);
    for (int i = 0; i < cfg->n_rounds && rc == 0; i++) {
        struct ldn_config *r = ldn_config_round(cfg, i, err, errlen);
        rc = r ? claim_dir(cfg, r->ckpt.dir, err, errlen) : LDN_ERR_CONFIG;
        ldn_config_destroy(&r);
    }
    return rc;
}

FILE *ldn_rundir_start(const struct ldn_config *cfg, int resuming, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/config.yaml", cfg->run_dir);
    if ((!resuming && ldn_rundir_claim(cfg, err, errlen) != 0) ||
        ldn_mkdir_p(cfg->run_dir, err, errlen) != 0 ||
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
