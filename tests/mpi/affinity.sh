#!/usr/bin/env bash
# Task affinity measured by 2 servers under bsp (ps.affinity, docs/architecture.md): on
# synthetic data with two clusters of related tasks and a negated pair, every within-cluster
# cosine of the trunk gradients is above every across-cluster one by a margin (> 0.1), every
# across-cluster cosine is negative (the clusters conflict in the narrow trunk), and the
# negated pair (the per-task heads absorb the sign: it shares the trunk's features) is above
# every across pair. The assertions can fail: on the same generator with relatedness 0 (no
# clusters; runs are deterministic under bsp) the margin is below 0.1, a wrong cluster
# assignment of the measured matrix fails them, and the matrix must not be constant. Groups hosting several tasks are reported with
# their tasks; ps.affinity under ssp is refused with a message naming the key.
source "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
"$LADON" data synth "$tmp/d" --tasks 6 --features 32 --rank 4 --classes 4 --train 20000 \
  --test 400 --relatedness 0.9 --seed 3 --clusters 2 --conflict >/dev/null
tasks="{task000: {}, task001: {}, task002: {}, task003: {}, task004: {}, task005: {}}"
cat >"$tmp/a.yaml" <<YAML
run: {dir: $tmp/a, seed: 2}
data: {dir: $tmp/d}
model: {trunk: [8, 8]}
tasks: $tasks
train: {epochs: 3, batch_size: 256, log_every: 0, lr: 0.05}
ps: {servers: 2, consistency: bsp, timeout: 20, affinity: 100000}
YAML
run_mpi 9 "$LADON" train "$tmp/a.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "affinity run"; }

cat >"$tmp/check.py" <<'PY'
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
aff = [r for r in rows if r.get("kind") == "affinity"]
evals = sorted({r["step"] for r in rows if "task" in r})
assert [r["step"] for r in aff] == evals, ("one affinity row per evaluation", evals, aff)
r = aff[-1]
G = 6
assert r["groups"] == ["task%03d" % g for g in range(G)], r["groups"]
assert r["group_tasks"] == [["task%03d" % g] for g in range(G)], r["group_tasks"]
assert sorted(r["cosine"]) == ["0", "1", "trunk"], sorted(r["cosine"])  # 2 trunk layers
steps = r["to_step"] - r["from_step"]
assert r["from_step"] == 0 and steps == r["step"], ("the window covers the run", r["from_step"], r["to_step"])
for i in range(G):  # every group trains every step (equal shards)
    assert r["steps_together"][i] == [steps] * G, r["steps_together"][i]
m = r["cosine"]["trunk"]
for i in range(G):
    assert abs(m[i][i] - 1) < 1e-6, m[i][i]
    for j in range(G):
        assert abs(m[i][j] - m[j][i]) < 1e-9 and -1 <= m[i][j] <= 1, (i, j)
off = [m[i][j] for i in range(G) for j in range(i + 1, G)]
assert max(off) - min(off) > 0.05, ("constant matrix", off)

def holds(clusters, pair):
    within = [m[i][j] for c in clusters for i in c for j in c if i < j]
    across = [m[i][j] for a in clusters for b in clusters if a != b for i in a for j in b]
    margin = min(within) - max(across)
    return margin > 0.1 and m[pair[0]][pair[1]] > max(across), within, across

ok, within, across = holds([(0, 1), (2, 3)], (4, 5))
print("%s: within %s across %s pair %.3f" % (sys.argv[2], ["%.3f" % v for v in within],
                                              ["%.3f" % v for v in across], m[4][5]))
if sys.argv[2] == "control":  # no clusters in the data: the assertion must not hold
    assert not ok, "relatedness 0 passes the cluster assertion too"
    sys.exit(0)
assert ok, "the clusters are not recovered"
# conflict: the two clusters compete for the narrow trunk (8-8): their gradients point apart
assert max(across) < 0, ("across-cluster cosines not negative", across)
for wrong in ([(0, 2), (1, 3)], [(0, 3), (1, 2)]):  # the assertion can fail on this matrix
    assert not holds(wrong, (4, 5))[0], ("a wrong cluster assignment passes too", wrong)
for l in ("0", "1"):  # every layer's matrix is a cosine matrix
    assert all(abs(r["cosine"][l][i][i] - 1) < 1e-6 for i in range(G)), l
PY
$PY "$tmp/check.py" "$tmp/a/metrics.jsonl" clusters || fail "affinity matrix (see above)"

# control: the same generator and run with relatedness 0 (no cluster shares anything)
"$LADON" data synth "$tmp/d0" --tasks 6 --features 32 --rank 4 --classes 4 --train 20000 \
  --test 400 --relatedness 0 --seed 3 --clusters 2 --conflict >/dev/null
sed -e "s#dir: $tmp/a,#dir: $tmp/c,#" -e "s#dir: $tmp/d}#dir: $tmp/d0}#" "$tmp/a.yaml" >"$tmp/c.yaml"
run_mpi 9 "$LADON" train "$tmp/c.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "control run"; }
$PY "$tmp/check.py" "$tmp/c/metrics.jsonl" control || fail "control (see above)"

# 6 tasks on 2 workers: 2 groups of 3 tasks, named group0/group1 with their tasks
sed -e "s#dir: $tmp/a,#dir: $tmp/b,#" -e "s/affinity: 100000/affinity: 20/" -e "s/epochs: 3/epochs: 1/" \
  "$tmp/a.yaml" >"$tmp/b.yaml"
run_mpi 5 "$LADON" train "$tmp/b.yaml" 2>"$tmp/log" || { cat "$tmp/log"; fail "affinity, 2 groups"; }
$PY - "$tmp/b/metrics.jsonl" <<'PY' || fail "groups of several tasks"
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"kind":"affinity"' in l][-1]
assert r["groups"] == ["group0", "group1"], r["groups"]
held = sorted(t for g in r["group_tasks"] for t in g)
assert held == ["task%03d" % t for t in range(6)] and all(len(g) == 3 for g in r["group_tasks"]), r
assert r["to_step"] - r["from_step"] == 20 and r["to_step"] % 20 == 0, ("a closed window", r)
PY

# bsp only: refused under ssp, one line naming the key
if "$LADON" config show "$tmp/a.yaml" ps.consistency=ssp 2>"$tmp/err" >/dev/null; then
  fail "ps.affinity accepted under ssp"
fi
grep -q "ps.affinity: task affinity is measured under ps.consistency: bsp only" "$tmp/err" ||
  { cat "$tmp/err"; fail "no clear ps.affinity error"; }
echo "affinity: ok"
