#!/usr/bin/env bash
# launch/ladon-run --restarts N (issue 14): a server killed while the checkpoint of step 80 is
# being written ends the first attempt; ladon-run says what was lost (the steps after the
# latest checkpoint, step 40) and resumes from it; the job then finishes with exit 0 and, under
# bsp, the uninterrupted run's weights. Without restarts left the failure's exit status stays.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 1500
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/full, seed: 11}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {}}
train: {epochs: 3, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 10}
ps: {servers: 2, consistency: bsp, timeout: 30, chunk_kb: 4}
checkpoint: {every_steps: 40, keep_last: 3}
YAML
export LADON
run="$SRC/launch/ladon-run"
"$run" "$tmp/c.yaml" >"$tmp/full.log" 2>&1 || { cat "$tmp/full.log"; fail "uninterrupted run"; }

# server rank 2 killed in the middle of writing the checkpoint of step 80, once
once="$tmp/fired"
"$run" "$tmp/c.yaml" run.dir="$tmp/r" --restarts 1 -- -x LDN_FAULT="kill-in-ckpt:2:80:$once" \
  >"$tmp/r.log" 2>&1 || { cat "$tmp/r.log"; fail "the job with --restarts 1 did not finish"; }
test -e "$once" || fail "the fault did not fire"
grep -q "kills itself at step 80" "$tmp/r.log" || { cat "$tmp/r.log"; fail "no kill in the log"; }
grep -q "ladon-run: the job failed (exit [0-9]*) on attempt 1 at step 80; the latest checkpoint is .*step-0000000040.h5 (step 40): 40 step(s) after it are lost and trained again; resuming from step 40 (restart 1 of 1)" \
  "$tmp/r.log" || { cat "$tmp/r.log"; fail "the console does not say what was lost and resumed"; }
grep -q "resuming from .*step-0000000040.h5" "$tmp/r.log" || fail "the second attempt did not resume"
cmp "$tmp/full/trunk.f32" "$tmp/r/trunk.f32" || fail "the restarted job's trunk differs from the uninterrupted run"

# no restarts left: the failure's status, and a message saying so
rm -f "$once"
"$run" "$tmp/c.yaml" run.dir="$tmp/n" --restarts 0 -- -x LDN_FAULT="kill-in-ckpt:2:80:$once" \
  >"$tmp/n.log" 2>&1 && fail "a killed job without restarts exited 0"
# a job that fails at start-up (before any progress line or checkpoint): started again from
# the beginning, then no restarts left, with the job's status
"$run" "$tmp/c.yaml" run.dir="$tmp/s" data.dir="$tmp/nodata" --restarts 1 >"$tmp/s.log" 2>&1 &&
  fail "a job that cannot start exited 0"
grep -q "ladon-run: the job failed (exit [0-9]*) on attempt 1 before writing a checkpoint (it had reported step 0): that is lost; starting again from the beginning (restart 1 of 1)" \
  "$tmp/s.log" || { cat "$tmp/s.log"; fail "no restart message for a start-up failure"; }
grep -q "ladon-run: the job failed (exit [0-9]*) on attempt 2; no restarts left (--restarts 1)" "$tmp/s.log" ||
  { cat "$tmp/s.log"; fail "no final message"; }
"$run" "$tmp/c.yaml" run.dir="$tmp/n2" --restarts x >"$tmp/e.log" 2>&1 && fail "--restarts x accepted"
grep -q "restarts needs a count" "$tmp/e.log" || { cat "$tmp/e.log"; fail "wrong error for --restarts x"; }
echo "restarts: ok"
