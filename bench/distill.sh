#!/usr/bin/env bash
# Knowledge distillation on Fashion-MNIST with the local trainer (issue 12), per seed one run
# with rounds: three members (256-256, trained on labels, each with its own seed), then for a
# student of 128-128 and of 64-64: trained on labels alone, distilled from the members'
# ensemble on its own inputs, and distilled with inputs: all -- every student of one size with
# the same seed, length and schedule as the members. Prints per task the members, their
# ensemble and the students (mean over the seeds), then, on the first seed, a sweep of T and
# alpha for the 64-64 student (members reused as checkpoint paths), and the cost: soft-target
# GFLOP/s against one core's sgemm bound (~100 GFLOP/s, PLATFORM.md), a distillation round's
# samples/s against its label-only twin's, the time of a round transition.
# Usage: bench/distill.sh [SEEDS=3] [EPOCHS=15] [VARIANTS="own all"] (a variant ending in "lin"
# anneals the teacher's weight linearly, BAM: ownlin, alllin)
source "$(dirname "$0")/common.sh"
seeds=${1:-3}
epochs=${2:-15}
variants=${3:-own all}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
out=bench/out/distill
mkdir -p $out
tasks="category group parity"
T=${T:-2}
ALPHA=${ALPHA:-0.5}
student() { # NAME TRUNK SEED [VARIANT [T [ALPHA]]]: VARIANT own, all, or ownlin / alllin (BAM
  # teacher annealing, linear)
  if [ -z "${4:-}" ]; then
    printf '  - {name: %s, trunk: %s, seed: %s}\n' "$1" "$2" "$3"
  else
    local inputs=${4%lin} anneal=none
    [ "$inputs" != "$4" ] && anneal=linear
    printf '  - {name: %s, trunk: %s, seed: %s, teacher: {members: [%s], temperature: %s, alpha: %s, inputs: %s, annealing: %s}}\n' \
      "$1" "$2" "$3" "${MEMBERS:-m1, m2, m3}" "${5:-$T}" "${6:-$ALPHA}" "$inputs" "$anneal"
  fi
}
config() { # SEED -> a config with rounds on stdout
  local s=$1
  sed '/^rounds:/,$d' configs/fmnist-distill.yaml
  echo "rounds:"
  for m in 1 2 3; do printf '  - {name: m%d, seed: %d}\n' $m $((100 * s + m)); done
  for size in 128 64; do
    student "lab$size" "[$size, $size]" $((100 * s + 21))
    for v in $variants; do student "$v$size" "[$size, $size]" $((100 * s + 21)) "$v"; done
  done
}
acc() { # RUN ROUND TASK -> final test accuracy
  json_field "$(grep "\"task\":\"$3\"" "$1/rounds/$2/metrics.jsonl" | tail -n 1)" accuracy
}
for s in $(seq "$seeds"); do
  config "$s" >$out/seed$s.yaml
  echo "seed $s: $(grep -c 'name:' $out/seed$s.yaml) rounds" >&2
  build/ladon train --local --overwrite $out/seed$s.yaml train.epochs="$epochs" run.dir=$out/run$s \
    2>$out/run$s.log || { tail -n 5 $out/run$s.log; exit 1; }
done
mean() { awk '{s += $1; n++} END {printf "%.2f", n ? 100 * s / n : 0}'; }
rounds="m1 m2 m3 lab128 $(for v in $variants; do printf '%s128 ' $v; done)lab64 $(for v in $variants; do printf '%s64 ' $v; done)"
printf '\n| task | %s | ensemble |\n|---|' "$(echo $rounds | sed 's/ / | /g')"
for r in $rounds x; do printf -- '---|'; done
echo
for t in $tasks; do
  printf '| %s |' "$t"
  for r in $rounds; do
    printf ' %s |' "$(for s in $(seq "$seeds"); do acc $out/run$s $r $t; echo; done | grep . | mean)"
  done
  ens=$(for s in $(seq "$seeds"); do
    sed -n "s/.*teacher on $t: ensemble \([0-9.]*\)%.*/\1/p" $out/run$s.log | head -n 1
  done | awk '{s += $1; n++} END {printf "%.2f", s / n}')
  printf ' %s |\n' "$ens"
done
echo "(test accuracy %, mean of $seeds seed(s), $epochs epochs each; T $T, alpha $ALPHA)"
for s in $(seq "$seeds"); do
  printf 'seed %s:' "$s"
  for r in $rounds; do printf ' %s %s' "$r" "$(acc $out/run$s $r category)"; done
  echo
done

# the sweep: T and alpha for the 64-64 student, on seed 1's members
if [ "${SWEEP:-1}" = 1 ]; then
  {
    sed '/^rounds:/,$d' configs/fmnist-distill.yaml
    echo "rounds:"
    student lab64 "[64, 64]" 121
    for t in 1 2 4; do
      for a in 0.3 0.5 0.9; do
        MEMBERS="$out/run1/rounds/m1/checkpoints, $out/run1/rounds/m2/checkpoints, $out/run1/rounds/m3/checkpoints" \
          student "T${t}a${a/./}" "[64, 64]" 121 own "$t" "$a"
      done
    done
  } >$out/sweep.yaml
  build/ladon train --local --overwrite $out/sweep.yaml train.epochs="$epochs" run.dir=$out/sweep \
    2>$out/sweep.log || { tail -n 5 $out/sweep.log; exit 1; }
  printf '\n| 64-64 student, seed 1 | %s |\n|---|---|---|---|\n' "$(echo $tasks | sed 's/ / | /g')"
  for r in lab64 $(for t in 1 2 4; do for a in 03 05 09; do printf 'T%sa%s ' $t $a; done; done); do
    printf '| %s |' "$r"
    for t in $tasks; do awk -v a="$(acc $out/sweep $r $t)" 'BEGIN{printf " %.2f |", 100 * a}'; done
    echo
  done
fi

# cost, from seed 1's log
g=$(sed -n 's/.*soft targets of .* (\([0-9.]*\) GFLOP\/s).*/\1/p' $out/run1.log | head -n 1)
sps() { json_field "$(tail -n 1 "$out/run1/rounds/$1/metrics.jsonl")" samples_per_s; }
printf '\nsoft targets: %s GFLOP/s (%.0f%% of ~100 GFLOP/s sgemm, one core)\n' "$g" "$g"
for size in 128 64; do
  for v in $variants; do
    awk -v a="$(sps "$v$size")" -v b="$(sps "lab$size")" -v n="$v$size" -v z="$size" \
      'BEGIN{printf "%s samples/s %.0f vs lab%s %.0f: %.2fx\n", n, a, z, b, a / b}'
  done
done
# a round transition: from a round's last line (its snapshot written) to the next round's first
# step (data, model, init and the teacher's soft targets ready)
awk '/ done: / {t = $1} /local training:/ && t {split(t, a, ":"); split($1, b, ":");
     d = (b[1] * 3600 + b[2] * 60 + b[3]) - (a[1] * 3600 + a[2] * 60 + a[3]);
     l = l sprintf(" %.2f", d); t = ""} END {print "round transitions (s):" l}' $out/run1.log
