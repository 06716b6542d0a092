#!/usr/bin/env bash
# Task weighting on conflicting synthetic tasks under mpirun (issue 15): 6 tasks from `ladon data
# synth --clusters 2 --conflict` (two clusters of related tasks; the last two tasks a pair with
# negated decision functions), a narrow trunk (16-16) the tasks must share, 2 servers and one
# worker per task (9 ranks), bsp, 12 epochs of a cosine-decayed lr (0.05, momentum 0.9, 100
# warm-up steps); for each run seed:
#   static       tasks.*.weight (all 1)
#   uncertainty  train.task_weighting=uncertainty
#   dwa          train.task_weighting=dwa (T = 2)
#   pcgrad       ps.task_gradients=pcgrad (on the servers, chunk by chunk)
# Prints one row per run (final test accuracy per task, worst, mean, training samples/s), then
# per method the mean over seeds and the change of the worst task and of the mean against
# static of the same seed, and pcgrad's share of projected pairs.
# Usage: bench/weighting_conflict.sh [SEEDS="1 2 3"] [EPOCHS=12]
source "$(dirname "$0")/common.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
seeds=${1:-1 2 3}
epochs=${2:-12}
out=$root/bench/out/wconflict
mkdir -p "$out"
[ -f "$out/d/task005.h5" ] || build/ladon data synth "$out/d" --tasks 6 --features 32 --rank 4 \
  --classes 4 --train 4000 --test 1000 --relatedness 0.9 --clusters 2 --conflict --seed 3 >/dev/null
cat >"$out/c.yaml" <<YAML
run: {dir: $out/run, seed: 1}
data: {dir: $out/d}
model: {trunk: [16, 16]}
tasks: {task000: {}, task001: {}, task002: {}, task003: {}, task004: {}, task005: {}}
train: {epochs: $epochs, batch_size: 32, lr: 0.05, momentum: 0.9, lr_schedule: cosine,
        warmup_steps: 100, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 120}
checkpoint: {final: false}
YAML
last_acc_of() { grep "\"task\":\"$2\"" "$1/metrics.jsonl" | tail -n 1 | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p'; }
declare -A settings=([static]="" [uncertainty]="train.task_weighting=uncertainty"
  [dwa]="train.task_weighting=dwa" [pcgrad]="ps.task_gradients=pcgrad")
order=(static uncertainty dwa pcgrad)
results=$out/results.txt
: >"$results"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| method | seed | task000 | task001 | task002 | task003 | task004 | task005 | worst | mean | samples/s |\n|---|---|---|---|---|---|---|---|---|---|---|\n'
for s in $seeds; do
  for m in "${order[@]}"; do
    dir=$out/${m}_s$s
    # shellcheck disable=SC2086
    launch/ladon-run "$out/c.yaml" --overwrite run.seed="$s" run.dir="$dir" ${settings[$m]} \
      >/dev/null 2>"$dir.log" || { tail -n 5 "$dir.log"; exit 1; }
    accs=()
    for t in 0 1 2 3 4 5; do
      accs+=("$(awk -v a="$(last_acc_of "$dir" "task00$t")" 'BEGIN { printf "%.2f", 100 * a }')")
    done
    sps=$(json_field "$(grep '"samples_per_s"' "$dir/metrics.jsonl" | tail -n 1)" samples_per_s)
    read -r worst mean < <(printf '%s\n' "${accs[@]}" | awk 'NR == 1 || $1 < w { w = $1 } { s += $1 } END { printf "%.2f %.2f\n", w, s / NR }')
    echo "$m $s ${accs[*]} $worst $mean $sps" >>"$results"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.0f |\n' "$m" "$s" "${accs[@]}" "$worst" "$mean" "$sps"
    if [ "$m" = pcgrad ]; then grep -o "pcgrad projected .*" "$dir.log" | sed 's/^/  /' >&2; fi
  done
done
printf '\n| method | worst (mean over seeds) | worst vs static (pp) | mean | mean vs static (pp) | samples/s | vs static |\n|---|---|---|---|---|---|---|\n'
for m in "${order[@]}"; do
  awk -v m="$m" '
    { w[$1, $2] = $9; mn[$1, $2] = $10; sp[$1, $2] = $11; seeds[$2] = 1 }
    END {
      for (s in seeds) { n++; W += w[m, s]; M += mn[m, s]; S += sp[m, s]
        dW += w[m, s] - w["static", s]; dM += mn[m, s] - mn["static", s]; S0 += sp["static", s] }
      printf "| %s | %.2f | %+.2f | %.2f | %+.2f | %.0f | %.2fx |\n", m, W / n, dW / n, M / n, dM / n, S / n, S / S0
    }' "$results"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
