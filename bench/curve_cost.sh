#!/usr/bin/env bash
# The cost of net.curve, side by side in one run (alternating, median of REPEATS):
#  - dense push+pull goodput of ladon's kv client and servers (bench_pushpull) with plain TCP
#    and with CURVE, raw ZeroMQ PUSH/PULL measured in the same mpirun as the reference;
#  - training samples/s of configs/bench-mlp.yaml (784-256-256-10, batch 128, bsp, dense) with
#    1 server + 1 worker and 1 server + 2 workers, and 1 + 1 with compressed pushes (top-k 1%,
#    int8) and delta pulls, net.curve=false vs true.
# Needs no PyTorch (unlike bench/common.sh). Usage: bench/curve_cost.sh [REPEATS=3] [EPOCHS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
epochs=${2:-2}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
[ -x build/ladon ] || launch/build
[ -f data/fmnist/category.h5 ] || build/ladon data fmnist data/fmnist
mkdir -p bench/out
json_field() { sed -n "s/.*\"$2\": *\([-0-9.e+]*\).*/\1/p" <<<"$1" | tail -n 1; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
flags=(--oversubscribe --bind-to none --mca btl self,vader,tcp --mca btl_tcp_if_include lo
  --mca oob_tcp_if_include lo -x OPENBLAS_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
echo "load before: $(uptime)"

# push/pull: column 4 of bench_pushpull's row is ladon's goodput, column 5 raw ZeroMQ's
pp() { mpirun -np "$1" "${flags[@]}" build/bench_pushpull "${@:2}" 2>/dev/null | grep '^|'; }
printf '\n| payload bytes | servers | workers | plain GB/s | CURVE GB/s | CURVE / plain | raw ZeroMQ GB/s |\n'
printf '|---|---|---|---|---|---|---|\n'
for sw in "1 1" "1 2" "2 2"; do
  read -r s w <<<"$sw"
  for b in 65536 1048576 4194304; do
    it=100
    [ "$b" -ge 4194304 ] && it=25
    : >bench/out/cc_plain.txt
    : >bench/out/cc_curve.txt
    : >bench/out/cc_raw.txt
    for _ in $(seq "$reps"); do
      row=$(pp $((s + w)) "$s" "$b" "$it")
      cut -d'|' -f5 <<<"$row" >>bench/out/cc_plain.txt
      cut -d'|' -f6 <<<"$row" >>bench/out/cc_raw.txt
      pp $((s + w)) "$s" "$b" "$it" curve | cut -d'|' -f5 >>bench/out/cc_curve.txt
    done
    p=$(median <bench/out/cc_plain.txt) c=$(median <bench/out/cc_curve.txt)
    r=$(median <bench/out/cc_raw.txt)
    printf '| %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n' "$b" "$s" "$w" "$p" "$c" \
      "$(awk -v a="$c" -v b="$p" 'BEGIN{print a/b}')" "$r"
  done
done

# training samples/s, 1+1 and 1+2, alternating plain and CURVE
cfg=configs/bench-mlp.yaml
sps() { json_field "$(tail -n 1 "$1/metrics.jsonl")" samples_per_s; }
runs="one two topk"
for n in $runs; do : >"bench/out/cc_${n}_off.txt"; : >"bench/out/cc_${n}_on.txt"; done
for _ in $(seq "$reps"); do
  for c in off on; do
    v=false
    [ $c = on ] && v=true
    LDN_WORKERS=1 launch/ladon-run $cfg train.epochs="$epochs" ps.servers=1 net.curve=$v \
      run.dir=bench/out/cc_one_$c 2>/dev/null >/dev/null
    sps bench/out/cc_one_$c >>bench/out/cc_one_$c.txt
    launch/ladon-run $cfg train.epochs="$epochs" ps.servers=1 tasks.category.workers=2 \
      net.curve=$v run.dir=bench/out/cc_two_$c 2>/dev/null >/dev/null
    sps bench/out/cc_two_$c >>bench/out/cc_two_$c.txt
    LDN_WORKERS=1 launch/ladon-run $cfg train.epochs="$epochs" ps.servers=1 net.curve=$v \
      compress.codec=topk compress.ratio=0.01 compress.quant=int8 compress.downlink=delta \
      run.dir=bench/out/cc_topk_$c 2>/dev/null >/dev/null
    sps bench/out/cc_topk_$c >>bench/out/cc_topk_$c.txt
  done
done
med() { median <"bench/out/cc_$1.txt"; }
printf '\n| training run | net.curve false samples/s | net.curve true samples/s | true / false |\n'
printf '|---|---|---|---|\n'
for n in $runs; do
  a=$(med ${n}_off) b=$(med ${n}_on)
  case $n in
    one) label="1 server + 1 worker (bsp, dense)" ;;
    two) label="1 server + 2 workers (bsp, dense)" ;;
    topk) label="1 server + 1 worker (bsp, top-k 1% int8 pushes, delta pulls)" ;;
  esac
  printf '| %s | %.0f | %.0f | %.2f |\n' "$label" "$a" "$b" \
    "$(awk -v x="$b" -v y="$a" 'BEGIN{print x/y}')"
done
for n in $runs; do
  for c in off on; do printf '%s_%s: %s\n' $n $c "$(tr '\n' ' ' <bench/out/cc_${n}_$c.txt)"; done
done
echo "load after: $(uptime)"
