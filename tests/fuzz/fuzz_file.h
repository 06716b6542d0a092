/* For the fuzz targets whose reader takes a path (HDF5 and IDX files): the input bytes are
 * written to one temporary file per process, reused by every run. */
#ifndef LDN_FUZZ_FILE_H
#define LDN_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* The path of the temporary file now holding data[0..size) (a static buffer), or NULL when
 * it cannot be written (data NULL: only the path). suffix: ".h5", ".gz", ... */
static char ldn_fuzz_path[256];

static void ldn_fuzz_file_remove(void)
{
    unlink(ldn_fuzz_path);
}

static inline const char *ldn_fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    char *path = ldn_fuzz_path;
    if (!path[0]) { /* removed at exit */
        const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
        snprintf(path, sizeof ldn_fuzz_path, "%s/ldn-fuzz-%d%s", dir, (int)getpid(), suffix);
        atexit(ldn_fuzz_file_remove);
    }
    if (!data)
        return path;
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    int ok = fwrite(data, 1, size, f) == size;
    ok &= fclose(f) == 0;
    return ok ? path : NULL;
}

#endif
