#!/usr/bin/env bash
# A lost host under `launch/ladon-run --restarts 1` on the emulated cluster (../shared/cluster):
# 3 hosts of 2 slots, 5 ranks. After the job's first checkpoint, host 3 goes away (its
# processes killed, its namespace deleted: to mpirun it is a machine that no longer answers).
# The job fails; ladon-run probes the hostfile's hosts, says host 3 did not answer, restarts on
# the 2 others (5 ranks on 4 slots: oversubscribed) from the latest checkpoint, and the job
# finishes with exit 0 and every evaluation of the run. Exits 77 (skipped) where network
# namespaces cannot be made.
source "$(dirname "$0")/lib.sh"
nc=$(cd "$SRC/../shared/cluster" 2>/dev/null && pwd)/netns-cluster
if [ ! -x "$nc" ]; then echo "SKIP: no ../shared/cluster/netns-cluster beside the source"; exit 77; fi
if [ "$(id -u)" -ne 0 ]; then echo "SKIP: the emulated cluster needs root"; exit 77; fi
if ! ip netns add ldnc-probe 2>/dev/null; then echo "SKIP: network namespaces not allowed here"; exit 77; fi
ip netns del ldnc-probe
"$nc" down >/dev/null 2>&1 || true
trap '"$nc" down >/dev/null 2>&1; rm -rf "$tmp"' EXIT
hosts=$("$nc" up 3 --slots 2 2>"$tmp/up.log") || { cat "$tmp/up.log"; fail "netns-cluster up 3"; }
cp "$hosts" "$tmp/hosts"
# The emulated hosts share one /tmp and one host name, so their Open MPI session directories
# (/tmp/ompi.HOSTNAME.UID/jf.N/...) are one tree, which a daemon finishing and one starting
# raced on ("A call to mkdir was unable to create the desired directory ... File exists", 2 of
# 13 runs). Real hosts have a /tmp each: so do these, through a wrapper of the cluster's
# agent that gives each its own TMPDIR.
agent=$tmp/agent
cat >"$agent" <<AGENT
#!/usr/bin/env bash
args=("\$@")
while [[ \${1:-} == -* ]]; do shift; done
export TMPDIR=$tmp/tmp-\$1
mkdir -p "\$TMPDIR"
exec "$(dirname "$nc")/netns-agent" "\${args[@]}"
AGENT
chmod +x "$agent"
synth "$tmp/data" 2 4000
cat >"$tmp/c.yaml" <<YAML
run: {dir: $tmp/run, seed: 5}
data: {dir: $tmp/data}
model: {trunk: [64, 64]}
tasks: {task000: {}, task001: {}}
train: {epochs: 6, batch_size: 32, log_every: 50}
ps: {servers: 2, consistency: bsp, timeout: 30}
checkpoint: {every_steps: 100, keep_last: 3}
YAML
mpiargs=(--hostfile "$tmp/hosts" --mca plm_rsh_agent "$agent" --mca oob_tcp_if_include 10.213.0.0/24
  --mca btl tcp,self --mca btl_tcp_if_include 10.213.0.0/24 --mca rtc_hwloc_vmhole none)
LADON="$LADON" LDN_PROBE_TIMEOUT=20 timeout 600 "$SRC/launch/ladon-run" "$tmp/c.yaml" --restarts 1 -- \
  "${mpiargs[@]}" >"$tmp/out" 2>"$tmp/log" &
job=$!
for _ in $(seq 1200); do # the first checkpoint, then host 3 goes
  [ -s "$tmp/run/checkpoints/latest" ] && break
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
[ -s "$tmp/run/checkpoints/latest" ] || { cat "$tmp/log"; fail "no first checkpoint"; }
# A Linux bridge takes the lowest MAC address of its ports unless given one: when host 3's veth
# happened to hold it (4 of 23 runs), deleting the namespace changed the bridge's address under
# the other hosts' ARP caches, and their connections to mpirun stalled for minutes (TCP
# retransmission backoff) until mpirun's keepalive (oob_tcp_keepalive_time, 300 s) ended them.
# A real switch keeps its address when a host dies: pin the bridge's.
br=/sys/class/net/ldncbr0/address
[ -r "$br" ] && ip link set ldncbr0 address "$(cat "$br")"
ip netns pids ldnc3 | xargs -r kill -9
ip netns del ldnc3
wait "$job" || { cat "$tmp/log"; fail "ladon-run --restarts 1 did not finish the job after losing a host"; }
grep -q "ladon-run: host(s) 10.213.0.13 did not answer a probe" "$tmp/log" || { cat "$tmp/log"; fail "the lost host is not named"; }
grep -q "restarting on the remaining 2 host(s) (10.213.0.11 10.213.0.12), oversubscribed (5 ranks on 4 slots)" "$tmp/log" ||
  { cat "$tmp/log"; fail "no restart on the remaining hosts"; }
grep -q "resuming from step" "$tmp/log" || { cat "$tmp/log"; fail "not resumed from a checkpoint"; }
grep -q "epoch 6.00" "$tmp/log" || grep -q '"epoch":6.0000' "$tmp/run/metrics.jsonl" || fail "the run did not reach its end"
echo "cluster restart: ok"
