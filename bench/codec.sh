#!/usr/bin/env bash
# Gradient codec throughput on one core (docs/codec.md): for top-k 1% (fp32, int8, sign), DGC
# sampled threshold 1% + int8, random-k 1% + int8 and dense int8 / fp16 / QSGD (16 levels), and
# n float32 elements: encode GB/s of fp32 input (ldn_codec_compress with error feedback),
# decode + apply GB/s of the dense vector (ldn_codec_decode_add), memcpy GB/s of the same n * 4
# bytes measured in the same run (build/bench_codec), and the same codecs written the natural
# way in PyTorch (bench/torch_codec.py, one thread) with the ratio of the encode throughputs.
# Usage: bench/codec.sh [SIZES=1e5,1e6,1e7,1e8] [REPS=7]
source "$(dirname "$0")/common.sh"
sizes=${1:-1e5,1e6,1e7,1e8}
reps=${2:-7}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cmake --build build -j2 --target bench_codec >/dev/null
build/bench_codec "$sizes" "$reps" >bench/out/codec_ladon.md 2>bench/out/codec_ladon.log
$PY bench/torch_codec.py --sizes "$sizes" --reps "$reps" >bench/out/codec_torch.jsonl
printf '| codec | n | encode GB/s | decode+apply GB/s | memcpy GB/s | PyTorch encode GB/s | encode ratio vs PyTorch |\n'
printf '|---|---|---|---|---|---|---|\n'
grep '^| [a-z]' bench/out/codec_ladon.md | grep -v '^| codec ' | while IFS='|' read -r _ codec n enc dec mem _; do
  codec=$(xargs <<<"$codec"); n=$(xargs <<<"$n"); enc=$(xargs <<<"$enc")
  t=$(json_field "$(grep "\"codec\": \"$codec\", \"n\": $n," bench/out/codec_torch.jsonl || true)" encode_gbs)
  ratio=$(awk -v a="$enc" -v b="$t" 'BEGIN{if (a+0 > 0 && b+0 > 0) printf "%.2fx", a/b; else print "-"}')
  printf '| %s | %s | %s |%s|%s| %s | %s |\n' "$codec" "$n" "$enc" "$dec" "$mem" "${t:+$(printf '%.2f' "$t")}" "$ratio"
done
echo "(bench/codec.sh $sizes $reps: one core each, OPENBLAS_NUM_THREADS=1, median of $reps" \
  "(3 for n >= 1e8) after a warm-up; $(/usr/bin/python3 -c 'import torch; print("torch", torch.__version__)'))"
