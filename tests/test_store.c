/* The server's parameter store: the chunks of its range, updates equal to the optimizer's on
 * the same keys, versions, and the pruning mask holding weights at zero. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cu_main.h"
#include "optim.h"
#include "status.h"
#include "store.h"

/* The job's chunk table: two servers, [0, 40) in chunks of 10, [40, 70) in one of 30. */
static const struct ldn_chunk CHUNKS[] = {{0, 10, 0, 0, 0, 1},
                                          {10, 20, 0, 0, 1, 2},
                                          {20, 30, 0, 0, 2, 3},
                                          {30, 40, 0, 0, 3, 4},
                                          {40, 70, 1, 1, 0, 1}};
enum { N_CHUNKS = 5 };

static float INIT[70];

static struct ldn_optim_config sgd(double momentum)
{
    return (struct ldn_optim_config){.kind = LDN_OPTIM_SGD, .lr = 0.1, .momentum = momentum};
}

static struct ldn_store *make(int64_t lo, int64_t hi, struct ldn_optim_config oc)
{
    for (int i = 0; i < 70; i++)
        INIT[i] = 0.01f * (float)(i + 1);
    struct ldn_store_opts o = {.rank = 1,
                               .lo = lo,
                               .hi = hi,
                               .init = INIT + lo,
                               .chunks = CHUNKS,
                               .n_chunks = N_CHUNKS,
                               .optim = oc,
                               .timeout_s = 5};
    char err[LDN_ERRLEN];
    struct ldn_store *st = ldn_store_new(&o, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    return st;
}

static void test_chunks_of_the_range(void)
{
    struct ldn_store *st = make(0, 40, sgd(0));
    CU_ASSERT_EQUAL(st->C, 4);
    CU_ASSERT_EQUAL(st->first_chunk, 0);
    CU_ASSERT_EQUAL(st->n, 40);
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 10, 20), 1);
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 30, 40), 3);
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 10, 30), -1); /* two chunks */
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 5, 10), -1);  /* not a chunk's start */
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 40, 70), -1); /* another server's */
    CU_ASSERT_EQUAL(memcmp(st->params, INIT, sizeof(float) * 40), 0);
    ldn_store_destroy(&st);
    CU_ASSERT_PTR_NULL(st);
    st = make(40, 70, sgd(0));
    CU_ASSERT_EQUAL(st->C, 1);
    CU_ASSERT_EQUAL(st->first_chunk, 4);
    CU_ASSERT_EQUAL(st->chunks[0].lo, 0); /* store-relative */
    CU_ASSERT_EQUAL(st->chunks[0].hi, 30);
    CU_ASSERT_EQUAL(ldn_store_chunk_of(st, 40, 70), 0);
    ldn_store_destroy(&st);
}

