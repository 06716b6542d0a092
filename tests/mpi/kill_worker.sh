#!/usr/bin/env bash
# A worker killed with SIGKILL mid-run: the job ends within the timeout with a message naming
# the dead rank and a non-zero exit, never a hang.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 20000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {}, task001: {}}
train: {epochs: 50, batch_size: 32, log_every: 20}
ps: {servers: 1, consistency: bsp, timeout: 5}
YAML
start=$(date +%s)
run_mpi 4 "$LADON" train "$tmp/c.yaml" >"$tmp/out" 2>&1 &
job=$!
# Wait for training to be under way, then kill the process of world rank 3 (a worker) of this
# job (its command line names this test's config: other jobs may be running).
victim=""
for _ in $(seq 100); do
  if grep -q "samples/s" "$tmp/out" 2>/dev/null; then
    for p in /proc/[0-9]*; do {
      if tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=3" &&
        tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF "$tmp/c.yaml"; then
        victim=${p#/proc/}
      fi
    } 2>/dev/null; done
    [ -n "$victim" ] && break
  fi
  sleep 0.2
done
[ -n "$victim" ] || { kill $job; cat "$tmp/out"; fail "could not find the process of rank 3"; }
kill -9 "$victim"
rc=0
wait $job || rc=$?
elapsed=$(($(date +%s) - start))
[ $rc -ne 0 ] || fail "job exited 0 after a worker was killed"
[ $elapsed -lt 60 ] || fail "job took ${elapsed}s to end"
grep -Eiq "rank 3|worker rank 3" "$tmp/out" || { cat "$tmp/out"; fail "no message naming rank 3"; }
echo "killed worker: job ended in ${elapsed}s with exit $rc"; grep -Ei "rank 3" "$tmp/out" | head -3
