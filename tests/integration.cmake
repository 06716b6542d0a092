# Integration tests that run the ladon executable (label cli) and MPI jobs through mpirun
# (label mpi; the emulated multi-host run is labelled cluster and skips itself without root).
set(LDN_MPI_ENV
    "OPENBLAS_NUM_THREADS=1"
    "OMPI_ALLOW_RUN_AS_ROOT=1"
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
    "OMPI_MCA_rmaps_base_oversubscribe=1"
    "OMPI_MCA_btl=self,vader,tcp"
    "OMPI_MCA_btl_tcp_if_include=lo"
    "OMPI_MCA_oob_tcp_if_include=lo")

add_test(NAME cli_config COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/config_cli.sh
         $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR})
add_test(NAME cli_local_train COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/local_train.sh
         $<TARGET_FILE:ladon>)
add_test(NAME cli_rounds COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/rounds.sh
         $<TARGET_FILE:ladon>)
add_test(NAME cli_ensemble COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/ensemble.sh
         $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR})
add_test(NAME cli_plot COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/plot.sh $<TARGET_FILE:ladon>)
add_test(NAME cli_special_files COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/special_files.sh
         $<TARGET_FILE:ladon>)
add_test(NAME cli_weighting_local COMMAND bash ${CMAKE_SOURCE_DIR}/tests/cli/weighting_local.sh
         $<TARGET_FILE:ladon>)
set_tests_properties(cli_config cli_local_train cli_special_files cli_rounds cli_ensemble cli_plot
                     cli_weighting_local
                     PROPERTIES LABELS cli TIMEOUT 300 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
set_tests_properties(cli_plot PROPERTIES SKIP_RETURN_CODE 77)

foreach(t bsp_matches_local ssp_async shapes kill_worker compressed ckpt_resume replan rounds
          restarts rogue prune affinity pcgrad worker_loss liveness group_losses
          loss_restart bounds)
  add_test(NAME mpi_${t} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/${t}.sh
           $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_${t} PROPERTIES LABELS mpi TIMEOUT 300 RUN_SERIAL TRUE
                       ENVIRONMENT "${LDN_MPI_ENV}")
endforeach()
# The soak (30 minutes; LDN_SOAK_MINUTES shortens it): label slow, not in the default run.
add_test(NAME mpi_soak COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/soak.sh $<TARGET_FILE:ladon>
         ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
set_tests_properties(mpi_soak PROPERTIES LABELS "mpi;slow" TIMEOUT 3600 RUN_SERIAL TRUE
                     ENVIRONMENT "${LDN_MPI_ENV}")
# Task weighting under mpirun, one test per method (tests/mpi/weighting.sh)
foreach(m dwa uncertainty)
  add_test(NAME mpi_weighting_${m} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/weighting.sh
           $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR} ${m})
  set_tests_properties(mpi_weighting_${m} PROPERTIES LABELS mpi TIMEOUT 300 RUN_SERIAL TRUE
                       ENVIRONMENT "${LDN_MPI_ENV}")
endforeach()
# a lost worker (issue 14): about 30 s and 20 s quiet (about 155 s and 50 s under ASan)
set_tests_properties(mpi_worker_loss PROPERTIES TIMEOUT 600)
set_tests_properties(mpi_liveness PROPERTIES TIMEOUT 300)
# two losses in one group and a loss during an eval; a worker then the server lost under
# --restarts: about 25 s and 40 s quiet, 65 s and 85 s under ASan (the default 300 s)
# bounded resources (start-up refusals, a rogue frame, a plan switch): about 20 s quiet; under
# ASan each of its 8 mpiruns takes about 16 s to start (about 3.5 minutes in all)
set_tests_properties(mpi_bounds PROPERTIES TIMEOUT 900)
add_test(NAME mpi_ckpt_collective COMMAND mpiexec -np 3 $<TARGET_FILE:ckpt_collective>)
set_tests_properties(mpi_ckpt_collective PROPERTIES LABELS mpi TIMEOUT 120 RUN_SERIAL TRUE
                     ENVIRONMENT "${LDN_MPI_ENV}")
add_test(NAME mpi_server_fuzz COMMAND mpiexec -np 2 $<TARGET_FILE:server_fuzz>)
set_tests_properties(mpi_server_fuzz PROPERTIES LABELS mpi TIMEOUT 120 RUN_SERIAL TRUE
                     ENVIRONMENT "${LDN_MPI_ENV}")

# The cluster tests make their own namespaces and use their interfaces: no loopback settings.
foreach(t cluster cluster_restart)
  add_test(NAME mpi_${t} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/mpi/${t}.sh
           $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(mpi_${t} PROPERTIES LABELS "mpi;cluster" TIMEOUT 600 RUN_SERIAL TRUE
                       SKIP_RETURN_CODE 77 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()
# A host lost under ladon-run --restarts: not in the default run (slow) until it is steady: on
# the loaded 2-core machine it failed 2 of 6 times (once at once, once hung until its timeout)
set_tests_properties(mpi_cluster_restart PROPERTIES LABELS "mpi;cluster;slow")

# Checkpoint tools (inspect, eval, predict) and reading checkpoints from Python: each trains
# a short distributed run for its checkpoints; they need python3-h5py and python3-numpy.
foreach(t cli/ckpt_tools cli/ckpt_content interop/ckpt_h5py)
  get_filename_component(name ${t} NAME)
  add_test(NAME cli_${name} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/${t}.sh
           $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(cli_${name} PROPERTIES LABELS "cli;mpi" TIMEOUT 300 RUN_SERIAL TRUE
                       ENVIRONMENT "${LDN_MPI_ENV}")
endforeach()

# Export (docs/export.md): the CLI and its bad inputs, and reading an export from Python
# (needs python3-h5py and python3-numpy); local training only, no MPI.
foreach(t cli/export cli/fuse interop/export_h5py)
  get_filename_component(name ${t} NAME)
  add_test(NAME cli_${name} COMMAND bash ${CMAKE_SOURCE_DIR}/tests/${t}.sh
           $<TARGET_FILE:ladon> ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR})
  set_tests_properties(cli_${name} PROPERTIES LABELS cli TIMEOUT 300
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()

# The fuzz targets (tests/fuzz, docs/fuzzing.md) without libFuzzer: each replays its seed corpus
# and committed reproducers once, in every build (under ASan + UBSan in build-asan).
foreach(t wire codec config idx taskfile ckpt)
  add_executable(replay_${t} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${t}.c
                 ${CMAKE_SOURCE_DIR}/tests/fuzz/replay.c)
  target_compile_options(replay_${t} PRIVATE ${LDN_WARNINGS})
  target_include_directories(replay_${t} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_link_libraries(replay_${t} PRIVATE ${LDN_LIBS})
  add_test(NAME fuzz_replay_${t} COMMAND replay_${t} ${CMAKE_SOURCE_DIR}/tests/fuzz/${t})
  set_tests_properties(fuzz_replay_${t} PROPERTIES LABELS unit TIMEOUT 120
                       ENVIRONMENT "OPENBLAS_NUM_THREADS=1;HDF5_USE_FILE_LOCKING=FALSE")
endforeach()
