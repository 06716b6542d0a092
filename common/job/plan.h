/* The job plan: which rank plays which role, task groups, and the trunk's key ranges.
 *
 * Rank 0 is the coordinator, ranks 1..S the parameter servers, the rest workers. Workers
 * are split into task groups: with at least as many workers as tasks every task gets its
 * own group (tasks.X.workers ranks, or an automatic share proportional to its data); with
 * fewer workers than tasks each worker is a group hosting several tasks, balanced by rows.
 * A plan is a pure function of the config, the data sizes and the world size, so every
 * rank computes the same plan without talking. */
#ifndef LDN_PLAN_H
#define LDN_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum ldn_role { LDN_ROLE_COORD = 0, LDN_ROLE_SERVER = 1, LDN_ROLE_WORKER = 2 };

struct ldn_group {
    int n_tasks;
    int *tasks; /* task indices hosted by the group */
    int n_ranks;
    int *ranks; /* world ranks of its workers, ascending */
};

struct ldn_plan {
    int world, n_servers, n_workers;
    int n_groups;
    struct ldn_group *groups;
    int *group_of_rank; /* [world]: group index of a worker rank, -1 otherwise */
    int *group_of_task; /* [n_tasks] */
};

/* Build the plan for `world` ranks. n_train[t]: training rows of task t. Returns a new plan
 * or NULL with one line in err (e.g. too few ranks, explicit worker counts that do not fit). */
struct ldn_plan *ldn_plan_new(const struct ldn_config *cfg, const int64_t *n_train, int world,
                              char *err, size_t errlen);
void ldn_plan_destroy(struct ldn_plan **p);
enum ldn_role ldn_plan_role(const struct ldn_plan *p, int rank);
/* Smallest world size that runs cfg: 1 + servers + max(1, sum of explicit workers). */
int ldn_plan_min_world(const struct ldn_config *cfg);

/* Global steps per epoch: over groups, the max of sum over its tasks of
 * ceil(N_t / (batch * group workers)). With one group of one worker this is the local
 * trainer's steps per epoch. */
int64_t ldn_plan_steps_per_epoch(const struct ldn_plan *p, const struct ldn_config *cfg,
                                 const int64_t *n_train);

/* Probability that group g trains at a step: 1 for the group with the largest sampling
 * weight (sum over its tasks of N_t^alpha), weight_g / weight_max for the others, so the
 * tasks of small groups are not trained more often than the local schedule would. */
double ldn_plan_group_prob(const struct ldn_plan *p, const struct ldn_config *cfg,
                           const int64_t *n_train, int g);
/* Does group g (training with probability prob) train at global step `step`? A draw from the
 * seed, the step and g alone, so every worker of the group agrees. A group that sits a step
 * out tells the servers so (a CLOCK message). */
int ldn_plan_group_trains(double prob, uint64_t seed, int g, int64_t step);

#endif
