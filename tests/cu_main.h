/* Shared main() for the CUnit suites: each test file defines
 *   static const struct ldn_cu_test TESTS[] = {{"name", fn}, ..., {NULL, NULL}};
 * and ends with LDN_CU_MAIN("suite", TESTS). The exit status is non-zero on any failure. */
#ifndef LDN_CU_MAIN_H
#define LDN_CU_MAIN_H

#include <CUnit/Basic.h>

struct ldn_cu_test {
    const char *name;
    void (*fn)(void);
};

static inline int ldn_cu_run(const char *suite_name, const struct ldn_cu_test *tests)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    CU_pSuite suite = CU_add_suite(suite_name, NULL, NULL);
    if (!suite)
        return 2;
    for (const struct ldn_cu_test *t = tests; t->name; t++)
        if (!CU_add_test(suite, t->name, t->fn))
            return 2;
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    int rc = CU_get_number_of_failures() ? 1 : (int)CU_get_error();
    CU_cleanup_registry();
    return rc;
}

#define LDN_CU_MAIN(suite, tests)                                                                  \
    int main(void)                                                                                 \
    {                                                                                              \
        return ldn_cu_run(suite, tests);                                                           \
    }

#endif
