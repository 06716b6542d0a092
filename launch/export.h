/* `ladon export`: a deployable model file from a checkpoint (docs/export.md). */
#ifndef LDN_EXPORT_TOOL_H
#define LDN_EXPORT_TOOL_H

/* `ladon export CKPT OUT.h5 [--quantize int8|fp16|none] [--prune S] [--data DIR]`: load the
 * checkpoint (a file, a checkpoint directory or a run directory), magnitude-prune each trunk
 * layer to sparsity S when asked, write OUT (through OUT.part and a rename), read it back and
 * print the size against dense fp32 weights and each task's test accuracy before and after.
 * Returns the exit status: 0, 1 for a bad input (one line on stderr, nothing at OUT), 2 for a
 * usage error. */
int ldn_tool_export(int argc, char **argv);

#endif
