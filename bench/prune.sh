#!/usr/bin/env bash
# Pruning on the Fashion-MNIST multi-task benchmark (docs/benchmarks.md, "Pruning"):
# configs/fmnist-prune.yaml under mpirun (launch/ladon-run) at sparsity 0 (the dense run of the
# same seed), 80, 90, 95 and 98%, for each seed; prints per-task final test accuracy and the
# difference to the dense run in percentage points.
#   bench/prune.sh [SEEDS...]        (default: 1 2 3; LADON=build/ladon, OUT=/tmp/ldn-bench-prune)
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-1 2 3}")
[ $# -gt 0 ] || seeds=(1 2 3)
out=${OUT:-/tmp/ldn-bench-prune}
mkdir -p "$out"
[ -d data/fmnist ] || build/ladon data fmnist data/fmnist >/dev/null
last() { # last METRICS TASK: test accuracy of TASK's last record
  grep "\"task\":\"$2\"" "$1" | tail -1 | sed 's/.*"accuracy":\([0-9.]*\).*/\1/'
}
printf "| seed | sparsity | measured | category | group | parity |\n|---|---|---|---|---|---|\n"
for seed in "${seeds[@]}"; do
  declare -A dense=()
  for s in 0 0.8 0.9 0.95 0.98; do
    dir="$out/s$seed-$s"
    rm -rf "$dir"
    launch/ladon-run configs/fmnist-prune.yaml run.seed="$seed" prune.sparsity="$s" \
      run.dir="$dir" >"$dir.log" 2>&1 || { tail -5 "$dir.log"; exit 1; }
    measured=$(grep -o '"sparsity":[0-9.]*' "$dir/metrics.jsonl" | tail -1 | cut -d: -f2 || true)
    row="| $seed | $s | ${measured:-0} |"
    for t in category group parity; do
      a=$(last "$dir/metrics.jsonl" $t)
      if [ "$s" = 0 ]; then
        dense[$t]=$a
        row+=$(printf " %.2f%% |" "$(echo "$a * 100" | bc -l)")
      else
        row+=$(printf " %.2f%% (%+.2f) |" "$(echo "$a * 100" | bc -l)" \
          "$(echo "($a - ${dense[$t]}) * 100" | bc -l)")
      fi
    done
    echo "$row"
  done
done
