#!/usr/bin/env bash
# Checkpoint contents and run directories (issue 14), local and under mpirun:
#  1. a NaN or infinite weight with valid checksums (rewritten through HDF5) is refused by
#     --resume (local and distributed) and by inspect, eval and predict, with one line naming
#     the file and the element; a negative update count (trunk, head) is refused the same way
#     (no assertion, no server waiting for a timeout); a stored trunk too large to build is
#     refused naming model.trunk before anything is allocated;
#  2. a fresh run into a run.dir holding an earlier run's checkpoints refuses (local and
#     distributed) and leaves them as they were; --overwrite deletes them and says so;
#     --resume continues.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py
synth "$tmp/data" 2 600
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 7}
data: {dir: $tmp/data}
model: {trunk: [24, 16]}
tasks: {task000: {}, task001: {head: [8]}}
train: {epochs: 3, batch_size: 32, optimizer: adam, lr: 0.003, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 20, chunk_kb: 4}
checkpoint: {every_steps: 20, keep_last: 10}
YAML
"$LADON" train --local "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "local run"; }
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/dist" 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "distributed run"; }
lck="$tmp/run/checkpoints/step-0000000020.h5"
dck="$tmp/dist/checkpoints/step-0000000020.h5"
[ -f "$lck" ] && [ -f "$dck" ] || fail "no checkpoints at step 20"

# poke SRC DST DATASET INDEX VALUE: DST = SRC with DATASET[INDEX] = VALUE (checksums rewritten)
poke() {
  cp "$1" "$2"
  "$PY" - "$2" "$3" "$4" "$5" <<'PY'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    d = f[sys.argv[2]]
    a = d[...]
    idx = tuple(int(i) for i in sys.argv[3].split(","))
    a[idx] = float(sys.argv[4]) if a.dtype.kind == "f" else int(sys.argv[4])
    d[...] = a
PY
}
expect_fail() { # expect_fail WORDS CMD...: exit 1 with one stderr line containing WORDS
  local words=$1
  shift
  local rc=0
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/err"; fail "exit $rc, not 1: $*"; }
  grep -v '^[0-9:.]* \[' "$tmp/err" >"$tmp/err1" || true # the log lines before it
  [ "$(wc -l <"$tmp/err1")" = 1 ] || { cat "$tmp/err"; fail "not one error line: $*"; }
  grep -qF -- "$words" "$tmp/err1" || { cat "$tmp/err"; fail "no '$words' in the message: $*"; }
}
resume_local() { # resume_local WORDS CKPT
  expect_fail "$1" "$LADON" train --local "$tmp/c.yaml" run.dir="$tmp/r-local" --resume "$2"
}
resume_dist() { # resume_dist WORDS CKPT: the job fails quickly, the message names CKPT
  local t0=$SECONDS rc=0
  run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/r-dist" --resume "$2" >"$tmp/dlog" 2>&1 ||
    rc=$?
  [ "$rc" != 0 ] || fail "distributed resume from $2 succeeded"
  grep -qF -- "$1" "$tmp/dlog" || { cat "$tmp/dlog"; fail "no '$1' in the job's output"; }
  [ $((SECONDS - t0)) -lt 15 ] || fail "the job took $((SECONDS - t0)) s to refuse $2"
  ! grep -q "timeout\|waited" "$tmp/dlog" || { cat "$tmp/dlog"; fail "a rank timed out on $2"; }
}
tools() { # tools WORDS CKPT: inspect, eval and predict refuse CKPT
  expect_fail "$1" "$LADON" inspect "$2"
  expect_fail "$1" "$LADON" eval "$2"
  expect_fail "$1" "$LADON" predict "$2" --task task000 "$tmp/data/task000.h5" "$tmp/p.h5"
  [ ! -e "$tmp/p.h5" ] || fail "predict wrote output from $2"
}

