#!/usr/bin/env bash
# A rogue client not started by the job (tests/mpi/rogue.c) connects to a server's and the
# coordinator's port while the job trains, under the job's own identities (w3, c0), without
# CURVE and as a CURVE client with keys of its own, and sends well-formed pulls, pushes of 1e30
# gradients, STOP, STATS_REQUEST, HELLO, ERROR and DONE. With net.curve on (the default) it
# gets no answer at all, the job counts no bad message, ends with exit 0 and its trunk and
# metrics are exactly those of the same job without the rogue. With net.curve false the same
# rogue disturbs the job (the control: the rogue is a real attack).
source "$(dirname "$0")/lib.sh"
ROGUE=$BUILD/rogue
synth "$tmp/data" 2 12000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/clean, seed: 7}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {}, task001: {}}
train: {epochs: 4, batch_size: 32, log_every: 100}
ps: {servers: 1, consistency: bsp, timeout: 20}
YAML
# the job with the rogue at its ports: $1 = run dir, then overrides; sets rogue_rc, job_rc
attack() {
  local dir=$1
  shift
  run_mpi 4 "$LADON" train "$tmp/c.yaml" run.dir="$dir" "$@" >"$dir.out" 2>&1 &
  local job=$! sep="" cep=""
  for _ in $(seq 200); do
    sep=$(sed -n 's/.*server rank 1: .* at \(tcp:[^ ]*\).*/\1/p' "$dir.out" 2>/dev/null | head -n 1 || true)
    cep=$(sed -n 's/.*coordinator at \(tcp:[^ ,]*\).*/\1/p' "$dir.out" 2>/dev/null | head -n 1 || true)
    [ -n "$sep" ] && [ -n "$cep" ] && break
    sleep 0.05
  done
  [ -n "$sep" ] || { kill $job; cat "$dir.out"; fail "no server endpoint in the log"; }
  "$ROGUE" "$sep" "$cep" 3 >"$dir.rogue" 2>&1 &
  local rogue=$!
  job_rc=0
  wait $job || job_rc=$?
  kill -TERM $rogue 2>/dev/null || echo "(the rogue had ended by itself)"
  rogue_rc=0
  wait $rogue || rogue_rc=$?
}

run_mpi 4 "$LADON" train "$tmp/c.yaml" >"$tmp/clean.out" 2>&1 || { cat "$tmp/clean.out"; fail "clean run"; }
attack "$tmp/curve"
cat "$tmp/curve.rogue"
[ $job_rc -eq 0 ] || { cat "$tmp/curve.out"; fail "the job under attack exited $job_rc with net.curve on"; }
grep -q "rogue: [0-9]* replies to" "$tmp/curve.rogue" || fail "the rogue ended early (exit $rogue_rc)"
[ $rogue_rc -eq 0 ] || fail "the rogue got answers with net.curve on"
grep -q "rogue: 0 replies to [1-9]" "$tmp/curve.rogue" || fail "the rogue sent nothing"
grep -q "0 bad messages rejected.*coordinator: 0 bad messages ignored" "$tmp/curve.out" ||
  { cat "$tmp/curve.out"; fail "a rogue message reached the job"; }
grep -q "data plane CURVE-authenticated" "$tmp/curve.out" || fail "CURVE was not on by default"
"$BUILD/f32cmp" "$tmp/clean/trunk.f32" "$tmp/curve/trunk.f32" 0 ||
  fail "the trunk under attack differs from the clean run"
strip() { sed 's/"samples_per_s":[^,]*,//; s/"elapsed_s".*//' "$1"; }
diff <(strip "$tmp/clean/metrics.jsonl") <(strip "$tmp/curve/metrics.jsonl") ||
  fail "metrics under attack differ from the clean run"

# Control: without CURVE the same rogue reaches the job (the server answers it, or the job
# ends early or elsewhere).
attack "$tmp/plain" net.curve=false
tail -n 3 "$tmp/plain.rogue"
grep -q "rogue: [0-9]* replies to" "$tmp/plain.rogue" || echo "(control: the rogue ended early, exit $rogue_rc)"
same=1
if [ $job_rc -eq 0 ]; then
  "$BUILD/f32cmp" "$tmp/clean/trunk.f32" "$tmp/plain/trunk.f32" 0 >/dev/null 2>&1 || same=0
else
  same=0
fi
[ $rogue_rc -ne 0 ] || [ $same -eq 0 ] || fail "control: the rogue did nothing to a job without CURVE"
echo "rogue: nothing reached a job with net.curve on (job exit $job_rc, rogue exit $rogue_rc without)"
