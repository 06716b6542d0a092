#!/usr/bin/env bash
# Where bandwidth is scarce: ladon dense, ladon with compressed pushes (top-k 1% + int8 + error
# feedback + DGC momentum correction), the same with sparse pull deltas (compress.downlink=delta)
# and PyTorch DistributedDataParallel (gloo) on the emulated
# 4-host cluster of ../shared/cluster (netns-cluster: one network namespace per host, every
# host's outgoing link shaped with tc), first at 1 Gbit/s, then at 100 Mbit/s.
#
# Same model, data, batch and steps for all: by default the MLP 784-256-256-10 on the
# Fashion-MNIST category task (configs/bench-mlp.yaml), batch 128 per worker, SGD momentum 0.9,
# lr 0.05 with cosine decay, 4 trainers (one per host, each on a contiguous quarter of the
# rows), ceil(N / (batch * 4)) steps per epoch (79), evaluation on the 10,000 test rows every
# 0.25 epoch.
#
# Layout (9 ladon ranks, --map-by node over 4 hosts with 3 slots each): host 1 coordinator +
# server 4 + worker 8, host 2 server 1 + worker 5, host 3 server 2 + worker 6, host 4 server 3 +
# worker 7. Every worker is on its own host, and so is every server: the trunk is split over all
# four hosts, so the dense pulls leave through four links, not two. PyTorch: one process per host
# (ip netns exec), rendezvous at host 1 (10.213.0.11), gloo, one thread each.
#
# Reported per (link rate, system): aggregate samples/s (training time, evaluation excluded),
# final test accuracy, training time until the first evaluation at >= TARGET, push and pull
# bytes per worker-step (ladon's metrics; for DDP the ring allreduce's 2 (N-1)/N of the
# gradient), bytes each host sent per step as counted on its link (all traffic), and how busy
# the machine's 2 cores were during the run.
#
# Usage: bench/cluster_bandwidth.sh [REPEATS=3] [EPOCHS=10] [SLOW_EPOCHS=EPOCHS] [SLOW_REPEATS=2]
#   REPEATS runs of each system at 1 Gbit/s (median), SLOW_REPEATS at 100 Mbit/s with
#   SLOW_EPOCHS epochs (the same for every system); 0 skips that link rate. TARGET=0.85 sets the accuracy target.
#   LDNC_CLUSTER=path/to/netns-cluster when the source tree is not beside ../shared.
#   BATCH=128 (per trainer), TRUNK=256,256 (hidden widths) and LR=0.05 set the workload for
#   every system; SYSTEMS="dense compressed delta ddp" picks which run.
source "$(dirname "$0")/common.sh"
reps=${1:-3}
epochs=${2:-10}
slow_epochs=${3:-$epochs}
slow_reps=${4:-2}
target=${TARGET:-0.85}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
nc=${LDNC_CLUSTER:-$root/../shared/cluster/netns-cluster}
[ -x "$nc" ] || { echo "no netns-cluster at $nc (set LDNC_CLUSTER)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "the emulated cluster needs root" >&2; exit 2; }
hosts=4 servers=4 workers=4 batch=${BATCH:-128} trunk=${TRUNK:-256,256} lr=${LR:-0.05}
eval_every=0.25 systems=${SYSTEMS:-dense compressed delta ddp}
np=$((1 + servers + workers))
cfg=configs/bench-mlp.yaml
common=(ps.servers=$servers tasks.category.workers=$workers train.batch_size=$batch
        "model.trunk=[$trunk]" train.lr="$lr"
        train.eval_every=$eval_every train.lr_schedule=cosine train.log_every=0 ps.timeout=120)
compressed=(compress.codec=topk compress.ratio=0.01 compress.quant=int8
            compress.error_feedback=true compress.momentum_correction=true)
delta=("${compressed[@]}" compress.downlink=delta) # and pulls as sparse fp32 deltas
out=bench/out/cb
rm -rf "$out" && mkdir -p "$out"
res=$out/results.txt # rate system rep samples/s accuracy t_target push pull wire_per_host cpu_busy steps
: >"$res"

"$nc" down >/dev/null 2>&1 || true
trap '"$nc" down >/dev/null 2>&1 || true' EXIT
"$nc" up $hosts --rate 1gbit --slots 3 >/dev/null
t_begin=$(date +%s)
load_before=$(uptime)

# The cluster is one per machine (fixed names): a test suite or anyone else running
# netns-cluster down/up meanwhile takes it away; say so rather than measure something else.
cluster_ok() { local i; for i in $(seq $hosts); do
  [ -e /sys/class/net/ldncv$i ] || { echo "the emulated cluster went away (host $i missing:" \
    "did something else run netns-cluster down?)" >&2; exit 1; }; done; }
# Bytes sent by every host so far (the bridge side of each host's veth receives them).
tx_all() { local s=0 i; for i in $(seq $hosts); do
  s=$((s + $(cat /sys/class/net/ldncv$i/statistics/rx_bytes))); done; echo $s; }
# busy and total jiffies of the whole machine (idle, iowait and niced work are not busy: a
# niced job elsewhere only takes what the benchmark leaves)
cpu_now() { awk '/^cpu / {t=0; for (i=2; i<=NF; i++) t+=$i; print t-$3-$5-$6, t}' /proc/stat; }
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN {split(a, x, " "); split(b, y, " ");
  printf "%.0f", 100 * (y[1]-x[1]) / (y[2]-x[2])}'; }

ladon_run() { # NAME RATE REP EPOCHS OVERRIDES...
  local name=$1 rate=$2 rep=$3 ep=$4; shift 4
  local dir=$out/${name}_${rate}_$rep attempt tx0 tx1 c0 c1
  for attempt in 1 2; do
    rm -rf "$dir"
    cluster_ok
    tx0=$(tx_all) c0=$(cpu_now)
    if timeout 1800 "$nc" mpirun -np $np --map-by node --bind-to none --display-map \
      --mca rtc_hwloc_vmhole none -x OPENBLAS_NUM_THREADS=1 \
      build/ladon train $cfg "${common[@]}" train.epochs="$ep" run.dir="$dir" "$@" \
      >"$dir.log" 2>&1; then
      break
    fi
    # Open MPI's daemons now and then fail to start inside the namespaces (tests/mpi/cluster.sh)
    if [ $attempt = 1 ] && grep -qE "ORTE|orted|daemon" "$dir.log"; then
      echo "note: Open MPI could not start its daemons ($name $rate); trying once more" >&2
      continue
    fi
    tail -n 20 "$dir.log" >&2
    echo "$name at $rate failed (see $dir.log)" >&2
    exit 1
  done
  cluster_ok
  tx1=$(tx_all) c1=$(cpu_now)
  # every worker on its own host, every server on its own host
  local wh sh
  wh=$(awk -v lo=$((1 + servers)) '/Data for node:/ {h=$4} /Process rank:/ {for (i=1;i<=NF;i++) if ($i=="rank:") r=$(i+1)+0; if (r>=lo) print h}' "$dir.log" | sort -u | wc -l)
  sh=$(sed -n 's/.*server rank [0-9]*: .* at tcp:\/\/\([0-9.]*\):.*/\1/p' "$dir.log" | sort -u | wc -l)
  [ "$wh" -eq $workers ] && [ "$sh" -eq $servers ] ||
    { echo "placement: workers on $wh hosts, servers on $sh hosts (expected $workers, $servers)" >&2; exit 1; }
  local last steps
  last=$(tail -n 1 "$dir/metrics.jsonl")
  steps=$(json_field "$last" step)
  local t_target
  t_target=$(awk -v tg="$target" -v b=$batch -v w=$workers '
    { match($0, /"step":[0-9]+/); s = substr($0, RSTART+7, RLENGTH-7);
      match($0, /"accuracy":[0-9.]+/); a = substr($0, RSTART+11, RLENGTH-11);
      match($0, /"samples_per_s":[0-9.]+/); v = substr($0, RSTART+16, RLENGTH-16);
      if (a + 0 >= tg) { printf "%.2f", s * b * w / v; found = 1; exit } }
    END { if (!found) print "-" }' "$dir/metrics.jsonl")
  echo "$rate $name $rep $(json_field "$last" samples_per_s) $(json_field "$last" accuracy) $t_target" \
    "$(json_field "$last" push_bytes_per_step) $(json_field "$last" pull_bytes_per_step)" \
    "$(( (tx1 - tx0) / hosts / steps )) $(busy_pct "$c0" "$c1") $steps" >>"$res"
}

ddp_port=29600
ddp_run() { # RATE REP EPOCHS
  local rate=$1 rep=$2 ep=$3 dir=$out/ddp_${1}_$2 i pids=() tx0 tx1 c0 c1 ok=1
  ddp_port=$((ddp_port + 1))
  cluster_ok
  tx0=$(tx_all) c0=$(cpu_now)
  for i in $(seq $hosts); do
    ip netns exec ldnc$i env GLOO_SOCKET_IFNAME=ldncc$i OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
      timeout 1800 $PY bench/torch_ddp.py --data data/fmnist --procs $hosts --rank $((i - 1)) \
      --master 10.213.0.11 --port $ddp_port --epochs "$ep" --batch $batch --trunk "$trunk" --lr "$lr" \
      --eval-every $eval_every --lr-schedule cosine >"$dir.$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || ok=0; done
  cluster_ok
  tx1=$(tx_all) c1=$(cpu_now)
  [ $ok = 1 ] || { tail -n 20 "$dir".*.log >&2; echo "DDP at $rate failed" >&2; exit 1; }
  local sum steps t_target
  sum=$(grep '^summary' "$dir.1.log")
  steps=$(json_field "$sum" steps)
  # (awk reads the file itself: it stops at the first hit, which would cut a pipe short)
  t_target=$(awk -v tg="$target" '/^eval/ {
      match($0, /"accuracy": [0-9.]+/); a = substr($0, RSTART+12, RLENGTH-12);
      match($0, /"train_s": [0-9.]+/); t = substr($0, RSTART+11, RLENGTH-11);
      if (a + 0 >= tg) { printf "%.2f", t; found = 1; exit } }
    END { if (!found) print "-" }' "$dir.1.log")
  local ar
  ar=$(json_field "$sum" allreduce_bytes_per_step)
  echo "$rate ddp $rep $(json_field "$sum" samples_per_s) $(json_field "$sum" accuracy) $t_target" \
    "$ar $ar $(( (tx1 - tx0) / hosts / steps )) $(busy_pct "$c0" "$c1") $steps" >>"$res"
}

for rate in 1gbit 100mbit; do
  if [ $rate = 1gbit ]; then n=$reps ep=$epochs; else n=$slow_reps ep=$slow_epochs; "$nc" shape $rate; fi
  [ "$n" -gt 0 ] || continue
  for rep in $(seq "$n"); do
    echo "== $rate run $rep/$n ($ep epochs)" >&2
    for s in $systems; do
      case $s in
      dense) ladon_run dense $rate "$rep" "$ep" ;;
      compressed) ladon_run compressed $rate "$rep" "$ep" "${compressed[@]}" ;;
      delta) ladon_run delta $rate "$rep" "$ep" "${delta[@]}" ;;
      ddp) ddp_run $rate "$rep" "$ep" ;;
      *) echo "unknown system $s (dense compressed delta ddp)" >&2; exit 2 ;;
      esac
    done
    tail -n 3 "$res" >&2
  done
