/* `ladon fuse`: model fusion by weight averaging (model soups) of several checkpoints of the
 * same model, uniform or greedy, written as an exported model file (docs/export.md). */
#ifndef LDN_FUSE_H
#define LDN_FUSE_H

/* ladon fuse CKPT [CKPT ...] -o OUT.h5 [--greedy] [--last K] [--holdout F] [--data DIR]:
 * returns the process exit status (0, 1 on failure with one line on stderr, 2 on bad usage). */
int ldn_tool_fuse(int argc, char **argv);

#endif
