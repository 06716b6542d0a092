#!/usr/bin/python3
"""PyTorch DistributedDataParallel peer (gloo backend) for ladon's distributed benchmarks:
the same MLP (784-256-256-10, He init), batch per process, SGD with momentum, on the
Fashion-MNIST `category` task of ladon's HDF5 file, each process on its shard, one thread
each. Prints 'summary {json}' from rank 0 with the aggregate samples/s over all processes.

  bench/torch_ddp.py --data data/fmnist --procs 2 --epochs 3 [--master 127.0.0.1]
"""
import argparse
import json
import os
import time

import h5py
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def run(rank, args):
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
    steps = (n + args.batch * args.procs - 1) // (args.batch * args.procs) * args.epochs
    g = torch.Generator().manual_seed(args.seed + rank)
    perm, pos = torch.randperm(len(y), generator=g), 0
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        if pos + args.batch > len(perm):
            perm, pos = torch.randperm(len(y), generator=g), 0
        idx = perm[pos:pos + args.batch]
        pos += args.batch
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(x[idx]), y[idx]).backward()
        opt.step()
    dist.barrier()
    dt = time.perf_counter() - t0
    if rank == 0:
        with torch.no_grad():
            acc = float((model(xt).argmax(1) == yt).float().mean())
        print("summary " + json.dumps({"samples_per_s": steps * args.batch * args.procs / dt,
                                       "steps": steps, "time_s": dt, "accuracy": acc}), flush=True)
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--task", default="category")
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--rank", type=int, default=-1, help="run one rank (multi-host); default: spawn all")
    ap.add_argument("--trunk", default="256,256")
    ap.add_argument("--epochs", type=int, default=3)
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
