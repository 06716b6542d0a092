#!/usr/bin/env bash
# The accuracy target of compressed pushes over several seeds: configs/fmnist-mtl.yaml under
# mpirun (1 coordinator + 2 servers + one worker per task, bsp, 15 epochs), for each seed:
#   dense          the config as it is (SGD, classical momentum 0.9, lr 0.05)
#   dense-nesterov the same with Nesterov momentum
#   dense-nag-lr.1 Nesterov momentum and lr 0.1 (does dense gain from the higher rate too?)
#   topk1-int8     global top-k 1% + int8 + error feedback + DGC momentum correction, same lr
#   topk1-int8-nag the same with Nesterov momentum correction and lr 0.1
# Prints one row per run (final test accuracy per task, push ratio against dense fp32), then
# for each compressed setting and task the accuracy lost against each dense run of the same
# seed: per seed, the mean and the worst.
# Usage: bench/accuracy_seeds.sh [SEEDS="1 2 3 4 5"]
source "$(dirname "$0")/common.sh"
seeds=${1:-1 2 3 4 5}
export OPENBLAS_NUM_THREADS=1
cfg=configs/fmnist-mtl.yaml
tasks=(category group parity)
MC=(compress.codec=topk compress.ratio=0.01 compress.quant=int8 compress.scope=global
  compress.momentum_correction=true)
declare -A settings=(
  [dense]=""
  [dense-nesterov]="train.nesterov=true"
  [dense-nag-lr.1]="train.nesterov=true train.lr=0.1"
  [topk1-int8]="${MC[*]}"
  [topk1-int8-nag]="${MC[*]} train.nesterov=true train.lr=0.1"
)
order=(dense dense-nesterov dense-nag-lr.1 topk1-int8 topk1-int8-nag)
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }
results=bench/out/as_results.txt
: >"$results"
printf '| setting | seed | category | group | parity | push ratio |\n|---|---|---|---|---|---|\n'
for s in $seeds; do
  for name in "${order[@]}"; do
    dir=bench/out/as_${name}_s$s
    # shellcheck disable=SC2086 # the overrides are words
    launch/ladon-run $cfg --overwrite run.seed="$s" run.dir="$dir" ${settings[$name]} 2>"$dir.log" >/dev/null ||
      { echo "$name seed $s failed (see $dir.log)" >&2; exit 1; }
    accs=() line=""
    for t in "${tasks[@]}"; do
      line=$(grep "\"task\":\"$t\"" "$dir/metrics.jsonl" | tail -n 1)
      accs+=("$(awk -v a="$(field "$line" accuracy)" 'BEGIN{printf "%.2f", 100*a}')")
    done
    echo "$name $s ${accs[*]}" >>"$results"
    printf '| %s | %s | %s%% | %s%% | %s%% | %.1fx |\n' "$name" "$s" "${accs[@]}" \
      "$(field "$line" compression_ratio)"
  done
done
echo
echo "Accuracy lost (pp) against the dense run of the same seed; per seed, mean, worst:"
echo
printf '| compressed | against | task | per seed | mean | worst |\n|---|---|---|---|---|---|\n'
for c in topk1-int8 topk1-int8-nag; do
  for d in dense dense-nesterov dense-nag-lr.1; do
    for i in 0 1 2; do
      awk -v c="$c" -v d="$d" -v col=$((i + 3)) -v task="${tasks[$i]}" '
        $1 == d { base[$2] = $col }
        $1 == c { got[$2] = $col; order[++n] = $2 }
        END {
          worst = -1e9; sum = 0; list = ""
          for (j = 1; j <= n; j++) {
            l = base[order[j]] - got[order[j]]
            list = list (j > 1 ? " / " : "") sprintf("%.2f", l)
            sum += l; if (l > worst) worst = l
          }
          printf "| %s | %s | %s | %s | %.2f | %.2f |\n", c, d, task, list, sum / n, worst
        }' "$results"
    done
  done
done
