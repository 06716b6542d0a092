#!/usr/bin/env bash
# ssp: the servers' record of served pulls never shows a worker served at clock c while the
# slowest worker was below c - staleness. async: trains to a sensible accuracy.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 2000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {workers: 2}, task001: {workers: 2}}
train: {epochs: 3, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 50}
ps: {servers: 2, consistency: ssp, staleness: 1, timeout: 30, record_clocks: true}
YAML
run_mpi 7 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "ssp run"; }
for f in "$tmp"/run/clocks-ps*.tsv; do
  lines=$(wc -l <"$f")
  [ "$lines" -gt 100 ] || fail "$f has only $lines served pulls"
  # columns: worker rank, clock asked, slowest clock when served, steps applied
  awk -v s=1 '$3 < $2 - s { print "violation: " $0; bad = 1 } END { exit bad }' "$f" ||
    fail "SSP bound violated in $f"
  awk '$3 < $2 { ahead = 1 } END { exit !ahead }' "$f" ||
    echo "note: no pull in $f was served ahead of the slowest worker"
done
for t in task000 task001; do
  a=$(last_acc "$tmp/run" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "ssp: $t accuracy $a"
done
run_mpi 7 "$LADON" train "$tmp/c.yaml" ps.consistency=async run.dir="$tmp/async" \
  2>"$tmp/log" || { grep -v "^$" "$tmp/log" | grep -iE "error|abort|rank" | head -20; fail "async run"; }
for t in task000 task001; do
  a=$(last_acc "$tmp/async" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "async: $t accuracy $a"
done
echo "ssp bound and async: ok"