# 1. contents
poke "$lck" "$tmp/nan.h5" /trunk/1/weight 3,5 nan
resume_local "checkpoint $tmp/nan.h5: /trunk/1/weight[3, 5] is NaN" "$tmp/nan.h5"
tools "checkpoint $tmp/nan.h5: /trunk/1/weight[3, 5] is NaN" "$tmp/nan.h5"
poke "$lck" "$tmp/inf.h5" /heads/task001/0/bias 2 inf
resume_local "checkpoint $tmp/inf.h5: /heads/task001/0/bias[2] is +infinity" "$tmp/inf.h5"
tools "/heads/task001/0/bias[2] is +infinity" "$tmp/inf.h5"
poke "$lck" "$tmp/m.h5" /optimizer/v/trunk/0/weight 0,0 -inf
resume_local "checkpoint $tmp/m.h5: /optimizer/v/trunk/0/weight[0, 0] is -infinity" "$tmp/m.h5"
expect_fail "/optimizer/v/trunk/0/weight[0, 0] is -infinity" "$LADON" inspect "$tmp/m.h5"
poke "$lck" "$tmp/t.h5" /optimizer/trunk_updates 0 -5
resume_local "checkpoint $tmp/t.h5: /optimizer/trunk_updates[0] is -5" "$tmp/t.h5"
poke "$lck" "$tmp/th.h5" /optimizer/t/heads/task000 0 -1
resume_local "checkpoint $tmp/th.h5: /optimizer/t/heads/task000[0] is -1" "$tmp/th.h5"
# distributed: the servers read the trunk and its update counts, the workers the heads
poke "$dck" "$tmp/dnan.h5" /trunk/0/weight 7,1 nan
resume_dist "checkpoint $tmp/dnan.h5: /trunk/0/weight[7, 1] is NaN" "$tmp/dnan.h5"
poke "$dck" "$tmp/dt.h5" /optimizer/trunk_updates 1 -3
resume_dist "checkpoint $tmp/dt.h5: /optimizer/trunk_updates[1] is -3" "$tmp/dt.h5"
poke "$dck" "$tmp/dth.h5" /optimizer/t/heads/task001 0 -2
resume_dist "checkpoint $tmp/dth.h5: /optimizer/t/heads/task001[0] is -2" "$tmp/dth.h5"
# a stored trunk within the config's per-width bound whose product is not
cp "$lck" "$tmp/big.h5"
"$PY" - "$tmp/big.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    c = f.attrs["config"]
    c = (c.decode() if isinstance(c, bytes) else c).replace("[24, 16]", "[1000000, 1000000]")
    f.attrs["config"] = c
PY
tools "checkpoint $tmp/big.h5: stored config: model.trunk [1000000, 1000000]" "$tmp/big.h5"

# 2. a fresh run into a used run.dir
before=$(md5sum "$tmp"/run/checkpoints/* | md5sum)
expect_fail "run.dir $tmp/run already holds an earlier run's checkpoints" \
  "$LADON" train --local "$tmp/c.yaml"
grep -qF -- "--resume" "$tmp/err1" && grep -qF -- "--overwrite" "$tmp/err1" ||
  fail "the refusal does not offer --resume and --overwrite"
[ "$before" = "$(md5sum "$tmp"/run/checkpoints/* | md5sum)" ] || fail "the refused run changed the checkpoints"
dbefore=$(md5sum "$tmp"/dist/checkpoints/* | md5sum)
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/dist" >"$tmp/dlog" 2>&1 &&
  fail "a fresh distributed run into a used run.dir started"
grep -qF "run.dir $tmp/dist already holds an earlier run's checkpoints" "$tmp/dlog" ||
  { cat "$tmp/dlog"; fail "distributed: no refusal message"; }
! grep -q MPI_ABORT "$tmp/dlog" || fail "distributed: the refusal aborted the job instead of ending it"
[ "$dbefore" = "$(md5sum "$tmp"/dist/checkpoints/* | md5sum)" ] || fail "the refused job changed the checkpoints"
# rounds: a round's checkpoints count too
cat >"$tmp/r.yaml" <<YAML
run: {dir: $tmp/rounds, seed: 7}
data: {dir: $tmp/data}
model: {trunk: [16]}
tasks: {task000: {}, task001: {}}
train: {epochs: 1, batch_size: 32, lr: 0.05, log_every: 0}
rounds:
  - {name: a, steps: 20}
  - {name: b, steps: 20, teacher: {members: [a]}}
YAML
"$LADON" train --local "$tmp/r.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "run with rounds"; }
expect_fail "checkpoints (2 files in $tmp/rounds/rounds/a/checkpoints, latest step-0000000020.h5)" "$LADON" train --local "$tmp/r.yaml"
"$LADON" train --local "$tmp/r.yaml" --overwrite 2>"$tmp/log" || { cat "$tmp/log"; fail "rounds --overwrite"; }
grep -q "overwrite: deleted .* from $tmp/rounds/rounds/b/checkpoints" "$tmp/log" || fail "rounds: no deletion warning"
# --overwrite starts over; --resume and a new run.dir go on as before
"$LADON" train --local "$tmp/c.yaml" --overwrite 2>"$tmp/log" || { cat "$tmp/log"; fail "--overwrite"; }
grep -q "warning: --overwrite: deleted [0-9]* checkpoint files of an earlier run from $tmp/run/checkpoints (latest was step-" "$tmp/log" ||
  { cat "$tmp/log"; fail "--overwrite did not say what it deleted"; }
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/dist" run.overwrite=true >"$tmp/dlog" 2>&1 ||
  { cat "$tmp/dlog"; fail "distributed run.overwrite=true"; }
grep -q "overwrite: deleted" "$tmp/dlog" || fail "distributed overwrite: no warning"
expect_fail "nothing left to train" "$LADON" train --local "$tmp/c.yaml" --resume
echo "checkpoint contents and run directories: ok"