static void test_no_chunk_is_an_error(void)
{
    struct ldn_store_opts o = {
        .rank = 2, .lo = 5, .hi = 8, .init = INIT, .chunks = CHUNKS, .n_chunks = N_CHUNKS};
    char err[LDN_ERRLEN] = "";
    CU_ASSERT_PTR_NULL(ldn_store_new(&o, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no chunk in [5, 8)"));
}

/* An update of one chunk is the optimizer's on those keys, and only those; versions count. */
static void test_update_is_the_optimizers(void)
{
    struct ldn_store *st = make(0, 40, sgd(0.9));
    struct ldn_optim_config oc = sgd(0.9);
    struct ldn_optim *ref = ldn_optim_new(&oc, 40);
    float want[40], grad[40];
    memcpy(want, INIT, sizeof want);
    for (int i = 0; i < 40; i++)
        grad[i] = (float)sin(i);
    for (int t = 0; t < 3; t++) {
        CU_ASSERT_EQUAL(ldn_store_update(st, 1, grad, 0.1), 0);
        ldn_optim_update(ref, want, grad, 10, 20, t + 1, 0.1);
    }
    CU_ASSERT_EQUAL(memcmp(st->params, want, sizeof want), 0);
    CU_ASSERT_EQUAL(memcmp(st->params, INIT, sizeof(float) * 10), 0); /* chunk 0 untouched */
    CU_ASSERT_EQUAL(st->version[1], 3);
    CU_ASSERT_EQUAL(st->version[0], 0);
    CU_ASSERT_EQUAL(ldn_store_skip(st, 0), 0);
    CU_ASSERT_EQUAL(st->version[0], 1);
    CU_ASSERT_EQUAL(memcmp(st->params, INIT, sizeof(float) * 10), 0);
    ldn_store_start_at(st, 7);
    for (int k = 0; k < st->C; k++)
        CU_ASSERT_EQUAL(st->version[k], 7);
    ldn_optim_destroy(&ref);
    ldn_store_destroy(&st);
}

static void test_update_keys(void)
{
    struct ldn_store *st = make(0, 40, sgd(0));
    float grad[40] = {0};
    const uint32_t keys[] = {21, 25};
    grad[21] = 1.0f;
    grad[25] = -2.0f;
    grad[22] = 100.0f; /* not listed: not applied */
    CU_ASSERT_EQUAL(ldn_store_update_keys(st, 2, grad, keys, 2, 0.5), 0);
    CU_ASSERT_EQUAL(st->params[21], INIT[21] - 0.5f);
    CU_ASSERT_EQUAL(st->params[25], INIT[25] + 1.0f);
    CU_ASSERT_EQUAL(st->params[22], INIT[22]);
    CU_ASSERT_EQUAL(st->version[2], 1);
    uint8_t keep[40];
    memset(keep, 1, sizeof keep);
    keep[25] = 0;
    CU_ASSERT_EQUAL(ldn_store_set_mask(st, keep), 0);
    CU_ASSERT_EQUAL(ldn_store_update_keys(st, 2, grad, keys, 2, 0.5), 0);
    CU_ASSERT_EQUAL(st->params[25], 0.0f); /* masked: stays zero */
    CU_ASSERT_EQUAL(st->params[21], INIT[21] - 1.0f);
    ldn_store_destroy(&st);
}

/* Masked weights and their optimizer state go to zero and stay there through updates. */
static void test_mask_holds_weights_at_zero(void)
{
    struct ldn_store *st = make(0, 40, sgd(0.9));
    float grad[40];
    for (int i = 0; i < 40; i++)
        grad[i] = 1.0f;
    CU_ASSERT_EQUAL(ldn_store_update(st, 0, grad, 0.1), 0); /* momentum is non-zero now */
    CU_ASSERT_NOT_EQUAL(st->opt->m[3], 0.0f);
    uint8_t keep[40];
    memset(keep, 1, sizeof keep);
    keep[3] = keep[4] = keep[15] = 0;
    CU_ASSERT_EQUAL(ldn_store_masked(st), 0);
    CU_ASSERT_EQUAL(ldn_store_set_mask(st, keep), 0);
    CU_ASSERT_EQUAL(ldn_store_masked(st), 3);
    CU_ASSERT_EQUAL(st->params[3], 0.0f);
    CU_ASSERT_EQUAL(st->opt->m[3], 0.0f);
    for (int t = 0; t < 3; t++) {
        CU_ASSERT_EQUAL(ldn_store_update(st, 0, grad, 0.1), 0);
        CU_ASSERT_EQUAL(ldn_store_update(st, 1, grad, 0.1), 0);
    }
    CU_ASSERT_EQUAL(st->params[3], 0.0f);
    CU_ASSERT_EQUAL(st->params[4], 0.0f);
    CU_ASSERT_EQUAL(st->params[15], 0.0f);
    CU_ASSERT_NOT_EQUAL(st->params[5], 0.0f);
    CU_ASSERT(st->params[16] < INIT[16]); /* kept keys move */
    CU_ASSERT_EQUAL(st->mask_changes, 0);
    CU_ASSERT_EQUAL(grad[3], 0.0f); /* the push of a masked key is dropped */
    CU_ASSERT_EQUAL(st->opt->m[3], 0.0f);
    CU_ASSERT_EQUAL(ldn_store_set_mask(st, NULL), 0);
    CU_ASSERT_EQUAL(ldn_store_masked(st), 0);
    for (int i = 0; i < 40; i++)
        grad[i] = 1.0f;
    CU_ASSERT_EQUAL(ldn_store_update(st, 0, grad, 0.1), 0);
    CU_ASSERT_NOT_EQUAL(st->params[3], 0.0f); /* unmasked: trains again */
    ldn_store_destroy(&st);
}

static const struct ldn_cu_test TESTS[] = {
    {"chunks of the range", test_chunks_of_the_range},
    {"no chunk is an error", test_no_chunk_is_an_error},
    {"update is the optimizer's", test_update_is_the_optimizers},
    {"update keys", test_update_keys},
    {"mask holds weights at zero", test_mask_holds_weights_at_zero},
    {NULL, NULL},
};

LDN_CU_MAIN("store", TESTS)
