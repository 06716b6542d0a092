/* libFuzzer target: the IDX reader (Fashion-MNIST sources, gzip or plain) on arbitrary file
 * contents. The first byte picks the dimensions asked for (1 to 4). */
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_file.h"
#include "idx.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = ldn_fuzz_file(data + 1, size - 1, ".idx");
    if (!path)
        return 0;
    struct ldn_idx idx = {0};
    char err[LDN_ERRLEN];
    if (ldn_idx_read(path, 1 + data[0] % LDN_IDX_MAX_DIMS, &idx, err, sizeof err) == 0) {
        size_t want = 1;
        for (int i = 0; i < idx.ndims; i++)
            want *= (size_t)idx.dims[i];
        if (want != idx.size)
            abort();
        volatile uint8_t sink = 0; /* every byte promised is there */
        for (size_t i = 0; i < idx.size; i++)
            sink ^= idx.data[i];
        (void)sink;
    }
    ldn_idx_deinit(&idx);
    return 0;
}
