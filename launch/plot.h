/* `ladon plot`: pictures of runs (docs/plot.md). Reads each run's metrics.jsonl and
 * config.yaml, writes a self-contained gnuplot script (data inline as datablocks) and runs
 * gnuplot on it with a timeout; never starts MPI. */
#ifndef LDN_PLOT_H
#define LDN_PLOT_H

/* `ladon plot RUN_DIR [RUN_DIR ...] [-o OUT.png] [--keep-script] [--timeout S]`: one PNG with
 * per-task test accuracy, test loss and training loss against step, samples/s, push and pull
 * bytes per step, the compression ratio and, for distillation rounds, the teacher agreement
 * and KL term; rounds laid out one after the other with a labelled line at each start;
 * several runs overlaid, each named with the config keys in which it differs from the others.
 * Prints the output path. Returns the exit code: 0, 1 for a bad input or a gnuplot failure
 * (one line on stderr), 2 for a usage error. */
int ldn_tool_plot(int argc, char **argv);

#endif
