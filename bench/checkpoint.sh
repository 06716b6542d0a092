#!/usr/bin/env bash
# Checkpoint write and read throughput for a >= 100M-parameter trunk, side by side with cp.
#
# The trunk 784 -> 8192 -> 8192 -> 4096 (107M parameters, 428 MB of float32) with SGD
# momentum (the momentum buffers double what is written) trains 2 steps on 2 or 4 parameter
# servers and 1 worker, then writes its final checkpoint collectively (parallel HDF5,
# Fletcher-32). In the same run:
#  - write: checkpoint bytes / time of the collective write (the coordinator's log line),
#    against `cp` of the same file plus fsync, measured twice: right after the job (the
#    memory the job freed is at hand for the copy's page cache), and while a process holds as
#    much memory as the job's ranks held together (sampled while it ran), which is what the
#    checkpoint itself faced. On this virtual machine pages that have not been touched lately
#    cost a trip to the host the first time they are written (free page reporting), so the
#    second figure is the like-for-like one. REPS runs of each (default 3), medians.
#  - read: the job resumed from that checkpoint; each server reads its rows of the trunk and
#    the momentum (serial HDF5, checksums verified), against `cat FILE > /dev/null`;
#  - resume time: from the start of `ladon train --resume` to the servers' weights loaded.
# Usage: [REPS=3] bench/checkpoint.sh [SERVERS...]   (default: 2 4)
source "$(dirname "$0")/common.sh"
export OPENBLAS_NUM_THREADS=1
servers=("$@")
[ ${#servers[@]} -gt 0 ] || servers=(2 4)
out=bench/out/ckpt
rm -rf "$out"
mkdir -p "$out"
build/ladon data synth "$out/data" --tasks 1 --features 784 --classes 10 --train 512 --test 64 \
  >/dev/null
cat >"$out/c.yaml" <<YAML
run: {dir: $out/run, seed: 1}
data: {dir: $out/data}
model: {trunk: [8192, 8192, 4096]}
tasks: {task000: {}}
train: {epochs: 1, steps_per_epoch: 2, batch_size: 32, lr: 0.01, momentum: 0.9, log_every: 0}
ps: {servers: 2, consistency: bsp, timeout: 600, chunk_kb: 1024}
checkpoint: {final: true, keep_last: 1, timeout: 1200}
YAML
mpi=(mpirun --oversubscribe --mca btl self,vader,tcp --mca btl_tcp_if_include lo
  --mca oob_tcp_if_include lo -x OPENBLAS_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{print b-a}'; }
reps=${REPS:-3}
# cp + fsync of $1, seconds
cp_sync() {
  local t0 t1
  rm -f "$out/copy.h5"
  t0=$(now)
  cp "$1" "$out/copy.h5"
  sync "$out/copy.h5"
  t1=$(now)
  rm -f "$out/copy.h5"
  secs "$t0" "$t1"
}
# the most resident memory the ladon processes held together while $1 (a pid) ran, in MB
peak_rss() {
  local peak=0 kb
  while kill -0 "$1" 2>/dev/null; do
    kb=$(ps -C ladon -o rss= | awk '{s += $1} END {print s + 0}')
    [ "$kb" -gt "$peak" ] && peak=$kb
    sleep 0.2
  done
  echo $((peak / 1024))
}
rows=()
for S in "${servers[@]}"; do
  wts=() cps=() cphs=() rss_all=()
  for rep in $(seq 1 "$reps"); do
    rm -rf "$out/run"
    # write: the final checkpoint of a 2-step run
    "${mpi[@]}" -np $((S + 2)) build/ladon train "$out/c.yaml" ps.servers="$S" \
      >"$out/write$S.log" 2>&1 &
    job=$!
    rss=$(peak_rss $job)
    wait $job || { cat "$out/write$S.log"; exit 1; }
    line=$(grep "checkpoint step 2:" "$out/write$S.log") || { cat "$out/write$S.log"; exit 1; }
    file=$(sed -n 's/.*checkpoint step 2: \([^ ]*\) .*/\1/p' <<<"$line")
    mb=$(sed -n 's/.* (\([0-9.]*\) MB in .*/\1/p' <<<"$line")
    wts+=("$(sed -n 's/.* MB in \([0-9.]*\) s.*/\1/p' <<<"$line")")
    params=$(grep -o 'trunk: [0-9]* parameters' "$out/write$S.log" | grep -o '[0-9]*')
    cps+=("$(cp_sync "$file")")
    # the same copy while as much memory is held as the job held
    "$PY" -c "import sys, time; b = b'\x01' * ($rss << 20); print('held', flush=True); time.sleep(600)" \
      >"$out/hold.txt" &
    hold=$!
    until grep -q held "$out/hold.txt" 2>/dev/null; do sleep 0.1; done
    cphs+=("$(cp_sync "$file")")
    kill $hold
    wait $hold 2>/dev/null || true
    rss_all+=("$rss")
  done
  wt=$(printf '%s\n' "${wts[@]}" | median)
  cp_s=$(printf '%s\n' "${cps[@]}" | median)
  cph_s=$(printf '%s\n' "${cphs[@]}" | median)
  rss=$(printf '%s\n' "${rss_all[@]}" | median)
  echo "servers $S: write ${wts[*]} s; cp+fsync ${cps[*]} s; cp+fsync with ${rss_all[*]} MB held ${cphs[*]} s" >&2
  # read: resume from it and stop after one more step
  "${mpi[@]}" -np $((S + 2)) build/ladon train "$out/c.yaml" ps.servers="$S" train.epochs=2 \
    checkpoint.final=false --resume "$file" >"$out/read$S.log" 2>&1 || { cat "$out/read$S.log"; exit 1; }
  grep -q "loaded its" "$out/read$S.log" || { cat "$out/read$S.log"; exit 1; }
  rt=$(grep -o 'from the checkpoint in [0-9.]* s' "$out/read$S.log" | grep -o '[0-9.]* s' |
    tr -d ' s' | sort -g | tail -n 1)
  # resume time: the job's first log line (after MPI start-up) to the last server loaded
  tosec() { awk -F: '{print $1*3600 + $2*60 + $3}' <<<"$1"; }
  first=$(grep -o '^[0-9][0-9]:[0-9:.]*' "$out/read$S.log" | head -n 1)
  last=$(grep "loaded its" "$out/read$S.log" | tail -n 1 | grep -o '^[0-9:.]*')
  resume_s=$(awk -v a="$(tosec "$first")" -v b="$(tosec "$last")" 'BEGIN{d=b-a; if (d<0) d+=86400; print d}')
  cat "$file" >/dev/null
  t0=$(now)
  cat "$file" >/dev/null
  t1=$(now)
  cat_s=$(secs "$t0" "$t1")
  rows+=("$(awk -v S="$S" -v p="$params" -v mb="$mb" -v wt="$wt" -v cp="$cp_s" -v cph="$cph_s" \
    -v rss="$rss" -v rt="$rt" -v cat="$cat_s" -v rs="$resume_s" 'BEGIN{
      printf "| %d | %.1fM | %.0f | %.2f s, %.0f MB/s | %.2f s, %.0f MB/s | %.2f | %.2f s, %.0f MB/s (%d MB held) | %.2f | %.2f s, %.0f MB/s | %.2f / %.2f | %.0f MB/s | %.1f s |",
        S, p/1e6, mb, wt, mb/wt, cp, mb/cp, cp/wt, cph, mb/cph, rss, cph/wt, rt, mb/rt, cp/rt, cph/rt, mb/cat, rs}')")
done
printf '\n| servers | trunk params | checkpoint MB | ladon write | cp + fsync | ratio | cp + fsync, job memory held | ratio | ladon read (slowest server) | read ratio vs cp + fsync / held | cat | resume time |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
echo "(read: each server reads its rows in parallel with the others, so MB/s is the whole file over the slowest server's time)"
