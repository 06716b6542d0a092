/* Small file-system helpers. */
#ifndef LDN_FS_H
#define LDN_FS_H

#include <stddef.h>

/* mkdir -p: create path and its missing parents (mode 0755). Returns 0 or LDN_ERR_IO with err. */
int ldn_mkdir_p(const char *path, char *err, size_t errlen);

/* Write len bytes to path atomically: write path.tmp.<pid>, fsync, rename over path.
 * On failure the old file (if any) is untouched. Returns 0 or LDN_ERR_IO with err. */
int ldn_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);

#endif
