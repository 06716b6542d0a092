#!/usr/bin/env bash
# Liveness (issue 14): a worker stopped with SIGSTOP mid-run is named (rank, role, group, host)
# within ps.liveness_timeout and the job fails fast (ps.on_worker_loss: fail, the default; the
# time from the stop to the message is measured and printed); under bsp with
# ps.on_worker_loss: continue, a worker killed with SIGKILL is dropped after the timeout and
# the steps go on with the live set to the end (exit 0).
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 6000
export LADON
run="$SRC/launch/ladon-run"
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {workers: 2}, task001: {workers: 1}}
train: {epochs: 40, batch_size: 32, lr: 0.02, log_every: 20}
ps: {servers: 1, consistency: bsp, timeout: 30, liveness_timeout: 4}
YAML

# 1. SIGSTOP, on_worker_loss: fail (plain mpirun, as a user would run it)
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/stop" >"$tmp/stop.log" 2>&1 &
job=$!
wait_step "$tmp/stop.log" 100 || { kill $job; cat "$tmp/stop.log"; fail "stop: training did not start"; }
victim=$(pid_of 3 "$tmp/c.yaml") || { kill $job; fail "stop: no process of rank 3"; }
t0=$(date +%s.%N)
kill -STOP "$victim"
named=""
for _ in $(seq 400); do
  if grep -q "worker rank 3 (group 0: task task000; host [^)]*) sent nothing for" "$tmp/stop.log"; then
    named=$(date +%s.%N)
    break
  fi
  sleep 0.05
done
rc=0
timeout 60 tail --pid=$job -f /dev/null || true
kill -CONT "$victim" 2>/dev/null || true
wait $job || rc=$?
[ -n "$named" ] || { cat "$tmp/stop.log"; fail "stop: rank 3 was not named within 20 s"; }
detect=$(awk -v a="$t0" -v b="$named" 'BEGIN { printf "%.1f", b - a }')
echo "SIGSTOP of worker rank 3: named after ${detect} s (ps.liveness_timeout 4 s); job exit $rc"
grep "worker rank 3 (group 0" "$tmp/stop.log" | head -1
[ "$rc" -ne 0 ] || fail "stop: the job exited 0 with a stopped worker under on_worker_loss: fail"
awk -v d="$detect" 'BEGIN { exit !(d >= 3.5 && d <= 6.5) }' ||
  fail "stop: named after $detect s, not within the liveness timeout (4 s, +2.5 s of polling)"

# 2. bsp, on_worker_loss: continue: SIGKILL of rank 3 (task000's group: 2 workers)
timeout 150 "$run" "$tmp/c.yaml" run.dir="$tmp/bsp" ps.on_worker_loss=continue \
  >"$tmp/bsp.log" 2>&1 &
job=$!
wait_step "$tmp/bsp.log" 300 || { kill $job; cat "$tmp/bsp.log"; fail "bsp: training did not start"; }
victim=$(pid_of 3 "$tmp/c.yaml") || { kill $job; fail "bsp: no process of rank 3"; }
kill -KILL "$victim"
rc=0
wait $job || rc=$?
log="$tmp/bsp.log"
[ $rc -eq 0 ] || { cat "$log"; fail "bsp: the job with a killed worker exited $rc"; }
grep -q "worker rank 3 (group 0: task task000; host [^)]*) lost: " "$log" || { cat "$log"; fail "bsp: rank 3 not named"; }
grep -q "ps 1: worker rank 3 left the live set at step" "$log" || { cat "$log"; fail "bsp: the server kept waiting for rank 3"; }
total=$(sed -n 's/.*all 3 workers checked in; \([0-9]*\) steps per epoch.*/\1/p' "$log" | head -1)
grep -q "done: $((total * 40)) steps" "$log" || { cat "$log"; fail "bsp: the job did not train every step"; }
[ "$(grep -c '"task":"task001"' "$tmp/bsp/metrics.jsonl")" -eq 40 ] || fail "bsp: not every evaluation ran"
grep -q "finished without worker rank(s) 3 (lost)" "$log" || { cat "$log"; fail "bsp: the end does not name the loss"; }
grep " lost: " "$log" | head -1
echo "liveness: ok"
