# libFuzzer targets (docs/fuzzing.md): -DLDN_FUZZ=ON with clang, in a build directory of its
# own (tests/fuzz/run.sh uses build-fuzz/). Every library is built with coverage
# instrumentation, AddressSanitizer and UndefinedBehaviorSanitizer; each tests/fuzz/fuzz_*.c
# is one target linked with libFuzzer, and make_seeds writes the seed corpora.
file(GLOB LDN_FUZZ_SRCS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
set(LDN_FUZZ_TARGETS "")
foreach(src ${LDN_FUZZ_SRCS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${LDN_WARNINGS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_link_libraries(${name} PRIVATE ${LDN_LIBS})
  list(APPEND LDN_FUZZ_TARGETS ${name})
endforeach()
add_executable(make_seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/make_seeds.c)
target_compile_options(make_seeds PRIVATE ${LDN_WARNINGS})
target_link_libraries(make_seeds PRIVATE ${LDN_LIBS})
