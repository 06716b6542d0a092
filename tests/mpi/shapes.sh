#!/usr/bin/env bash
# Unequal shard sizes under bsp finish without deadlock; more tasks than worker ranks work
# (groups host several tasks); a rank count that cannot work is refused before training.
source "$(dirname "$0")/lib.sh"
synth "$tmp/big" 1 4000 3
synth "$tmp/small" 2 300 4
cat >"$tmp/u.yaml" <<YAML
run: {dir: $tmp/u, seed: 2}
data: {dir: $tmp}
model: {trunk: [32]}
tasks:
  big: {file: big/task000.h5, workers: 2}
  small: {file: small/task001.h5}
train: {epochs: 2, batch_size: 32, log_every: 0}
ps: {servers: 1, consistency: bsp, timeout: 20}
YAML
timeout 120 bash -c "$(declare -f run_mpi); run_mpi 5 '$LADON' train '$tmp/u.yaml'" 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "unequal shards under bsp"; }
[ "$(wc -l <"$tmp/u/metrics.jsonl")" -eq 4 ] || fail "unequal shards: expected 4 metrics rows"

synth "$tmp/many" 5 600 5
cat >"$tmp/m.yaml" <<YAML
run: {dir: $tmp/m, seed: 2}
data: {dir: $tmp/many}
model: {trunk: [32]}
tasks: {task000: {}, task001: {}, task002: {}, task003: {}, task004: {weight: 2}}
train: {epochs: 3, batch_size: 32, log_every: 0}
ps: {servers: 1, timeout: 20}
YAML
run_mpi 4 "$LADON" train "$tmp/m.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "5 tasks on 2 workers"; }
grep -q "2 workers in 2 task groups" "$tmp/log" || fail "expected 2 groups"
for t in task000 task001 task002 task003 task004; do
  a=$(last_acc "$tmp/m" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.5) }' || fail "$t accuracy $a with 5 tasks on 2 workers"
done

if run_mpi 2 "$LADON" train "$tmp/m.yaml" 2>"$tmp/log"; then fail "2 ranks accepted"; fi
grep -q "ranks are too few" "$tmp/log" || { cat "$tmp/log"; fail "no clear rank-count error"; }
echo "shapes: ok"
