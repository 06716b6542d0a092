#!/usr/bin/env bash
# bsp with one worker and dense updates reproduces the local trainer: the final trunk
# weights agree within 1e-5 relative, with one server and with two (key ranges split), with
# pushes cut into several chunks per layer.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 3 1500
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/local, seed: 11}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {weight: 0.5}, task002: {}}
train: {epochs: 2, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 0,
        lr_schedule: cosine, warmup_steps: 10}
ps: {servers: 1, consistency: bsp, timeout: 30, chunk_kb: 4}
YAML
"$LADON" train --local "$tmp/c.yaml" 2>/dev/null
for servers in 1 2; do
  run_mpi $((2 + servers)) "$LADON" train "$tmp/c.yaml" ps.servers=$servers \
    run.dir="$tmp/dist$servers" 2>"$tmp/log$servers" || { cat "$tmp/log$servers"; fail "dist run"; }
  "$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/dist$servers/trunk.f32" 1e-5 ||
    fail "trunk with $servers server(s) differs from the local trainer"
  # Same evaluations too.
  strip() { sed 's/"samples_per_s":[^,]*,//; s/"elapsed_s".*//' "$1"; }
  diff <(strip "$tmp/local/metrics.jsonl") <(strip "$tmp/dist$servers/metrics.jsonl") ||
    fail "metrics with $servers server(s) differ from the local trainer"
done
# Checkpoints cross between the two: the local trainer's checkpoint of step 60 resumes under
# mpirun with 2 servers, and a 1-server job's resumes locally; both end where the
# uninterrupted run does (a worker's state is found by its place among the workers, not by
# its rank, so another ps.servers resumes too).
"$LADON" train --local "$tmp/c.yaml" run.dir="$tmp/lck" checkpoint.every_steps=60 \
  checkpoint.keep_last=100 2>"$tmp/logl" || { cat "$tmp/logl"; fail "local run with checkpoints"; }
run_mpi 4 "$LADON" train "$tmp/c.yaml" ps.servers=2 run.dir="$tmp/l2d" \
  --resume "$tmp/lck/checkpoints/step-0000000060.h5" 2>"$tmp/logr" || { cat "$tmp/logr"; fail "local checkpoint resumed under mpirun"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/l2d/trunk.f32" 1e-5 ||
  fail "a local checkpoint resumed under mpirun ends elsewhere"
run_mpi 3 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/dck" checkpoint.every_steps=60 \
  checkpoint.keep_last=100 2>"$tmp/logd" || { cat "$tmp/logd"; fail "dist run with checkpoints"; }
# both start from the seed's weights: the same init_id (rank 0's model against the local one)
need_h5py
ids="$SRC/tests/tools/init_id.py"
[ "$("$PY" "$ids" recorded "$tmp/lck/checkpoints/step-0000000060.h5")" = \
  "$("$PY" "$ids" recorded "$tmp/dck/checkpoints/step-0000000060.h5")" ] ||
  fail "the local and the distributed run record other init_ids"
"$LADON" train --local "$tmp/c.yaml" run.dir="$tmp/d2l" \
  --resume "$tmp/dck/checkpoints/step-0000000060.h5" 2>"$tmp/logr" || { cat "$tmp/logr"; fail "job checkpoint resumed locally"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/d2l/trunk.f32" 1e-5 ||
  fail "a job's checkpoint resumed by the local trainer ends elsewhere"
# The compressed path with nothing dropped (top-k of everything, fp32, error feedback) is
# still exact: encode, decode and the residual round trip without rounding.
run_mpi 3 "$LADON" train "$tmp/c.yaml" compress.codec=topk compress.ratio=1 \
  run.dir="$tmp/packed" 2>"$tmp/logp" || { cat "$tmp/logp"; fail "packed dist run"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/packed/trunk.f32" 1e-5 ||
  fail "trunk through the codec path differs from the local trainer"
# Global selection (compress.scope=global) with nothing dropped: the whole trunk's top-k is
# everything, sent chunk by chunk as sparse payloads, still exact.
run_mpi 3 "$LADON" train "$tmp/c.yaml" compress.codec=topk compress.ratio=1 compress.scope=global \
  run.dir="$tmp/global" 2>"$tmp/logg" || { cat "$tmp/logg"; fail "global-scope run"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/global/trunk.f32" 0 ||
  fail "trunk with global selection of everything differs from the local trainer"
# Chunks under compress.min_elements are pushed dense inside a compressed job: still exact.
run_mpi 3 "$LADON" train "$tmp/c.yaml" compress.codec=topk compress.ratio=0.5 \
  compress.min_elements=100000000 run.dir="$tmp/small" 2>"$tmp/logs" || { cat "$tmp/logs"; fail "min_elements run"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/small/trunk.f32" 0 ||
  fail "trunk with every chunk below compress.min_elements differs from the local trainer"
# Delta pulls (compress.downlink=delta, fp32) send changed values only when that is smaller
# and the worker's copy stays exact.
run_mpi 4 "$LADON" train "$tmp/c.yaml" ps.servers=2 compress.downlink=delta \
  run.dir="$tmp/delta" 2>"$tmp/logd" || { cat "$tmp/logd"; fail "delta-pull dist run"; }
"$BUILD/f32cmp" "$tmp/local/trunk.f32" "$tmp/delta/trunk.f32" 0 ||
  fail "trunk with delta pulls differs from the local trainer"
echo "bsp matches local: ok"
