#!/usr/bin/env bash
# Distillation rounds under mpirun (2 servers, top-k + int8 compressed pushes, bsp, a task
# group of 2 workers): two label rounds with different seeds, a distillation round from both
# into a narrower student with teacher.inputs: all, and a round that starts from the student
# (init). Every round's snapshot, trunk.f32 and metrics (the run's metrics.jsonl names the round
# of each record); the servers hold the student's key ranges; the coordinator reports the
# teacher ensemble's and each member's accuracy; the distillation term changes the student; a
# run killed after a mid-round checkpoint of the distillation round and resumed ends with the
# uninterrupted run's weights bit for bit; a missing member is one clear error before anything
# trains.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 1500
cat >"$tmp/c.yaml" <<YAML
run: {name: kd, dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {workers: 2}, task001: {}}
train: {batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 50}
ps: {servers: 2, consistency: bsp, timeout: 60, chunk_kb: 4}
compress: {codec: topk, ratio: 0.1, quant: int8}
checkpoint: {every_steps: 100, keep_last: 5}
prune: {sparsity: 0.75, start: 20, end: 150, every: 10, rounds: [student]}
rounds:
  - {name: m1, steps: 60, seed: 7}
  - {name: m2, steps: 60, seed: 8}
  - name: student
    trunk: [16]
    steps: 200
    teacher: {members: [m1, m2], temperature: 2, alpha: 0.7, annealing: linear, inputs: all}
  - {name: tune, init: student, trunk: [16], steps: 50}
YAML
np=6 # coordinator + 2 servers + 3 workers
run_mpi $np "$LADON" train "$tmp/c.yaml" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "the run failed"; }
for r in m1 m2 student tune; do
  test -s "$tmp/run/rounds/$r/trunk.f32" || fail "round $r has no trunk.f32"
  test -s "$tmp/run/rounds/$r/checkpoints/latest" || fail "round $r has no snapshot"
  grep -q "\"round\":\"$r\"" "$tmp/run/metrics.jsonl" || fail "no metrics of round $r in the run's metrics.jsonl"
  grep -q "\"round\":\"$r\"" "$tmp/run/rounds/$r/metrics.jsonl" || fail "round $r's metrics lack its name"
done
# the student's trunk is 32*16+16 floats, split over the two servers
[ "$(stat -c %s "$tmp/run/rounds/student/trunk.f32")" -eq $(((32 * 16 + 16) * 4)) ] ||
  fail "the student's trunk has the wrong size"
grep -q "trunk: 528 parameters over 2 servers" "$tmp/log" || fail "the servers do not hold the student's trunk"
grep -q "server rank 2: keys \[264, 528)" "$tmp/log" || fail "the student's key ranges are not re-partitioned"
grep -q "round student: teacher on task000: ensemble .*(m1 .*, m2 .*) over 400 test rows" "$tmp/log" ||
  fail "no teacher report"
grep -q "teacher.inputs: all: each step also trains its head" "$tmp/log" || fail "inputs: all not reported"
grep -q "round student (3/4) | .* alpha .* agree .* kl " "$tmp/log" || fail "the progress line lacks the round"
grep -q '"teacher_agreement":0\.[0-9]' "$tmp/run/rounds/student/metrics.jsonl" || fail "no agreement in metrics"
grep -q "round tune: starts from round student" "$tmp/log" || fail "init not reported"
# prune.rounds: the student is pruned during its round (to 0.75), the members are not
"$LADON" inspect "$tmp/run/rounds/student" >"$tmp/ins_s" 2>&1 || fail "inspect student"
grep -q "^pruning      sparsity 0\.75" "$tmp/ins_s" || { cat "$tmp/ins_s"; fail "the student is not pruned to 0.75"; }
"$LADON" inspect "$tmp/run/rounds/m1" | grep -q "^pruning" && fail "round m1 was pruned"
# tune's checkpoints record the identity of the student snapshot's weights (init_id,
# recomputed without ladon): rank 0 takes it from the snapshot, every rank writes it
need_h5py
ids="$SRC/tests/tools/init_id.py"
snap() { echo "$tmp/$1/rounds/$2/checkpoints/$(cat "$tmp/$1/rounds/$2/checkpoints/latest")"; }
[ "$("$PY" "$ids" recorded "$(snap run tune)")" = "$("$PY" "$ids" weights "$(snap run student)" task000 task001)" ] ||
  fail "tune's init_id is not the student snapshot's"
# the snapshot of the student records its round (3)
"$BUILD/ladon" inspect "$tmp/run/rounds/student" >"$tmp/inspect" 2>&1 || { cat "$tmp/inspect"; fail "inspect"; }
grep -qi "round.*3" "$tmp/inspect" || { cat "$tmp/inspect"; fail "inspect does not show round 3"; }

# the distillation term has an effect (alpha 0, no annealing: labels only)
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/run0" rounds.student.teacher.alpha=0 \
  rounds.student.teacher.annealing=none >"$tmp/log0" 2>&1 || { cat "$tmp/log0"; fail "alpha 0 run"; }
cmp -s "$tmp/run/rounds/student/trunk.f32" "$tmp/run0/rounds/student/trunk.f32" &&
  fail "distilled and label-only students are the same"
cmp "$tmp/run/rounds/m1/trunk.f32" "$tmp/run0/rounds/m1/trunk.f32" || fail "the same member round differs"

# killed after the student's checkpoint at step 100, then resumed: bit for bit
LDN_FAULT=kill-after-ckpt:0:100 run_mpi $np -x LDN_FAULT "$LADON" train "$tmp/c.yaml" \
  run.dir="$tmp/run3" >"$tmp/log3a" 2>&1 && fail "the faulted run was not killed"
[ "$(cat "$tmp/run3/rounds/student/checkpoints/latest")" = step-0000000100.h5 ] ||
  { cat "$tmp/log3a"; fail "the student's latest is not step 100"; }
test -e "$tmp/run3/rounds/tune" && fail "round tune started before the kill"
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/run3" --resume >"$tmp/log3" 2>&1 ||
  { cat "$tmp/log3"; fail "resume failed"; }
grep -q "round m2 (2/4): done" "$tmp/log3" || fail "round m2 was not skipped"
grep -q "resuming from .*rounds/student/checkpoints/step-0000000100.h5" "$tmp/log3" ||
  fail "no resume line"
for r in student tune; do
  cmp "$tmp/run/rounds/$r/trunk.f32" "$tmp/run3/rounds/$r/trunk.f32" || fail "resumed $r differs"
done
for g in /trunk /heads; do
  h5diff -d 0 "$tmp/run/rounds/tune/checkpoints/step-0000000050.h5" \
    "$tmp/run3/rounds/tune/checkpoints/step-0000000050.h5" $g $g >"$tmp/h5diff" 2>&1 ||
    { cat "$tmp/h5diff"; fail "resumed run's final $g differs"; }
done

# a member that does not exist: one error naming round and member, nothing trained
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/bad" \
  'rounds.student.teacher.members=[m1, /nonexistent/x.h5]' >"$tmp/err" 2>&1 && fail "a missing member was accepted"
grep -q "rounds.student.teacher: member '/nonexistent/x.h5'" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
test -e "$tmp/bad/rounds/m1/trunk.f32" && fail "a round trained before the member was checked"
echo "mpi rounds: ok"
