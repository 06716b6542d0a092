#!/usr/bin/env bash
# Task weighting on Fashion-MNIST multi-task (configs/fmnist-mtl.yaml: category, group,
# parity on one trunk) in the local trainer, for each seed:
#   static       tasks.*.weight (all 1), one task per step
#   uncertainty  train.task_weighting=uncertainty (L e^-s + s, s learned per task)
#   dwa          train.task_weighting=dwa (T = 2)
#   pcgrad       ps.task_gradients=pcgrad (static weights; every step trains all three tasks on a
#                batch each and projects their trunk gradients layer by layer)
# Prints one row per run (final test accuracy per task, the worst task, the mean, training
# samples/s), then per method the mean over seeds and the change against static of the same seed.
# Usage: [METHODS="static dwa"] [OVERRIDES="train.lr=0.01"] bench/weighting.sh [SEEDS="1 2 3"] [EPOCHS=15]
# (METHODS: a subset, in that order; static is the reference of the change columns; OVERRIDES:
# key=value words added to every run, and to the output names)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seeds=${1:-1 2 3}
epochs=${2:-15}
extra=${OVERRIDES:-}
tag=$(tr -c 'A-Za-z0-9.\n' '_' <<<"$extra")
export OPENBLAS_NUM_THREADS=1
[ -x build/ladon ] || launch/build
[ -f data/fmnist/category.h5 ] || build/ladon data fmnist data/fmnist
mkdir -p bench/out
cfg=configs/fmnist-mtl.yaml
tasks=(category group parity)
declare -A settings=(
  [static]=""
  [uncertainty]="train.task_weighting=uncertainty"
  [dwa]="train.task_weighting=dwa"
  [pcgrad]="ps.task_gradients=pcgrad"
)
read -r -a order <<<"${METHODS:-static uncertainty dwa pcgrad}"
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }
results=bench/out/weighting${tag:+_$tag}_results.txt
: >"$results"
echo "configs/fmnist-mtl.yaml $extra, local trainer, $epochs epochs, seeds $seeds"
echo
printf '| method | seed | category | group | parity | worst | mean | samples/s |\n|---|---|---|---|---|---|---|---|\n'
for s in $seeds; do
  for name in "${order[@]}"; do
    dir=bench/out/weighting${tag:+_$tag}_${name}_s$s
    # shellcheck disable=SC2086 # the overrides are words
    build/ladon train --local $cfg --overwrite run.seed="$s" run.dir="$dir" train.epochs="$epochs" \
      checkpoint.final=false $extra ${settings[$name]} 2>"$dir.log" >/dev/null ||
      { echo "$name seed $s failed (see $dir.log)" >&2; exit 1; }
    accs=()
    for t in "${tasks[@]}"; do
      line=$(grep "\"task\":\"$t\"" "$dir/metrics.jsonl" | tail -n 1)
      accs+=("$(awk -v a="$(field "$line" accuracy)" 'BEGIN{printf "%.2f", 100*a}')")
    done
    sps=$(sed -n 's/.* steps, \([0-9]*\) samples\/s (training only).*/\1/p' "$dir.log")
    read -r worst mean < <(printf '%s\n' "${accs[@]}" | awk '
      NR == 1 || $1 < w { w = $1 } { s += $1 } END { printf "%.2f %.2f\n", w, s / NR }')
    echo "$name $s ${accs[*]} $worst $mean $sps" >>"$results"
    printf '| %s | %s | %s%% | %s%% | %s%% | %s%% | %s%% | %s |\n' "$name" "$s" "${accs[@]}" \
      "$worst" "$mean" "$sps"
  done
done
echo
echo "Mean over seeds; change against static of the same seed (pp), mean [min, max] over seeds:"
echo
printf '| method | category | group | parity | worst | mean | samples/s | d worst | d mean |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for name in "${order[@]}"; do
  awk -v m="$name" '
    $1 == "static" { bw[$2] = $6; bm[$2] = $7 }
    $1 == m { n++; for (c = 3; c <= 8; c++) sum[c] += $c; seed[n] = $2; w[n] = $6; mn[n] = $7 }
    END {
      dw = 0; dm = 0; lo_w = 1e9; hi_w = -1e9; lo_m = 1e9; hi_m = -1e9
      for (j = 1; j <= n; j++) {
        a = w[j] - bw[seed[j]]; b = mn[j] - bm[seed[j]]; dw += a; dm += b
        lo_w = a < lo_w ? a : lo_w; hi_w = a > hi_w ? a : hi_w
        lo_m = b < lo_m ? b : lo_m; hi_m = b > hi_m ? b : hi_m
      }
      printf "| %s | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %.0f | %+.2f [%+.2f, %+.2f] | %+.2f [%+.2f, %+.2f] |\n",
        m, sum[3] / n, sum[4] / n, sum[5] / n, sum[6] / n, sum[7] / n, sum[8] / n,
        dw / n, lo_w, hi_w, dm / n, lo_m, hi_m
    }' "$results"
done
