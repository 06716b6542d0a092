#!/usr/bin/env bash
# Training throughput: ladon's local trainer vs PyTorch on the same MLP (784-256-256-10,
# batch 128, SGD momentum 0.9, fp32), the Fashion-MNIST category task, one thread each
# pinned to the same core, alternating runs; prints the median samples/s and the ratio.
# Usage: bench/train_throughput.sh [REPEATS=3] [EPOCHS=3]
source "$(dirname "$0")/common.sh"
reps=${1:-3}
epochs=${2:-3}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
core=0
: >bench/out/tp_ladon.txt
: >bench/out/tp_torch.txt
for i in $(seq "$reps"); do
  taskset -c $core build/ladon train --local --overwrite configs/bench-mlp.yaml train.epochs="$epochs" \
    train.eval_every="$epochs" run.dir=bench/out/tp_run 2>/dev/null
  json_field "$(tail -n 1 bench/out/tp_run/metrics.jsonl)" samples_per_s >>bench/out/tp_ladon.txt
  out=$(taskset -c $core $PY bench/torch_mtl.py --data data/fmnist --tasks category \
    --epochs "$epochs" --eval-every "$epochs" --threads 1 | grep '^summary')
  json_field "$out" samples_per_s >>bench/out/tp_torch.txt
done
l=$(median <bench/out/tp_ladon.txt)
t=$(median <bench/out/tp_torch.txt)
printf '\n| trainer | samples/s (median of %d) | ratio |\n|---|---|---|\n' "$reps"
printf '| ladon train --local | %.0f | %.2f |\n' "$l" "$(awk -v a="$l" -v b="$t" 'BEGIN{print a/b}')"
printf '| PyTorch %s | %.0f | 1.00 |\n' "$($PY -c 'import torch; print(torch.__version__)')" "$t"
printf '\nruns: ladon %s; torch %s\n' "$(tr '\n' ' ' <bench/out/tp_ladon.txt)" "$(tr '\n' ' ' <bench/out/tp_torch.txt)"
