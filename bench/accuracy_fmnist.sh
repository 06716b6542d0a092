#!/usr/bin/env bash
# Accuracy: ladon's local trainer vs PyTorch on the same Fashion-MNIST multi-task shards,
# model (trunk 256-256 + heads), batch, optimizer and schedule (configs/fmnist-mtl.yaml).
# Prints the final test accuracy of every task for both and the difference in points.
# Usage: bench/accuracy_fmnist.sh [SEED=1]
source "$(dirname "$0")/common.sh"
seed=${1:-1}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cfg=configs/fmnist-mtl.yaml
build/ladon config show $cfg run.seed="$seed" >bench/out/acc_cfg.yaml
get() { sed -n "s/^  $1: *//p" bench/out/acc_cfg.yaml | head -n 1; }
epochs=$(get epochs); batch=$(get batch_size); lr=$(get lr); mom=$(get momentum)
sched=$(get lr_schedule); warm=$(get warmup_steps); minlr=$(get lr_min); alpha=$(get sampling_alpha)
build/ladon train --local --overwrite $cfg run.seed="$seed" run.dir=bench/out/acc_run 2>bench/out/acc_ladon.log
$PY bench/torch_mtl.py --data data/fmnist --tasks category,group,parity --epochs "$epochs" \
  --batch "$batch" --lr "$lr" --momentum "$mom" --schedule "$sched" --warmup "$warm" \
  --min-lr "$minlr" --alpha "$alpha" --seed "$seed" --eval-every "$epochs" >bench/out/acc_torch.jsonl
printf '\n| task | ladon accuracy | PyTorch accuracy | ladon - PyTorch (pp) |\n|---|---|---|---|\n'
for task in category group parity; do
  l=$(json_field "$(grep "\"task\":\"$task\"" bench/out/acc_run/metrics.jsonl | tail -n 1)" accuracy)
  t=$(json_field "$(grep "\"task\": \"$task\"" bench/out/acc_torch.jsonl | tail -n 1)" accuracy)
  awk -v k="$task" -v a="$l" -v b="$t" 'BEGIN{printf "| %s | %.2f%% | %.2f%% | %+.2f |\n", k, 100*a, 100*b, 100*(a-b)}'
done
echo "(seed $seed, $epochs epochs, batch $batch, lr $lr $sched, warmup $warm)"
