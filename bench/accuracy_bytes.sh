#!/usr/bin/env bash
# Accuracy against bytes on the wire: configs/fmnist-mtl.yaml under mpirun (1 coordinator +
# 2 servers + one worker per task, bsp), dense and with compressed pushes (top-k 10%, 1%, 0.1%
# with fp32, int8 and 1-bit sign values; with and without error feedback). Final test accuracy
# per task and the push/pull bytes per worker-step from metrics.jsonl.
# Usage: bench/accuracy_bytes.sh [EPOCHS=15] [SEED=1]
source "$(dirname "$0")/common.sh"
epochs=${1:-15}
seed=${2:-1}
export OPENBLAS_NUM_THREADS=1
cfg=configs/fmnist-mtl.yaml
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }
row() { # row NAME OVERRIDES...
  local name=$1 dir=bench/out/ab_$1
  shift
  launch/ladon-run $cfg --overwrite train.epochs="$epochs" run.seed="$seed" run.dir="$dir" "$@" \
    2>"$dir.log" || { echo "| $name | failed (see $dir.log) |"; return; }
  local line accs="" t
  for t in category group parity; do
    line=$(grep "\"task\":\"$t\"" "$dir/metrics.jsonl" | tail -n 1)
    accs+=$(awk -v a="$(field "$line" accuracy)" 'BEGIN{printf "%.2f%% | ", 100*a}')
  done
  printf '| %s | %s%.0f | %.0f | %.1fx |\n' "$name" "$accs" "$(field "$line" push_bytes_per_step)" \
    "$(field "$line" pull_bytes_per_step)" "$(field "$line" compression_ratio)"
}
printf '| pushes | category | group | parity | push B/step | pull B/step | push ratio |\n'
printf '|---|---|---|---|---|---|---|\n'
row dense
for r in 0.1 0.01 0.001; do
  for q in fp32 int8 sign; do
    row "topk$r-$q-ef" compress.codec=topk compress.ratio=$r compress.quant=$q
  done
  row "topk$r-int8-noef" compress.codec=topk compress.ratio=$r compress.quant=int8 \
    compress.error_feedback=false
done
echo "(epochs $epochs, seed $seed)"
