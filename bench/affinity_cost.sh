#!/usr/bin/env bash
# Cost of ps.affinity (task affinity measured by the servers under bsp), side by side in one
# run: the Fashion-MNIST multi-task config (3 tasks, 3 workers, 2 servers, trunk 256-256)
# with ps.affinity off and on (window 100 steps), alternating runs, median samples/s of
# REPEATS; then the matrix found on synthetic clustered data (the mpi_affinity test's set-up:
# 2 clusters of 2 related tasks and a negated pair, trunk 8-8, 2 servers, 6 workers).
# Then, on the same data, a summary per trunk (64; 8-8) and seed (1..3): the smallest
# within-cluster cosine, the largest across-cluster one, the negated pair's.
# Usage: bench/affinity_cost.sh [REPEATS=3] [EPOCHS=2]
source "$(dirname "$0")/common.sh"
reps=${1:-3}
epochs=${2:-2}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cfg=configs/fmnist-mtl.yaml
sps() { json_field "$(grep '"task"' "$1/metrics.jsonl" | tail -n 1)" samples_per_s; }
for f in off on; do : >"bench/out/aff_$f.txt"; done
for i in $(seq "$reps"); do
  for f in off on; do
    a=0
    [ $f = on ] && a=100
    launch/ladon-run $cfg --overwrite train.epochs="$epochs" ps.affinity=$a \
      run.dir=bench/out/aff_$f 2>/dev/null
    sps bench/out/aff_$f >>bench/out/aff_$f.txt
  done
done
off=$(median <bench/out/aff_off.txt) on=$(median <bench/out/aff_on.txt)
printf '\n| ps.affinity | samples/s (median of %d) | vs off |\n|---|---|---|\n' "$reps"
printf '| 0 (off) | %.0f | 1.00 |\n| 100 | %.0f | %.3f |\n' "$off" "$on" \
  "$(awk -v a="$on" -v b="$off" 'BEGIN{print a/b}')"
for f in off on; do printf '%s: %s\n' "$f" "$(tr '\n' ' ' <bench/out/aff_$f.txt)"; done

# the matrix on clustered synthetic data
d=bench/out/aff_synth
build/ladon data synth $d --tasks 6 --features 32 --rank 4 --classes 4 --train 20000 \
  --test 400 --relatedness 0.9 --seed 3 --clusters 2 --conflict >/dev/null
cat >bench/out/aff_synth.yaml <<YAML
run: {dir: bench/out/aff_synth_run, seed: 2}
data: {dir: $d}
model: {trunk: [8, 8]}
tasks: {task000: {}, task001: {}, task002: {}, task003: {}, task004: {}, task005: {}}
train: {epochs: 3, batch_size: 256, log_every: 0, lr: 0.05}
ps: {servers: 2, consistency: bsp, affinity: 100000}
YAML
launch/ladon-run bench/out/aff_synth.yaml --overwrite 2>/dev/null
$PY - bench/out/aff_synth_run/metrics.jsonl <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"affinity"' in l][-1]
g = r["groups"]
print("\ncosine of trunk gradients, steps [%d, %d):\n" % (r["from_step"], r["to_step"]))
print("| | " + " | ".join(g) + " |\n|---|" + "---|" * len(g))
for i, row in enumerate(r["cosine"]["trunk"]):
    print("| %s | " % g[i] + " | ".join("%.2f" % v for v in row) + " |")
PY

printf '\n| trunk | seed | min within-cluster | max across-cluster | negated pair |\n|---|---|---|---|---|\n'
for trunk in 64 8,8; do
  for seed in 1 2 3; do
    launch/ladon-run bench/out/aff_synth.yaml --overwrite "model.trunk=[$trunk]" run.seed=$seed \
      run.dir=bench/out/aff_seed 2>/dev/null
    $PY - bench/out/aff_seed/metrics.jsonl "$trunk" "$seed" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"affinity"' in l][-1]["cosine"]["trunk"]
within = min(m[0][1], m[2][3])
across = max(m[i][j] for i in (0, 1) for j in (2, 3))
print("| %s | %s | %.3f | %.3f | %.3f |" % (sys.argv[2].replace(",", "-"), sys.argv[3], within, across, m[4][5]))
PY
  done
done
