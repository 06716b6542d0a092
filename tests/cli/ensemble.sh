#!/usr/bin/env bash
# `ladon eval A B ...` evaluates the ensemble of several checkpoints, and `ladon inspect` shows
# a round snapshot's round and its run's round list. A local run with rounds gives two members
# trained with different seeds (m1, m2) and a student distilled from both; small runs without
# rounds give members that disagree (other tasks, other classes, other input width).
# Checked: each member's column equals `ladon eval` of that member alone; the ensemble's
# accuracy and loss equal a recomputation from the checkpoints' weights with h5py and numpy
# (skipped with a message when python3 lacks them); tasks in another order are matched by name;
# --task and --data; each disagreement is one line naming both checkpoints, exit 1, nothing on
# stdout; inspect shows the round, the round list with the teacher, only the round when the
# run's config is not beside the file or no longer matches, and nothing new without rounds.
# Args: ladon binary, source dir.
set -euo pipefail
ladon=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OPENBLAS_NUM_THREADS=1
fail() { echo "ensemble: FAIL: $*"; exit 1; }

synth() { # synth DIR CLASSES FEATURES
  "$ladon" data synth "$1" --tasks 2 --features "$3" --rank 4 --classes "$2" --train 1500 \
    --test 500 --relatedness 0.9 --seed 3 >/dev/null
}
synth "$tmp/d" 4 32
synth "$tmp/d3" 3 32
synth "$tmp/d16" 4 16
cat >"$tmp/kd.yaml" <<YAML
run: {name: kd, dir: $tmp/run, seed: 5}
data: {dir: $tmp/d}
model: {trunk: [32]}
tasks: {task000: {}, task001: {}}
train: {batch_size: 64, lr: 0.05, momentum: 0.9, log_every: 0}
rounds:
  - {name: m1, steps: 60, seed: 7}
  - {name: m2, steps: 60, seed: 8}
  - name: student
    trunk: [16]
    steps: 40
    teacher: {members: [m1, m2], temperature: 2, alpha: 0.7, annealing: linear}
YAML
"$ladon" train --local "$tmp/kd.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "the run with rounds"; }
plain() { # plain NAME DATA TASKS: a short run without rounds
  cat >"$tmp/$1.yaml" <<YAML
run: {name: $1, dir: $tmp/$1, seed: 9}
data: {dir: $2}
model: {trunk: [32]}
tasks: $3
train: {epochs: 1, steps_per_epoch: 20, batch_size: 64, lr: 0.05, log_every: 0}
YAML
  "$ladon" train --local "$tmp/$1.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "run $1"; }
}
plain one "$tmp/d" "{task000: {}}"
plain swap "$tmp/d" "{task001: {}, task000: {}}"
plain c3 "$tmp/d3" "{task000: {}, task001: {}}"
plain f16 "$tmp/d16" "{task000: {}, task001: {}}"
m1=$tmp/run/rounds/m1 m2=$tmp/run/rounds/m2 st=$tmp/run/rounds/student

# value BLOCK TASK COLUMN FILE: the field COLUMN (3 = [1]) of TASK's row in the accuracy or
# loss block of an ensemble table
value() {
  awk -v b="$1" -v t="$2" -v c="$3" '$1 == "accuracy" || $1 == "loss" { s = $1; next }
    s == b && $1 == t { print $c }' "$4"
}

# --- an ensemble of two members with different seeds
"$ladon" eval "$m1" "$m2" >"$tmp/ens" || fail "eval of two checkpoints"
cat "$tmp/ens"
grep -q "^ensemble of 2 checkpoints" "$tmp/ens" || fail "no ensemble header"
grep -q "^  \[1\] .*/rounds/m1/checkpoints/step-0000000060.h5: step 60 of 60, .*round 1 (m1)$" \
  "$tmp/ens" || fail "member [1] line"
grep -q "^  \[2\] .*/rounds/m2/checkpoints/step-0000000060.h5: step 60 of 60, .*round 2 (m2)$" \
  "$tmp/ens" || fail "member [2] line"
grep -q "^accuracy  *test rows  *\[1\]  *\[2\]  *ensemble$" "$tmp/ens" || fail "accuracy header"
grep -q "^loss  *test rows  *\[1\]  *\[2\]  *ensemble$" "$tmp/ens" || fail "loss header"
k=3
for m in "$m1" "$m2"; do # each member's column is that member's own eval
  "$ladon" eval "$m" >"$tmp/single"
  for t in task000 task001; do
    want_a=$(awk -v t=$t '$1 == t { print $3 }' "$tmp/single")
    want_l=$(awk -v t=$t '$1 == t { print $4 }' "$tmp/single")
    [ -n "$want_a" ] && [ "$(value accuracy $t $k "$tmp/ens")" = "$want_a" ] ||
      fail "accuracy of $t in column $((k - 2)): $(value accuracy $t $k "$tmp/ens"), alone $want_a"
    [ "$(value loss $t $k "$tmp/ens")" = "$want_l" ] ||
      fail "loss of $t in column $((k - 2)): $(value loss $t $k "$tmp/ens"), alone $want_l"
  done
  k=$((k + 1))
