/* libFuzzer target: the wire header decoder (common/net/wire.c) on arbitrary bytes. A header
 * that decodes must encode again, and its encoding must decode to the same encoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char a[LDN_WIRE_HDR_MAX], b[LDN_WIRE_HDR_MAX];
    struct ldn_wire_msg m, back;
    char err[LDN_ERRLEN];
    if (ldn_wire_decode(data, size, &m, err, sizeof err) != 0)
        return 0;
    int n = ldn_wire_encode(&m, a, sizeof a);
    if (n < 0)
        abort(); /* a decoded header is within every bound the encoder checks */
    if (ldn_wire_decode(a, (size_t)n, &back, err, sizeof err) != 0)
        abort();
    int k = ldn_wire_encode(&back, b, sizeof b);
    if (k != n || memcmp(a, b, (size_t)n) != 0)
        abort();
    return 0;
}
