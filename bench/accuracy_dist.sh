#!/usr/bin/env bash
# Accuracy of the distributed engine against the local trainer: configs/fmnist-mtl.yaml under
# mpirun (1 coordinator + 2 servers + one worker per task, bsp, dense) and with
# `ladon train --local`, same seed; final test accuracy per task and the difference.
# Usage: bench/accuracy_dist.sh [SEED=1]
source "$(dirname "$0")/common.sh"
seed=${1:-1}
export OPENBLAS_NUM_THREADS=1
cfg=configs/fmnist-mtl.yaml
build/ladon train --local --overwrite $cfg run.seed="$seed" run.dir=bench/out/ad_local 2>/dev/null
launch/ladon-run $cfg --overwrite run.seed="$seed" run.dir=bench/out/ad_dist 2>bench/out/ad_dist.log
grep -E "job:|group [0-9]" bench/out/ad_dist.log | sed 's/^.*\] //'
printf '\n| task | local | mpirun (3 workers, 2 servers, bsp) | difference (pp) |\n|---|---|---|---|\n'
for task in category group parity; do
  l=$(json_field "$(grep "\"task\":\"$task\"" bench/out/ad_local/metrics.jsonl | tail -n 1)" accuracy)
  d=$(json_field "$(grep "\"task\":\"$task\"" bench/out/ad_dist/metrics.jsonl | tail -n 1)" accuracy)
  awk -v k="$task" -v a="$l" -v b="$d" 'BEGIN{printf "| %s | %.2f%% | %.2f%% | %+.2f |\n", k, 100*a, 100*b, 100*(b-a)}'
done
echo "(seed $seed)"
