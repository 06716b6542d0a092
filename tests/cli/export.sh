#!/usr/bin/env bash
# ladon export: --help; a run directory, a checkpoint directory and a file give the same bytes;
# the printed size is the file's and the report has every task; eval and predict take the
# export; bad input is one line on stderr, exit != 0, and nothing at OUT (no OUT.part either,
# an OUT that was there before untouched): a truncated or bit-flipped checkpoint, a file that
# is not a checkpoint, an export given as CKPT, OUT == CKPT, bad --prune and --quantize values,
# an OUT in a missing directory or that is a directory, a weight that is not finite, one that
# fp16 cannot hold; a damaged export read by eval/predict.
# Args: ladon binary, source dir, build dir. Needs python3 with h5py and numpy.
source "$(dirname "$0")/../mpi/lib.sh"
need_h5py
synth "$tmp/data" 2 800
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 7}
data: {dir: $tmp/data}
model: {trunk: [48, 32]}
tasks: {task000: {}, task001: {head: [16]}}
train: {epochs: 2, batch_size: 32, lr: 0.05, log_every: 0}
YAML
"$LADON" train --local "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "training run"; }
ck="$tmp/run/checkpoints"
good="$ck/$(cat "$ck/latest")"

"$LADON" export --help >"$tmp/help" || fail "export --help"
grep -q "^usage: ladon export CKPT OUT.h5" "$tmp/help" && grep -q -- "--prune S" "$tmp/help" ||
  fail "export --help text"
"$LADON" --help | grep -q "ladon export CKPT OUT.h5" || fail "ladon --help lists export"

# --- the three ways to name the checkpoint give the same file
"$LADON" export "$tmp/run" "$tmp/a.h5" --prune 0.5 >"$tmp/out" || fail "export run dir"
"$LADON" export "$ck" "$tmp/b.h5" --prune 0.5 >/dev/null || fail "export checkpoint dir"
"$LADON" export "$good" "$tmp/c.h5" --prune 0.5 >/dev/null || fail "export file"
cmp -s "$tmp/a.h5" "$tmp/b.h5" && cmp -s "$tmp/b.h5" "$tmp/c.h5" ||
  fail "exports of the run dir, checkpoint dir and file differ"
size=$(stat -c %s "$tmp/a.h5")
grep -q "file $size bytes" "$tmp/out" || { cat "$tmp/out"; fail "printed size is not the file's"; }
grep -q "trunk sparsity 50.00%" "$tmp/out" || fail "sparsity line"
for t in task000 task001; do
  grep -q "^$t  *400 " "$tmp/out" || { cat "$tmp/out"; fail "no accuracy line for $t"; }
