/* Logging with a time / role / rank prefix. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char g_prefix[128] = "[ladon]";
static int g_level = -1;
static ldn_log_sink_fn *g_sink;
static void *g_sink_ud;

void ldn_log_set_role(const char *role, int rank, const char *extra)
{
    char ext[80] = "";
    if (extra && *extra)
        snprintf(ext, sizeof ext, " %s", extra);
    if (rank >= 0)
        snprintf(g_prefix, sizeof g_prefix, "[%s %d%s]", role, rank, ext);
    else
        snprintf(g_prefix, sizeof g_prefix, "[%s%s]", role, ext);
}

static int level_from_env(void)
{
    const char *s = getenv("LDN_LOG");
    if (!s)
        return LDN_LOG_INFO;
    if (!strcasecmp(s, "debug"))
        return LDN_LOG_DEBUG;
    if (!strcasecmp(s, "warn"))
        return LDN_LOG_WARN;
    if (!strcasecmp(s, "error"))
        return LDN_LOG_ERROR;
    return LDN_LOG_INFO;
}

void ldn_log_set_level(enum ldn_log_level level)
{
    g_level = (int)level;
}

enum ldn_log_level ldn_log_get_level(void)
{
    if (g_level < 0)
        g_level = level_from_env();
    return (enum ldn_log_level)g_level;
}

void ldn_log_set_sink(ldn_log_sink_fn *fn, void *ud)
{
    g_sink = fn;
    g_sink_ud = ud;
}

void ldn_vlog(enum ldn_log_level level, const char *fmt, va_list ap)
{
    if ((int)level < (int)ldn_log_get_level())
        return;
    static const char *names[] = {"debug: ", "", "warning: ", "error: "};
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char line[2400];
    snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %s %s%s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000, g_prefix, names[level], msg);
    if (g_sink)
        g_sink(level, line, g_sink_ud);
    else
        fputs(line, stderr);
}

void ldn_log(enum ldn_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ldn_vlog(level, fmt, ap);
    va_end(ap);
}
