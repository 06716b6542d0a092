#!/usr/bin/env bash
# Task weighting under mpirun (train.task_weighting, docs/config.md): 2 servers, 3 workers
# (task000 on a group of 2 ranks, task001 on 1), bsp. $4 is the method, dwa or uncertainty (one
# ctest each: mpi_weighting_dwa, mpi_weighting_uncertainty).
#  1. dwa: the coordinator's weights are 1 for the first two epochs, then sum to the number of
#     tasks and are not all 1; they are in the progress line and in metrics.jsonl per task;
#  2. uncertainty: every record has the task's weight and log-variance, and weight = e^-s;
#  3. both: a run killed right after its mid-epoch checkpoint and resumed ends bit for bit where
#     the uninterrupted run ends (DWA's loss sums, uncertainty's s and its optimizer state);
#  4. (with dwa) ps.task_gradients: pcgrad combines with the weights: the servers project the
#     groups' (weighted) gradients and say how many pairs they projected.
source "$(dirname "$0")/lib.sh"
method=${4:?usage: weighting.sh LADON SRC BUILD dwa|uncertainty}
synth "$tmp/data" 2 800
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/full, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [32, 32]}
tasks: {task000: {workers: 2}, task001: {workers: 1}}
train: {epochs: 4, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 20}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4}
checkpoint: {every_steps: 30, keep_last: 10}
YAML
np=6 # coordinator + 2 servers + 3 workers
for m in $method; do
  run_mpi $np "$LADON" train "$tmp/c.yaml" train.task_weighting=$m run.dir="$tmp/full-$m" \
    2>"$tmp/full-$m.log" || { cat "$tmp/full-$m.log"; fail "$m: full run"; }
  grep -q "train.task_weighting: $m" "$tmp/full-$m.log" || fail "$m: not announced"
  grep -Eq "task000 loss [0-9.]+ acc [0-9.]+% w [0-9.]+" "$tmp/full-$m.log" ||
    fail "$m: no weight in the progress line"
done
[ $method != dwa ] || grep -q "dwa: epoch 2 ended" "$tmp/full-dwa.log" || fail "dwa: no epoch end logged"

# 1, 2: the weights in metrics.jsonl
python3 - "$method" "$tmp/full-$method/metrics.jsonl" <<'PY' ||
import json, math, sys
if sys.argv[1] == "uncertainty":
    unc = [json.loads(l) for l in open(sys.argv[2])]
    assert len(unc) == 8, len(unc)
    for r in unc:
        assert r["task_weighting"] == "uncertainty", r
        assert abs(r["task_weight"] - math.exp(-r["log_var"])) < 1e-4 * r["task_weight"], r
    assert any(abs(r["log_var"]) > 1e-3 for r in unc), unc
    print("  uncertainty log_var at the end:", {r["task"]: r["log_var"] for r in unc[-2:]})
    sys.exit(0)
dwa = [json.loads(l) for l in open(sys.argv[2])]
by_epoch = {}
for r in dwa:
    assert r["task_weighting"] == "dwa", r
    by_epoch.setdefault(round(r["epoch"]), {})[r["task"]] = r["task_weight"]
assert sorted(by_epoch) == [1, 2, 3, 4], by_epoch
for e, w in sorted(by_epoch.items()):
    assert sorted(w) == ["task000", "task001"], w
    if e <= 2:
        assert all(v == 1 for v in w.values()), (e, w)
    else:
        assert abs(sum(w.values()) - 2) < 1e-4, (e, w)
assert any(v != 1 for e in (3, 4) for v in by_epoch[e].values()), by_epoch
print("  dwa weights by epoch:", {e: {t: round(v, 4) for t, v in w.items()} for e, w in by_epoch.items()})
PY
  fail "weights in metrics.jsonl"

# 3. killed after the checkpoint of step 30 (mid-epoch 2: epochs of 25 steps), resumed: bit-identical end
for m in $method; do
  LDN_FAULT=kill-after-ckpt:0:30 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
    train.task_weighting=$m run.dir="$tmp/part-$m" >"$tmp/part-$m.log" 2>&1 &&
    fail "$m: the run with LDN_FAULT=kill-after-ckpt was not killed"
  grep -q "kills itself at step 30" "$tmp/part-$m.log" || { cat "$tmp/part-$m.log"; fail "$m: fault hook"; }
  run_mpi $np "$LADON" train "$tmp/c.yaml" train.task_weighting=$m run.dir="$tmp/part-$m" --resume \
    2>"$tmp/resume-$m.log" || { cat "$tmp/resume-$m.log"; fail "$m: resume"; }
  if grep -q "has no" "$tmp/resume-$m.log"; then fail "$m: the checkpoint lacked the weighting state"; fi
  cmp "$tmp/full-$m/trunk.f32" "$tmp/part-$m/trunk.f32" || fail "$m: resumed trunk differs"
  final=$(cat "$tmp/full-$m/checkpoints/latest")
  h5diff -d 0 "$tmp/full-$m/checkpoints/$final" "$tmp/part-$m/checkpoints/$final" /weighting /weighting \
    >"$tmp/h5diff.out" 2>&1 || { cat "$tmp/h5diff.out"; fail "$m: resumed run's final /weighting differs"; }
  diff <(tail -n 2 "$tmp/full-$m/metrics.jsonl" | sed 's/"samples_per_s".*"residual_norm"//') \
    <(tail -n 2 "$tmp/part-$m/metrics.jsonl" | sed 's/"samples_per_s".*"residual_norm"//') ||
    fail "$m: the last evaluation differs after the resume"
  echo "  $m: resumed bit for bit"
done
if [ $method = uncertainty ]; then
  h5ls -r "$tmp/full-uncertainty/checkpoints/$final" | grep -q "/weighting/log_var/task000" ||
    fail "no log-variance in the uncertainty checkpoint"
  echo "weighting ($method): ok"
  exit 0
fi
h5ls -r "$tmp/full-dwa/checkpoints/$final" | grep -q "/weighting/dwa/loss_sum" ||
  fail "no DWA loss sums in the dwa checkpoint"

# 4. pcgrad on the servers, with the weights
run_mpi $np "$LADON" train "$tmp/c.yaml" ps.task_gradients=pcgrad run.dir="$tmp/pc" \
  >"$tmp/pc.log" 2>&1 || { cat "$tmp/pc.log"; fail "pcgrad with $method under mpirun"; }
grep -q "servers: pcgrad projected [0-9]* of [1-9][0-9]* " "$tmp/pc.log" ||
  { cat "$tmp/pc.log"; fail "no pcgrad report"; }
echo "weighting ($method): ok"
