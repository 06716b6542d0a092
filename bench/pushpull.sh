#!/usr/bin/env bash
# Dense push+pull goodput of ladon's parameter servers against raw ZeroMQ PUSH/PULL measured in
# the same mpirun, for payloads 4 KiB .. 16 MiB and 1-4 servers x 1-4 workers (oversubscribed
# on this machine's cores, --bind-to none so ZeroMQ's I/O threads can use any core).
# Usage: bench/pushpull.sh [ITERS=200]
source "$(dirname "$0")/common.sh"
iters=${1:-200}
flags=(--oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_tcp_if_include lo
       --mca oob_tcp_if_include lo -x OPENBLAS_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
printf '| payload bytes | servers | workers | ladon push+pull GB/s | raw ZeroMQ GB/s | ratio |\n'
printf '|---|---|---|---|---|---|\n'
for sw in "1 1" "2 1" "1 2" "2 2" "4 4"; do
  read -r s w <<<"$sw"
  for b in 4096 65536 1048576 4194304 16777216; do
    it=$iters
    [ "$b" -ge 4194304 ] && it=$((iters / 4))
    [ "$b" -ge 16777216 ] && it=$((iters / 10))
    mpirun -np $((s + w)) "${flags[@]}" build/bench_pushpull "$s" "$b" "$it" 2>/dev/null | grep '^|'
  done
done
