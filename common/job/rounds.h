/* A run with rounds (config `rounds:`), the part the local trainer and a distributed job share:
 * where each round's snapshot lives, which rounds are done, the checkpoint paths of a round's
 * teacher members and init, the checks made before anything trains, and loading a round's
 * starting weights from the snapshot it starts from. Each round is a run of its own under
 * run.dir/rounds/NAME (ldn_config_round); its snapshot is the last checkpoint of that run. */
#ifndef LDN_ROUNDS_H
#define LDN_ROUNDS_H

#include <stddef.h>

#include "config.h"
#include "nn.h"

#define LDN_ROUND_PATH_MAX (LDN_PATH_MAX + LDN_NAME_MAX + 24)

/* Where round i's teacher members and its init are (checkpoint directories of earlier rounds'
 * snapshots, or the paths the config gives); member[m] for m < cfg->rounds[i].teacher.n_members
 * and init (NULL when the round starts from fresh weights) point into the struct. */
struct ldn_round_paths {
    char member_buf[LDN_MAX_MEMBERS][LDN_ROUND_PATH_MAX];
    char init_buf[LDN_ROUND_PATH_MAX];
    const char *member[LDN_MAX_MEMBERS];
    const char *init;
};

/* Fill p for round i of cfg. */
void ldn_rounds_paths(const struct ldn_config *cfg, int i, struct ldn_round_paths *p);

/* The state of round config rcfg's checkpoints (rcfg from ldn_config_round): 0 none, 1 some (a
 * round to resume), 2 its snapshot (the round's last step) is there. */
int ldn_rounds_state(const struct ldn_config *rcfg);

/* Before anything trains (both may be called by one process only; every check names the round
 * and the member):
 * - a run with rounds resumes as a whole: resume_arg (NULL: a fresh run) must be "latest" or
 *   run.dir, and when resuming some round must have a checkpoint;
 * - every member given as a checkpoint path opens, verifies, has a head for every task with the
 *   classes of its data and takes the data's input width (members that are earlier rounds are
 *   checked at the round's start, when they exist).
 * Returns 0 or a negative status with err. */
int ldn_rounds_check(const struct ldn_config *cfg, const char *resume_arg, char *err,
                     size_t errlen);

/* Round i starts from the snapshot at `path` (cfg->rounds[i].init): its trunk into trunk (when
 * not NULL) and the head of task t of rcfg into heads[t] for every t with heads[t] != NULL
 * (heads may be NULL). Shapes must match the round's (an error names the round, the init round
 * and what differs); the snapshot's checksums are verified. Returns 0 or a negative status. */
int ldn_rounds_load_init(const struct ldn_config *cfg, int i, const struct ldn_config *rcfg,
                         const char *path, struct ldn_nn *trunk, struct ldn_nn *const *heads,
                         char *err, size_t errlen);

/* Widths of a net's layers as "[256, 256]" into buf. */
void ldn_rounds_widths_text(const struct ldn_nn *net, char *buf, size_t len);

#endif
