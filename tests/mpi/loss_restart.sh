#!/usr/bin/env bash
# Checkpoints go on after a lost worker, and a restart resumes from one of them (issue 14): a
# job under launch/ladon-run --restarts 1 with ps.on_worker_loss: continue (ssp) loses one of
# task000's two workers (SIGKILL), goes on, writes checkpoints with the ranks still in the
# job, and then loses its server (SIGKILL), which it cannot survive. ladon-run starts it again
# from the latest checkpoint, written after the worker loss, and it finishes with exit 0; the
# console names the losses, the step resumed from, and that the resume is not exact. Then a
# worker that dies just before a checkpoint is lost before the write, not waited for in it.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 6000
export LADON
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [128, 128]}
tasks: {task000: {workers: 2}, task001: {workers: 1}}
train: {epochs: 12, batch_size: 32, lr: 0.02, log_every: 20}
ps: {servers: 1, consistency: ssp, staleness: 2, timeout: 10, liveness_timeout: 3,
     on_worker_loss: continue}
checkpoint: {every_steps: 500, keep_last: 3}
YAML
log=$tmp/run.log
timeout 250 "$SRC/launch/ladon-run" "$tmp/c.yaml" --restarts 1 >"$log" 2>&1 &
job=$!
wait_step "$log" 20 || { kill $job; cat "$log"; fail "training did not start"; }
victim=$(pid_of 3 "$tmp/c.yaml") && server=$(pid_of 1 "$tmp/c.yaml") ||
  { kill $job; cat "$log"; fail "no process of rank 3 or 1"; }
# right after the first checkpoint: a rank lost while a checkpoint is written is not survived
# (the collective write waits for it until checkpoint.timeout), and until the loss is found
# the group waits for the dead rank's head sums, so no step reaches the next checkpoint
for _ in $(seq 1200); do grep -q "\[coord 0\] checkpoint step 500: " "$log" && break; sleep 0.02; done
grep -q "\[coord 0\] checkpoint step 500: " "$log" || { kill $job; cat "$log"; fail "no checkpoint of step 500"; }
kill -KILL "$victim"
# the loss, then a checkpoint after it
lost_at=""
for _ in $(seq 300); do
  lost_at=$(sed -n 's/.*worker rank 3 (group 0.*) lost: .*last step \([0-9]*\);.*/\1/p' "$log" | head -n 1)
  [ -n "$lost_at" ] && break
  sleep 0.1
done
[ -n "$lost_at" ] || { kill $job; cat "$log"; fail "worker rank 3 was not lost"; }
ck=""
for _ in $(seq 300); do
  # the first checkpoint written after the loss line (by its place in the log: the lost worker's
  # last reported step may be below the checkpoint it died after)
  ck=$(awk '/worker rank 3 \(group 0.*\) lost: / { after = 1; next }
    after && /\[coord 0\] checkpoint step [0-9]*: / { sub(/.*checkpoint step /, ""); sub(/:.*/, ""); print; exit }' "$log")
  [ -n "$ck" ] && break
  sleep 0.02
done
[ -n "$ck" ] || { kill $job; cat "$log"; fail "no checkpoint after the loss at step $lost_at"; }
kill -KILL "$server"
rc=0
wait $job || rc=$?
[ $rc -eq 0 ] || { cat "$log"; fail "the job with --restarts 1 exited $rc"; }
grep -q "server rank 1 (host [^)]*) answered no ping for" "$log" || { cat "$log"; fail "the server's loss is not named"; }
resumed=$(sed -n 's/.*ladon-run: the job failed (exit [0-9]*) on attempt 1 at step [0-9]*; the latest checkpoint is .* (step \([0-9]*\)): [0-9]* step(s) after it are lost and trained again; resuming from step [0-9]* (restart 1 of 1).*/\1/p' "$log")
[ -n "$resumed" ] || { cat "$log"; fail "ladon-run does not say what was lost and resumed"; }
[ "$resumed" -ge "$ck" ] || { cat "$log"; fail "resumed from step $resumed, not from the checkpoint of step $ck or a later one, written after the worker loss"; }
grep -q "written after the job had lost 1 worker(s)" "$log" || { cat "$log"; fail "the resume does not say it is not exact"; }
grep -q "done: [0-9]* steps" "$log" || { cat "$log"; fail "the restarted job did not finish"; }
echo "worker rank 3 lost at step $lost_at; first checkpoint after it: step $ck; server killed; resumed from step $resumed"

# A worker gone just before a checkpoint: rank 3 kills itself right after its done of the
# phase that ends at the checkpoint's step (LDN_FAULT=kill-after-done). The coordinator asks
# every rank before the collective write, loses rank 3 and writes the checkpoint with the
# others; without that the write waited for it until checkpoint.timeout (20 s here).
log=$tmp/before.log
timeout 200 "$SRC/launch/ladon-run" "$tmp/c.yaml" run.dir="$tmp/before" checkpoint.timeout=20 \
  -- -x LDN_FAULT=kill-after-done:3:500 >"$log" 2>&1 || { cat "$log"; fail "before: the job exited $?"; }
grep -q "LDN_FAULT=kill-after-done:3:500: rank 3 kills itself at step 500" "$log" || { cat "$log"; fail "before: the fault did not fire"; }
grep -q "worker rank 3 (group 0.*) lost: \(unreachable\|nothing from it for\).* before the checkpoint of step 500" "$log" ||
  { cat "$log"; fail "before: rank 3 was not lost before the checkpoint of step 500"; }
grep -q "\[coord 0\] checkpoint step 500: " "$log" || { cat "$log"; fail "before: no checkpoint of step 500"; }
grep -q "finished without worker rank(s) 3 (lost)" "$log" || { cat "$log"; fail "before: the end does not name the loss"; }
grep " lost: " "$log" | head -n 1
echo "loss_restart: ok"
