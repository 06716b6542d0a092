#!/usr/bin/env bash
# Gradual magnitude pruning under mpirun (docs/architecture.md, "Pruning"): 2 servers,
# compressed pushes (top-k + int8), bsp.
#  1. the run ends at the target sparsity on every trunk layer (ladon inspect of the final
#     checkpoint), with the sparsity in the progress line and metrics.jsonl;
#  2. the servers found no masked key changed after it was masked, and a key masked in the
#     mid-run checkpoint is masked and zero in the final one;
#     top-k pushes name no masked key (the servers count what they drop: 0), random-k ones
#     do (warned of, counted);
#  3. a run killed right after its mid-run checkpoint and resumed keeps the masks and ends bit
#     for bit where the uninterrupted run ends.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 1500
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/full, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {}}
train: {epochs: 2, batch_size: 32, optimizer: adam, lr: 0.003, log_every: 20}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4}
compress: {codec: topk, ratio: 0.1, quant: int8}
checkpoint: {every_steps: 40, keep_last: 10}
prune: {sparsity: 0.8, start: 10, end: 70, every: 10, layers: [0.7, 0.8]}
YAML
np=5 # coordinator + 2 servers + 2 workers
run_mpi $np "$LADON" train "$tmp/c.yaml" 2>"$tmp/full.log" || { cat "$tmp/full.log"; fail "full run"; }
final=$(cat "$tmp/full/checkpoints/latest")

# 1. the target on every layer
"$LADON" inspect "$tmp/full" --json >"$tmp/inspect.json" || fail "inspect"
python3 - "$tmp/inspect.json" <<'PY' || fail "final sparsity is not the target on every layer"
import json, sys
p = json.load(open(sys.argv[1]))["pruning"]
for got, want in zip(p["layers"], [0.7, 0.8]):
    assert abs(got - want) < 1e-3, (p, want)
print("  sparsity by layer:", p["layers"])
PY
grep -q "prune step 70: target" "$tmp/full.log" || fail "no mask update at prune.end"
grep -q "| sparsity 0\.7" "$tmp/full.log" || fail "no sparsity in the progress line"
grep -q '"sparsity":0\.7' "$tmp/full/metrics.jsonl" || fail "no sparsity in metrics.jsonl"

# 2. masked keys never change: counted on the servers, and the mid checkpoint against the final
grep -q "servers: 0 masked keys changed after being masked" "$tmp/full.log" ||
  { grep "masked keys" "$tmp/full.log"; fail "servers saw masked keys change"; }
# top-k spends none of its k on masked keys: the servers dropped no pushed entry of one
grep -q "; 0 pushed gradient entries of masked keys dropped" "$tmp/full.log" ||
  { grep "masked keys" "$tmp/full.log"; fail "top-k pushes carried masked keys"; }
mid="$tmp/full/checkpoints/step-0000000040.h5"
values() { # values FILE DATASET: one value a line
  h5dump -d "$2" -y -w 0 -o "$tmp/dump.txt" "$1" >/dev/null || fail "h5dump $2 of $1"
  tr -s ' ,\n' '\n' <"$tmp/dump.txt" | grep .
}
for l in 0 1; do
  values "$mid" /prune/trunk/$l/weight >"$tmp/m$l"
  values "$tmp/full/checkpoints/$final" /prune/trunk/$l/weight >"$tmp/f$l"
  values "$tmp/full/checkpoints/$final" /trunk/$l/weight >"$tmp/w$l"
  grep -q '^0$' "$tmp/m$l" || fail "layer $l: nothing masked in the mid-run checkpoint"
  [ "$(wc -l <"$tmp/m$l")" = "$(wc -l <"$tmp/w$l")" ] || fail "layer $l: mask and weights differ in size"
  paste "$tmp/m$l" "$tmp/f$l" "$tmp/w$l" | awk '$1 == 0 && ($2 != 0 || $3 != 0) {bad++}
    END {exit bad > 0}' || fail "layer $l: a key masked at step 40 is unmasked or nonzero at the end"
done

# 3. killed right after the checkpoint of step 40, resumed: masks kept, bit-identical end
LDN_FAULT=kill-after-ckpt:0:40 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
  run.dir="$tmp/part" >"$tmp/part.log" 2>&1 && fail "the run with LDN_FAULT=kill-after-ckpt was not killed"
grep -q "kills itself at step 40" "$tmp/part.log" || { cat "$tmp/part.log"; fail "fault hook did not fire"; }
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/part" --resume 2>"$tmp/resume.log" ||
  { cat "$tmp/resume.log"; fail "resume"; }
cmp "$tmp/full/trunk.f32" "$tmp/part/trunk.f32" || fail "resumed trunk differs from the uninterrupted run"
for g in /trunk /prune /optimizer /heads; do
  h5diff -d 0 "$tmp/full/checkpoints/$final" "$tmp/part/checkpoints/$final" $g $g >"$tmp/h5diff.out" 2>&1 ||
    { cat "$tmp/h5diff.out"; fail "resumed run's final $g differs"; }
done

# 4. random-k draws its keys from the seed, not the mask: warned of, and the servers count the
#    entries of masked keys they dropped (which shows the counter of 2. counts)
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/rk" compress.codec=randomk \
  2>"$tmp/rk.log" || { cat "$tmp/rk.log"; fail "random-k pruned run"; }
grep -q "prune with compress.codec randomk" "$tmp/rk.log" || fail "no random-k warning"
grep -Eq "; [1-9][0-9]* pushed gradient entries of masked keys dropped" "$tmp/rk.log" ||
  { grep "masked keys" "$tmp/rk.log"; fail "random-k: no masked entries counted"; }
echo "pruning: ok"
