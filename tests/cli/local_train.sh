#!/usr/bin/env bash
# Integration: generate synthetic tasks, train them with `ladon train --local`, and check
# the run directory: metrics.jsonl has one row per task per evaluation, every task learns
# well above chance, and the resolved config was stored.
set -euo pipefail
ladon=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ladon" data synth "$tmp/data" --tasks 3 --features 32 --rank 4 --classes 4 --train 3000 \
  --test 1000 --relatedness 0.9 --seed 3 >/dev/null
cat > "$tmp/c.yaml" <<YAML
run: {name: it, dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks:
  task000: {}
  task001: {weight: 2}
  task002: {}
train: {epochs: 4, batch_size: 64, lr: 0.05, momentum: 0.9, log_every: 50}
YAML
"$ladon" train --local "$tmp/c.yaml" 2>"$tmp/log"
grep -q "samples/s" "$tmp/log" || { echo "no progress line"; cat "$tmp/log"; exit 1; }
test -s "$tmp/run/config.yaml"
rows=$(wc -l <"$tmp/run/metrics.jsonl")
[ "$rows" -eq 12 ] || { echo "expected 12 metrics rows (3 tasks x 4 evals), got $rows"; exit 1; }
# Final accuracy of every task must be far above chance (0.25 for 4 classes).
tail -n 3 "$tmp/run/metrics.jsonl" | while read -r line; do
  acc=$(printf '%s' "$line" | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p')
  task=$(printf '%s' "$line" | sed -n 's/.*"task":"\([^"]*\)".*/\1/p')
  awk -v a="$acc" -v t="$task" 'BEGIN { if (a < 0.6) { print t " accuracy " a " < 0.6"; exit 1 } }'
done
# The same seed gives the same final metrics (losses and accuracies).
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run2" 2>/dev/null
strip() { sed 's/"samples_per_s":[^,]*,//; s/"elapsed_s":[^}]*//' "$1"; }
diff <(strip "$tmp/run/metrics.jsonl") <(strip "$tmp/run2/metrics.jsonl") >/dev/null ||
  { echo "same seed gave different metrics"; exit 1; }
# Checkpoints: a run killed right after its checkpoint at step 100 and resumed ends with the
# same final trunk and checkpoint state as the uninterrupted run.
test -s "$tmp/run/checkpoints/latest" || { echo "no final checkpoint"; exit 1; }
final=$(cat "$tmp/run/checkpoints/latest")
LDN_FAULT=kill-after-ckpt:0:100 "$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run3" \
  checkpoint.every_steps=100 2>/dev/null && { echo "the faulted run was not killed"; exit 1; }
[ "$(cat "$tmp/run3/checkpoints/latest")" = step-0000000100.h5 ] || { echo "latest is not step 100"; exit 1; }
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run3" checkpoint.every_steps=100 --resume \
  2>"$tmp/log3" || { cat "$tmp/log3"; exit 1; }
grep -q "resuming from .*step-0000000100.h5" "$tmp/log3" || { echo "no resume line"; exit 1; }
cmp "$tmp/run/trunk.f32" "$tmp/run3/trunk.f32" || { echo "resumed trunk differs"; exit 1; }
for g in /trunk /heads /optimizer /workers; do
  h5diff -d 0 "$tmp/run/checkpoints/$final" "$tmp/run3/checkpoints/$final" $g $g >/dev/null ||
    { echo "resumed $g differs"; exit 1; }
done
echo "local training: ok"
