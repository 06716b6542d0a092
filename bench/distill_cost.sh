#!/usr/bin/env bash
# What distillation costs, on a quiet machine (run nothing else): a distillation round's
# samples/s against its label-only twin (same student, seed, length), own inputs and
# inputs: all, for a 128-128 and a 64-64 student, alternating three times in one run with
# rounds; and the soft targets' GFLOP/s against one core's sgemm bound (~100 GFLOP/s,
# PLATFORM.md). The teacher is the three members of bench/distill.sh's first seed (run that
# first: bench/out/distill/run1).
# Usage: bench/distill_cost.sh [EPOCHS=5]
source "$(dirname "$0")/common.sh"
epochs=${1:-5}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=bench/out/distill
[ -d $out/run1/rounds/m3/checkpoints ] || { echo "run bench/distill.sh first (no $out/run1)"; exit 1; }
M="$out/run1/rounds/m1/checkpoints, $out/run1/rounds/m2/checkpoints, $out/run1/rounds/m3/checkpoints"
{
  sed '/^rounds:/,$d' configs/fmnist-distill.yaml
  echo "rounds:"
  for i in 1 2 3; do
    for size in 128 64; do
      printf '  - {name: lab%s_%d, trunk: [%s, %s], seed: 121}\n' $size $i $size $size
      for v in own all; do
        printf '  - {name: %s%s_%d, trunk: [%s, %s], seed: 121, teacher: {members: [%s], inputs: %s}}\n' \
          $v $size $i $size $size "$M" $v
      done
    done
  done
} >$out/cost.yaml
build/ladon train --local --overwrite $out/cost.yaml train.epochs="$epochs" run.dir=$out/cost 2>$out/cost.log ||
  { tail -n 5 $out/cost.log; exit 1; }
sps() { json_field "$(tail -n 1 "$out/cost/rounds/$1/metrics.jsonl")" samples_per_s; }
printf '| student | label-only samples/s | own: samples/s, ratio | all: samples/s, ratio |\n|---|---|---|---|\n'
for size in 128 64; do
  for i in 1 2 3; do
    l=$(sps lab${size}_$i) o=$(sps own${size}_$i) a=$(sps all${size}_$i)
    awk -v s="$size-$size run $i" -v l="$l" -v o="$o" -v a="$a" \
      'BEGIN{printf "| %s | %.0f | %.0f, %.2fx | %.0f, %.2fx |\n", s, l, o, o / l, a, a / l}'
  done
done
printf '\nsoft targets (GFLOP/s per round, own then all):'
sed -n 's/.*soft targets of .* (\([0-9.]*\) GFLOP\/s).*/\1/p' $out/cost.log | tr '\n' ' '
echo
