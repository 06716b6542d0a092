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
MC=(compress.codec=topk compress.ratio=0.01 compress.quant=int8 compress.momentum_correction=true)
train_as() { # train_as NAME OVERRIDES...: a run into $tmp/NAME, its log shown if it fails
  local name=$1
  shift
  run_mpi 5 "$LADON" train "$tmp/c.yaml" run.dir="$tmp/$name" "$@" 2>"$tmp/log" ||
    { cat "$tmp/log"; fail "$name run"; }
}
trains() { # trains NAME [FLOOR]: every task of run NAME ends above FLOOR (default 0.6)
  local t a
  for t in task000 task001; do
    a=$(last_acc "$tmp/$1" $t)
    echo "$t: $1 $a"
    awk -v a="$a" -v f="${2:-0.6}" 'BEGIN { exit !(a > f) }' || fail "$1: $t accuracy $a"
  done
}
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
train_as warm compress.codec=topk compress.ratio=0.01 compress.quant=int8 \
  compress.warmup_epochs=3
! grep -q "rejected push" "$tmp/log" || { grep "rejected push" "$tmp/log" | head -3; fail "pushes rejected"; }
first=$(sed -n '1s/.*"push_bytes_per_step":\([0-9.]*\).*/\1/p' "$tmp/warm/metrics.jsonl")
last=$(push "$tmp/warm")
echo "warm-up: push bytes per step after epoch 1 $first, overall $last"
awk -v f="$first" -v p="$pt" 'BEGIN { exit !(f > 5 * p) }' ||
  fail "the first warm-up epoch should push far more than 1% ($first vs $pt)"
trains warm
# DGC momentum correction: momentum moves to the workers, servers apply plain SGD.
train_as mc "${MC[@]}"
trains mc
# Sparse pulls (compress.downlink=delta): with momentum correction the servers change only
# the keys pushed, so pulls carry the changed values; fp32 deltas are exact, so the run is
# the same run as with dense pulls, evaluation for evaluation.
train_as down "${MC[@]}" compress.downlink=delta
pull() { sed -n 's/.*"pull_bytes_per_step":\([0-9.]*\).*/\1/p' "$1/metrics.jsonl" | tail -n 1; }
acc_lines() { grep -o '"task":"[^"]*","step":[0-9]*,"epoch":[0-9.]*,"loss":[0-9.]*,"accuracy":[0-9.]*' "$1/metrics.jsonl"; }
diff <(acc_lines "$tmp/mc") <(acc_lines "$tmp/down") || fail "fp32 delta pulls changed the run"
pm=$(pull "$tmp/mc") pdl=$(pull "$tmp/down")
echo "pull bytes per step: dense $pm, delta $pdl"
awk -v d="$pm" -v t="$pdl" 'BEGIN { exit !(t > 0 && d / t > 5) }' ||
  fail "delta pulls carried $pdl bytes per step against $pm dense (want 5x fewer)"
# int8 deltas: what rounding loses is sent with the next pull; training still works.
train_as down8 "${MC[@]}" compress.downlink=delta compress.downlink_quant=int8
for t in task000 task001; do
  a=$(last_acc "$tmp/down8" $t) b=$(last_acc "$tmp/mc" $t)
  echo "$t: int8 delta pulls $a (dense pulls $b)"
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > 0.6 && a > b - 0.03) }' || fail "int8 delta pulls: $t accuracy $a"
done
# Without momentum factor masking the velocity survives a send: another run, and it trains.
train_as nomask "${MC[@]}" compress.momentum_masking=false
! diff -q <(acc_lines "$tmp/mc") <(acc_lines "$tmp/nomask") >/dev/null ||
  fail "momentum_masking=false changed nothing"
trains nomask
# Nesterov momentum correction (train.nesterov=true): the workers send g + momentum * u. With
# every element sent in fp32 and no masking that is dense Nesterov SGD, the momentum kept per
# worker instead of on the servers: the same weights but for float rounding, one epoch on.
# Classical momentum correction, the same way, is dense classical momentum SGD, and the check
# tells the two apart.
ALL=(compress.codec=topk compress.ratio=1 compress.quant=fp32 compress.momentum_correction=true
  compress.momentum_masking=false train.epochs=1 checkpoint.final=true)
