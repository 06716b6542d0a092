#!/usr/bin/env bash
# Compressed pushes end to end: top-k 1% + int8 with error feedback trains the synthetic tasks
# to an accuracy close to dense while pushing far fewer bytes; the bytes-per-step figure in
# metrics.jsonl is what the wire carried.
source "$(dirname "$0")/lib.sh"
synth "$tmp/data" 2 3000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/dense, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [128, 128]}
tasks: {task000: {}, task001: {}}
train: {epochs: 6, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 30}
YAML
run_mpi 5 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "dense run"; }
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/topk" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 2>"$tmp/log" || { cat "$tmp/log"; fail "top-k run"; }
push() { sed -n 's/.*"push_bytes_per_step":\([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -n 1; }
pd=$(push "$tmp/dense") pt=$(push "$tmp/topk")
echo "push bytes per step: dense $pd, top-k 1% int8 $pt"
awk -v d="$pd" -v t="$pt" 'BEGIN { exit !(t > 0 && d / t > 10) }' ||
  fail "top-k 1% + int8 pushed $pt bytes per step against $pd dense (want 10x fewer)"
for t in task000 task001; do
  ad=$(last_acc "$tmp/dense" $t) at=$(last_acc "$tmp/topk" $t)
  echo "$t: dense $ad, top-k $at"
  awk -v d="$ad" -v c="$at" 'BEGIN { exit !(c > 0.6 && c > d - 0.05) }' ||
    fail "$t: top-k accuracy $at against dense $ad"
done
# DGC warm-up: the ratio changes every epoch, and worker and servers agree on it step by step
# (a mismatch would be rejected as a foreign descriptor and fail the run).
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/warm" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.warmup_epochs=3 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "warm-up run"; }
! grep -q "rejected push" "$tmp/log" || { grep "rejected push" "$tmp/log" | head -3; fail "pushes rejected"; }
first=$(sed -n '1s/.*"push_bytes_per_step":\([0-9.]*\).*/\1/p' "$tmp/warm/metrics.jsonl")
last=$(push "$tmp/warm")
echo "warm-up: push bytes per step after epoch 1 $first, overall $last"
awk -v f="$first" -v p="$pt" 'BEGIN { exit !(f > 5 * p) }' ||
  fail "the first warm-up epoch should push far more than 1% ($first vs $pt)"
for t in task000 task001; do
  a=$(last_acc "$tmp/warm" $t)
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "warm-up: $t accuracy $a"
done
# DGC momentum correction: momentum moves to the workers, servers apply plain SGD.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/mc" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "momentum-correction run"; }
for t in task000 task001; do
  a=$(last_acc "$tmp/mc" $t)
  echo "$t: momentum correction $a"
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "momentum correction: $t accuracy $a"
done
# Sparse pulls (compress.downlink=delta): with momentum correction the servers change only
# the keys pushed, so pulls carry the changed values; fp32 deltas are exact, so the run is
# the same run as with dense pulls, evaluation for evaluation.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/down" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true \
  compress.downlink=delta 2>"$tmp/log" || { cat "$tmp/log"; fail "delta-downlink run"; }
pull() { sed -n 's/.*"pull_bytes_per_step":\([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -n 1; }
acc_lines() { grep -o '"task":"[^"]*","step":[0-9]*,"epoch":[0-9.]*,"loss":[0-9.]*,"accuracy":[0-9.]*' "$1/metrics.jsonl"; }
diff <(acc_lines "$tmp/mc") <(acc_lines "$tmp/down") || fail "fp32 delta pulls changed the run"
pm=$(pull "$tmp/mc") pdl=$(pull "$tmp/down")
echo "pull bytes per step: dense $pm, delta $pdl"
awk -v d="$pm" -v t="$pdl" 'BEGIN { exit !(t > 0 && d / t > 5) }' ||
  fail "delta pulls carried $pdl bytes per step against $pm dense (want 5x fewer)"
# int8 deltas: what rounding loses is sent with the next pull; training still works.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/down8" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true \
  compress.downlink=delta compress.downlink_quant=int8 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "int8 delta-downlink run"; }
for t in task000 task001; do
  a=$(last_acc "$tmp/down8" $t) b=$(last_acc "$tmp/mc" $t)
  echo "$t: int8 delta pulls $a (dense pulls $b)"
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > 0.6 && a > b - 0.03) }' || fail "int8 delta pulls: $t accuracy $a"
done
# DGC local gradient clipping: a bound never reached changes nothing; a tight one changes the
# run and it still trains.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/clipwide" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true \
  compress.clip_norm=1e9 2>"$tmp/log" || { cat "$tmp/log"; fail "clip run (wide)"; }
diff <(acc_lines "$tmp/mc") <(acc_lines "$tmp/clipwide") || fail "an unreached clip bound changed the run"
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/clip" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true \
  compress.clip_norm=0.2 2>"$tmp/log" || { cat "$tmp/log"; fail "clip run"; }
! diff -q <(acc_lines "$tmp/mc") <(acc_lines "$tmp/clip") >/dev/null || fail "clip_norm=0.2 changed nothing"
for t in task000 task001; do
  a=$(last_acc "$tmp/clip" $t)
  echo "$t: clipped to 0.2: $a"
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "clipped run: $t accuracy $a"
done
# Global top-k (compress.scope=global): 1% of the whole trunk, wherever it is, same bytes.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/global" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true compress.scope=global \
  2>"$tmp/log" || { cat "$tmp/log"; fail "global-scope run"; }
pg=$(push "$tmp/global")
echo "push bytes per step, global top-k 1%: $pg"
awk -v d="$pd" -v t="$pg" 'BEGIN { exit !(t > 0 && d / t > 10) }' || fail "global top-k pushed $pg bytes"
for t in task000 task001; do
  a=$(last_acc "$tmp/global" $t)
  echo "$t: global top-k $a"
  awk -v a="$a" 'BEGIN { exit !(a > 0.6) }' || fail "global top-k: $t accuracy $a"
done
# Small chunks stay dense (compress.min_elements): with every chunk below the bound the pushes
# are dense fp32 frames again.
run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/small" compress.codec=topk \
  compress.ratio=0.01 compress.quant=int8 compress.min_elements=100000000 2>"$tmp/log" ||
  { cat "$tmp/log"; fail "min_elements run"; }
ps=$(push "$tmp/small")
echo "push bytes per step with every chunk below min_elements: $ps (dense $pd)"
awk -v d="$pd" -v t="$ps" 'BEGIN { exit !(t > 0.95 * d) }' || fail "min_elements: pushes were not dense"
echo "compressed pushes: ok"
