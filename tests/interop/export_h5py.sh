#!/usr/bin/env bash
# An exported model read with only h5py and numpy (tests/interop/export_h5py.py) gives the
# probabilities of `ladon predict` on the export, and stays within the error bounds
# docs/export.md documents against the checkpoint it came from: every --quantize (none, fp16,
# int8) and int8 with --prune 0.9 (the sparse kernel), a tanh model with a hidden head layer
# and a relu model, every task.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py
synth "$tmp/data" 2 1200
for act in tanh relu; do
  cat >"$tmp/$act.yaml" <<YAML
run: {dir: $tmp/run-$act, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [40, 24], activation: $act}
tasks: {task000: {head: [12]}, task001: {}}
train: {epochs: 2, batch_size: 32, lr: 0.05, log_every: 0}
YAML
  "$LADON" train --local "$tmp/$act.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "training run"; }
  ck="$tmp/run-$act/checkpoints/$(cat "$tmp/run-$act/checkpoints/latest")"
  for q in none fp16 int8 int8-p90; do
    x="$tmp/$act-$q.h5"
    args=(--quantize "${q%-p90}")
    [ "$q" = int8-p90 ] && args+=(--prune 0.9)
    "$LADON" export "$tmp/run-$act" "$x" "${args[@]}" >"$tmp/out" 2>&1 ||
      { cat "$tmp/out"; fail "export $act $q"; }
    for t in task000 task001; do
      "$LADON" predict "$x" --task $t "$tmp/data/$t.h5" "$tmp/p.h5" >/dev/null ||
        fail "predict $act $q $t"
      "$PY" "$SRC/tests/interop/export_h5py.py" "$x" --task $t --data "$tmp/data/$t.h5" \
        --compare "$tmp/p.h5" --checkpoint "$ck" >"$tmp/py" ||
        { cat "$tmp/py"; fail "h5py reading of $act $q $t"; }
    done
  done
  # the pruned export's trunk is stored sparsely and predicted with the CSR kernel
  "$PY" - "$tmp/$act-int8-p90.h5" <<'PY' || fail "the pruned export is not sparse"
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    for i in f["trunk"]:
        g = f["trunk"][i]
        assert g.attrs["index"].decode() != "dense", (i, g.attrs["index"])
        assert g["values"].shape[0] <= 0.11 * int(g.attrs["rows"]) * int(g.attrs["cols"])
PY
done
echo "export read from h5py: ok"
