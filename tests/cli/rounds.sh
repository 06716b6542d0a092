#!/usr/bin/env bash
# Integration: a local run with rounds. Two label rounds with different seeds, a distillation
# round into a narrower student from both, and a round that starts from the student (init):
# every round's directory, snapshot and metrics; the run's metrics.jsonl names the round of
# each record; the teacher's report; the distillation term changes the student (alpha 0 does
# not give the same weights); a run killed after a mid-round checkpoint of the distillation
# round and resumed ends with the uninterrupted run's weights, bit for bit; bad members are one
# clear error before anything trains.
set -euo pipefail
ladon=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$ladon" data synth "$tmp/data" --tasks 2 --features 32 --rank 4 --classes 4 --train 3000 \
  --test 1000 --relatedness 0.9 --seed 3 >/dev/null
cat > "$tmp/c.yaml" <<YAML
run: {name: kd, dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64]}
tasks: {task000: {}, task001: {}}
train: {batch_size: 64, lr: 0.05, momentum: 0.9, log_every: 50}
checkpoint: {keep_last: 10}
prune: {sparsity: 0.75, start: 20, end: 150, every: 10, rounds: [student]}
rounds:
  - {name: m1, steps: 60, seed: 7}
  - {name: m2, steps: 60, seed: 8}
  - name: student
    trunk: [16]
    steps: 200
    teacher: {members: [m1, m2], temperature: 2, alpha: 0.7, annealing: linear}
  - {name: tune, init: student, trunk: [16], steps: 50}
YAML
fail() { echo "rounds: $*"; exit 1; }
"$ladon" train --local "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "the run failed"; }
for r in m1 m2 student tune; do
  test -s "$tmp/run/rounds/$r/trunk.f32" || fail "round $r has no trunk.f32"
  test -s "$tmp/run/rounds/$r/checkpoints/latest" || fail "round $r has no snapshot"
  grep -q "\"round\":\"$r\"" "$tmp/run/metrics.jsonl" || fail "no metrics of round $r in the run's metrics.jsonl"
  grep -q "\"round\":\"$r\"" "$tmp/run/rounds/$r/metrics.jsonl" || fail "round $r's metrics lack its name"
done
# the student's trunk is 32*16+16 floats
[ "$(stat -c %s "$tmp/run/rounds/student/trunk.f32")" -eq $(((32 * 16 + 16) * 4)) ] ||
  fail "the student's trunk has the wrong size"
grep -q "teacher on task000: ensemble" "$tmp/log" || fail "no teacher report"
grep -q "round tune: starts from round student" "$tmp/log" || fail "init not reported"
# prune.rounds: the student is pruned during its round (to 0.75), the members are not
"$ladon" inspect "$tmp/run/rounds/student" >"$tmp/ins_s" 2>&1 || fail "inspect student"
grep -q "^pruning      sparsity 0\.75" "$tmp/ins_s" || { cat "$tmp/ins_s"; fail "the student is not pruned to 0.75"; }
"$ladon" inspect "$tmp/run/rounds/m1" | grep -q "^pruning" && fail "round m1 was pruned"
# init_id: tune's checkpoints record the identity of the student's snapshot it started from
# (recomputed from the snapshot's weights without ladon); m1 and m2 (other seeds) differ
PY=""
for p in python3 /usr/bin/python3; do "$p" -c 'import h5py, numpy' 2>/dev/null && { PY=$p; break; }; done
[ -n "$PY" ] || fail "needs python3 with h5py and numpy (launch/setup-deps installs them)"
ids="$(dirname "$0")/../tools/init_id.py"
snap() { echo "$tmp/$1/rounds/$2/checkpoints/$(cat "$tmp/$1/rounds/$2/checkpoints/latest")"; }
want=$("$PY" "$ids" weights "$(snap run student)" task000 task001)
got=$("$PY" "$ids" recorded "$(snap run tune)")
[ "$got" = "$want" ] || fail "tune's init_id $got is not the student snapshot's weights' $want"
[ "$("$PY" "$ids" recorded "$(snap run m1)")" != "$("$PY" "$ids" recorded "$(snap run m2)")" ] ||
  fail "rounds of different seeds record the same init_id"
grep -q '"teacher_agreement"' "$tmp/run/rounds/student/metrics.jsonl" || fail "no agreement in metrics"
grep -q "round student (3/4) .*alpha" "$tmp/log" || fail "the progress line lacks the round"
# the distillation term has an effect
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run0" rounds.student.teacher.alpha=0 \
  rounds.student.teacher.annealing=none 2>/dev/null || fail "alpha 0 run failed"
cmp -s "$tmp/run/rounds/student/trunk.f32" "$tmp/run0/rounds/student/trunk.f32" &&
  fail "distilled and label-only students are the same"
# inputs: all (every head also learns the teacher on the other task's rows) changes the
# student; soft targets computed per batch (teacher.cache_mb: 0) give a student as good
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/runall" rounds.student.teacher.inputs=all \
  2>"$tmp/logall" || { cat "$tmp/logall"; fail "inputs: all run failed"; }
