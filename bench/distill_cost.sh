#!/usr/bin/env bash
# What distillation costs, on a quiet machine (run nothing else): a distillation round's
# samples/s against its label-only twin (same student, seed, length), own inputs and
# inputs: all, for a 128-128 and a 64-64 student, alternating three times in one run with
# rounds; and the soft targets' GFLOP/s against one core's sgemm bound (~100 GFLOP/s,
# PLATFORM.md). The teacher is the three members of bench/distill.sh's first seed (run that
# first: bench/out/distill/run1; MEMBERS_RUN=DIR takes another run with rounds m1..m3).
# MODE dist runs the same rounds under mpirun (launch/ladon-run: 1 coordinator, 1 server, one
# worker per task) and adds each round's set-up time (from the coordinator's "ready" line).
# Usage: bench/distill_cost.sh [EPOCHS=5] [MODE=local|dist]
source "$(dirname "$0")/common.sh"
epochs=${1:-5}
mode=${2:-local}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=bench/out/distill
mr=${MEMBERS_RUN:-$out/run1}
[ -d $mr/rounds/m3/checkpoints ] || { echo "run bench/distill.sh first (no $mr)"; exit 1; }
M="$mr/rounds/m1/checkpoints, $mr/rounds/m2/checkpoints, $mr/rounds/m3/checkpoints"
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
run=$out/cost
if [ "$mode" = dist ]; then
  run=$out/cost-dist
  rm -rf $run
  launch/ladon-run $out/cost.yaml train.epochs="$epochs" run.dir=$run ps.servers=1 >$out/cost.log 2>&1 ||
    { tail -n 5 $out/cost.log; exit 1; }
else
  rm -rf $run
  build/ladon train --local $out/cost.yaml train.epochs="$epochs" run.dir=$run 2>$out/cost.log ||
    { tail -n 5 $out/cost.log; exit 1; }
fi
sps() { json_field "$(tail -n 1 "$run/rounds/$1/metrics.jsonl")" samples_per_s; }
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
if [ "$mode" = dist ]; then
  printf 'round set-up (s, from the round start to every worker ready):'
  sed -n 's/.*round \([a-z0-9_]*\): every worker ready \([0-9.]*\) s.*/\1 \2/p' $out/cost.log | tr '\n' ' '
  echo
  printf 'snapshots (s):'
  sed -n 's/.*checkpoint step .* in \([0-9.]*\) s.*/\1/p' $out/cost.log | tr '\n' ' '
  echo
fi
