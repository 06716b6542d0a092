#!/usr/bin/env bash
# Task weighting in the local trainer (docs/config.md, "Task weighting"), on 3 synthetic tasks:
#  1. static writes the same metrics.jsonl as a run without the keys (no weighting keys);
#  2. uncertainty, dwa and pcgrad report their weights in metrics.jsonl and the progress line;
#     dwa's are 1 for two epochs, then sum to 3 and are not all 1; pcgrad trains every task in
#     every step (an epoch has a third of the steps) and projects some pairs;
#  3. each, killed right after a mid-epoch checkpoint and resumed, ends bit for bit where the
#     uninterrupted run ends.
set -euo pipefail
ladon=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$ladon" data synth "$tmp/data" --tasks 3 --features 32 --rank 4 --classes 4 --train 2000 \
  --test 400 --relatedness 0.9 --seed 3 >/dev/null
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [32, 32]}
tasks: {task000: {}, task001: {}, task002: {}}
train: {epochs: 4, batch_size: 64, lr: 0.05, momentum: 0.9, log_every: 30}
checkpoint: {every_steps: 40, keep_last: 20}
YAML
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/plain" 2>/dev/null
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/static" train.task_weighting=static 2>/dev/null
if grep -q task_weight "$tmp/static/metrics.jsonl"; then fail "static wrote weighting keys"; fi
strip() { sed 's/"samples_per_s".*"residual_norm"//' "$1"; }
diff <(strip "$tmp/plain/metrics.jsonl") <(strip "$tmp/static/metrics.jsonl") ||
  fail "static differs from the default"
cmp "$tmp/plain/trunk.f32" "$tmp/static/trunk.f32" || fail "static trunk differs from the default"

declare -A over=([uncertainty]=train.task_weighting=uncertainty [dwa]=train.task_weighting=dwa
  [pcgrad]=ps.task_gradients=pcgrad)
for m in uncertainty dwa pcgrad; do
  "$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/full-$m" "${over[$m]}" 2>"$tmp/full-$m.log" ||
    { cat "$tmp/full-$m.log"; fail "$m: run"; }
done
grep -Eq "task001 loss [0-9.]+ acc [0-9.]+% w [0-9.]+" "$tmp/full-dwa.log" ||
  fail "no weight in the progress line"
grep -q "pcgrad: each step trains all 3 tasks" "$tmp/full-pcgrad.log" || fail "pcgrad not announced"
python3 - "$tmp" <<'PY' || fail "weights in metrics.jsonl"
import json, math, sys
d = sys.argv[1]
rows = lambda m: [json.loads(l) for l in open(f"{d}/full-{m}/metrics.jsonl")]
unc = rows("uncertainty")
assert len(unc) == 12 and all(r["task_weighting"] == "uncertainty" for r in unc), unc
for r in unc:
    assert abs(r["task_weight"] - math.exp(-r["log_var"])) < 1e-4 * r["task_weight"], r
assert all(r["log_var"] < 0 for r in unc[-3:]), unc[-3:]  # losses < 1: weights grow above 1
by = {}
for r in rows("dwa"):
    by.setdefault(round(r["epoch"]), []).append(r["task_weight"])
assert all(w == 1 for e in (1, 2) for w in by[e]), by
assert all(abs(sum(by[e]) - 3) < 1e-4 for e in (3, 4)), by
assert any(w != 1 for e in (3, 4) for w in by[e]), by
pc = rows("pcgrad")
plain = [json.loads(l) for l in open(f"{d}/plain/metrics.jsonl")]
assert all(r["task_gradients"] == "pcgrad" for r in pc), pc[0]
assert pc[-1]["step"] * 3 == plain[-1]["step"], (pc[-1]["step"], plain[-1]["step"])
print("  dwa weights by epoch:", {e: [round(w, 4) for w in v] for e, v in by.items()})
PY
grep -Eq "pcgrad: [1-9][0-9]* of [0-9]+ \(task, other task, layer\) pairs projected" \
  "$tmp/full-pcgrad.log" || fail "pcgrad projected nothing"

for m in uncertainty dwa pcgrad; do
  step=$([ $m = pcgrad ] && echo 40 || echo 120) # mid-epoch: epochs of 96 (pcgrad 32) steps
  LDN_FAULT=kill-after-ckpt:0:$step "$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/part-$m" \
    "${over[$m]}" >"$tmp/part-$m.log" 2>&1 && fail "$m: the run was not killed"
  "$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/part-$m" "${over[$m]}" --resume \
    2>"$tmp/resume-$m.log" || { cat "$tmp/resume-$m.log"; fail "$m: resume"; }
  grep -q "resuming from .*step-00000000*$step.h5" "$tmp/resume-$m.log" || fail "$m: resumed elsewhere"
  if grep -q "has no" "$tmp/resume-$m.log"; then fail "$m: the checkpoint lacked the state"; fi
  cmp "$tmp/full-$m/trunk.f32" "$tmp/part-$m/trunk.f32" || fail "$m: resumed trunk differs"
  diff <(strip "$tmp/full-$m/metrics.jsonl" | tail -n 3) <(strip "$tmp/part-$m/metrics.jsonl" | tail -n 3) ||
    fail "$m: the last evaluation differs after the resume"
  echo "  $m: resumed bit for bit"
done
echo "weighting (local): ok"
