/* Small file-system helpers. */
#ifndef LDN_FS_H
#define LDN_FS_H

#include <stddef.h>
#include <stdio.h>

/* mkdir -p: create path and its missing parents (mode 0755). Returns 0 or LDN_ERR_IO with err. */
int ldn_mkdir_p(const char *path, char *err, size_t errlen);

/* Write len bytes to path atomically: write path.tmp.<pid>, fsync, rename over path.
 * On failure the old file (if any) is untouched. Returns 0 or LDN_ERR_IO with err. */
int ldn_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

/* Open a user-given path for reading without blocking on it: a FIFO, device, socket or
 * directory is refused ("config x.yaml: cannot open: not a regular file (a FIFO?)", `what`
 * naming the file's role) instead of waiting for a writer. Returns a descriptor in blocking
 * mode, or -1 with err. */
int ldn_open_regular(const char *what, const char *path, char *err, size_t errlen);

/* As ldn_open_regular, as a FILE opened "rb" (close with fclose). Returns NULL with err. */
FILE *ldn_fopen_regular(const char *what, const char *path, char *err, size_t errlen);

#endif
