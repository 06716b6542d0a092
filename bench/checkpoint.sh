#!/usr/bin/env bash
# Checkpoint write and read throughput for a >= 100M-parameter trunk, side by side with cp.
#
# The trunk 784 -> 8192 -> 8192 -> 4096 (107M parameters, 428 MB of float32) with SGD
# momentum (the momentum buffers double what is written) trains 2 steps on 2 or 4 parameter
# servers and 1 worker, then writes its final checkpoint collectively (parallel HDF5,
# Fletcher-32). In the same run:
#  - write: checkpoint bytes / time of the collective write (the coordinator's log line),
#    against `cp` of the same file plus fsync (`cp` alone is also shown);
#  - read: the job resumed from that checkpoint; each server reads its rows of the trunk and
#    the momentum (serial HDF5, checksums verified), against `cat FILE > /dev/null`;
#  - resume time: from the start of `ladon train --resume` to the servers' weights loaded.
# Every figure depends on the page cache (the machine has 24 GiB; nothing is dropped, so
# writes go to the cache and reads come from it, for ladon and for cp alike).
# Usage: bench/checkpoint.sh [SERVERS...]   (default: 2 4)
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
rows=()
for S in "${servers[@]}"; do
  rm -rf "$out/run"
  # write: the final checkpoint of a 2-step run
  "${mpi[@]}" -np $((S + 2)) build/ladon train "$out/c.yaml" ps.servers="$S" \
    >"$out/write$S.log" 2>&1 || { cat "$out/write$S.log"; exit 1; }
  line=$(grep "checkpoint step 2:" "$out/write$S.log") || { cat "$out/write$S.log"; exit 1; }
  file=$(sed -n 's/.*checkpoint step 2: \([^ ]*\) .*/\1/p' <<<"$line")
  mb=$(sed -n 's/.* (\([0-9.]*\) MB in .*/\1/p' <<<"$line")
  wt=$(sed -n 's/.* MB in \([0-9.]*\) s.*/\1/p' <<<"$line")
  params=$(grep -o 'trunk: [0-9]* parameters' "$out/write$S.log" | grep -o '[0-9]*')
  t0=$(now)
  cp "$file" "$out/copy.h5"
  t1=$(now)
  sync "$out/copy.h5"
  t2=$(now)
  cp_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  cps_s=$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}')
  rm -f "$out/copy.h5"
  # read: resume from it and stop after one more step
  t0=$(now)
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
  t0=$(now)
  cat "$file" >/dev/null
  t1=$(now)
  cat_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  rows+=("$(awk -v S="$S" -v p="$params" -v mb="$mb" -v wt="$wt" -v cp="$cp_s" -v cps="$cps_s" \
    -v rt="$rt" -v cat="$cat_s" -v rs="$resume_s" 'BEGIN{
      printf "| %d | %.1fM | %.0f | %.2f s, %.0f MB/s | %.0f MB/s | %.0f MB/s | %.2f | %.2f s, %.0f MB/s | %.0f MB/s | %.2f | %.1f s |",
        S, p/1e6, mb, wt, mb/wt, mb/cps, mb/cp, (mb/wt)/(mb/cps), rt, mb/rt, mb/cat, (mb/rt)/(mb/cat), rs}')")
done
printf '\n| servers | trunk params | checkpoint MB | ladon write | cp + fsync | cp | write ratio vs cp+fsync | ladon read (slowest server) | cat | read ratio | resume time |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
echo "(read: each server reads its rows in parallel with the others, so MB/s is the whole file over the slowest server's time)"
