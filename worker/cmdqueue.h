/* The coordinator's commands that reach a worker while it is busy (training, re-forming), held
 * for its command loop, oldest first, each with its task weights (dwa: they travel with a
 * train command). The coordinator sends one command at a time, so one is the most that waits;
 * a command beyond LDN_CMDQ_MAX, or one whose weights were malformed, is a protocol fault that
 * fails the worker when its turn comes, after the good ones before it (a dropped command
 * would leave the coordinator waiting for its done). */
#ifndef LDN_CMDQUEUE_H
#define LDN_CMDQUEUE_H

#include "status.h"
#include "wire.h"

#define LDN_CMDQ_MAX 4

struct ldn_cmdq {
    struct ldn_wire_msg held[LDN_CMDQ_MAX];
    int weighted[LDN_CMDQ_MAX]; /* held[i] came with weights */
    int n;
    int bad; /* the (bad)-th command to take fails (0: none) */
    char err[LDN_ERRLEN];
    int n_weights;  /* floats per command (0: none) */
    float *weights; /* [LDN_CMDQ_MAX][n_weights] */
};

/* An empty queue, with room for n_weights floats per command (0: none). 0 or LDN_ERR_NOMEM. */
int ldn_cmdq_init(struct ldn_cmdq *q, int n_weights);
void ldn_cmdq_free(struct ldn_cmdq *q);

/* Hold command h of worker `rank`, with weights or not. Returns 0, or -1 when a fault is held
 * already (h is dropped) or the queue is full (h is then the fault, named with rank and op).
 * *slot: where its weights go (NULL without). */
int ldn_cmdq_add(struct ldn_cmdq *q, const struct ldn_wire_msg *h, int rank, int with_weights,
                 float **slot);

/* The command just added is malformed (why): it fails the worker at its turn. */
void ldn_cmdq_fail_last(struct ldn_cmdq *q, const char *why);

/* Has a fault been held? Nothing more is taken then. */
int ldn_cmdq_faulted(const struct ldn_cmdq *q);

/* Is a command of this op held? */
int ldn_cmdq_holds(const struct ldn_cmdq *q, int op);

/* The oldest command into *h and, when it came with them, its weights into weights: 1; 0 when
 * none waits; or LDN_ERR_PEER with the fault's message when its turn has come. */
int ldn_cmdq_next(struct ldn_cmdq *q, struct ldn_wire_msg *h, float *weights, char *err,
                  size_t errlen);

#endif
