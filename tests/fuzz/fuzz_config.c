/* libFuzzer target: the config parser (ldn_config_parse) on arbitrary YAML text. A config
 * that parses must parse again from its own resolved YAML to the same resolved YAML. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[LDN_ERRLEN];
    struct ldn_config *c =
        ldn_config_parse((const char *)data, size, "fuzz.yaml", 0, NULL, err, sizeof err);
    if (!c)
        return 0;
    struct ldn_config *again = ldn_config_parse(c->resolved_yaml, strlen(c->resolved_yaml),
                                                "fuzz.yaml", 0, NULL, err, sizeof err);
    if (!again || strcmp(again->resolved_yaml, c->resolved_yaml) != 0)
        abort(); /* what ladon writes into run.dir/config.yaml and checkpoints reads back (the
                  * same name: run.name defaults to it) */
    ldn_config_destroy(&again);
    ldn_config_destroy(&c);
    return 0;
}
