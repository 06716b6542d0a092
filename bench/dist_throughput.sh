#!/usr/bin/env bash
# End-to-end distributed throughput on this machine, side by side in one run:
#  - ladon 1 server + 1 worker (bsp, dense) vs ladon's local trainer (one process);
#  - ladon 1 server + 2 workers vs PyTorch DistributedDataParallel (gloo, 2 processes);
# the MLP 784-256-256-10, batch 128 per worker, SGD momentum 0.9, on the Fashion-MNIST
# category task, one BLAS thread per process, alternating runs, median of REPEATS.
# Usage: bench/dist_throughput.sh [REPEATS=3] [EPOCHS=3]
source "$(dirname "$0")/common.sh"
reps=${1:-3}
epochs=${2:-3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cfg=configs/bench-mlp.yaml
sps() { json_field "$(tail -n 1 "$1/metrics.jsonl")" samples_per_s; }
acc() { json_field "$(tail -n 1 "$1/metrics.jsonl")" accuracy; }
for f in local one two ddp; do : >"bench/out/dt_$f.txt"; done
for i in $(seq "$reps"); do
  build/ladon train --local --overwrite $cfg train.epochs="$epochs" run.dir=bench/out/dt_local 2>/dev/null
  echo "$(sps bench/out/dt_local) $(acc bench/out/dt_local)" >>bench/out/dt_local.txt
  LDN_WORKERS=1 launch/ladon-run $cfg --overwrite train.epochs="$epochs" ps.servers=1 \
    run.dir=bench/out/dt_one 2>/dev/null
  echo "$(sps bench/out/dt_one) $(acc bench/out/dt_one)" >>bench/out/dt_one.txt
  launch/ladon-run $cfg --overwrite train.epochs="$epochs" ps.servers=1 tasks.category.workers=2 \
    run.dir=bench/out/dt_two 2>/dev/null
  echo "$(sps bench/out/dt_two) $(acc bench/out/dt_two)" >>bench/out/dt_two.txt
  out=$($PY bench/torch_ddp.py --data data/fmnist --procs 2 --epochs "$epochs" | grep '^summary')
  echo "$(json_field "$out" samples_per_s) $(json_field "$out" accuracy)" >>bench/out/dt_ddp.txt
done
med() { cut -d' ' -f"$2" "bench/out/dt_$1.txt" | median; }
l=$(med local 1) o=$(med one 1) t=$(med two 1) d=$(med ddp 1)
printf '\n| run | processes | samples/s (median of %d) | test accuracy | ratio |\n|---|---|---|---|---|\n' "$reps"
printf '| ladon train --local | 1 | %.0f | %.2f%% | 1.00 |\n' "$l" "$(awk -v a="$(med local 2)" 'BEGIN{print 100*a}')"
printf '| ladon 1 server + 1 worker (bsp) | 3 | %.0f | %.2f%% | %.2f vs local |\n' "$o" \
  "$(awk -v a="$(med one 2)" 'BEGIN{print 100*a}')" "$(awk -v a="$o" -v b="$l" 'BEGIN{print a/b}')"
printf '| ladon 1 server + 2 workers (bsp) | 4 | %.0f | %.2f%% | %.2f vs DDP |\n' "$t" \
  "$(awk -v a="$(med two 2)" 'BEGIN{print 100*a}')" "$(awk -v a="$t" -v b="$d" 'BEGIN{print a/b}')"
printf '| PyTorch DDP (gloo), 2 processes | 2 | %.0f | %.2f%% | 1.00 |\n' "$d" \
  "$(awk -v a="$(med ddp 2)" 'BEGIN{print 100*a}')"
for f in local one two ddp; do printf '%s: %s\n' "$f" "$(cut -d' ' -f1 bench/out/dt_$f.txt | tr '\n' ' ')"; done
