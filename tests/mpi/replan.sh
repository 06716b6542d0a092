#!/usr/bin/env bash
# A plan switch mid-job: a bsp job trains 40 steps on a [48] trunk, the coordinator switches
# every rank to a [24, 16] trunk (fresh weights; test hook LDN_TEST_REPLAN, docs/architecture.md),
# the job trains 40 more steps and ends cleanly, with the servers holding the new key ranges.
source "$(dirname "$0")/lib.sh"
synth "$tmp/d" 2 1200 3
cat >"$tmp/r.yaml" <<YAML
run: {dir: $tmp/r, seed: 4}
data: {dir: $tmp/d}
model: {trunk: [48]}
tasks: {task000: {}, task001: {}}
train: {epochs: 2, steps_per_epoch: 40, batch_size: 32, log_every: 20, lr: 0.1}
ps: {servers: 2, consistency: bsp, timeout: 30}
checkpoint: {final: false}
YAML
export LDN_TEST_REPLAN=40:24,16
timeout 200 bash -c "$(declare -f run_mpi); run_mpi 5 -x LDN_TEST_REPLAN '$LADON' train '$tmp/r.yaml'" \
  >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "the job with a plan switch failed"; }
# the new trunk: 32 -> 24 -> 16, rows of (in + 1) keys
new=$((24 * 33 + 16 * 25))
grep -q "plan switch at step 40: trunk \[24, 16\]" "$tmp/log" || { cat "$tmp/log"; fail "no plan switch logged"; }
lines=$(grep -c "new plan: keys .* of a $new-parameter trunk" "$tmp/log" || true)
[ "$lines" -eq 2 ] || { cat "$tmp/log"; fail "expected both servers on the $new-parameter trunk, got $lines"; }
# the servers' new ranges tile [0, new)
ranges=$(grep -o "ps [12]: new plan: keys \[[0-9]*, [0-9]*)" "$tmp/log" | sort |
  sed 's/.*\[\([0-9]*\), \([0-9]*\))/\1 \2/' | tr '\n' ' ')
set -- $ranges
[ "$1" -eq 0 ] && [ "$2" -eq "$3" ] && [ "$4" -eq "$new" ] && [ "$2" -gt 0 ] ||
  fail "server ranges '$ranges' do not tile [0, $new)"
# the final trunk has the new shape; both evaluations happened, the second on the new trunk
size=$(stat -c %s "$tmp/r/trunk.f32")
[ "$size" -eq $((4 * new)) ] || fail "trunk.f32 has $size bytes, want $((4 * new))"
[ "$(wc -l <"$tmp/r/metrics.jsonl")" -eq 4 ] || fail "expected 4 metrics rows"
grep -q '"step":80' "$tmp/r/metrics.jsonl" || fail "no evaluation at step 80"
for t in task000 task001; do
  a=$(last_acc "$tmp/r" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.4) }' || fail "$t: accuracy $a after the switch"
done
grep -q "warning:" "$tmp/log" && { cat "$tmp/log"; fail "a warning during the plan switch"; }
echo "replan: ok"