grep -q "teacher.inputs: all" "$tmp/logall" || fail "inputs: all not reported"
cmp -s "$tmp/run/rounds/student/trunk.f32" "$tmp/runall/rounds/student/trunk.f32" &&
  fail "inputs: all and own gave the same student"
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/runpb" rounds.student.teacher.cache_mb=0 \
  2>"$tmp/logpb" || { cat "$tmp/logpb"; fail "per-batch run failed"; }
grep -q "computed per batch" "$tmp/logpb" || fail "per-batch targets not reported"
a=$(grep '"task":"task000"' "$tmp/run/rounds/student/metrics.jsonl" | tail -n 1 | sed 's/.*"accuracy":\([0-9.]*\).*/\1/')
b=$(grep '"task":"task000"' "$tmp/runpb/rounds/student/metrics.jsonl" | tail -n 1 | sed 's/.*"accuracy":\([0-9.]*\).*/\1/')
awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(d < 0.01 && d > -0.01) }' ||
  fail "per-batch targets: accuracy $b against cached $a"
# killed after the student's checkpoint at step 100 (the members end at 60), then resumed
LDN_FAULT=kill-after-ckpt:0:100 "$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run3" \
  checkpoint.every_steps=100 2>/dev/null && fail "the faulted run was not killed"
[ "$(cat "$tmp/run3/rounds/student/checkpoints/latest")" = step-0000000100.h5 ] ||
  fail "the student's latest is not step 100"
test -e "$tmp/run3/rounds/tune" && fail "round tune started before the kill"
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/run3" checkpoint.every_steps=100 --resume \
  2>"$tmp/log3" || { cat "$tmp/log3"; fail "resume failed"; }
grep -q "round m1 (1/4): done" "$tmp/log3" || fail "round m1 was not skipped"
grep -q "resuming from .*rounds/student/checkpoints/step-0000000100.h5" "$tmp/log3" ||
  fail "no resume line"
for r in student tune; do
  cmp "$tmp/run/rounds/$r/trunk.f32" "$tmp/run3/rounds/$r/trunk.f32" || fail "resumed $r differs"
  [ "$("$PY" "$ids" recorded "$(snap run $r)")" = "$("$PY" "$ids" recorded "$(snap run3 $r)")" ] ||
    fail "the resumed round $r records another init_id"
done
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/none" --resume 2>"$tmp/err" &&
  fail "resuming nothing succeeded"
grep -q "no round of .* has a checkpoint yet" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
# a member checkpoint that does not exist: one error naming round and member, nothing trained
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/bad" \
  'rounds.student.teacher.members=[m1, /nonexistent/x.h5]' 2>"$tmp/err" && fail "a missing member was accepted"
grep -q "rounds.student.teacher: member '/nonexistent/x.h5'" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
test -e "$tmp/bad/rounds/m1/trunk.f32" && fail "a round trained before the member was checked"
# a member with other tasks, and one with another input width: refused before anything trains
"$ladon" data synth "$tmp/data16" --tasks 2 --features 16 --rank 4 --classes 4 --train 500 \
  --test 100 --seed 3 >/dev/null
printf 'run: {dir: %s}\ndata: {dir: %s}\nmodel: {trunk: [8]}\ntasks: {task000: {}}\ntrain: {epochs: 1}\n' \
  "$tmp/one" "$tmp/data" >"$tmp/one.yaml"
"$ladon" train --local "$tmp/one.yaml" 2>/dev/null || fail "the one-task run failed"
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/bad2" "rounds.student.teacher.members=[m1, $tmp/one]" \
  2>"$tmp/err" && fail "a member without every task was accepted"
grep -q "rounds.student.teacher: member '$tmp/one': .* has no head for task 'task001'" "$tmp/err" ||
  { cat "$tmp/err"; fail "wrong error for a member without a task"; }
sed "s|dir: $tmp/data}|dir: $tmp/data16}|; s|dir: $tmp/one}|dir: $tmp/w16}|" "$tmp/one.yaml" >"$tmp/w16.yaml"
printf 'tasks: {task000: {}, task001: {}}\n' >>"$tmp/w16.yaml"
sed -i '/^tasks: {task000: {}}$/d' "$tmp/w16.yaml"
"$ladon" train --local "$tmp/w16.yaml" 2>/dev/null || fail "the 16-feature run failed"
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/bad3" "rounds.student.teacher.members=[m1, $tmp/w16]" \
  2>"$tmp/err" && fail "a member of another input width was accepted"
grep -q "takes 16 input features, task 'task000' .* has 32" "$tmp/err" ||
  { cat "$tmp/err"; fail "wrong error for a member of another width"; }
test -e "$tmp/bad3/rounds/m1/trunk.f32" && fail "a round trained before the member was checked"
echo "rounds: ok"
