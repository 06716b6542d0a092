#!/usr/bin/python3
"""PyTorch DistributedDataParallel peer (gloo backend) for ladon's distributed benchmarks:
the same MLP (784-256-256-10, He init), batch per process, SGD with momentum, on the
Fashion-MNIST `category` task of ladon's HDF5 file, each process on its shard, one thread
each. Prints 'summary {json}' from rank 0 with the aggregate samples/s over all processes.

  bench/torch_ddp.py --data data/fmnist --procs 2 --epochs 3 [--master 127.0.0.1]

Multi-host (bench/cluster_bandwidth.sh): one process per host with --rank R --procs N
--master ADDR (GLOO_SOCKET_IFNAME picks the interface). --eval-every E evaluates on the test
split every E epochs (steps rounded as ladon's train.eval_every) and prints 'eval {json}' rows
with the training time so far (evaluation excluded, as in ladon's samples_per_s) and the wall
time since the start; --steps-per-epoch caps an epoch like ladon's train.steps_per_epoch;
--lr-schedule cosine and --warmup-steps follow ladon's schedule (common/optim.c ldn_lr_at).
"""
import argparse
import json
import math
import os
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def lr_at(args, step, total):
    """ladon's ldn_lr_at for the schedules used here (constant, cosine; linear warm-up)."""
    if step < args.warmup_steps:
        return args.lr * (step + 1) / args.warmup_steps
    if args.lr_schedule == "cosine":
        span = total - args.warmup_steps
        progress = min(1.0, (step - args.warmup_steps) / span) if span > 0 else 1.0
        return 0.5 * args.lr * (1.0 + math.cos(math.pi * progress))
    return args.lr


def run(rank, args):
    t_start = time.perf_counter()
    torch.set_num_threads(1)
    os.environ.setdefault("MASTER_ADDR", args.master)
    os.environ.setdefault("MASTER_PORT", str(args.port))
    dist.init_process_group("gloo", rank=rank, world_size=args.procs)
    torch.manual_seed(args.seed)
    with h5py.File(f"{args.data}/{args.task}.h5", "r") as f:
        scale = float(f.attrs["x_scale"])
        n = f["train/y"].shape[0]
        lo, hi = rank * n // args.procs, (rank + 1) * n // args.procs
        x = torch.from_numpy(f["train/x"][lo:hi].astype(np.float32) * np.float32(scale))
        y = torch.from_numpy(f["train/y"][lo:hi].astype(np.int64))
        xt = torch.from_numpy(f["test/x"][...].astype(np.float32) * np.float32(scale))
        yt = torch.from_numpy(f["test/y"][...].astype(np.int64))
        classes = int(f.attrs["num_classes"])
    widths = [int(w) for w in args.trunk.split(",")]
    layers, prev = [], x.shape[1]
    for w in widths:
        layers += [torch.nn.Linear(prev, w), torch.nn.ReLU()]
        prev = w
    layers.append(torch.nn.Linear(prev, classes))
    model = torch.nn.Sequential(*layers)
    for m in model:
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            torch.nn.init.zeros_(m.bias)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    # The same number of steps as ladon's groups: ceil(N / (batch * procs)) per epoch.
    per_epoch = args.steps_per_epoch or (n + args.batch * args.procs - 1) // (args.batch * args.procs)
    steps = per_epoch * args.epochs
    eval_period = max(1, round(args.eval_every * per_epoch)) if args.eval_every > 0 else steps
    params = sum(p.numel() for p in model.parameters())
    g = torch.Generator().manual_seed(args.seed + rank)
    perm, pos = torch.randperm(len(y), generator=g), 0

    def evaluate():
        with torch.no_grad():
            return float((model(xt).argmax(1) == yt).float().mean())

    dist.barrier()
    t0 = time.perf_counter()
    train_s, acc = 0.0, float("nan")
    for step in range(steps):
        if pos + args.batch > len(perm):
            perm, pos = torch.randperm(len(y), generator=g), 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        for group in opt.param_groups:
            group["lr"] = lr_at(args, step, steps)
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(x[idx]), y[idx]).backward()
        opt.step()
        if (step + 1) % eval_period == 0 or step + 1 == steps:
            dist.barrier()  # every rank has finished the step: the training clock stops here
            train_s += time.perf_counter() - t0
            if rank == 0:
                acc = evaluate()
                print("eval " + json.dumps({
                    "step": step + 1, "epoch": (step + 1) / per_epoch, "accuracy": acc,
                    "train_s": train_s, "elapsed_s": time.perf_counter() - t_start,
                    "samples_per_s": (step + 1) * args.batch * args.procs / train_s}), flush=True)
            dist.barrier()
            t0 = time.perf_counter()
    dt = train_s
    if rank == 0:
        # A ring allreduce sends (and receives) 2 (N-1)/N of the gradient per process.
        ring = 2.0 * (args.procs - 1) / args.procs * 4 * params
        print("summary " + json.dumps({"samples_per_s": steps * args.batch * args.procs / dt,
                                       "steps": steps, "time_s": dt, "accuracy": acc,
                                       "params": params, "allreduce_bytes_per_step": ring}),
              flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--task", default="category")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rank", type=int, default=-1, help="run one rank (multi-host); default: spawn all")
    ap.add_argument("--trunk", default="256,256")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--steps-per-epoch", type=int, default=0, help="0: ceil(N / (batch * procs))")
    ap.add_argument("--eval-every", type=float, default=0, help="epochs between evaluations; 0: at the end")
    ap.add_argument("--lr-schedule", choices=["constant", "cosine"], default="constant")
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--master", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=29511)
    args = ap.parse_args()
    if args.rank >= 0:
        run(args.rank, args)
    else:
        mp.spawn(run, args=(args,), nprocs=args.procs, join=True)


if __name__ == "__main__":
    main()
