/* The commands a busy worker holds for its command loop (worker/cmdqueue.h): oldest first,
 * each with its own weights; a fifth while four wait, or one with malformed weights, is a
 * protocol fault that comes after the good commands before it, and nothing after it is held. */
#include <stdio.h>
#include <string.h>

#include "cmdqueue.h"
#include "cu_main.h"

static struct ldn_wire_msg cmd(int op, int64_t from)
{
    struct ldn_wire_msg h;
    ldn_wire_msg_init(&h, (enum ldn_wire_op)op, 0);
    if (op == LDN_OP_TRAIN)
        h.train.from = from;
    return h;
}

static void test_order_and_weights(void)
{
    struct ldn_cmdq q;
    CU_ASSERT_EQUAL_FATAL(ldn_cmdq_init(&q, 3), 0);
    float *slot;
    char err[LDN_ERRLEN];
    struct ldn_wire_msg h = cmd(LDN_OP_TRAIN, 10);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 5, 1, &slot), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(slot);
    slot[0] = 1, slot[1] = 2, slot[2] = 3;
    h = cmd(LDN_OP_EVAL, 0);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 5, 0, &slot), 0);
    CU_ASSERT_PTR_NULL(slot);
    h = cmd(LDN_OP_TRAIN, 20);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 5, 1, &slot), 0);
    slot[0] = 4, slot[1] = 5, slot[2] = 6;
    CU_ASSERT(ldn_cmdq_holds(&q, LDN_OP_EVAL));
    CU_ASSERT(!ldn_cmdq_holds(&q, LDN_OP_STOP));
    float w[3] = {-1, -1, -1};
    struct ldn_wire_msg got;
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), 1);
    CU_ASSERT_EQUAL(got.op, LDN_OP_TRAIN);
    CU_ASSERT_EQUAL(got.train.from, 10);
    CU_ASSERT(w[0] == 1 && w[2] == 3);
    /* a command without weights leaves the running ones alone */
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), 1);
    CU_ASSERT_EQUAL(got.op, LDN_OP_EVAL);
    CU_ASSERT(w[0] == 1 && w[2] == 3);
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), 1);
    CU_ASSERT_EQUAL(got.train.from, 20);
    CU_ASSERT(w[0] == 4 && w[1] == 5 && w[2] == 6);
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), 0);
    ldn_cmdq_free(&q);
}

static void test_fifth_is_a_fault(void)
{
    struct ldn_cmdq q;
    CU_ASSERT_EQUAL_FATAL(ldn_cmdq_init(&q, 0), 0);
    float *slot;
    char err[LDN_ERRLEN] = "";
    for (int i = 0; i < LDN_CMDQ_MAX; i++) {
        struct ldn_wire_msg h = cmd(LDN_OP_TRAIN, i);
        CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 7, 0, &slot), 0);
    }
    CU_ASSERT(!ldn_cmdq_faulted(&q));
    struct ldn_wire_msg h = cmd(LDN_OP_EVAL, 0);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 7, 0, &slot), -1);
    CU_ASSERT(ldn_cmdq_faulted(&q));
    h = cmd(LDN_OP_STOP, 0); /* nothing after the fault is held */
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 7, 0, &slot), -1);
    CU_ASSERT(!ldn_cmdq_holds(&q, LDN_OP_STOP));
    struct ldn_wire_msg got;
    for (int i = 0; i < LDN_CMDQ_MAX; i++) { /* the four held come first, in order */
        CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, NULL, err, sizeof err), 1);
        CU_ASSERT_EQUAL(got.train.from, i);
    }
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, NULL, err, sizeof err), LDN_ERR_PEER);
    const char *want = "worker 7: eval from the coordinator while 4 earlier commands still "
                       "wait: the coordinator sends one command at a time (a protocol fault)";
    CU_ASSERT_STRING_EQUAL(err, want);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "\n  got: %s\n", err);
    ldn_cmdq_free(&q);
}

static void test_malformed_weights(void)
{
    struct ldn_cmdq q;
    CU_ASSERT_EQUAL_FATAL(ldn_cmdq_init(&q, 2), 0);
    float *slot;
    char err[LDN_ERRLEN] = "";
    struct ldn_wire_msg h = cmd(LDN_OP_EVAL, 0);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 3, 0, &slot), 0);
    h = cmd(LDN_OP_TRAIN, 8);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 3, 1, &slot), 0);
    ldn_cmdq_fail_last(&q, "worker 3: train: 1 task weights, want 2");
    h = cmd(LDN_OP_TRAIN, 9);
    CU_ASSERT_EQUAL(ldn_cmdq_add(&q, &h, 3, 1, &slot), -1);
    struct ldn_wire_msg got;
    float w[2];
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), 1);
    CU_ASSERT_EQUAL(got.op, LDN_OP_EVAL);
    CU_ASSERT_EQUAL(ldn_cmdq_next(&q, &got, w, err, sizeof err), LDN_ERR_PEER);
    CU_ASSERT_STRING_EQUAL(err, "worker 3: train: 1 task weights, want 2");
    ldn_cmdq_free(&q);
}

static const struct ldn_cu_test TESTS[] = {
    {"oldest first, each with its weights", test_order_and_weights},
    {"a fifth command is a protocol fault after the four", test_fifth_is_a_fault},
    {"malformed weights fail at their turn", test_malformed_weights},
    {NULL, NULL}};

LDN_CU_MAIN("cmdqueue", TESTS)
