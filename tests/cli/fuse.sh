#!/usr/bin/env bash
# ladon fuse: --help; the uniform average of the last 3 checkpoints of one run is their
# parameter mean (checked with h5py against the checkpoints) and eval takes it; the greedy soup
# names the held-out rows and what it kept; members that do not share an initialisation are
# said to; bad input (members of another model, a damaged checkpoint, a file that is not a
# checkpoint, --last on too few checkpoints, OUT == a member, bad values) is one line, exit != 0
# and nothing at OUT.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py
synth "$tmp/data" 2 800
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 7}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {head: [16]}}
train: {epochs: 4, batch_size: 32, lr: 0.05, log_every: 0}
checkpoint: {every_steps: 20, keep_last: 5}
YAML
"$LADON" train --local "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "training run"; }
"$LADON" fuse --help | grep -q "^usage: ladon fuse CKPT" || fail "fuse --help"

# uniform soup of the last 3 checkpoints
"$LADON" fuse "$tmp/run" --last 3 -o "$tmp/u.h5" >"$tmp/u.out" 2>&1 || { cat "$tmp/u.out"; fail "fuse --last 3"; }
grep -q "fused 3 of 3 member(s) (uniform average)" "$tmp/u.out" || { cat "$tmp/u.out"; fail "no summary"; }
grep -q "members share their initialisation (init_id [0-9a-f]\{16\})" "$tmp/u.out" || fail "init not reported"
grep -q "held-out rows: the last 10% of each task's training split (task000 rows \[720, 800)" "$tmp/u.out" ||
  { cat "$tmp/u.out"; fail "held-out rows not named"; }
mapfile -t last3 < <(ls "$tmp/run/checkpoints"/step-*.h5 | sort | tail -n 3)
"$PY" - "$tmp/u.h5" "${last3[@]}" <<'PY' || fail "the fused weights are not the members' mean"
import sys, h5py, numpy as np
out, members = sys.argv[1], sys.argv[2:]
def ck(path, i):  # checkpoint trunk layer i: [out, in] weights and bias
    with h5py.File(path, "r") as f:
        return np.array(f["/trunk/%d/weight" % i], np.float64), np.array(f["/trunk/%d/bias" % i], np.float64)
with h5py.File(out, "r") as f:
    assert f.attrs["quantize"].decode() == "none", f.attrs["quantize"]
    for i in range(2):
        g = f["/trunk/%d" % i]
        assert g.attrs["index"].decode() == "dense", g.attrs["index"]
        w, b = np.array(g["weight"], np.float64), np.array(g["bias"], np.float64)
        mw = np.mean([ck(m, i)[0] for m in members], axis=0)
        mb = np.mean([ck(m, i)[1] for m in members], axis=0)
        assert w.shape == mw.shape, (w.shape, mw.shape)
        assert np.allclose(w, mw, rtol=0, atol=1e-6), np.abs(w - mw).max()
        assert np.allclose(b, mb, rtol=0, atol=1e-6), np.abs(b - mb).max()
        # not just one of the members
        assert not np.allclose(w, ck(members[-1], i)[0], rtol=0, atol=1e-7)
PY
"$LADON" eval "$tmp/u.h5" >"$tmp/eval" 2>&1 || { cat "$tmp/eval"; fail "eval of the fused model"; }

# greedy soup of three named members
"$LADON" fuse "${last3[@]}" --greedy -o "$tmp/g.h5" >"$tmp/g.out" 2>&1 || { cat "$tmp/g.out"; fail "greedy"; }
grep -q "greedy: start with" "$tmp/g.out" && grep -q "(greedy soup)" "$tmp/g.out" ||
  { cat "$tmp/g.out"; fail "greedy report"; }

# another seed: said not to share the initialisation
"$LADON" train --local "$tmp/c.yaml" run.dir="$tmp/run2" run.seed=8 2>/dev/null || fail "second run"
"$LADON" fuse "$tmp/run" "$tmp/run2" -o "$tmp/s.h5" >"$tmp/s.out" 2>&1 || { cat "$tmp/s.out"; fail "two seeds"; }
grep -q "do NOT share an initialisation (init_id [0-9a-f]\{16\}, [0-9a-f]\{16\})" "$tmp/s.out" ||
  { cat "$tmp/s.out"; fail "no init warning"; }
# another learning rate, the same seed: the same start, known from init_id (not the config)
"$LADON" train --local "$tmp/c.yaml" run.dir="$tmp/run4" train.lr=0.02 2>/dev/null || fail "lr run"
"$LADON" fuse "$tmp/run" "$tmp/run4" -o "$tmp/l.h5" >"$tmp/l.out" 2>&1 || { cat "$tmp/l.out"; fail "two lrs"; }
grep -q "members share their initialisation (init_id" "$tmp/l.out" || { cat "$tmp/l.out"; fail "lr: init"; }
"$LADON" inspect "$tmp/run" | grep -q "^init id      [0-9a-f]\{16\}" || fail "inspect: no init id"

expect_bad() { # MESSAGE ARGS...: one line on stderr with MESSAGE, exit != 0, nothing at $tmp/bad.h5
  local msg=$1
  shift
  if "$LADON" fuse "$@" -o "$tmp/bad.h5" >/dev/null 2>"$tmp/err"; then fail "accepted: $*"; fi
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { cat "$tmp/err"; fail "not one line: $*"; }
  grep -q -- "$msg" "$tmp/err" || { cat "$tmp/err"; fail "wrong message for $*"; }
  [ ! -e "$tmp/bad.h5" ] && [ ! -e "$tmp/bad.h5.part" ] || fail "something written at OUT: $*"
}
sed 's/trunk: \[48, 32\]/trunk: [24]/' "$tmp/c.yaml" >"$tmp/o.yaml"
"$LADON" train --local "$tmp/o.yaml" run.dir="$tmp/other" 2>/dev/null || fail "other run"
expect_bad "trunks of other shapes" "$tmp/run" "$tmp/other"
cp "${last3[2]}" "$tmp/dam.h5"
"$PY" - "$tmp/dam.h5" <<'PY'
import h5py, sys
off = h5py.File(sys.argv[1], "r")["/trunk/0/weight"].id.get_chunk_info(0).byte_offset + 100
with open(sys.argv[1], "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))
PY
expect_bad "dam.h5: /trunk/0/weight: checksum mismatch" "$tmp/run" "$tmp/dam.h5"
echo "not a checkpoint" >"$tmp/txt.h5"
expect_bad "txt.h5" "$tmp/run" "$tmp/txt.h5"
expect_bad "--last 9" "$tmp/data" --last 9
expect_bad "holdout must be" "$tmp/run" "$tmp/run2" --holdout 2
cp "${last3[2]}" "$tmp/bad.h5.keep"
if "$LADON" fuse "$tmp/run" "$tmp/bad.h5.keep" -o "$tmp/bad.h5.keep" >/dev/null 2>"$tmp/err"; then
  fail "OUT == member accepted"
fi
grep -q "refusing to overwrite" "$tmp/err" || { cat "$tmp/err"; fail "OUT == member message"; }
cmp -s "${last3[2]}" "$tmp/bad.h5.keep" || fail "the member was changed"
echo "fuse: ok"