done
for t in task000 task001; do
  [ "$(value accuracy $t 2 "$tmp/ens")" = 500 ] || fail "test rows of $t"
done

PY=""
for p in python3 /usr/bin/python3; do
  if "$p" -c 'import h5py, numpy' 2>/dev/null; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
  for t in task000 task001; do
    "$PY" - "$src/tests/interop" "$tmp/d/$t.h5" $t "$(value accuracy $t 5 "$tmp/ens")" \
      "$(value loss $t 5 "$tmp/ens")" "$m1" "$m2" <<'PY' || fail "ensemble of $t recomputed"
import sys
sys.path.insert(0, sys.argv[1])
import h5py, numpy as np
from ckpt_h5py import forward, load_checkpoint, softmax
data, task, acc, loss = sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
with h5py.File(data, "r") as d:
    x = d["test/x"][...] * float(d.attrs.get("x_scale", 1.0))
    y = d["test/y"][...]
p = np.mean([softmax(forward(load_checkpoint(m), task, x)) for m in sys.argv[6:]], axis=0)
want_acc = float(np.mean(p.argmax(axis=1) == y))
want_loss = float(np.mean(-np.log(p[np.arange(len(y)), y])))
top2 = np.sort(p, axis=1)[:, -2:]
near_ties = int(np.sum(top2[:, 1] - top2[:, 0] < 1e-6))  # float32 forward may pick either
print(f"{task}: ensemble accuracy {acc} (numpy {want_acc:.6f}, {near_ties} near ties), "
      f"loss {loss} (numpy {want_loss:.6f})")
assert abs(acc - want_acc) * len(y) <= near_ties + 0.01, (acc, want_acc)
assert abs(loss - want_loss) <= 1e-4 * max(1.0, want_loss), (loss, want_loss)
PY
  done
else
  echo "ensemble: SKIP the recomputation of the ensemble with numpy: no python3 with h5py and numpy"
fi

# tasks in another order are matched by name: the swapped run's column is its own eval
"$ladon" eval "$m1" "$tmp/swap" >"$tmp/ens2" || fail "eval with tasks in another order"
"$ladon" eval "$tmp/swap" >"$tmp/single"
for t in task000 task001; do
  want=$(awk -v t=$t '$1 == t { print $3 }' "$tmp/single")
  [ -n "$want" ] && [ "$(value accuracy $t 4 "$tmp/ens2")" = "$want" ] ||
    { cat "$tmp/ens2"; fail "the swapped member's $t: $(value accuracy $t 4 "$tmp/ens2"), alone $want"; }
done
# --task and --data: one row in each block
"$ladon" eval "$m1" "$m2" --task task001 --data "$tmp/d" >"$tmp/ens3" || fail "eval --task --data"
[ "$(grep -c '^task0' "$tmp/ens3")" = 2 ] && [ "$(grep -c '^task001 ' "$tmp/ens3")" = 2 ] ||
  { cat "$tmp/ens3"; fail "--task task001: not one row per block"; }
[ "$(value accuracy task001 5 "$tmp/ens3")" = "$(value accuracy task001 5 "$tmp/ens")" ] ||
  fail "--task task001 gives another ensemble accuracy"

# --- members that disagree: one line naming both, exit 1, nothing printed
expect_fail() { # expect_fail WORDS CMD...
  local words=$1 rc=0
  shift
  "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  [ "$rc" = 1 ] || { cat "$tmp/err"; fail "exit $rc, not 1: $*"; }
  [ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "not one line: $*"; }
  [ ! -s "$tmp/out" ] || { cat "$tmp/out"; fail "printed before the check: $*"; }
  grep -q -- "$words" "$tmp/err" || { cat "$tmp/err"; fail "no '$words' in the message: $*"; }
}
both() { # both A B: the message names checkpoints A and B
  grep -q "$1/checkpoints/step-" "$tmp/err" && grep -q "$2/checkpoints/step-" "$tmp/err" ||
    { cat "$tmp/err"; fail "the message does not name $1 and $2"; }
}
expect_fail "has no task 'task001' of checkpoint" "$ladon" eval "$m1" "$m2" "$tmp/one"
both "$tmp/one" "$m1"
expect_fail "has task 'task001' that checkpoint .* lacks" "$ladon" eval "$tmp/one" "$m1"
both "$m1" "$tmp/one"
expect_fail "head 'task000': 4 classes in checkpoint .*, 3 in checkpoint " \
  "$ladon" eval "$m1" "$tmp/c3"
