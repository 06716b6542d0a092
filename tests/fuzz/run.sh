#!/usr/bin/env bash
# Run one libFuzzer target for a bounded time (docs/fuzzing.md):
#   tests/fuzz/run.sh TARGET SECONDS [libFuzzer options ...]
# TARGET: wire, codec, config, idx, taskfile, ckpt (or all: each for SECONDS, one at a time).
# Builds build-fuzz/ with clang (-DLDN_FUZZ=ON) when needed, starts from the committed seeds
# in tests/fuzz/TARGET/ plus the corpus grown by earlier runs (build-fuzz/corpus/TARGET, not
# committed), and exits non-zero on a crash; the reproducer is written to
# build-fuzz/artifacts/TARGET/ (replay: build-fuzz/fuzz_TARGET FILE).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] || { echo "usage: tests/fuzz/run.sh TARGET SECONDS [libFuzzer options]" >&2; exit 2; }
target=$1 secs=$2
shift 2
targets=(wire codec config idx taskfile ckpt)
if [ "$target" = all ]; then
  for t in "${targets[@]}"; do "$0" "$t" "$secs" "$@"; done
  exit 0
fi
case " ${targets[*]} " in *" $target "*) ;; *) echo "unknown target '$target'" >&2; exit 2 ;; esac
b=build-fuzz
if [ ! -f $b/CMakeCache.txt ]; then
  CC=${FUZZ_CC:-clang} cmake -S . -B $b -DLDN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
cmake --build $b -j"${JOBS:-1}" --target "fuzz_$target" >/dev/null
mkdir -p "$b/corpus/$target" "$b/artifacts/$target"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/tests/fuzz/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# the file targets rewrite one file per input, in a directory of this run's own: on
# memory-backed /dev/shm when there is one, removed at the end
base=${TMPDIR:-/tmp}
[ -z "${TMPDIR:-}" ] && [ -w /dev/shm ] && base=/dev/shm
TMPDIR=$(mktemp -d "$base/ldn-fuzz-XXXXXX")
trap 'rm -rf "$TMPDIR"' EXIT
# OpenBLAS's idle threads spin with sched_yield beside a one-thread fuzzer (the ckpt target
# links it to build models): about a tenth of its time (docs/fuzzing.md)
export HDF5_USE_FILE_LOCKING=FALSE TMPDIR OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
# -rss_limit_mb / -malloc_limit_mb: an input that makes a reader ask for more than 1 GiB is
# a finding (the readers bound what they allocate), not a test-machine problem.
"$b/fuzz_$target" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -timeout=10 -artifact_prefix="$b/artifacts/$target/" "$@" \
  "$b/corpus/$target" "tests/fuzz/$target"
