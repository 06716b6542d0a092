#!/usr/bin/env bash
# ladon inspect / eval / predict on the checkpoints of a short distributed run: inspect shows
# the step and the shapes, eval reproduces the run's last evaluation exactly, predict's
# probabilities are distributions whose argmax scores eval's accuracy; damaged or wrong inputs
# (truncated, a flipped bit, not HDF5, another format_version, a missing dataset, an unknown
# task, OUTPUT == INPUT, other feature counts) are one line and a non-zero exit, never a crash.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py

synth "$tmp/data" 3 1500
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 11}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {weight: 0.5, head: [16]}, task002: {}}
train: {epochs: 3, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4}
checkpoint: {every_steps: 50}
YAML
run_mpi 6 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "training run"; }
ck="$tmp/run/checkpoints"
last=$(cat "$ck/latest")
final=$(tail -n 1 "$tmp/run/metrics.jsonl" | sed -n 's/.*"step":\([0-9]*\).*/\1/p')
[ -f "$ck/step-0000000050.h5" ] || fail "no checkpoint at step 50"

# --- inspect: a run dir, a checkpoint dir and a file name the same latest checkpoint
"$LADON" inspect "$tmp/run" >"$tmp/i1" || fail "inspect run dir"
"$LADON" inspect "$ck" >"$tmp/i2" || fail "inspect checkpoint dir"
"$LADON" inspect "$ck/$last" >"$tmp/i3" || fail "inspect file"
diff "$tmp/i1" "$tmp/i2" >/dev/null && diff "$tmp/i2" "$tmp/i3" >/dev/null ||
  fail "inspect of the run dir, checkpoint dir and file differ"
grep -q "^step  *$final of $final " "$tmp/i1" || { cat "$tmp/i1"; fail "inspect: step $final"; }
grep -q "^  0  *weight \[48, 32\]  bias \[48\]" "$tmp/i1" || fail "inspect: trunk layer 0 shape"
grep -q "^  1  *weight \[32, 48\]  bias \[32\]" "$tmp/i1" || fail "inspect: trunk layer 1 shape"
grep -q "^  task001  *4 classes  weight \[16, 32\]  bias \[16\]" "$tmp/i1" ||
  fail "inspect: head of task001"
grep -q "^  *weight \[4, 16\]  bias \[4\]" "$tmp/i1" || fail "inspect: output layer of task001"
grep -q "^verified .*every checksum matches" "$tmp/i1" || fail "inspect: verified line"
"$LADON" inspect "$ck/step-0000000050.h5" | grep -q "^step  *50 of $final " ||
  fail "inspect: step 50"
"$LADON" inspect --json "$tmp/run" >"$tmp/i.json" || fail "inspect --json"
"$PY" - "$tmp/i.json" "$final" <<'PY' || fail "inspect --json content"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["step"] == int(sys.argv[2]), j["step"]
assert [l["weight"] for l in j["trunk"]] == [[48, 32], [32, 48]], j["trunk"]
assert [h["task"] for h in j["heads"]] == ["task000", "task001", "task002"]
assert j["heads"][1]["layers"][1]["weight"] == [4, 16]
# 32*48+48 + 48*32+32 trunk; 3 heads: 4*33, 16*33 + 4*17, 4*33
assert j["parameters"]["total"] == 48 * 33 + 32 * 49 + 4 * 33 + 16 * 33 + 4 * 17 + 4 * 33
assert j["optimizer"]["m"] and not j["optimizer"]["v"]
assert j["worker_state"]["workers"] == 3 and j["verified"]["nonfinite"] == 0
assert len(j["metrics"]) == 3 and j["metrics"][0]["task"] == "task000"
PY

# --- eval: the final checkpoint is written after the last evaluation: same accuracy
"$LADON" eval "$tmp/run" >"$tmp/eval" || fail "eval"
for t in task000 task001 task002; do
  want=$(last_acc "$tmp/run" $t)
  got=$(awk -v t=$t '$1 == t { print $3 }' "$tmp/eval")
  [ -n "$got" ] && awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(d < 1e-6 && d > -1e-6) }' ||
    { cat "$tmp/eval"; fail "eval accuracy of $t: $got, metrics.jsonl says $want"; }
done
"$LADON" eval "$tmp/run" --task task001 --data "$tmp/data" >"$tmp/eval1" || fail "eval --task --data"
[ "$(grep -c '^task0' "$tmp/eval1")" = 1 ] && grep -q '^task001 ' "$tmp/eval1" || fail "eval --task"

# --- predict: probabilities sum to 1, argmax accuracy is eval's
acc1=$(awk '$1 == "task001" { print $3 }' "$tmp/eval")
"$LADON" predict "$tmp/run" --task task001 "$tmp/data/task001.h5" "$tmp/p.h5" >/dev/null ||
  fail "predict"
"$PY" - "$tmp/p.h5" "$tmp/data/task001.h5" "$acc1" "$ck/$last" <<'PY' || fail "predict output"
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r") as o, h5py.File(sys.argv[2], "r") as d:
    p, pred, y = o["probs"][...], o["pred"][...], d["test/y"][...]
    assert p.dtype == np.float32 and p.shape == (len(y), 4), p.shape
    assert pred.dtype == np.int32 and pred.shape == (len(y),)
    assert np.all(p >= 0) and np.allclose(p.sum(axis=1), 1, atol=1e-5), "rows do not sum to 1"
    acc = float(np.mean(p.argmax(axis=1) == y))
    assert abs(acc - float(sys.argv[3])) < 1e-6, (acc, sys.argv[3])
    assert np.mean(pred == p.argmax(axis=1)) >= 0.999
    a = o.attrs
    assert a["task"].decode() == "task001" and a["checkpoint"].decode() == sys.argv[4], dict(a)
    assert int(a["step"]) == int(sys.argv[4][-13:-3])
