#!/usr/bin/env python3
"""Read a ladon export file with nothing but h5py and numpy, and run its model.

    export_h5py.py EXPORT --task T --data TASK.h5 [--split test] [--compare PREDICT.h5]
                   [--checkpoint CKPT]

The layout is docs/export.md: root attributes format ("ladon-export"), format_version (2),
features, activation, quantize (none | fp16 | int8), prune, tasks (one per line); each layer
a group /trunk/<i> or /heads/<task>/<i> with attributes rows, cols, index (dense | bitmap |
csr8 | csr16) and datasets bias [rows] float32, scale [rows] float16 (int8 only), and either
weight [rows, cols] (dense) or values [n] with the index arrays (bitmap [rows, ceil(cols/8)]
uint8, LSB first; csr16: rowptr [rows+1] uint32 and col [n] uint16; csr8: rowptr and delta
[n] uint8, column = previous + 1 + delta). int8 weights are values * scale[row].

With --compare, the probabilities of `ladon predict` on the export must agree within 1e-4
and their argmax on at least 99.9% of the rows. With --checkpoint (the checkpoint exported,
read by ckpt_h5py.py), the documented error bounds must hold: every stored weight within
scale/2 of the checkpoint's (int8), within 2^-11 relative (fp16) or equal (none); every weight
not stored either pruned or one that rounds to 0; and every logit within the bound those
weight errors give through the layers (the activations are 1-Lipschitz), exit 1 otherwise.
"""
import argparse
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckpt_h5py  # noqa: E402  (the checkpoint reader beside this file)


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_layer(g, quant):
    """(W [rows, cols] float64, bias [rows], stored mask [rows, cols], scale or None)."""
    rows, cols, index = int(g.attrs["rows"]), int(g.attrs["cols"]), text(g.attrs["index"])
    bias = g["bias"][...].astype(np.float64)
    if index == "dense":
        vals = g["weight"][...].astype(np.float64)
        mask = vals != 0
        w = vals
    else:
        v = g["values"][...].astype(np.float64)
        if index == "bitmap":
            bits = np.unpackbits(g["bitmap"][...], axis=1, bitorder="little")[:, :cols]
            r, c = np.nonzero(bits)  # row-major order, as the values are stored
        else:
            rowptr = g["rowptr"][...].astype(np.int64)
            r = np.repeat(np.arange(rows), np.diff(rowptr))
            if index == "csr16":
                c = g["col"][...].astype(np.int64)
            else:  # csr8: running sum of delta + 1 within each row, from -1
                step = g["delta"][...].astype(np.int64) + 1
                run = np.cumsum(step)
                start = np.concatenate([[0], run])[rowptr[:-1]]  # the sum before each row
                c = run - np.repeat(start, np.diff(rowptr)) - 1
        w = np.zeros((rows, cols))
        w[r, c] = v
        mask = w != 0  # csr8 padding entries hold 0
    scale = None
    if quant == "int8":
        if g["scale"].dtype != np.float16:
            raise ValueError(f"{g.name}/scale is {g['scale'].dtype}, not float16")
        scale = g["scale"][...].astype(np.float64)
        w = w * scale[:, None]
    return w, bias, mask, scale


def load_export(path):
    with h5py.File(path, "r") as f:
        if text(f.attrs.get("format", b"")) != "ladon-export":
            raise ValueError(f"{path}: not a ladon export file")
        if int(f.attrs["format_version"]) != 2:
            raise ValueError(f"{path}: format_version {int(f.attrs['format_version'])}")
        quant = text(f.attrs["quantize"])

        def layers(group):
            idx = sorted(int(k) for k in group.keys())
            return [read_layer(group[str(i)], quant) for i in idx]

        tasks = text(f.attrs["tasks"]).split("\n")
        return {
            "quantize": quant,
            "prune": float(f.attrs["prune"]),
            "activation": text(f.attrs["activation"]),
            "features": int(f.attrs["features"]),
            "config": bytes(f["config"][...]).decode(),
            "trunk": layers(f["trunk"]),
            "heads": {t: layers(f["heads"][t]) for t in tasks},
        }


def forward(model, task, x, keep=None):
    """Logits of head `task`; with keep, the list of each layer's input is appended to it."""
    act = {"relu": lambda h: np.maximum(h, 0.0), "tanh": np.tanh}[model["activation"]]
    h = x.astype(np.float64)
    head = model["heads"][task]
    for i, (w, b, *_) in enumerate(model["trunk"] + head):
        if keep is not None:
            keep.append(h)
        h = h @ w.T + b
        if i + 1 < len(model["trunk"]) + len(head):
            h = act(h)
    return h


