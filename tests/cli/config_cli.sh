#!/usr/bin/env bash
# Integration: `ladon config show` prints the resolved config with overrides applied, and a
# bad config or override exits non-zero with one line naming file:line:col and the key.
set -euo pipefail
ladon=$1
src=$2
out=$("$ladon" config show "$src/configs/quickstart.yaml" train.lr=0.125 train.epochs=7)
grep -q "lr: 0.125" <<<"$out" || { echo "override train.lr not applied"; echo "$out"; exit 1; }
grep -q "epochs: 7" <<<"$out" || { echo "override train.epochs not applied"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}}\ntrain:\n  batch_size: 0\n' >"$tmp/bad.yaml"
if "$ladon" config show "$tmp/bad.yaml" 2>"$tmp/err"; then echo "bad config accepted"; exit 1; fi
[ "$(wc -l <"$tmp/err")" -eq 1 ] || { echo "error is not one line:"; cat "$tmp/err"; exit 1; }
grep -q "bad.yaml:5:15: train.batch_size" "$tmp/err" || { echo "unexpected error:"; cat "$tmp/err"; exit 1; }
if "$ladon" config show "$src/configs/quickstart.yaml" train.lr=fast 2>"$tmp/err"; then
  echo "bad override accepted"; exit 1
fi
grep -q "train.lr" "$tmp/err" || { cat "$tmp/err"; exit 1; }
if "$ladon" train --local "$tmp/missing.yaml" 2>"$tmp/err"; then echo "missing config accepted"; exit 1; fi
grep -q "missing.yaml" "$tmp/err"
# rounds: shown resolved, a round's key overridden by the round's name
printf 'data: {dir: d}\nmodel: {trunk: [8]}\ntasks: {a: {}}\nrounds:\n  - {name: m}\n  - {name: s, trunk: [4], teacher: {members: [m]}}\n' >"$tmp/r.yaml"
out=$("$ladon" config show "$tmp/r.yaml" rounds.s.teacher.alpha=0.25)
grep -q "alpha: 0.25" <<<"$out" || { echo "round override not applied"; echo "$out"; exit 1; }
# every command's --help: its usage on stdout, exit 0; `ladon help CMD` the same
for c in train config data inspect eval predict export plot version; do
  out=$("$ladon" $c --help) || { echo "ladon $c --help exited $?"; exit 1; }
  grep -q "ladon $c" <<<"$out" || { echo "ladon $c --help does not show its usage: $out"; exit 1; }
  [ "$("$ladon" help $c)" = "$out" ] || { echo "ladon help $c differs from ladon $c --help"; exit 1; }
done
# --help after other arguments: the usage, and nothing done (no directory called --help)
(cd "$tmp" && "$ladon" data synth --help >/dev/null && "$ladon" train --local --help >/dev/null &&
  "$ladon" config show --help >/dev/null) || { echo "--help after arguments failed"; exit 1; }
[ ! -e "$tmp/--help" ] || { echo "data synth --help wrote data"; exit 1; }
if "$ladon" help nope 2>"$tmp/err"; then echo "help for an unknown command succeeded"; exit 1; fi
grep -q "unknown command 'nope'" "$tmp/err" || { cat "$tmp/err"; exit 1; }
echo "config cli: ok"