PY
# any HDF5 file with a 2-D x (and x_scale): the same rows stored halved, x_scale 2
"$PY" - "$tmp/data/task001.h5" "$tmp/plain.h5" "$tmp/narrow.h5" <<'PY'
import h5py, numpy as np, sys
x = h5py.File(sys.argv[1], "r")["test/x"][...]
with h5py.File(sys.argv[2], "w") as f:
    f["x"] = x / 2
    f.attrs["x_scale"] = 2.0
with h5py.File(sys.argv[3], "w") as f:
    f["x"] = x[:5, :31]
PY
"$LADON" predict "$tmp/run" --task task001 "$tmp/plain.h5" "$tmp/p2.h5" >/dev/null ||
  fail "predict from a plain x file"
"$PY" - "$tmp/p.h5" "$tmp/p2.h5" <<'PY' || fail "plain x file predicts differently"
import h5py, numpy as np, sys
a, b = (h5py.File(n, "r")["probs"][...] for n in sys.argv[1:3])
assert np.abs(a - b).max() < 1e-5, np.abs(a - b).max()
PY

# --- bad inputs: exit 1 (not a crash), one line on stderr naming the file and the problem
expect_fail() { # expect_fail WORDS CMD...: fails with one stderr line containing WORDS
  local words=$1
  shift
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/err"; fail "exit $rc, not 1: $*"; }
  [ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "not one line: $*"; }
  grep -q -- "$words" "$tmp/err" || { cat "$tmp/err"; fail "no '$words' in the message: $*"; }
}
all_tools() { # all_tools WORDS CKPT: inspect, eval and predict all refuse CKPT
  expect_fail "$1" "$LADON" inspect "$2"
  expect_fail "$1" "$LADON" eval "$2"
  expect_fail "$1" "$LADON" predict "$2" --task task000 "$tmp/data/task000.h5" "$tmp/bad-out.h5"
  [ ! -e "$tmp/bad-out.h5" ] || fail "predict wrote output from a bad checkpoint $2"
  grep -q -- "$2" "$tmp/err" || fail "the message does not name $2"
}
good="$ck/$last"
size=$(stat -c %s "$good")
head -c $((size / 2)) "$good" >"$tmp/trunc.h5"
all_tools "truncated" "$tmp/trunc.h5"
cp "$good" "$tmp/flip.h5"
off=$("$PY" -c 'import h5py, sys; d = h5py.File(sys.argv[1], "r")["/trunk/0/weight"]
print(d.id.get_chunk_info(0).byte_offset + 100)' "$tmp/flip.h5")
"$PY" - "$tmp/flip.h5" "$off" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x10]))
PY
all_tools "/trunk/0/weight: checksum mismatch" "$tmp/flip.h5"
# Damaged metadata (the version byte of group /trunk/1's object header): every tool says the
# file is damaged, none that a layer is missing.
cp "$good" "$tmp/hdr.h5"
"$PY" - "$tmp/hdr.h5" <<'PY'
import sys, h5py
a = h5py.h5o.get_info(h5py.File(sys.argv[1], "r")["/trunk/1"].id).addr
with open(sys.argv[1], "r+b") as f:
    f.seek(a); b = f.read(1); f.seek(a); f.write(bytes([b[0] ^ 0x40]))
PY
all_tools "(damaged file?): bad object header version number" "$tmp/hdr.h5"
echo "not a checkpoint" >"$tmp/text.h5"
all_tools "cannot open as HDF5" "$tmp/text.h5"
all_tools "cannot open: No such file" "$tmp/missing.h5"
cp "$good" "$tmp/ver.h5"
cp "$good" "$tmp/nodata.h5"
cp "$good" "$tmp/noworker.h5"
"$PY" - "$tmp" <<'PY'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1] + "/ver.h5", "r+") as f:
    f.attrs.modify("format_version", np.int32(2))
with h5py.File(sys.argv[1] + "/nodata.h5", "r+") as f:
    del f["/heads/task002/0/bias"]
with h5py.File(sys.argv[1] + "/noworker.h5", "r+") as f:
    del f["/workers/3/batch/task000/rng"]
PY
all_tools "format_version 2" "$tmp/ver.h5"
all_tools "/heads/task002/0/bias is missing" "$tmp/nodata.h5"
expect_fail "/workers/3/batch/task000/rng is missing" "$LADON" inspect "$tmp/noworker.h5"
mkdir "$tmp/empty"
all_tools "no checkpoint written yet" "$tmp/empty"
# predict: unknown task, OUTPUT == INPUT (the input stays intact), wrong feature count
expect_fail "has no task 'nope'" "$LADON" predict "$good" --task nope "$tmp/data/task000.h5" "$tmp/o.h5"
expect_fail "has no task 'nope'" "$LADON" eval "$good" --task nope
before=$(md5sum <"$tmp/data/task000.h5")
expect_fail "refusing" "$LADON" predict "$good" --task task000 "$tmp/data/task000.h5" \
  "$tmp/data/../data/task000.h5"
[ "$(md5sum <"$tmp/data/task000.h5")" = "$before" ] || fail "predict changed its input"
expect_fail "refusing" "$LADON" predict "$good" --task task000 "$tmp/data/task000.h5" "$good"
expect_fail "31 features" "$LADON" predict "$good" --task task000 "$tmp/narrow.h5" "$tmp/o.h5"
expect_fail "neither a ladon task file" "$LADON" predict "$good" --task task000 "$tmp/p.h5" "$tmp/o.h5"
ls "$tmp"/*.tmp.* 2>/dev/null && fail "predict left a temporary file"
echo "checkpoint tools: ok"