done
ls "$tmp"/*.part 2>/dev/null && fail "export left a .part file"

# --- eval and predict take the export; eval's accuracy is the export's "after"
"$LADON" eval "$tmp/a.h5" >"$tmp/eval" || fail "eval of an export"
for t in task000 task001; do
  want=$(awk -v t=$t '$1 == t { print $4 }' "$tmp/out")
  got=$(awk -v t=$t '$1 == t { print $3 }' "$tmp/eval")
  awk -v a="$want" -v b="$got" 'BEGIN { d = a - b; exit !(d < 1e-4 && d > -1e-4) }' ||
    fail "eval of the export: $t $got, export said $want"
done
"$LADON" predict "$tmp/a.h5" --task task001 "$tmp/data/task001.h5" "$tmp/p.h5" >/dev/null ||
  fail "predict from an export"

# --- bad input: one line, the exit status, nothing at OUT
expect_fail() { # expect_fail STATUS WORDS CMD...
  local want=$1 words=$2
  shift 2
  local rc=0
  "$@" >"$tmp/stdout" 2>"$tmp/err" || rc=$?
  [ "$rc" = "$want" ] || { cat "$tmp/err"; fail "exit $rc, not $want: $*"; }
  [ "$(wc -l <"$tmp/err")" = 1 ] || { cat "$tmp/err"; fail "not one line: $*"; }
  grep -q -- "$words" "$tmp/err" || { cat "$tmp/err"; fail "no '$words' in the message: $*"; }
  [ ! -s "$tmp/stdout" ] || { cat "$tmp/stdout"; fail "printed to stdout: $*"; }
}
nothing_at() { # nothing_at OUT: no OUT, no OUT.part
  [ ! -e "$1" ] && [ ! -e "$1.part" ] || fail "something was left at $1"
}
size=$(stat -c %s "$good")
head -c $((size / 2)) "$good" >"$tmp/trunc.h5"
expect_fail 1 "truncated" "$LADON" export "$tmp/trunc.h5" "$tmp/o.h5"
nothing_at "$tmp/o.h5"
cp "$good" "$tmp/flip.h5"
"$PY" - "$tmp/flip.h5" <<'PY'
import h5py, sys
off = h5py.File(sys.argv[1], "r")["/trunk/0/weight"].id.get_chunk_info(0).byte_offset + 100
with open(sys.argv[1], "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))
PY
expect_fail 1 "/trunk/0/weight: checksum mismatch" "$LADON" export "$tmp/flip.h5" "$tmp/o.h5"
nothing_at "$tmp/o.h5"
echo "not a checkpoint" >"$tmp/text.h5"
expect_fail 1 "cannot open as HDF5" "$LADON" export "$tmp/text.h5" "$tmp/o.h5"
expect_fail 1 "cannot open: No such file" "$LADON" export "$tmp/missing.h5" "$tmp/o.h5"
"$PY" -c 'import h5py, sys; h5py.File(sys.argv[1], "w")["x"] = [1, 2]' "$tmp/other.h5"
expect_fail 1 "$tmp/other.h5" "$LADON" export "$tmp/other.h5" "$tmp/o.h5"
expect_fail 1 "already an exported file" "$LADON" export "$tmp/a.h5" "$tmp/o.h5"
expect_fail 1 "is an exported model (format ladon-export), not a checkpoint" \
  "$LADON" inspect "$tmp/a.h5"
nothing_at "$tmp/o.h5"
# a failed export leaves an OUT that was there as it was
echo "keep me" >"$tmp/keep.h5"
expect_fail 1 "truncated" "$LADON" export "$tmp/trunc.h5" "$tmp/keep.h5"
[ "$(cat "$tmp/keep.h5")" = "keep me" ] && [ ! -e "$tmp/keep.h5.part" ] || fail "OUT was changed"
expect_fail 1 "refusing to overwrite" "$LADON" export "$good" "$good"
# a weight that is not finite, and one beyond fp16's range
cp "$good" "$tmp/nan.h5"
cp "$good" "$tmp/big.h5"
"$PY" - "$tmp" <<'PY'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1] + "/nan.h5", "r+") as f:
    f["/trunk/1/weight"][2, 3] = np.nan
with h5py.File(sys.argv[1] + "/big.h5", "r+") as f:
    f["/heads/task000/0/weight"][0, 0] = 1e6
PY
expect_fail 1 "nan.h5: /trunk/1/weight\[2, 3\] is NaN" "$LADON" export "$tmp/nan.h5" "$tmp/o.h5"
nothing_at "$tmp/o.h5"
expect_fail 1 "heads/task000/0 has a weight beyond fp16's range" \
  "$LADON" export "$tmp/big.h5" "$tmp/o.h5" --quantize fp16
nothing_at "$tmp/o.h5"
"$LADON" export "$tmp/big.h5" "$tmp/o.h5" --quantize int8 >/dev/null || fail "int8 of a large weight"
rm "$tmp/o.h5"
"$PY" - "$tmp/big.h5" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r+") as f:
    f["/heads/task000/0/weight"][0, 0] = 1e7  # its int8 scale would exceed float16
PY
expect_fail 1 "heads/task000/0 has a weight beyond int8's range" \
  "$LADON" export "$tmp/big.h5" "$tmp/o.h5" --quantize int8
nothing_at "$tmp/o.h5"
for p in abc 1 1.5 -0.1 nan 0.5x ""; do
  expect_fail 2 "--prune must be a sparsity in \[0, 1), got '$p'" \
    "$LADON" export "$good" "$tmp/o.h5" --prune "$p"
done
expect_fail 2 "--quantize must be int8, fp16 or none, got 'int4'" \
  "$LADON" export "$good" "$tmp/o.h5" --quantize int4
expect_fail 2 "unknown option or missing value '--prune'" "$LADON" export "$good" "$tmp/o.h5" --prune
expect_fail 2 "unknown option or missing value '--bogus'" "$LADON" export "$good" "$tmp/o.h5" --bogus
nothing_at "$tmp/o.h5"
expect_fail 1 "cannot create $tmp/nodir/o.h5.part: No such file or directory" \
  "$LADON" export "$good" "$tmp/nodir/o.h5"
mkdir "$tmp/isdir.h5"
expect_fail 1 "rename from $tmp/isdir.h5.part: Is a directory" \
  "$LADON" export "$good" "$tmp/isdir.h5"
[ ! -e "$tmp/isdir.h5.part" ] && [ -z "$(ls -A "$tmp/isdir.h5")" ] || fail "left something"

# --- a damaged export: eval and predict say so in one line
cp "$tmp/a.h5" "$tmp/xflip.h5"
"$PY" - "$tmp/xflip.h5" <<'PY'
import h5py, sys
off = h5py.File(sys.argv[1], "r")["/trunk/0/bias"].id.get_chunk_info(0).byte_offset + 10
with open(sys.argv[1], "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x10]))
PY
expect_fail 1 "/trunk/0" "$LADON" eval "$tmp/xflip.h5"
expect_fail 1 "/trunk/0" "$LADON" predict "$tmp/xflip.h5" --task task000 "$tmp/data/task000.h5" \
  "$tmp/o.h5"
nothing_at "$tmp/o.h5"
cp "$tmp/a.h5" "$tmp/xver.h5"
"$PY" - "$tmp/xver.h5" <<'PY'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs.modify("format_version", np.int32(3))
PY
expect_fail 1 "format_version 3, this ladon reads 1 to 2" "$LADON" eval "$tmp/xver.h5"
# format_version 1 (int8 scales float32) is still read: the same predictions
"$LADON" export "$good" "$tmp/q2.h5" --quantize int8 >/dev/null || fail "int8 export"
cp "$tmp/q2.h5" "$tmp/q1.h5"
"$PY" - "$tmp/q1.h5" <<'PY'
import h5py, numpy as np, sys
with h5py.File(sys.argv[1], "r+") as f:
    f.attrs.modify("format_version", np.int32(1))
    def v1(name, obj):
        if name.endswith("/scale"):
            s = obj[...].astype(np.float32)
            g = obj.parent
            del g["scale"]
            g.create_dataset("scale", data=s)
    names = []
    f.visititems(lambda n, o: names.append(n) if n.endswith("/scale") else None)
    for n in names:
        v1(n, f[n])
PY
for v in 1 2; do
  "$LADON" predict "$tmp/q$v.h5" --task task000 "$tmp/data/task000.h5" "$tmp/p$v.h5" >/dev/null ||
    fail "predict of format_version $v"
done
"$PY" - "$tmp/p1.h5" "$tmp/p2.h5" <<'PY' || fail "format_version 1 and 2 predict differently"
import h5py, numpy as np, sys
a, b = (h5py.File(p, "r") for p in sys.argv[1:])
for k in a:
    assert np.array_equal(a[k][...], b[k][...]), k
PY
echo "export: ok"
