/* metrics.jsonl writer. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include "bounds.h"
#include "status.h"

FILE *ldn_metrics_open(const char *run_dir, int append, char *err, size_t errlen)
{
    char path[LDN_PATH_MAX + 32];
    if (snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir) >= (int)sizeof path) {
        ldn_fail(err, errlen, LDN_ERR_ARG, "metrics: run directory %s is too long", run_dir);
        return NULL;
    }
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

/* ,"key":v with `digits` decimals (%.Nf), or with 6 significant digits (%.6g) when digits < 0;
 * null when v is NaN or infinite, which JSON has no numbers for. */
static void json_num(FILE *f, const char *key, int digits, double v)
{
    fprintf(f, ",\"%s\":", key);
    if (!isfinite(v))
        fputs("null", f);
    else if (digits < 0)
        fprintf(f, "%.6g", v);
    else
        fprintf(f, "%.*f", digits, v);
}

int ldn_metrics_write(FILE *f, const struct ldn_eval_record *r)
{
    fputs("{\"task\":", f);
    json_string(f, r->task ? r->task : "");
    fprintf(f, ",\"step\":%lld", (long long)r->step);
    json_num(f, "epoch", 4, r->epoch);
    json_num(f, "loss", -1, r->loss);
    json_num(f, "accuracy", 6, r->accuracy);
    fprintf(f, ",\"test_rows\":%lld", (long long)r->test_rows);
    json_num(f, "train_loss", -1, r->train_loss);
    json_num(f, "train_accuracy", 6, r->train_accuracy);
    json_num(f, "samples_per_s", 1, r->samples_per_s);
    json_num(f, "lr", -1, r->lr);
    json_num(f, "elapsed_s", 3, r->elapsed_s);
    json_num(f, "push_bytes_per_step", 1, r->push_bytes_per_step);
    json_num(f, "pull_bytes_per_step", 1, r->pull_bytes_per_step);
    json_num(f, "compression_ratio", 2,
             r->push_bytes_per_step > 0 ? r->dense_bytes_per_step / r->push_bytes_per_step : 1.0);
    json_num(f, "residual_norm", -1, r->residual_norm);
    if (r->round) {
        fputs(",\"round\":", f);
        json_string(f, r->round);
    }
    if (r->distill) {
        json_num(f, "teacher_agreement", 6, r->teacher_agreement);
        json_num(f, "distill_kl", -1, r->distill_kl);
        json_num(f, "distill_alpha", -1, r->distill_alpha);
    }
    if (r->pruned)
        json_num(f, "sparsity", 6, r->sparsity);
    if (r->weighting) {
        fputs(",\"task_weighting\":", f);
        json_string(f, r->weighting);
        json_num(f, "task_weight", -1, r->task_weight);
        if (r->has_log_var)
            json_num(f, "log_var", -1, r->log_var);
        if (r->gradients) {
            fputs(",\"task_gradients\":", f);
            json_string(f, r->gradients);
        }
    }
    fputs("}\n", f);
    return fflush(f) == 0 && !ferror(f) ? LDN_OK : LDN_ERR_IO;
}

/* A G x G matrix of doubles as nested JSON arrays (null for NaN). */
static void json_matrix(FILE *f, const double *m, int G)
{
    fputc('[', f);
    for (int i = 0; i < G; i++) {
        fputs(i ? ",[" : "[", f);
        for (int j = 0; j < G; j++) {
            double v = m[(size_t)i * (size_t)G + (size_t)j];
            if (j)
                fputc(',', f);
            if (isfinite(v))
                fprintf(f, "%.6f", v);
            else
                fputs("null", f);
        }
        fputc(']', f);
    }
    fputc(']', f);
}

int ldn_metrics_write_affinity(FILE *f, const struct ldn_affinity_record *r)
{
    const int G = r->G;
    fprintf(f, "{\"kind\":\"affinity\",\"step\":%lld", (long long)r->step);
    json_num(f, "epoch", 4, r->epoch);
    fprintf(f, ",\"from_step\":%lld,\"to_step\":%lld,\"groups\":[", (long long)r->from,
            (long long)r->to);
    for (int g = 0; g < G; g++) {
        fputs(g ? "," : "", f);
        json_string(f, r->group_names[g]);
    }
    fputs("],\"group_tasks\":[", f);
    for (int g = 0; g < G; g++) {
        fputs(g ? ",[" : "[", f);
        for (int t = 0; t < r->n_group_tasks[g]; t++) {
            fputs(t ? "," : "", f);
            json_string(f, r->tasks[g][t]);
        }
        fputc(']', f);
    }
    fputs("],\"cosine\":{", f);
    const size_t GG = (size_t)G * (size_t)G;
    for (int l = 0; l <= r->n_layers; l++) {
        if (l < r->n_layers)
            fprintf(f, "%s\"%d\":", l ? "," : "", l);
        else
            fputs(l ? ",\"trunk\":" : "\"trunk\":", f);
        json_matrix(f, r->cos + (size_t)l * GG, G);
    }
    fputs("},\"steps_together\":[", f);
    for (int i = 0; i < G; i++) {
        fputs(i ? ",[" : "[", f);
        for (int j = 0; j < G; j++)
            fprintf(f, "%s%llu", j ? "," : "",
                    (unsigned long long)r->together[(size_t)i * (size_t)G + (size_t)j]);
        fputc(']', f);
    }
    fputs("]}\n", f);
    return fflush(f) == 0 && !ferror(f) ? 0 : LDN_ERR_IO;
}
