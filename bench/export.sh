#!/usr/bin/env bash
# Export of the Fashion-MNIST multi-task model (docs/export.md; docs/benchmarks.md "Export").
#
# Trains configs/fmnist-mtl.yaml with the local trainer (one core: train.threads 1, 15 epochs
# unless EPOCHS is set; reused from bench/out/export/run when it is there), then exports it
# as none, fp16, int8, and int8 / none with --prune 0.9 (one-shot magnitude pruning of each
# trunk layer at export time, no retraining); then trains configs/fmnist-prune.yaml (the same
# run pruned gradually to 90% during training) and exports it as none and int8. Prints a table:
# file bytes and the ratio to the dense fp32 weights, per-task test accuracy and its delta
# against the fp32 checkpoint. Then predict throughput on one core (OPENBLAS_NUM_THREADS=1) of
# the sparse int8 export (CSR kernel) against the dense fp32 checkpoint (sgemm), forward pass
# only, alternating in one run (bench_export model; best of REPS rounds), plus the kernel
# alone at several densities (bench_export kernel).
# Usage: [EPOCHS=15] [REPS=5] bench/export.sh
source "$(dirname "$0")/common.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
epochs=${EPOCHS:-15}
reps=${REPS:-5}
out=bench/out/export
mkdir -p $out
[ -x build/bench_export ] || cmake --build build -j1 --target bench_export >/dev/null
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ ! -f $out/run/checkpoints/latest ] || [ "$(cat $out/epochs 2>/dev/null)" != "$epochs" ]; then
  rm -rf $out/run
  build/ladon train --local configs/fmnist-mtl.yaml run.dir=$out/run train.epochs="$epochs" \
    train.threads=1 train.log_every=0 2>$out/train.log || { tail -n 5 $out/train.log; exit 1; }
  echo "$epochs" >$out/epochs
fi
if [ ! -f $out/prune/checkpoints/latest ] || [ "$(cat $out/prune-epochs 2>/dev/null)" != "$epochs" ]; then
  rm -rf $out/prune
  build/ladon train --local configs/fmnist-prune.yaml run.dir=$out/prune train.epochs="$epochs" \
    train.threads=1 train.log_every=0 2>$out/prune.log || { tail -n 5 $out/prune.log; exit 1; }
  echo "$epochs" >$out/prune-epochs
fi
ck=$out/run/checkpoints/$(cat $out/run/checkpoints/latest)
pck=$out/prune/checkpoints/$(cat $out/prune/checkpoints/latest)
tasks=(category group parity)
declare -A acc0
row() { # row NAME ARGS...: export of $CK (default the dense run), then one table row
  local name=$1
  shift
  build/ladon export "${CK:-$ck}" "$out/$name.h5" "$@" >"$out/$name.txt" || exit 1
  local dense file line
  dense=$(sed -n 's/^size: dense fp32 weights \([0-9]*\) bytes.*/\1/p' "$out/$name.txt")
  file=$(sed -n 's/^size: .* file \([0-9]*\) bytes.*/\1/p' "$out/$name.txt")
  line="| $name | $file | $(awk -v d="$dense" -v f="$file" 'BEGIN { printf "%.2fx", d / f }') |"
  for t in "${tasks[@]}"; do
    read -r before after < <(awk -v t="$t" '$1 == t { print $3, $4 }' "$out/$name.txt")
    acc0[$t]=$before
    line+=" $(awk -v b="$before" -v a="$after" 'BEGIN { printf "%.2f (%+.2f)", 100 * a, 100 * (a - b) }') |"
  done
  echo "$line"
  DENSE=$dense
}
{
  echo "| export | file bytes | dense fp32 / file | category % (pp) | group % (pp) | parity % (pp) |"
  echo "|---|---|---|---|---|---|"
  row none --quantize none
  row fp16 --quantize fp16
  row int8 --quantize int8
  row none-prune0.9 --quantize none --prune 0.9
  row int8-prune0.9 --quantize int8 --prune 0.9
  line="| checkpoint (fp32) | $DENSE (weights) | 1.00x |"
  for t in "${tasks[@]}"; do line+=" $(awk -v a="${acc0[$t]}" 'BEGIN { printf "%.2f", 100 * a }') |"; done
  echo "$line"
  CK=$pck row gradual0.9-none --quantize none
  CK=$pck row gradual0.9-int8 --quantize int8
  line="| gradual 90% checkpoint (fp32) | $DENSE (weights) | 1.00x |"
  for t in "${tasks[@]}"; do line+=" $(awk -v a="${acc0[$t]}" 'BEGIN { printf "%.2f", 100 * a }') |"; done
  echo "$line"
} | tee $out/table.md
echo
echo "per-layer choice of the int8 export of the gradually pruned model:"
sed -n '/^layer/,/^size/p' $out/gradual0.9-int8.txt
echo
build/bench_export model "$pck" $out/gradual0.9-int8.h5 data/fmnist/category.h5 category "$reps" |
  tee $out/predict.txt
build/bench_export model "$ck" $out/int8.h5 data/fmnist/category.h5 category "$reps" |
  sed -n 's/^ratio/dense int8 export: ratio/p'
echo
build/bench_export kernel 256 784 1024 | tee $out/kernel.txt
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
