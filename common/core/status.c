/* Status codes and error buffers. */
#include "status.h"

#include <stdarg.h>

const char *ldn_status_str(int status)
{
    switch (status) {
    case LDN_OK: return "ok";
    case LDN_ERR_NOMEM: return "out of memory";
    case LDN_ERR_IO: return "I/O error";
    case LDN_ERR_FORMAT: return "malformed input";
    case LDN_ERR_CONFIG: return "invalid configuration";
    case LDN_ERR_ARG: return "invalid argument";
    case LDN_ERR_TIMEOUT: return "timed out";
    case LDN_ERR_PEER: return "peer error";
    case LDN_ERR_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

int ldn_fail(char *buf, size_t len, int status, const char *fmt, ...)
{
    if (buf && len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
    }
    return status;
}
