#!/usr/bin/env bash
# Soak (label slow; issue 14): a job of 7 ranks (coordinator, 2 servers, a task group of 2
# workers and two of 1) trains for LDN_SOAK_MINUTES (default 30) under bsp with top-k + int8
# pushes, error feedback, delta pulls, an evaluation every epoch and a checkpoint every 200
# steps (keep_last 2). Every 15 s the resident memory (VmRSS) of every rank is sampled; after
# the warm-up (the first quarter of the samples) no rank may grow by more than 5% + 4 MiB over
# its size at the end of the warm-up. The job must end with exit 0; in the sanitizer build
# (build-asan) LeakSanitizer checks every rank at exit, and a leak fails the job.
source "$(dirname "$0")/lib.sh"
minutes=${LDN_SOAK_MINUTES:-30}
# Under AddressSanitizer freed memory waits in a quarantine (256 MiB by default) that fills for
# the whole run and would read as growth: the soak runs without it (leak checks are unchanged).
if ldd "$LADON" 2>/dev/null | grep -q libasan; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
fi
t_start=$(date +%s)
synth "$tmp/data" 3 3000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/cal, seed: 3}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {workers: 2}, task001: {}, task002: {}}
train: {epochs: 3, batch_size: 32, lr: 0.05, momentum: 0.9, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 120}
compress: {codec: topk, ratio: 0.1, quant: int8, error_feedback: true, downlink: delta}
checkpoint: {every_steps: 200, keep_last: 2}
YAML
np=7
run_mpi $np "$LADON" train "$tmp/c.yaml" 2>"$tmp/cal.log" || { cat "$tmp/cal.log"; fail "calibration run"; }
# seconds per epoch: elapsed_s of the evaluations after epochs 1 and 3
per=$(awk -F'"elapsed_s":' 'NF > 1 { split($2, a, ","); if ($0 ~ /"epoch":1\.0000/) e1 = a[1]; if ($0 ~ /"epoch":3\.0000/) e3 = a[1] }
  END { print (e3 - e1) / 2 }' "$tmp/cal/metrics.jsonl")
# 20% more epochs than the calibration asks for: the machine's load falls as well as rises, and
# the soak is to last at least LDN_SOAK_MINUTES (the end says how long it took)
epochs=$(awk -v p="$per" -v m="$minutes" 'BEGIN { e = p > 0 ? int(1.2 * m * 60 / p) : 0; print e < 8 ? 8 : e }')
echo "soak: one epoch takes ${per} s; running $epochs epochs (~$minutes min)"
run_mpi $np "$LADON" train "$tmp/c.yaml" run.dir="$tmp/soak" train.epochs="$epochs" \
  2>"$tmp/soak.log" &
job=$!
: >"$tmp/rss"
while kill -0 "$job" 2>/dev/null; do
  for p in /proc/[0-9]*; do
    [ "$(cat "$p/comm" 2>/dev/null)" = ladon ] || continue
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "run.dir=$tmp/soak" || continue
    rank=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null | sed -n 's/^OMPI_COMM_WORLD_RANK=//p')
    rss=$(awk '/^VmRSS:/ { print $2 }' "$p/status" 2>/dev/null)
    [ -n "$rank" ] && [ -n "$rss" ] && echo "$(date +%s) $rank $rss" >>"$tmp/rss"
  done
  sleep 15
done
wait "$job" || { tail -n 30 "$tmp/soak.log"; fail "the soak run failed (exit != 0; a leak report is above if LeakSanitizer found one)"; }
grep -q "done:" "$tmp/soak.log" || { tail -n 20 "$tmp/soak.log"; fail "the soak run did not finish"; }
# flat after the warm-up, per rank
awk -v np=$np '
  { n[$2]++; t[$2, n[$2]] = $1; r[$2, n[$2]] = $3 }
  END {
    bad = 0
    for (k = 0; k < np; k++) {
      if (n[k] < 8) { printf "rank %d: only %d samples\n", k, n[k]; bad = 1; continue }
      w = int(n[k] / 4); base = r[k, w]; top = base
      for (i = w; i <= n[k]; i++) if (r[k, i] > top) top = r[k, i]
      lim = base * 1.05 + 4096
      printf "rank %d: %d samples, %.1f MiB after warm-up, at most %.1f MiB after (limit %.1f), %.1f MiB at the end\n",
        k, n[k], base / 1024, top / 1024, lim / 1024, r[k, n[k]] / 1024
      if (top > lim) bad = 1
    }
    exit bad
  }' "$tmp/rss" || fail "resident memory grew after the warm-up (samples above)"
echo "soak: ok ($(( ($(date +%s) - t_start) / 60 )) minutes in all, $epochs epochs; asked for at least $minutes)"
