#!/usr/bin/env bash
# Integration: a FIFO where ladon expects a file (a checkpoint directory's `latest`, a config)
# is refused at once with one line naming the path, instead of blocking for a writer.
# Args: ladon binary.
set -uo pipefail
ladon=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/ck"
mkfifo "$tmp/ck/latest" "$tmp/c.yaml"
timeout 10 "$ladon" inspect "$tmp/ck" 2>"$tmp/err"
rc=$?
[ $rc -ne 124 ] || fail "inspect of a directory whose latest is a FIFO hung"
[ $rc -ne 0 ] || fail "inspect accepted a FIFO latest"
grep -q "$tmp/ck/latest: cannot open: not a regular file (a FIFO)" "$tmp/err" ||
  { cat "$tmp/err"; fail "inspect: message does not name the FIFO"; }

timeout 10 "$ladon" config show "$tmp/c.yaml" 2>"$tmp/err"
rc=$?
[ $rc -ne 124 ] || fail "config show of a FIFO hung"
[ $rc -ne 0 ] || fail "config show accepted a FIFO"
grep -q "config $tmp/c.yaml: cannot open: not a regular file (a FIFO)" "$tmp/err" ||
  { cat "$tmp/err"; fail "config: message does not name the FIFO"; }
echo "special files: ok"
