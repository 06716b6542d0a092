/* Distributed training under mpirun: start-up (config and data checks, plan, endpoint
 * exchange) and dispatch to the rank's role. */
#ifndef LDN_DIST_H
#define LDN_DIST_H

/* `ladon train CONFIG [overrides] [--resume [PATH|latest]]` on every rank; resume is NULL
 * for a fresh run. Returns the process exit code. */
int ldn_dist_main(const char *config_path, int n_over, char *const *over, const char *resume);

#endif
