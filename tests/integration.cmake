# Integration tests that run the ladon executable (label cli); MPI tests join here (label mpi).
set(LDN_TEST_ENV "OPENBLAS_NUM_THREADS=1")
add_test(NAME cli_config COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/config_cli.sh
         $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR})
add_test(NAME cli_local_train COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/local_train.sh
         $<TARGET_FILE:ladon>)
set_tests_properties(cli_config cli_local_train PROPERTIES LABELS cli TIMEOUT 300
                     ENVIRONMENT "${LDN_TEST_ENV}")
