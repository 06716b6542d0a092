#!/usr/bin/env python3
"""The init_id of docs/checkpoint.md, recomputed without ladon.

  init_id.py weights CKPT TASK...   FNV-1a 64 of CKPT's weights (trunk, then TASK... heads)
  init_id.py recorded CKPT          the init_id attribute CKPT records
Both print 16 hex digits.
"""
import sys

import h5py
import numpy as np


def net_bytes(g):
    out = []
    for i in range(len(g)):
        w = np.asarray(g["%d/weight" % i], dtype="<f4")
        b = np.asarray(g["%d/bias" % i], dtype="<f4")
        out.append(np.concatenate([w, b[:, None]], axis=1).tobytes())  # key rows: weights, bias
    return b"".join(out)


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main():
    kind, path = sys.argv[1], sys.argv[2]
    with h5py.File(path, "r") as f:
        if kind == "recorded":
            print("%016x" % int(f.attrs["init_id"]))
            return
        data = net_bytes(f["trunk"]) + b"".join(net_bytes(f["heads"][t]) for t in sys.argv[3:])
    print("%016x" % fnv1a64(data))


if __name__ == "__main__":
    main()
