/* Small file-system helpers. */
#define _POSIX_C_SOURCE 200809L
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "status.h"

int ldn_mkdir_p(const char *path, char *err, size_t errlen)
{
    char buf[LDN_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return ldn_fail(err, errlen, LDN_ERR_IO, "mkdir '%s': path empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return ldn_fail(err, errlen, LDN_ERR_IO, "mkdir %s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return ldn_fail(err, errlen, LDN_ERR_IO, "mkdir %s: exists and is not a directory", path);
    return LDN_OK;
}

int ldn_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen)
{
    char tmp[LDN_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return ldn_fail(err, errlen, LDN_ERR_IO, "write %s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return ldn_fail(err, errlen, LDN_ERR_IO, "write %s: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return ldn_fail(err, errlen, LDN_ERR_IO, "write %s: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ldn_fail(err, errlen, LDN_ERR_IO, "rename %s -> %s: %s", tmp, path, strerror(e));
    }
    return LDN_OK;
}

int ldn_open_regular(const char *what, const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s %s: cannot open: %s", what, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        ldn_fail(err, errlen, LDN_ERR_IO, "%s %s: cannot open: not a regular file (%s)", what, path,
                 S_ISFIFO(st.st_mode)  ? "a FIFO"
                 : S_ISDIR(st.st_mode) ? "a directory"
                                       : "a special file");
        return -1;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s %s: fcntl: %s", what, path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

FILE *ldn_fopen_regular(const char *what, const char *path, char *err, size_t errlen)
{
    int fd = ldn_open_regular(what, path, err, errlen);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (fd >= 0 && !f) {
        ldn_fail(err, errlen, LDN_ERR_IO, "%s %s: fdopen: %s", what, path, strerror(errno));
        close(fd);
    }
    return f;
}
