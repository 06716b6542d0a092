#!/usr/bin/env bash
# Before and after a change, side by side on this machine: builds REV (default: the commit
# before issue 11's restructuring) in a scratch worktree and alternates, REPEATS times, the
# old and the current build on
#  - configs/bench-mlp.yaml under mpirun, 1 server + 1 worker and 1 server + 2 workers
#    (3 epochs, samples/s from metrics.jsonl);
#  - bench_pushpull, 1 server + 1 worker at 1 MiB and 2 servers + 1 worker at 4 MiB (GB/s).
# Prints the runs and the medians. Usage: bench/compare_builds.sh [REV=b0d2735] [REPEATS=5]
source "$(dirname "$0")/common.sh"
rev=${1:-b0d2735}
reps=${2:-5}
root_dir=$root
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
base=bench/out/base-$rev
if [ ! -x "$base/build/ladon" ]; then
  rm -rf "$base"
  git worktree prune
  git worktree add -f --detach "$base" "$rev" >/dev/null
  cmake -S "$base" -B "$base/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$base/build" -j2 >/dev/null
fi
flags=(--oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_tcp_if_include lo
       --mca oob_tcp_if_include lo -x OPENBLAS_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
sps() { json_field "$(tail -n 1 "$1/metrics.jsonl")" samples_per_s; }
out=bench/out/compare
mkdir -p $out
: >$out/runs.txt
for i in $(seq "$reps"); do
  for v in old new; do
    dir=$root_dir
    [ $v = old ] && dir=$root_dir/$base
    (cd "$dir" && LDN_WORKERS=1 launch/ladon-run "$root_dir/configs/bench-mlp.yaml" train.epochs=3 \
      ps.servers=1 data.dir="$root_dir/data/fmnist" run.dir="$root_dir/$out/$v-one" >/dev/null 2>&1)
    echo "$v 1+1 $(sps $out/$v-one)" >>$out/runs.txt
    (cd "$dir" && launch/ladon-run "$root_dir/configs/bench-mlp.yaml" train.epochs=3 ps.servers=1 \
      tasks.category.workers=2 data.dir="$root_dir/data/fmnist" run.dir="$root_dir/$out/$v-two" \
      >/dev/null 2>&1)
    echo "$v 1+2 $(sps $out/$v-two)" >>$out/runs.txt
    for sbi in "1 1048576 200" "2 4194304 50"; do
      read -r s b it <<<"$sbi"
      g=$(mpirun -np $((s + 1)) "${flags[@]}" "$dir/build/bench_pushpull" "$s" "$b" "$it" 2>/dev/null |
        grep '^|' | awk -F'|' '{print $5 + 0}')
      echo "$v pushpull-${s}x1-$b $g" >>$out/runs.txt
    done
  done
done
printf '| measurement | before (%s) | after (%s) | after / before |\n|---|---|---|---|\n' "$rev" \
  "$(git rev-parse --short HEAD)"
for m in 1+1 1+2 pushpull-1x1-1048576 pushpull-2x1-4194304; do
  o=$(awk -v m="$m" '$1 == "old" && $2 == m {print $3}' $out/runs.txt | median)
  n=$(awk -v m="$m" '$1 == "new" && $2 == m {print $3}' $out/runs.txt | median)
  printf '| %s | %s | %s | %.2f |\n' "$m" "$o" "$n" "$(awk -v a="$n" -v b="$o" 'BEGIN{print a/b}')"
done
for v in old new; do
  for m in 1+1 1+2 pushpull-1x1-1048576 pushpull-2x1-4194304; do
    printf '%s %s: %s\n' $v $m "$(awk -v v=$v -v m="$m" '$1 == v && $2 == m {printf "%s ", $3}' $out/runs.txt)"
  done
done
