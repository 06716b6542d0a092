#!/usr/bin/env bash
# Checkpoints and exact resume under bsp (docs/checkpoint.md):
#  1. a run of 2N steps, and a run killed (SIGKILL) right after its checkpoint at step N then
#     resumed with --resume, end with bit-identical trunk, heads, optimizer state and worker
#     state (Adam, top-k + int8 + error feedback, 2 servers, a task group of 2 workers);
#  2. a server killed while a checkpoint is being written leaves `latest` at the previous
#     checkpoint, which resumes to the same bit-identical result;
#  3. truncated, bit-flipped and mismatched checkpoints are refused with one clear message,
#     another compress section is taken with a warning saying what carries over, and nothing
#     in the checkpoint directory changes.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 3 1500
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/full, seed: 11}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {workers: 2}, task001: {weight: 0.5}, task002: {}}
train: {epochs: 2, batch_size: 32, optimizer: adam, lr: 0.003, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4}
compress: {codec: topk, ratio: 0.1, quant: int8}
checkpoint: {every_steps: 40, keep_last: 2}
YAML
np=7 # coordinator + 2 servers + 4 workers
run_mpi $np "$LADON" train "$tmp/c.yaml" 2>"$tmp/full.log" || { cat "$tmp/full.log"; fail "full run"; }
final=$(cat "$tmp/full/checkpoints/latest")
steps=${final#step-}
steps=$((10#${steps%.h5}))
[ "$steps" -gt 80 ] || fail "expected more than 80 steps, the final checkpoint is $final"
[ "$(ls "$tmp/full/checkpoints" | grep -c '^step-.*\.h5$')" -eq 2 ] || fail "keep_last 2 not kept"

# same_state A.h5 B.h5: every dataset of the model, optimizer and workers equal bit for bit
same_state() {
  for g in /trunk /heads /optimizer /workers; do
    h5diff -d 0 "$1" "$2" $g $g >"$tmp/h5diff.out" 2>&1 || { cat "$tmp/h5diff.out"; return 1; }
  done
}

# 1. killed right after the checkpoint of step 80, resumed
LDN_FAULT=kill-after-ckpt:0:80 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
  run.dir="$tmp/part" >"$tmp/part.log" 2>&1 && fail "the run with LDN_FAULT=kill-after-ckpt was not killed"
grep -q "kills itself at step 80" "$tmp/part.log" || { cat "$tmp/part.log"; fail "fault hook did not fire"; }
[ "$(cat "$tmp/part/checkpoints/latest")" = step-0000000080.h5 ] || fail "latest is not step 80"
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/part" --resume 2>"$tmp/resume.log" ||
  { cat "$tmp/resume.log"; fail "resume"; }
grep -q "resuming from .*step-0000000080.h5 (step 80 of $steps)" "$tmp/resume.log" ||
  fail "no resume line in the log"
cmp "$tmp/full/trunk.f32" "$tmp/part/trunk.f32" || fail "resumed trunk differs from the uninterrupted run"
same_state "$tmp/full/checkpoints/$final" "$tmp/part/checkpoints/$final" ||
  fail "resumed run's final checkpoint differs from the uninterrupted run's"
strip() { grep -o '"task":"[^"]*","step":[0-9]*,"epoch":[0-9.]*,"loss":[0-9.]*,"accuracy":[0-9.]*' "$1"; }
diff <(strip "$tmp/full/metrics.jsonl") <(strip "$tmp/part/metrics.jsonl") ||
  fail "test metrics of the resumed run differ"

# 2. a server (rank 2) killed in the middle of writing the checkpoint of step 80
LDN_FAULT=kill-in-ckpt:2:80 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
  run.dir="$tmp/mid" >"$tmp/mid.log" 2>&1 && fail "the run with LDN_FAULT=kill-in-ckpt was not killed"
[ "$(cat "$tmp/mid/checkpoints/latest")" = step-0000000040.h5 ] ||
  fail "latest moved to $(cat "$tmp/mid/checkpoints/latest") although step 80 was never completed"
[ ! -e "$tmp/mid/checkpoints/step-0000000080.h5" ] || fail "an incomplete checkpoint has the final name"
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/mid" --resume latest 2>"$tmp/mid2.log" ||
  { cat "$tmp/mid2.log"; fail "resume after the interrupted write"; }
cmp "$tmp/full/trunk.f32" "$tmp/mid/trunk.f32" || fail "trunk after resuming from step 40 differs"
same_state "$tmp/full/checkpoints/$final" "$tmp/mid/checkpoints/$final" ||
  fail "state after resuming from step 40 differs"
! ls "$tmp/mid/checkpoints" | grep -q '\.tmp$' || fail "a temporary checkpoint was left behind"

# 3. damaged and mismatched checkpoints
ck="$tmp/full/checkpoints/step-0000000080.h5"
before=$(md5sum "$tmp"/full/checkpoints/* | md5sum)
expect_refused() { # expect_refused WHAT PATTERN ARGS...: the resume fails with PATTERN in its output
  local what=$1 pat=$2
  shift 2
  if run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/bad" "$@" >"$tmp/bad.log" 2>&1; then
    fail "$what: resume succeeded"
  fi
  grep -q -- "$pat" "$tmp/bad.log" || { cat "$tmp/bad.log"; fail "$what: no message matching '$pat'"; }
  grep -m1 -- "$pat" "$tmp/bad.log" | sed "s|^|  $what: |"
}
[ -f "$ck" ] || fail "keep_last 2 removed $ck"
head -c $(($(stat -c %s "$ck") / 2)) "$ck" >"$tmp/trunc.h5"
expect_refused truncated "checkpoint $tmp/trunc.h5: cannot open as HDF5" --resume "$tmp/trunc.h5"
cp "$ck" "$tmp/flip.h5"
need_h5py
off=$("$PY" -c "import h5py,sys; print(h5py.File(sys.argv[1],'r')['/trunk/0/weight'].id.get_chunk_info(0).byte_offset + 100)" "$tmp/flip.h5")
"$PY" -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(int(sys.argv[2])); b = f.read(1); f.seek(int(sys.argv[2])); f.write(bytes([b[0] ^ 0x10]))" \
  "$tmp/flip.h5" "$off"
expect_refused bit-flip "/trunk/0/weight: checksum mismatch (Fletcher-32)" --resume "$tmp/flip.h5"
# Damaged metadata (the version byte of group /trunk/1's object header): rank 0 walks the
# file before the job starts and says so once, instead of each rank finding a "missing" layer.
cp "$ck" "$tmp/hdr.h5"
"$PY" -c "
import h5py, sys
a = h5py.h5o.get_info(h5py.File(sys.argv[1], 'r')['/trunk/1'].id).addr
f = open(sys.argv[1], 'r+b'); f.seek(a); b = f.read(1); f.seek(a); f.write(bytes([b[0] ^ 0x40]))" \
  "$tmp/hdr.h5"
expect_refused metadata "checkpoint $tmp/hdr.h5: cannot walk its objects (damaged file?)" \
  --resume "$tmp/hdr.h5"
! grep -q "is missing" "$tmp/bad.log" || fail "metadata: a rank went on to read the damaged file"
expect_refused "other trunk" "model.trunk is \[48, 32\] in the checkpoint, \[64, 32\] in the config" \
  'model.trunk=[64, 32]' --resume "$ck"
# The compress section may change: what both settings keep carries over, the rest starts
# afresh, and rank 0 says which.
resumes() { # resumes WHAT PATTERN ARGS...: the resume completes and its log has PATTERN
  local what=$1 pat=$2
  shift 2
  rm -rf "$tmp/other"
  run_mpi "${NP:-$np}" "$LADON" train "$tmp/c.yaml" run.dir="$tmp/other" "$@" >"$tmp/other.log" 2>&1 ||
    { cat "$tmp/other.log"; fail "$what: resume failed"; }
  grep -q -- "$pat" "$tmp/other.log" || { cat "$tmp/other.log"; fail "$what: no '$pat'"; }
  grep -m1 -- "$pat" "$tmp/other.log" | sed "s|^|  $what: |"
  [ "$(cat "$tmp/other/checkpoints/latest")" = "$final" ] || fail "$what: did not train to the end"
}
resumes "to dense" "this job has dense/fp32: the workers' error-feedback residuals (what they had not sent yet) are dropped" \
  compress.codec=dense compress.quant=fp32 --resume "$ck"
resumes "to sign" "this job has topk/sign + error feedback: the workers' state carries over" \
  compress.quant=sign --resume "$ck"
# Another worker layout (3 workers instead of 4): the model and optimizer carry over, the
# workers start new passes over their shards.
NP=6 resumes "3 workers" "holds the state of 4 workers, this job has 3" \
  tasks.task000.workers=1 --resume "$ck"
expect_refused "nothing left" "nothing left to train" --resume "$tmp/full/checkpoints/$final"
expect_refused "no checkpoint" "no checkpoint written yet" --resume latest
echo "junk" >"$tmp/junk.h5"
expect_refused "not HDF5" "checkpoint $tmp/junk.h5: cannot open as HDF5" --resume "$tmp/junk.h5"
[ "$before" = "$(md5sum "$tmp"/full/checkpoints/* | md5sum)" ] || fail "the checkpoint directory changed"
# 4. by time, and under ssp/async (servers join once every worker's pushes up to the step
#    are in): the runs finish, checkpoints appear, a resume completes.
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/time" checkpoint.every_steps=0 \
  checkpoint.every_minutes=0.00001 checkpoint.keep_last=100 train.log_every=20 2>"$tmp/time.log" ||
  { cat "$tmp/time.log"; fail "every_minutes run"; }
n=$(ls "$tmp/time/checkpoints" | grep -c '^step-.*\.h5$')
[ "$n" -ge 4 ] || fail "checkpoint.every_minutes: only $n checkpoints"
for mode in ssp async; do
  LDN_FAULT=kill-after-ckpt:0:40 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
    run.dir="$tmp/$mode" ps.consistency=$mode >"$tmp/$mode.log" 2>&1 && fail "$mode run was not killed"
  run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/$mode" ps.consistency=$mode --resume \
    2>"$tmp/$mode.log" || { cat "$tmp/$mode.log"; fail "$mode resume"; }
  grep -q "resuming from .*step-0000000040.h5" "$tmp/$mode.log" || fail "$mode: no resume from step 40"
  for t in task000 task001 task002; do
    a=$(last_acc "$tmp/$mode" $t)
    awk -v a="$a" 'BEGIN { exit !(a > 0.5) }' || fail "$mode resumed: $t accuracy $a"
  done
done
echo "checkpoints and exact resume: ok"
