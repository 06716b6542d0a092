#!/usr/bin/env python3
"""PyTorch peer of build/bench_codec: the same gradient codecs written the natural PyTorch way,
with error feedback, on one thread; prints one JSON line per (codec, n) with the encode
throughput in GB/s of fp32 input (n * 4 bytes / time).

Error feedback: acc = residual += grad; select from acc; quantize; residual[sent] = acc - deq.
Selection: top-k = torch.topk(acc.abs(), k); threshold (DGC) = top-k' of a random sample of
|acc| (max(512, n/200) draws, k' = round(k * sample / n)) as the threshold, then a mask, cut
to top-k of the candidates above 1.3k and exact top-k below 0.7k; random-k =
torch.randperm(n)[:k]. Quantizers per chunk of 256 values: int8 (scale = absmax / 127, round),
sign (sign bits packed 8 per byte, scale = mean |x|), fp16 (.half()), QSGD (s levels of
|x| / ||x||_2, stochastic rounding with torch.rand). Timing as in bench_codec: one warm-up call,
then the median of REPS repetitions, each looping the call for >= 20 ms; a codec whose warm-up
call takes more than 10 s is skipped, fewer repetitions when they would exceed ~10 s.

Usage: torch_codec.py [--sizes 1e5,1e6,1e7,1e8] [--reps 7]
"""
import argparse
import json
import math
import statistics
import time

import torch

CHUNK = 256
LEVELS = 16
RATIO = 0.01
BUDGET = 10.0
MIN_REP = 0.02
BITS = None  # 1, 2, 4, ... 128 as uint8 weights for packing sign bits


def rows(x):
    """Split x into a (rows, CHUNK) view of the full chunks and the short tail (or None)."""
    full = x.numel() // CHUNK * CHUNK
    main = x[:full].view(-1, CHUNK)
    tail = x[full:].view(1, -1) if full < x.numel() else None
    return [p for p in (main, tail) if p is not None and p.numel() > 0]


def q_fp32(x):
    return [x.clone()], x


def q_fp16(x):
    h = x.half()
    return [h], h.float()


def q_int8(x):
    codes, deqs = [], []
    for r in rows(x):
        scale = r.abs().amax(dim=1, keepdim=True) / 127
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        q = torch.round(r / safe).clamp_(-127, 127).to(torch.int8)
        codes += [scale, q]
        deqs.append((q.float() * scale).view(-1))
    return codes, deqs[0] if len(deqs) == 1 else torch.cat(deqs)


def q_sign(x):
    codes, deqs = [], []
    for r in rows(x):
        scale = r.abs().mean(dim=1, keepdim=True)
        neg = r < 0
        flat = neg.view(-1)
        pad = (-flat.numel()) % 8
        if pad:
            flat = torch.cat([flat, flat.new_zeros(pad)])
        packed = (flat.view(-1, 8).to(torch.uint8) * BITS).sum(dim=1, dtype=torch.uint8)
        codes += [scale, packed]
        deqs.append(torch.where(neg, -scale, scale).view(-1))
    return codes, deqs[0] if len(deqs) == 1 else torch.cat(deqs)


def q_qsgd(x):
    codes, deqs = [], []
    for r in rows(x):
        norm = r.norm(dim=1, keepdim=True)
        unit = norm / LEVELS
        safe = torch.where(unit > 0, unit, torch.ones_like(unit))
        a = r.abs() / safe
        lvl = a.floor()
        lvl += torch.rand_like(a) < (a - lvl)
        q = (torch.sign(r) * lvl).to(torch.int8)
        codes += [norm, q]
        deqs.append((q.float() * unit).view(-1))
    return codes, deqs[0] if len(deqs) == 1 else torch.cat(deqs)


def sel_topk(acc, k):
    return torch.topk(acc.abs(), k, sorted=False).indices


def sel_threshold(acc, k):
    n = acc.numel()
    ns = max(512, n // 200)
    if n < 2 * ns:
        return sel_topk(acc, k)
    mag = acc.abs()
    sample = mag[torch.randint(n, (ns,))]
    kp = min(ns, max(1, round(k * ns / n)))
    thr = torch.topk(sample, kp, sorted=False).values.min()
    idx = (mag >= thr).nonzero().squeeze(1)
    lo, hi = math.ceil(0.7 * k), math.floor(1.3 * k)
    if idx.numel() > hi:
        idx = idx[torch.topk(mag[idx], k, sorted=False).indices]
    elif idx.numel() < lo:
        idx = torch.topk(mag, k, sorted=False).indices
    return idx


def sel_randomk(acc, k):
    return torch.randperm(acc.numel())[:k]


CODECS = [
    ("topk1%-fp32", sel_topk, q_fp32),
    ("topk1%-int8", sel_topk, q_int8),
    ("topk1%-sign", sel_topk, q_sign),
    ("threshold1%-int8", sel_threshold, q_int8),
    ("randomk1%-int8", sel_randomk, q_int8),
    ("dense-int8", None, q_int8),
    ("dense-fp16", None, q_fp16),
    ("dense-qsgd16", None, q_qsgd),
]


def compress(grad, residual, select, quant):
    """One compression with error feedback; returns what would go on the wire."""
    acc = residual.add_(grad)
    if select is None:
        codes, deq = quant(acc)
        residual.sub_(deq)
        return codes
    k = max(1, math.ceil(acc.numel() * RATIO))
    idx = select(acc, k)
    vals = acc[idx]
    codes, deq = quant(vals)
    residual[idx] = vals - deq
    return [idx.to(torch.int32)] + codes


def time_encode(grad, residual, select, quant, reps):
    t0 = time.perf_counter()
    compress(grad, residual, select, quant)
    warm = time.perf_counter() - t0
    if warm > BUDGET:
        return None
    inner = 1 if warm >= MIN_REP else int(MIN_REP / max(warm, 1e-7)) + 1
    reps = max(1, min(reps, int(BUDGET / max(warm, 1e-9))))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            compress(grad, residual, select, quant)
        ts.append((time.perf_counter() - t0) / inner)
    return statistics.median(ts)


def main():
    global BITS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1e5,1e6,1e7,1e8")
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    BITS = torch.tensor([1 << b for b in range(8)], dtype=torch.uint8)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    grad_all = torch.randn(max(sizes))
    for n in sizes:
        grad = grad_all[:n]
        reps = min(args.reps, 3) if n >= 100_000_000 else args.reps
        for name, select, quant in CODECS:
            residual = torch.zeros(n)
            t = time_encode(grad, residual, select, quant, reps)
            gbs = n * 4 / t / 1e9 if t else None
            print(json.dumps({"codec": name, "n": n, "encode_gbs": gbs,
                              "torch": torch.__version__}), flush=True)
            del residual


if __name__ == "__main__":
    main()
