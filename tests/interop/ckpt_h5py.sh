#!/usr/bin/env bash
# A checkpoint read with only h5py and numpy (tests/interop/ckpt_h5py.py) gives the same
# probabilities as `ladon predict`: a tanh model with a hidden head layer, every task.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py
synth "$tmp/data" 2 1200
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [40, 24], activation: tanh}
tasks: {task000: {head: [12]}, task001: {}}
train: {epochs: 2, batch_size: 32, lr: 0.05, log_every: 0}
ps: {servers: 1, timeout: 30}
YAML
run_mpi 4 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "training run"; }
for t in task000 task001; do
  "$LADON" predict "$tmp/run" --task $t "$tmp/data/$t.h5" "$tmp/$t.h5" >/dev/null ||
    fail "predict $t"
  "$PY" "$SRC/tests/interop/ckpt_h5py.py" "$tmp/run" --task $t --data "$tmp/data/$t.h5" \
    --compare "$tmp/$t.h5" || fail "h5py reading of $t"
done
echo "checkpoint read from h5py: ok"