def check_weights(ex, ck, task):
    """The per-weight bounds of docs/export.md; returns |W' - W| for each layer."""
    ours = ex["trunk"] + ex["heads"][task]
    theirs = ck["trunk"] + ck["heads"][task]
    errs = []
    for i, ((w, b, mask, scale), (w0, b0)) in enumerate(zip(ours, theirs)):
        trunk = i < len(ex["trunk"])
        if not np.array_equal(b.astype(np.float32), b0.astype(np.float32)):
            sys.exit(f"FAIL: layer {i}: the biases differ from the checkpoint's")
        d = np.abs(w - w0)
        if ex["quantize"] == "int8":
            bound = np.repeat(scale[:, None] / 2, w.shape[1], axis=1) * (1 + 1e-5)
        elif ex["quantize"] == "fp16":
            bound = np.abs(w0) / 2048 + 6e-8
        else:
            bound = np.zeros_like(w0)
        dropped = ~mask & (w0 != 0)  # not stored although non-zero in the checkpoint
        rounds_to_zero = np.abs(w0) <= bound
        pruned = dropped & ~rounds_to_zero
        if pruned.any() and not (trunk and ex["prune"] > 0):
            sys.exit(f"FAIL: layer {i}: {int(pruned.sum())} weights missing that were not pruned")
        if trunk and ex["prune"] > 0:
            n = w0.size
            if int((~mask).sum()) < int(np.floor(ex["prune"] * n)):
                sys.exit(f"FAIL: layer {i}: sparsity {(~mask).mean():.4f} < prune {ex['prune']}")
            kept_min = np.abs(w0[mask]).min() if mask.any() else np.inf
            if pruned.any() and np.abs(w0[pruned]).max() > kept_min:
                sys.exit(f"FAIL: layer {i}: a pruned weight is larger than a kept one")
        ok = (d <= bound) | pruned
        if not ok.all():
            k = np.argmax(~ok)
            sys.exit(f"FAIL: layer {i}: weight {np.unravel_index(k, w.shape)} off by "
                     f"{d.flat[k]:.3g}, bound {bound.flat[k]:.3g}")
        errs.append(d)
    return errs


def logit_bound(ex, ck, task, x, errs):
    """|z' - z| <= e_L with e_0 = 0, e_{l+1} = |W'_l| e_l + |dW_l| |h_l| (h_l: the checkpoint
    model's input to layer l; the activations are 1-Lipschitz)."""
    hs = []
    z0 = forward(ck_as_model(ck), task, x, hs)
    e = np.zeros_like(hs[0])
    for (w, *_), d, h in zip(ex["trunk"] + ex["heads"][task], errs, hs):
        e = e @ np.abs(w).T + np.abs(h) @ d.T
    return z0, e


def ck_as_model(ck):
    return {"activation": ck["activation"],
            "trunk": [(w, b) for w, b in ck["trunk"]],
            "heads": {t: [(w, b) for w, b in ls] for t, ls in ck["heads"].items()}}


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("export")
    ap.add_argument("--task", required=True)
    ap.add_argument("--data", required=True, help="a ladon task file")
    ap.add_argument("--split", default="test")
    ap.add_argument("--compare", help="the output of `ladon predict` on the export")
    ap.add_argument("--checkpoint", help="the checkpoint exported")
    a = ap.parse_args()

    ex = load_export(a.export)
    if a.task not in ex["heads"]:
        sys.exit(f"{a.export}: no task {a.task} (tasks: {', '.join(ex['heads'])})")
    with h5py.File(a.data, "r") as d:
        x = d[f"{a.split}/x"][...] * float(d.attrs.get("x_scale", 1.0))
        y = d[f"{a.split}/y"][...]
    z = forward(ex, a.task, x)
    probs = softmax(z)
    acc = float(np.mean(probs.argmax(axis=1) == y))
    print(f"{a.task}: {ex['quantize']}, prune {ex['prune']}, {len(y)} {a.split} rows, "
          f"accuracy {acc:.6f}")
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
    if a.checkpoint:
        ck = ckpt_h5py.load_checkpoint(a.checkpoint)
        errs = check_weights(ex, ck, a.task)
        z0, bound = logit_bound(ex, ck, a.task, x, errs)
        over = np.abs(z - z0) - bound
        agree = float(np.mean(z.argmax(axis=1) == z0.argmax(axis=1)))
        print(f"against {a.checkpoint}: max |dz| {np.abs(z - z0).max():.3g}, max bound "
              f"{bound.max():.3g}, argmax agreement {agree:.4%}")
        if (over > 1e-6 * (1 + np.abs(z0))).any():
            sys.exit("FAIL: a logit is further from the checkpoint's than the bound allows")


if __name__ == "__main__":
    main()