done
load_after=$(uptime)
t_all=$(( $(date +%s) - t_begin ))

# Medians per (rate, system), one column at a time.
col() { local v; v=$(awk -v r="$1" -v s="$2" -v c="$3" '$1==r && $2==s && $c!="-" {print $c}' "$res")
  [ -z "$v" ] || median <<<"$v"; }
cnt() { awk -v r="$1" -v s="$2" '$1==r && $2==s' "$res" | wc -l; }
printf '\n| link | system | runs | epochs | samples/s | vs DDP | test accuracy | vs DDP (pp) | training s to %.0f%% (DDP s / s) | push B/step | pull B/step | sent per host B/step | CPU busy |\n' \
  "$(awk -v t="$target" 'BEGIN{print 100*t}')"
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for rate in 1gbit 100mbit; do
  [ $rate = 1gbit ] && ep=$epochs || ep=$slow_epochs
  [ "$(cnt $rate ddp)" -gt 0 ] || continue
  d_sps=$(col $rate ddp 4) d_acc=$(col $rate ddp 5) d_tt=$(col $rate ddp 6)
  for s in $systems; do
    case $s in dense) label="ladon dense";; compressed) label="ladon top-k 1% int8 EF+MC";;
               delta) label="ladon top-k 1% int8 EF+MC, delta pulls";;
               ddp) label="PyTorch DDP (gloo)";; esac
    sps=$(col $rate $s 4) acc=$(col $rate $s 5) tt=$(col $rate $s 6)
    awk -v r="$rate" -v l="$label" -v n="$(cnt $rate $s)" -v ep="$ep" -v v="$sps" -v d="$d_sps" \
        -v a="$acc" -v da="$d_acc" -v t="$tt" -v dt="$d_tt" -v pu="$(col $rate $s 7)" -v pl="$(col $rate $s 8)" \
        -v w="$(col $rate $s 9)" -v c="$(col $rate $s 10)" 'BEGIN {
      tt = (t == "" ? "not reached" : (dt == "" ? t : sprintf("%.2f (%.2fx)", t, dt / t)))
      printf "| %s | %s | %d | %d | %.0f | %.2fx | %.2f%% | %+.2f | %s | %.0f | %.0f | %.0f | %.0f%% |\n",
        r, l, n, ep, v, v / d, 100 * a, 100 * (a - da), tt, pu, pl, w, c }'
  done
done
printf '\n(trunk 784-%s-10, batch %d per trainer, lr %s)\n' "${trunk//,/-}" "$batch" "$lr"
printf '\nall runs (rate system rep samples/s accuracy s-to-target push pull sent/host cpu%% steps):\n'
cat "$res"
printf '\nload before: %s\nload after:  %s\nwhole benchmark: %d s\n' "$load_before" "$load_after" "$t_all"