both "$m1" "$tmp/c3"
expect_fail "input width: checkpoint .* takes 32 input features, checkpoint .* 16" \
  "$ladon" eval "$m1" "$tmp/f16"
both "$m1" "$tmp/f16"
# with --task only that task must agree
"$ladon" eval "$tmp/one" "$m1" --task task000 >"$tmp/ens4" || fail "--task task000 of one and m1"
grep -q "^task000 " "$tmp/ens4" || fail "--task task000 of one and m1: no row"
expect_fail "has no task 'task001'" "$ladon" eval "$m1" "$tmp/one" --task task001

# --- inspect: the round and the run's round list
"$ladon" inspect "$st" >"$tmp/i" || fail "inspect the student"
cat "$tmp/i"
grep -q "^round  *3 of 3: student (run kd, rounds from .*/run/config.yaml)$" "$tmp/i" ||
  fail "inspect: no round line"
grep -q "^    1  m1  *60 steps  *seed 7  *trunk \[32\]  *on labels$" "$tmp/i" || fail "inspect: round m1"
grep -q "^    2  m2  *60 steps  *seed 8  *trunk \[32\]  *on labels$" "$tmp/i" || fail "inspect: round m2"
grep -q "^  \* 3  student  *40 steps  *seed 5  *trunk \[16\]  *teacher m1, m2: temperature 2, alpha 0.7, annealing linear, inputs own$" \
  "$tmp/i" || fail "inspect: round student"
"$ladon" inspect "$m2" | grep -q "^  \* 2  m2 " || fail "inspect of m2 does not mark round 2"
"$ladon" inspect --json "$st" >"$tmp/i.json" || fail "inspect --json"
if [ -n "$PY" ]; then
  "$PY" - "$tmp/i.json" <<'PY' || fail "inspect --json rounds"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["round"] == 3 and j["round_name"] == "student", (j["round"], j["round_name"])
assert j["run_config"].endswith("/run/config.yaml"), j["run_config"]
r = j["rounds"]
assert [x["name"] for x in r] == ["m1", "m2", "student"], r
assert [x["steps"] for x in r] == [60, 60, 40] and [x["seed"] for x in r] == [7, 8, 5], r
assert r[0]["teacher"] is None and r[2]["trunk"] == [16], r
t = r[2]["teacher"]
assert t["members"] == ["m1", "m2"] and t["temperature"] == 2 and t["alpha"] == 0.7, t
assert t["annealing"] == "linear" and t["inputs"] == "own", t
PY
else
  grep -q '"round":3,"round_name":"student",' "$tmp/i.json" || fail "inspect --json: no round"
  grep -q '"members":\["m1","m2"\]' "$tmp/i.json" || fail "inspect --json: no teacher members"
fi
# the file away from its run: the round and its name (from run.name) only
cp "$(readlink -f "$st/checkpoints/$(cat "$st/checkpoints/latest")")" "$tmp/alone.h5"
"$ladon" inspect "$tmp/alone.h5" >"$tmp/i2" 2>"$tmp/err" || fail "inspect a copied snapshot"
grep -q "^round  *3: student$" "$tmp/i2" || { cat "$tmp/i2"; fail "inspect of the copy: round"; }
grep -q "on labels\|teacher" "$tmp/i2" && fail "inspect of the copy shows a round list"
[ ! -s "$tmp/err" ] || { cat "$tmp/err"; fail "inspect of the copy wrote to stderr"; }
# the run's config changed since (round 3 renamed): a note, no round list
cp -r "$tmp/run" "$tmp/run2"
sed -i 's/^  - name: student$/  - name: pupil/' "$tmp/run2/config.yaml"
"$ladon" inspect "$tmp/run2/rounds/student" >"$tmp/i3" 2>"$tmp/err" || fail "inspect run2"
grep -q "round 3 is not 'student'" "$tmp/err" || { cat "$tmp/err"; fail "no note on the changed config"; }
grep -q "^round  *3: student$" "$tmp/i3" && ! grep -q "on labels" "$tmp/i3" ||
  { cat "$tmp/i3"; fail "inspect with a changed config"; }
# without rounds: no round in the text or the JSON
"$ladon" inspect "$tmp/one" >"$tmp/i4" || fail "inspect a run without rounds"
"$ladon" inspect --json "$tmp/one" >"$tmp/i4.json" || fail "inspect --json a run without rounds"
grep -q "^seed  *9$" "$tmp/i4" || fail "inspect of one: no seed line"
grep -qi "round" "$tmp/i4" "$tmp/i4.json" && fail "inspect without rounds mentions a round"
echo "ensemble: ok"
