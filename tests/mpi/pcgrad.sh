#!/usr/bin/env bash
# ps.task_gradients: pcgrad on the servers (bsp; docs/architecture.md, "Task weighting"):
# 2 servers, 4 task groups on synthetic data with two clusters and a negated pair. The run ends,
# the servers report how many of the (group, group, chunk) gradient pairs they projected (some,
# not all), the trunk differs from the same run with sum, every task still learns, and
# ps.consistency ssp with pcgrad is refused before anything starts.
source "$(dirname "$0")/lib.sh"
"$LADON" data synth "$tmp/d" --tasks 4 --features 32 --rank 4 --classes 4 --train 3000 \
  --test 400 --relatedness 0.6 --seed 3 --clusters 2 --conflict >/dev/null
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/pc, seed: 2}
data: {dir: $tmp/d}
model: {trunk: [32, 32]}
tasks: {task000: {}, task001: {}, task002: {}, task003: {}}
train: {epochs: 3, batch_size: 32, log_every: 0, lr: 0.05, momentum: 0.9}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4, task_gradients: pcgrad}
YAML
run_mpi 7 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "pcgrad run"; }
line=$(grep "servers: pcgrad projected" "$tmp/log") || { cat "$tmp/log"; fail "no pcgrad report"; }
echo "$line"
read -r proj pairs < <(sed -n 's/.*projected \([0-9]*\) of \([0-9]*\) .*/\1 \2/p' <<<"$line")
[ "${pairs:-0}" -gt 0 ] && [ "${proj:-0}" -gt 0 ] && [ "$proj" -lt "$pairs" ] ||
  fail "pcgrad projected $proj of $pairs pairs: expected some, not all"
run_mpi 7 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/sum" ps.task_gradients=sum 2>"$tmp/logs" ||
  { cat "$tmp/logs"; fail "sum run"; }
cmp -s "$tmp/pc/trunk.f32" "$tmp/sum/trunk.f32" && fail "pcgrad and sum gave the same trunk"
for t in task000 task001 task002 task003; do
  a=$(last_acc "$tmp/pc" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.5) }' || fail "$t accuracy $a with pcgrad"
done
run_mpi 7 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/ssp" ps.consistency=ssp 2>"$tmp/loge" &&
  fail "pcgrad under ssp was accepted"
grep -q "ps.task_gradients: pcgrad needs ps.consistency: bsp" "$tmp/loge" || { cat "$tmp/loge"; fail "wrong error"; }
echo "pcgrad: ok"
