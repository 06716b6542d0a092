#!/usr/bin/env python3
"""Read a ladon checkpoint with nothing but h5py and numpy, and run its model.

    ckpt_h5py.py CKPT --task T --data TASK.h5 [--split test] [--compare PREDICT.h5]

CKPT is a checkpoint file, a checkpoint directory or a run directory (its latest checkpoint).
The model is rebuilt from the datasets alone (/trunk/<i>/{weight,bias}, then
/heads/<task>/<i>/{weight,bias}; weight is [out, in]) and the activation named in the stored
config (model.activation: relu or tanh): the activation follows every trunk layer and every
head layer but the last, whose outputs are the logits. Inputs are the task file's
<split>/x times its x_scale attribute. With --compare, the probabilities of `ladon predict`
must agree within 1e-4 and their argmax on at least 99.9% of the rows (exit 1 otherwise).
This is the documented way to read checkpoints from Python (docs/checkpoint-tools.md).
"""
import argparse
import os
import re
import sys

import h5py
import numpy as np


def resolve(path):
    """The checkpoint file a path names: a file, or a directory's `latest`."""
    for d in (path, os.path.join(path, "checkpoints")):
        latest = os.path.join(d, "latest")
        if os.path.isdir(path) and os.path.isfile(latest):
            with open(latest) as f:
                return os.path.join(d, f.read().strip())
    return path


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def load_checkpoint(path):
    """Root attributes, activation, trunk layers and head layers of a checkpoint."""
    with h5py.File(resolve(path), "r") as f:
        if text(f.attrs.get("format", b"")) != "ladon-checkpoint":
            raise ValueError(f"{path}: not a ladon checkpoint")
        if int(f.attrs["format_version"]) != 1:
            raise ValueError(f"{path}: format_version {int(f.attrs['format_version'])}, expected 1")
        config = text(f.attrs["config"])
        # the resolved config writes `  activation: relu` under `model:`
        m = re.search(r"^model:\n(?:[ \t]+.*\n)*?[ \t]+activation:[ \t]*(\w+)", config, re.M)
        activation = m.group(1) if m else "relu"

        def layers(group):  # [(weight [out, in], bias [out])] in layer order
            idx = sorted(int(k) for k in group.keys())
            return [(group[f"{i}/weight"][...].astype(np.float64),
                     group[f"{i}/bias"][...].astype(np.float64)) for i in idx]

        return {
            "attrs": {k: (text(v) if isinstance(v, (bytes, str)) else v.item())
                      for k, v in f.attrs.items()},
            "activation": activation,
            "trunk": layers(f["trunk"]),
            "heads": {t: layers(f["heads"][t]) for t in f["heads"].keys()},
        }


def forward(ck, task, x):
    """Logits of head `task` for inputs x [n, features]."""
    act = {"relu": lambda h: np.maximum(h, 0.0), "tanh": np.tanh}[ck["activation"]]
    h = x.astype(np.float64)
    for w, b in ck["trunk"]:
        h = act(h @ w.T + b)
    head = ck["heads"][task]
    for i, (w, b) in enumerate(head):
        h = h @ w.T + b
        if i + 1 < len(head):
            h = act(h)
    return h


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ckpt")
    ap.add_argument("--task", required=True)
    ap.add_argument("--data", required=True, help="a ladon task file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--compare", help="the output of `ladon predict` on the same rows")
    a = ap.parse_args()

    ck = load_checkpoint(a.ckpt)
    if a.task not in ck["heads"]:
        sys.exit(f"{a.ckpt}: no task {a.task} (tasks: {', '.join(ck['heads'])})")
    with h5py.File(a.data, "r") as d:
        x = d[f"{a.split}/x"][...] * float(d.attrs.get("x_scale", 1.0))
        y = d[f"{a.split}/y"][...]
    probs = softmax(forward(ck, a.task, x))
    acc = float(np.mean(probs.argmax(axis=1) == y))
    print(f"{a.task}: step {ck['attrs']['step']}, {len(y)} {a.split} rows, "
          f"activation {ck['activation']}, accuracy {acc:.6f}")
    if a.compare:
        with h5py.File(a.compare, "r") as p:
            theirs = p["probs"][...]
        if theirs.shape != probs.shape:
            sys.exit(f"shape {theirs.shape} in {a.compare}, {probs.shape} here")
        diff = float(np.abs(theirs - probs).max())
        agree = float(np.mean(theirs.argmax(axis=1) == probs.argmax(axis=1)))
        print(f"against {a.compare}: max |dp| {diff:.3g}, argmax agreement {agree:.4%}")
        if diff > 1e-4 or agree < 0.999:
            sys.exit("FAIL: ladon predict and the h5py forward pass disagree")


if __name__ == "__main__":
    main()
