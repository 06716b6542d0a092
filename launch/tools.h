/* Checkpoint tools of the ladon executable: `ladon inspect`, `ladon eval` and `ladon predict`
 * (docs/checkpoint.md, "Tools"). They read checkpoints with the serial HDF5 driver and never
 * start MPI. Each takes the arguments after its command name and returns the process exit
 * code: 0, 1 for a bad input (one line on stderr naming the file and what is wrong), 2 for a
 * usage error. */
#ifndef LDN_TOOLS_H
#define LDN_TOOLS_H

/* `ladon inspect CKPT [--json]`: read every dataset of the checkpoint (every Fletcher-32
 * checksum is verified), check the model's shapes against the stored config, then print a
 * summary: job, trunk and head shapes, parameter count, optimizer and worker state, the last
 * evaluation, and for a checkpoint of a run with rounds its round (with the run's round list
 * when RUN/config.yaml is beside RUN/rounds/NAME/checkpoints). */
int ldn_tool_inspect(int argc, char **argv);

/* `ladon eval CKPT [CKPT ...] [--data DIR] [--task T]`: rebuild the model from the stored
 * config, load the trunk and every head, and evaluate each task (or T) on the whole test split
 * of its task file (the config's tasks.T.file, or DIR/T.h5). With several checkpoints, also
 * their ensemble (the mean of the members' softmax probabilities), after checking that they
 * agree on the input width, the tasks and each head's classes. */
int ldn_tool_eval(int argc, char **argv);

/* `ladon predict CKPT --task T INPUT.h5 OUTPUT.h5 [--split test|train]`: class probabilities
 * of head T for every row of INPUT (a task file's split, or any file with a 2-D dataset /x),
 * written atomically to OUTPUT as /probs [N, classes] float32 and /pred [N] int32. */
int ldn_tool_predict(int argc, char **argv);

#endif
