/* metrics.jsonl writer. */
#include "metrics.h"

#include <errno.h>
#include <string.h>

#include "bounds.h"
#include "status.h"

FILE *ldn_metrics_open(const char *run_dir, int append, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f)
        ldn_fail(err, errlen, LDN_ERR_IO, "metrics %s: %s", path, strerror(errno));
    return f;
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int ldn_metrics_write(FILE *f, const struct ldn_eval_record *r)
{
    fputs("{\"task\":", f);
    json_string(f, r->task);
    fprintf(f,
            ",\"step\":%lld,\"epoch\":%.4f,\"loss\":%.6g,\"accuracy\":%.6f,\"test_rows\":%lld"
            ",\"train_loss\":%.6g,\"train_accuracy\":%.6f,\"samples_per_s\":%.1f,\"lr\":%.6g"
            ",\"elapsed_s\":%.3f,\"push_bytes_per_step\":%.1f,\"pull_bytes_per_step\":%.1f"
            ",\"compression_ratio\":%.2f,\"residual_norm\":%.6g}\n",
            (long long)r->step, r->epoch, r->loss, r->accuracy, (long long)r->test_rows,
            r->train_loss, r->train_accuracy, r->samples_per_s, r->lr, r->elapsed_s,
            r->push_bytes_per_step, r->pull_bytes_per_step,
            r->push_bytes_per_step > 0 ? r->dense_bytes_per_step / r->push_bytes_per_step : 1.0,
            r->residual_norm);
    return fflush(f) == 0 && !ferror(f) ? LDN_OK : LDN_ERR_IO;
}
