#!/usr/bin/env bash
# Many tasks on one trunk (issue 15, "Scale"): 8, 64 and 256 synthetic tasks on 4 workers and
# 2 servers under mpirun (bsp, dense pushes; each worker hosts a quarter of the tasks), the
# same total rows in every run (256,000 training rows split over the tasks), trunk 64-128-128,
# 4 classes per task, batch 64, 2 epochs. Reports the training samples/s of the job
# (metrics.jsonl, training time only), the final mean test accuracy over tasks, and each
# rank's peak resident memory (GNU time's %M, per rank through a wrapper).
# Usage: [EPOCHS=2] bench/scale.sh
source "$(dirname "$0")/common.sh"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
epochs=${EPOCHS:-2}
out=$root/bench/out/scale
rm -rf "$out" && mkdir -p "$out"
cat >"$out/wrap.sh" <<WRAP
#!/usr/bin/env bash
exec /usr/bin/time -f "%M" -o "$out/rss.\${OMPI_COMM_WORLD_RANK:-cli}" "$root/build/ladon" "\$@"
WRAP
chmod +x "$out/wrap.sh"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '\n| tasks | rows per task | samples/s | mean test accuracy | coordinator MB | servers MB (max) | workers MB (max) | per-worker MB per hosted task |\n|---|---|---|---|---|---|---|---|\n'
for n in 8 64 256; do
  rows=$((256000 / n))
  d="$out/d$n"
  build/ladon data synth "$d" --tasks "$n" --features 64 --rank 8 --classes 4 --train "$rows" \
    --test 500 --relatedness 0.7 --seed 1 >/dev/null
  {
    echo "run: {dir: $out/run$n, seed: 1}"
    echo "data: {dir: $d}"
    echo "model: {trunk: [128, 128]}"
    echo "tasks:"
    for ((t = 0; t < n; t++)); do printf '  task%03d: {}\n' "$t"; done
    echo "train: {epochs: $epochs, batch_size: 64, lr: 0.05, momentum: 0.9, log_every: 0}"
    echo "ps: {servers: 2, consistency: bsp, timeout: 120}"
    echo "checkpoint: {final: false}"
  } >"$out/c$n.yaml"
  rm -f "$out"/rss.*
  LADON="$out/wrap.sh" LDN_WORKERS=4 launch/ladon-run "$out/c$n.yaml" 2>"$out/log$n" ||
    { tail -n 5 "$out/log$n"; exit 1; }
  last=$(grep '"samples_per_s"' "$out/run$n/metrics.jsonl" | tail -n 1)
  sps=$(json_field "$last" samples_per_s)
  step=$(json_field "$last" step)
  acc=$(grep "\"step\":$step," "$out/run$n/metrics.jsonl" | sed -n 's/.*"accuracy":\([0-9.]*\).*/\1/p' |
    awk '{s += $1; n++} END {printf "%.2f", 100 * s / n}')
  mb() { awk '{printf "%.0f", $1 / 1024}' "$out/rss.$1"; }
  smax=$(for r in 1 2; do mb $r; echo; done | sort -n | tail -n 1)
  wmax=$(for r in 3 4 5 6; do mb $r; echo; done | sort -n | tail -n 1)
  printf '| %d | %d | %.0f | %s%% | %s | %s | %s | %.2f |\n' "$n" "$rows" "$sps" "$acc" "$(mb 0)" \
    "$smax" "$wmax" "$(awk -v w="$wmax" -v n="$n" 'BEGIN { print w / (n / 4) }')"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
