#!/usr/bin/env bash
# Two members of one task group lost close together (issue 14; ps.on_worker_loss: continue,
# ssp): task000 has four workers (world ranks 2..5) and loses ranks 4 and 5.
#  - kill: both are killed with SIGKILL 0.6 s apart. Rank 4 is found silent; telling the others
#    finds rank 5's connection closed, and it is lost at once too (before the fix the
#    coordinator gave up: "send lost: Host unreachable").
#  - stop: rank 4 is killed and rank 5 stopped with SIGSTOP 2 s later (hung, its connection
#    open): the survivors learn of the first loss and ask to re-form while rank 5 still counts
#    as alive; the coordinator names the members only once rank 5 is found silent too (before
#    the fix they re-formed on the first announcement with rank 5 among them, and
#    MPI_Comm_create_group waited for it until the watchdog ended the job).
# Either way the job ends with exit 0, both losses named, and each survivor's last re-forming
# is the one with 2 workers.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 6000
export LADON
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [32]}
tasks: {task000: {workers: 4}, task001: {workers: 1}}
train: {epochs: 16, batch_size: 32, lr: 0.02, log_every: 20}
ps: {servers: 1, consistency: ssp, staleness: 2, timeout: 10, liveness_timeout: 3,
     on_worker_loss: continue}
YAML
for how in ${LDN_GROUP_LOSSES:-kill stop}; do
  log=$tmp/$how.log
  timeout 200 "$SRC/launch/ladon-run" "$tmp/c.yaml" run.dir="$tmp/$how" >"$log" 2>&1 &
  job=$!
  wait_step "$log" 300 || { kill $job; cat "$log"; fail "$how: training did not start"; }
  a=$(pid_of 4 "$tmp/c.yaml") && b=$(pid_of 5 "$tmp/c.yaml") ||
    { kill $job; cat "$log"; fail "$how: no process of rank 4 or 5"; }
  kill -KILL "$a"
  if [ $how = kill ]; then
    sleep 0.6
    kill -KILL "$b"
  else
    sleep 2 # more than the heartbeat interval: rank 5 is found silent a second or more later
    kill -STOP "$b"
    for _ in $(seq 300); do grep -q "worker rank 5 (group 0.*) lost: " "$log" && break; sleep 0.1; done
    kill -KILL "$b" # lost by now (or the checks below fail); mpirun waits for every process
  fi
  rc=0
  wait $job || rc=$?
  [ $rc -eq 0 ] || { cat "$log"; fail "$how: the job that lost two of a group's workers exited $rc"; }
  for r in 4 5; do
    grep -q "worker rank $r (group 0: task task000; host [^)]*) lost: " "$log" ||
      { cat "$log"; fail "$how: no line naming lost worker rank $r"; }
  done
  grep -q "finished without worker rank(s) 4, 5 (lost)" "$log" ||
    { cat "$log"; fail "$how: the end does not name both lost workers"; }
  grep -q "group 0 goes on with 2 of its 4 workers" "$log" || { cat "$log"; fail "$how: group 0 did not shrink to 2"; }
  for r in 2 3; do
    last=$(grep "worker $r: group re-formed with" "$log" | tail -n 1 || true)
    case "$last" in
      *"with 2 worker(s)"*) ;;
      *) cat "$log"; fail "$how: survivor rank $r did not end in the group of 2 (last: '$last')" ;;
    esac
  done
  grep -q "done: [0-9]* steps" "$log" || { cat "$log"; fail "$how: the job did not finish its steps"; }
  echo "$how:"; grep " lost: \|group 0 re-forms" "$log"
done
# A worker lost while the others evaluate (LDN_FAULT=kill-in-eval: rank 4 kills itself as the
# evaluation of step 376 starts): that evaluation misses its shard and says so, writing no row
# for task000; the group then re-forms with 3 workers and the job ends with exit 0 (before,
# the incomplete evaluation ended the job: "eval of task task000 covered 300 of 400 test rows").
if [ -z "${LDN_GROUP_LOSSES:-}" ]; then
  log=$tmp/eval.log
  timeout 200 "$SRC/launch/ladon-run" "$tmp/c.yaml" run.dir="$tmp/eval" -- -x LDN_FAULT=kill-in-eval:4:376 \
    >"$log" 2>&1 || { cat "$log"; fail "eval: the job exited $?"; }
  grep -q "kill-in-eval:4:376: rank 4 kills itself at step 376" "$log" || { cat "$log"; fail "eval: the fault did not fire"; }
  grep -q "eval of step 376: task task000 covered [0-9]* of 400 test rows, as a worker was lost during the evaluation" "$log" ||
    { cat "$log"; fail "eval: the incomplete evaluation is not reported"; }
  grep -q "task000 incomplete (worker lost)" "$log" || { cat "$log"; fail "eval: the eval line does not say so"; }
  [ "$(grep -c '"task":"task000","step":376,' "$tmp/eval/metrics.jsonl")" -eq 0 ] ||
    fail "eval: a row for the incomplete evaluation of task000"
  [ "$(grep -c '"task":"task001","step":376,' "$tmp/eval/metrics.jsonl")" -eq 1 ] ||
    fail "eval: no row for task001 at step 376"
  grep -q "finished without worker rank(s) 4 (lost)" "$log" || { cat "$log"; fail "eval: the end does not name the loss"; }
  grep -q "group 0 goes on with 3 of its 4 workers" "$log" || { cat "$log"; fail "eval: group 0 did not shrink to 3"; }
  echo "eval:"; grep "covered" "$log"
fi
echo "group_losses: ok"
