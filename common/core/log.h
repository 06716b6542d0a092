/* Logging with a time / role / rank prefix.
 *
 * Every line is `HH:MM:SS.mmm [role rank] message`, written to stderr by
 * default. Library code logs through ldn_log only; the application may set
 * its own sink with ldn_log_set_sink. Not thread-safe for configuration
 * (set role and level before starting threads); ldn_log itself writes one
 * line with one call. */
#ifndef LDN_LOG_H
#define LDN_LOG_H

#include <stdarg.h>

enum ldn_log_level { LDN_LOG_DEBUG = 0, LDN_LOG_INFO = 1, LDN_LOG_WARN = 2, LDN_LOG_ERROR = 3 };

typedef void ldn_log_sink_fn(enum ldn_log_level level, const char *line, void *ud);

/* Set the prefix of every line, e.g. ("ps", 2) -> "[ps 2]"; rank < 0 omits the rank.
 * extra (may be NULL) is appended inside the brackets, e.g. "task=category". */
void ldn_log_set_role(const char *role, int rank, const char *extra);
/* Lines below this level are dropped. Default: LDN_LOG_INFO (LDN_LOG env var:
 * debug|info|warn|error). */
void ldn_log_set_level(enum ldn_log_level level);
enum ldn_log_level ldn_log_get_level(void);
/* Replace the sink (NULL restores stderr). */
void ldn_log_set_sink(ldn_log_sink_fn *fn, void *ud);

void ldn_log(enum ldn_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ldn_vlog(enum ldn_log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#define LDN_DEBUG(...) ldn_log(LDN_LOG_DEBUG, __VA_ARGS__)
#define LDN_INFO(...) ldn_log(LDN_LOG_INFO, __VA_ARGS__)
#define LDN_WARN(...) ldn_log(LDN_LOG_WARN, __VA_ARGS__)
#define LDN_ERROR(...) ldn_log(LDN_LOG_ERROR, __VA_ARGS__)

#endif
