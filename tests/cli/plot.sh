#!/usr/bin/env bash
# Integration: `ladon plot` on a local run (a PNG of plausible size), on two runs that differ in
# train.lr (the legend names the difference), on a run with rounds (a labelled line at each
# round's start), with a task-affinity row (a heat map of the last one, the groups named), and
# its errors: no metrics.jsonl, a malformed line or affinity row, gnuplot missing or hung.
# Skips (exit 77) when gnuplot is not installed.
set -euo pipefail
ladon=$1
command -v gnuplot >/dev/null || { echo "SKIP: gnuplot not installed (apt-get install gnuplot-nox)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "plot: $*"; exit 1; }
"$ladon" data synth "$tmp/data" --tasks 2 --features 16 --rank 4 --classes 4 --train 600 \
  --test 200 --seed 3 >/dev/null
cat > "$tmp/c.yaml" <<YAML
run: {name: a, dir: $tmp/runA, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [16]}
tasks: {task000: {}, task001: {}}
train: {epochs: 3, batch_size: 64, lr: 0.05, log_every: 50}
YAML
"$ladon" train --local "$tmp/c.yaml" 2>/dev/null || fail "run A failed"
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/runB" train.lr=0.1 2>/dev/null || fail "run B failed"
png_ok() { # FILE MIN_BYTES [WIDTHxHEIGHT]
  [ -s "$1" ] || fail "no $1"
  [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$1 is not a PNG"
  [ "$(stat -c %s "$1")" -gt "$2" ] || fail "$1 is only $(stat -c %s "$1") bytes"
  if [ -n "${3:-}" ]; then # the IHDR chunk: width and height, big-endian, at bytes 16..23
    local wh
    wh=$(od -An -tu1 -j16 -N8 "$1" | awk '{ printf "%dx%d", (($1*256+$2)*256+$3)*256+$4, (($5*256+$6)*256+$7)*256+$8 }')
    [ "$wh" = "$3" ] || fail "$1 is $wh pixels, expected $3"
  fi
}
out=$("$ladon" plot "$tmp/runA") || fail "plot of one run failed"
[ "$out" = "$tmp/runA/plot.png" ] || fail "printed '$out', not the default output"
png_ok "$tmp/runA/plot.png" 20000 1400x990 # 6 panels, 3 rows of 330 pixels
ls "$tmp/runA" | grep -q '\.part$' && fail "a partial output was left"
# two runs: the legend names what differs
(cd "$tmp" && "$ladon" plot runA runB --keep-script >out.txt) || fail "plot of two runs failed"
[ "$(cat "$tmp/out.txt")" = runs.png ] || fail "two runs did not default to ./runs.png"
png_ok "$tmp/runs.png" 20000
grep -q 'runA (train.lr 0.05)' "$tmp/runs.gp" || fail "the legend does not name run A's lr"
grep -q 'runB (train.lr 0.1)' "$tmp/runs.gp" || fail "the legend does not name run B's lr"
grep -q 'run.dir' "$tmp/runs.gp" && fail "the legend names run.dir"
grep -q '^set x2label "epoch (of runA' "$tmp/runs.gp" || fail "no epoch axis"
# three runs, one of them pruned: a sparsity panel (4 rows) and the pruning boundaries
"$ladon" train --local "$tmp/c.yaml" run.dir="$tmp/runP" prune.sparsity=0.5 prune.start=5 \
  prune.every=5 2>/dev/null || fail "pruned run failed"
"$ladon" plot "$tmp/runA" "$tmp/runB" "$tmp/runP" -o "$tmp/three.png" --keep-script >/dev/null ||
  fail "plot of three runs failed"
png_ok "$tmp/three.png" 20000 1400x1320
grep -q 'trunk sparsity' "$tmp/three.gp" || fail "no sparsity panel"
grep -q '^set label "runP: prune start" at 5,' "$tmp/three.gp" ||
  { grep label "$tmp/three.gp"; fail "no labelled pruning start"; }
grep -q 'prune end' "$tmp/three.gp" || fail "no pruning end"
# a run with rounds: every round's start is a labelled vertical line
cat > "$tmp/r.yaml" <<YAML
run: {name: kd, dir: $tmp/runR, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [16]}
tasks: {task000: {}, task001: {}}
train: {batch_size: 64, lr: 0.05, log_every: 50}
rounds:
  - {name: m1, steps: 30, seed: 7}
  - name: student
    trunk: [8]
    steps: 30
    teacher: {members: [m1], temperature: 2, alpha: 0.7}
YAML
"$ladon" train --local "$tmp/r.yaml" 2>/dev/null || fail "the run with rounds failed"
"$ladon" plot "$tmp/runR" -o "$tmp/r.png" --keep-script >/dev/null || fail "plot of rounds failed"
png_ok "$tmp/r.png" 20000
grep -q '^set arrow from 30, graph 0 to 30, graph 1' "$tmp/r.gp" || fail "no line at round student's start"
grep -q '^set label "student" at 30,' "$tmp/r.gp" || fail "the student round's line is not labelled"
grep -q 'teacher agreement' "$tmp/r.gp" || fail "no teacher agreement panel"
# a task-affinity row (ps.affinity, written by the coordinator of a bsp run): the last one is a
# heat map annotated with the groups (a group of several tasks lists them) and the values
mkdir "$tmp/aff"
cp "$tmp/runA/metrics.jsonl" "$tmp/runA/config.yaml" "$tmp/aff/"
row() { # STEP VALUE
  printf '{"kind":"affinity","step":%s,"epoch":1.0,"from_step":0,"to_step":%s,"groups":["task000","group1"],"group_tasks":[["task000"],["task001","task002"]],"cosine":{"0":[[1,%s],[%s,1]],"trunk":[[1.000000,%s],[%s,null]]},"steps_together":[[5,5],[5,5]]}\n' "$1" "$1" "$2" "$2" "$2" "$2"
}
row 10 0.25 >>"$tmp/aff/metrics.jsonl"
row 20 -0.375 >>"$tmp/aff/metrics.jsonl"
"$ladon" plot "$tmp/aff" -o "$tmp/aff.png" --keep-script >/dev/null || fail "plot with an affinity row failed"
png_ok "$tmp/aff.png" 20000
grep -q '^set title "task affinity: cosine of trunk gradients, steps \[0, 20)"' "$tmp/aff.gp" ||
  fail "no heat map of the last affinity row"
grep -q '^plot $a_0 matrix with image' "$tmp/aff.gp" || fail "the heat map is not an image plot"
grep -q 'set xtics ("task000" 0, "group1: task001,task002" 1)' "$tmp/aff.gp" ||
  fail "the heat map's axes do not name the groups and their tasks"
grep -A2 '^\$a_0 << EOD' "$tmp/aff.gp" | grep -q '^1.0000 -0.3750$' || fail "the heat map's first row"
grep -A2 '^\$a_0 << EOD' "$tmp/aff.gp" | grep -q '^-0.3750 NaN$' || fail "null is not drawn as NaN"
grep -q 'task affinity' "$tmp/runs.gp" && fail "a run without affinity has a heat map"
mkdir "$tmp/badaff"
cp "$tmp/runA/metrics.jsonl" "$tmp/badaff/"
row 10 0.25 | sed 's/,null\]\]/]]/' >>"$tmp/badaff/metrics.jsonl"
n=$(wc -l <"$tmp/badaff/metrics.jsonl")
"$ladon" plot "$tmp/badaff" 2>"$tmp/err" && fail "a malformed affinity row was accepted"
grep -q "plot: $tmp/badaff/metrics.jsonl:$n: an affinity row without a groups x groups cosine.trunk matrix" "$tmp/err" ||
  { cat "$tmp/err"; fail "wrong affinity error"; }
# errors: one clear line each, exit 1
mkdir "$tmp/empty"
"$ladon" plot "$tmp/empty" 2>"$tmp/err" && fail "a run without metrics.jsonl was plotted"
grep -q "plot: $tmp/empty/metrics.jsonl: No such file or directory" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
mkdir "$tmp/bad"
head -n 2 "$tmp/runA/metrics.jsonl" >"$tmp/bad/metrics.jsonl"
echo '{"task":"task000","step":10,"loss":}' >>"$tmp/bad/metrics.jsonl"
"$ladon" plot "$tmp/bad" 2>"$tmp/err" && fail "a malformed line was accepted"
grep -q "plot: $tmp/bad/metrics.jsonl:3:36: an unexpected character" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
[ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "the error is not one line"
PATH=/nonexistent "$ladon" plot "$tmp/runA" 2>"$tmp/err" && fail "plotted without gnuplot"
grep -q "install gnuplot-nox (launch/setup-deps does)" "$tmp/err" || { cat "$tmp/err"; fail "wrong error"; }
mkdir "$tmp/bin"
printf '#!/bin/sh\nsleep 30\n' >"$tmp/bin/gnuplot"
printf '#!/bin/sh\necho "line 3: something broke" >&2\nexit 1\n' >"$tmp/bin/gnuplot-fail"
chmod +x "$tmp/bin/gnuplot" "$tmp/bin/gnuplot-fail"
PATH="$tmp/bin:$PATH" "$ladon" plot "$tmp/runA" --timeout 0.5 2>"$tmp/err" && fail "a hung gnuplot succeeded"
grep -q "did not finish within 0.5 s" "$tmp/err" || { cat "$tmp/err"; fail "wrong timeout error"; }
mv "$tmp/bin/gnuplot-fail" "$tmp/bin/gnuplot"
PATH="$tmp/bin:$PATH" "$ladon" plot "$tmp/runA" 2>"$tmp/err" && fail "a failing gnuplot succeeded"
grep -q "gnuplot failed on .*: line 3: something broke" "$tmp/err" || { cat "$tmp/err"; fail "wrong failure error"; }
"$ladon" plot --help | grep -q "usage: ladon plot" || fail "no usage on --help"
echo "plot: ok"
