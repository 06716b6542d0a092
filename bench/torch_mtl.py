#!/usr/bin/python3
"""PyTorch peer of `ladon train --local`: the same multi-task model, data, schedule and
optimizer, for side-by-side accuracy and throughput comparisons (bench/README.md).

Reads ladon task files (HDF5, docs/data.md) with h5py. Model: trunk of Linear+ReLU layers,
one Linear head per task, He-normal weights and zero biases (as ladon). Schedule: each step
draws a task with probability proportional to |D_t|^alpha, takes the next batch of that
task's shuffled rows (reshuffled when a full batch no longer fits), loss = w_t * CE.
Optimizer: torch.optim.SGD over all parameters with set_to_none zero_grad, so a head that
did not train in a step is not moved (as ladon). Prints one JSON object per evaluation and
a final summary line starting with 'summary '.
"""
import argparse
import json
import math
import time

import h5py
import numpy as np
import torch


def load_task(path):
    with h5py.File(path, "r") as f:
        scale = float(f.attrs["x_scale"])
        out = {"name": f.attrs["task"].decode() if isinstance(f.attrs["task"], bytes) else str(f.attrs["task"]),
               "classes": int(f.attrs["num_classes"])}
        for split in ("train", "test"):
            x = torch.from_numpy(f[split + "/x"][...].astype(np.float32) * np.float32(scale))
            y = torch.from_numpy(f[split + "/y"][...].astype(np.int64))
            out[split] = (x.contiguous(), y)
    return out


def lr_at(args, step, total, steps_per_epoch):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    if args.schedule == "cosine":
        span = total - args.warmup
        p = min(1.0, (step - args.warmup) / span) if span > 0 else 1.0
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * p))
    return args.lr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="directory with <task>.h5 files")
    ap.add_argument("--tasks", required=True, help="comma-separated task names")
    ap.add_argument("--weights", default="", help="comma-separated loss weights (default 1)")
    ap.add_argument("--trunk", default="256,256")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--schedule", choices=["constant", "cosine"], default="constant")
    ap.add_argument("--warmup", type=int, default=0)
    ap.add_argument("--min-lr", type=float, default=0.0)
    ap.add_argument("--alpha", type=float, default=0.75)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-every", type=int, default=1, help="epochs between evaluations")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    names = args.tasks.split(",")
    weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(names)
    tasks = [load_task(f"{args.data}/{n}.h5") for n in names]
    features = tasks[0]["train"][0].shape[1]

    widths = [int(w) for w in args.trunk.split(",")]
    layers, prev = [], features
    for w in widths:
        layers += [torch.nn.Linear(prev, w), torch.nn.ReLU()]
        prev = w
    trunk = torch.nn.Sequential(*layers)
    heads = torch.nn.ModuleList(torch.nn.Linear(prev, t["classes"]) for t in tasks)
    for mod in list(trunk) + list(heads):
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
            torch.nn.init.zeros_(mod.bias)
    params = list(trunk.parameters()) + list(heads.parameters())
    opt = torch.optim.SGD(params, lr=args.lr, momentum=args.momentum)
    loss_fn = torch.nn.CrossEntropyLoss()

    n = np.array([t["train"][0].shape[0] for t in tasks], dtype=np.float64)
    p = n ** args.alpha
    p /= p.sum()
    steps_per_epoch = int(sum(math.ceil(k / args.batch) for k in n))
    total = steps_per_epoch * args.epochs
    perms = [rng.permutation(int(k)) for k in n]
    pos = [0] * len(tasks)
    task_of_step = rng.choice(len(tasks), size=total, p=p)

    def evaluate(step, sps, elapsed):
        accs = {}
        with torch.no_grad():
            for t, task in enumerate(tasks):
                x, y = task["test"]
                z = heads[t](trunk(x))
                loss = float(loss_fn(z, y))
                acc = float((z.argmax(1) == y).float().mean())
                accs[task["name"]] = acc
                print(json.dumps({"task": task["name"], "step": step, "epoch": step / steps_per_epoch,
                                  "loss": loss, "accuracy": acc, "samples_per_s": sps,
                                  "elapsed_s": elapsed}), flush=True)
        return accs

    train_time, samples, start = 0.0, 0, time.perf_counter()
    accs = {}
    eval_period = steps_per_epoch * args.eval_every
    mark = time.perf_counter()
    for step in range(total):
        t = int(task_of_step[step])
        x_all, y_all = tasks[t]["train"]
        b = min(args.batch, len(perms[t]))
        if pos[t] + b > len(perms[t]):
            perms[t] = rng.permutation(len(perms[t]))
            pos[t] = 0
        idx = torch.from_numpy(perms[t][pos[t]:pos[t] + b])
        pos[t] += b
        for g in opt.param_groups:
            g["lr"] = lr_at(args, step, total, steps_per_epoch)
        opt.zero_grad(set_to_none=True)
        loss = weights[t] * loss_fn(heads[t](trunk(x_all[idx])), y_all[idx])
        loss.backward()
        opt.step()
        samples += b
        if (step + 1) % eval_period == 0 or step + 1 == total:
            now = time.perf_counter()
            train_time += now - mark
            accs = evaluate(step + 1, samples / train_time, now - start)
            mark = time.perf_counter()
    print("summary " + json.dumps({"samples_per_s": samples / train_time, "steps": total,
                                   "train_time_s": train_time, "accuracy": accs}), flush=True)


if __name__ == "__main__":
    main()