train_as nd1 train.nesterov=true train.epochs=1 checkpoint.final=true
train_as cd1 train.epochs=1 checkpoint.final=true
train_as nmc1 "${ALL[@]}" train.nesterov=true
train_as cmc1 "${ALL[@]}"
trunk_diff() { # trunk_diff A B: 0 when the trunks of runs A and B agree within 1e-4, 1 if not
  local rc=0
  h5diff -d 1e-4 "$(ls "$tmp/$1"/checkpoints/step-*.h5)" \
    "$(ls "$tmp/$2"/checkpoints/step-*.h5)" /trunk /trunk >/dev/null || rc=$?
  [ "$rc" -le 1 ] || fail "h5diff $1 $2: exit $rc"
  return "$rc"
}
trunk_diff nd1 nmc1 || fail "Nesterov momentum correction at ratio 1 is not dense Nesterov SGD"
trunk_diff cd1 cmc1 || fail "momentum correction at ratio 1 is not dense momentum SGD"
! trunk_diff nd1 cmc1 || fail "classical and Nesterov momentum correction gave the same trunk"
# Momentum correction switched on and off on resume: the momentum moves between the servers
# and the workers (docs/checkpoint.md), said once, and the runs go on to the end.
train_as onmc "${MC[@]}" train.epochs=2 --resume "$tmp/cd1"
grep -q "the momentum moves from the servers (their buffers are not read) to the workers'" \
  "$tmp/log" || { cat "$tmp/log"; fail "switching momentum correction on: no warning"; }
train_as offmc train.epochs=2 --resume "$tmp/cmc1"
grep -q "the momentum moves from the workers' velocities (dropped) to the servers" "$tmp/log" ||
  { cat "$tmp/log"; fail "switching momentum correction off: no warning"; }
trains onmc
trains offmc
train_as nmc "${MC[@]}" train.nesterov=true
! diff -q <(acc_lines "$tmp/mc") <(acc_lines "$tmp/nmc") >/dev/null ||
  fail "train.nesterov=true changed nothing under momentum correction"
trains nmc
# DGC local gradient clipping: a bound never reached changes nothing; a tight one changes the
# run and it still trains.
train_as clipwide "${MC[@]}" compress.clip_norm=1e9
diff <(acc_lines "$tmp/mc") <(acc_lines "$tmp/clipwide") || fail "an unreached clip bound changed the run"
train_as clip "${MC[@]}" compress.clip_norm=0.2
! diff -q <(acc_lines "$tmp/mc") <(acc_lines "$tmp/clip") >/dev/null || fail "clip_norm=0.2 changed nothing"
trains clip
# Global top-k (compress.scope=global): 1% of the whole trunk, wherever it is, same bytes.
train_as global "${MC[@]}" compress.scope=global
pg=$(push "$tmp/global")
echo "push bytes per step, global top-k 1%: $pg"
awk -v d="$pd" -v t="$pg" 'BEGIN { exit !(t > 0 && d / t > 10) }' || fail "global top-k pushed $pg bytes"
trains global
# Small chunks stay dense (compress.min_elements): with every chunk below the bound the pushes
# are dense fp32 frames again.
train_as small compress.codec=topk compress.ratio=0.01 compress.quant=int8 \
  compress.min_elements=100000000
ps=$(push "$tmp/small")
echo "push bytes per step with every chunk below min_elements: $ps (dense $pd)"
awk -v d="$pd" -v t="$ps" 'BEGIN { exit !(t > 0.95 * d) }' || fail "min_elements: pushes were not dense"
# The servers' sparse apply (bsp, sparse pushes, plain SGD: only the keys pushed are summed,
# updated and offered to delta pulls) is the dense apply key for key: the same run on the
# dense path (test hook LDN_PS_DENSE_APPLY) ends with the same weights, bit for bit. Some
# chunks dense (min_elements), delta pulls: every branch of the sparse path is in.
SP=("${MC[@]}" compress.min_elements=5000 compress.downlink=delta checkpoint.final=true)
train_as sp "${SP[@]}"
LDN_PS_DENSE_APPLY=1 run_mpi 5 -x LDN_PS_DENSE_APPLY "$LADON" train "$tmp/c.yaml" \
  run.dir="$tmp/dn" "${SP[@]}" 2>"$tmp/log" || { cat "$tmp/log"; fail "dense-apply run"; }
diff <(acc_lines "$tmp/sp") <(acc_lines "$tmp/dn") || fail "the sparse apply changed the run"
a=$(ls "$tmp"/sp/checkpoints/step-*.h5) b=$(ls "$tmp"/dn/checkpoints/step-*.h5)
for g in /trunk /workers; do
  h5diff -d 0 "$a" "$b" $g $g || fail "sparse and dense apply: $g differs"
done
echo "compressed pushes: ok"
