/* Status codes and error buffers shared by every ladon module.
 *
 * Functions that can fail return a negative enum ldn_status and, when given a
 * non-NULL error buffer, write one line of context into it: what failed, on
 * which object, and the library's own message. */
#ifndef LDN_STATUS_H
#define LDN_STATUS_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

enum ldn_status {
    LDN_OK = 0,
    LDN_ERR_NOMEM = -1,   /* allocation failed */
    LDN_ERR_IO = -2,      /* file system or library I/O error */
    LDN_ERR_FORMAT = -3,  /* input file or message is malformed */
    LDN_ERR_CONFIG = -4,  /* invalid configuration */
    LDN_ERR_ARG = -5,     /* invalid argument from the caller or the command line */
    LDN_ERR_TIMEOUT = -6, /* a wait ran out of time */
    LDN_ERR_PEER = -7,    /* a remote peer failed or answered with an error */
    LDN_ERR_INTERNAL = -8 /* a library call failed unexpectedly */
};

/* Size of the error buffers passed around (one line of context). */
#define LDN_ERRLEN 512

/* Human-readable name of a status code; never NULL. */
const char *ldn_status_str(int status);

/* Format an error message into buf (which may be NULL) and return status.
 * Lets call sites write `return ldn_fail(err, errlen, LDN_ERR_IO, "open %s: %s", ...)`. */
int ldn_fail(char *buf, size_t len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Always-on assertion for programming errors only (never for input data):
 * prints file:line and the expression, then aborts. */
#define LDN_ASSERT(x)                                                                              \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #x);              \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define LDN_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
