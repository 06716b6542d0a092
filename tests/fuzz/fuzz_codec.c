/* libFuzzer target: the codec payload decoder (common/codec) on arbitrary payloads. The first
 * 40 bytes choose the descriptor (3 packed words, as in a message header), the vector length
 * (up to 2^16) and the step; the rest is the payload. A payload that decodes must give
 * indices below n in ascending order, and decode_add must accept it too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t word(const uint8_t *p)
{
    uint64_t w = 0;
    for (int i = 7; i >= 0; i--)
        w = w << 8 | p[i];
    return w;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ldn_codec_ctx *ctx;
    static float dense[1 << 16];
    if (!ctx && !(ctx = ldn_codec_ctx_new(7)))
        abort();
    if (size < 40)
        return 0;
    uint64_t w[LDN_CODEC_DESC_WORDS] = {word(data), word(data + 8), word(data + 16)};
    const int64_t n = 1 + (int64_t)(word(data + 24) & 0xffff);
    const uint64_t step = word(data + 32);
    struct ldn_codec_desc d;
    char err[LDN_ERRLEN];
    if (ldn_codec_desc_unpack(w, &d, err, sizeof err) != 0)
        return 0;
    const uint32_t *idx;
    const float *vals;
    int64_t count;
    if (ldn_codec_decode(ctx, &d, step, data + 40, size - 40, n, &idx, &vals, &count, err,
                         sizeof err) != 0)
        return 0;
    if (count < 0 || count > n)
        abort();
    for (int64_t j = 0; idx && j < count; j++)
        if (idx[j] >= n || (j > 0 && idx[j] <= idx[j - 1]))
            abort();
    if (ldn_codec_decode_add(ctx, &d, step, data + 40, size - 40, n, 0.5f, dense, err,
                             sizeof err) != 0)
        abort();
    return 0;
}
