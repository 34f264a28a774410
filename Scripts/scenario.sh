#!/usr/bin/env bash
# An orchestration scenario on the testbed (Scripts/testbed.sh): real TCP
# connections and UDP flows from the client namespace to the server's,
# through a fleet of NF instances that a controller watches, while the
# scenario's event happens:
#
#   failure     2 instances; one is killed with SIGKILL 3 s into the traffic
#   scale       1 instance; scaled out to 3 at 2 s and back to 1 at 6 s
#   asymmetric  2 instances; r1 sends every flow through nf1 and r2 every
#               return through nf2
#   pause       2 instances; one is stopped (SIGSTOP) for 0.3 s at 3 s: steered
#               away, then back once its heartbeats resume, never restarted
#   autoscale   1 to 3 instances as the controller's load policy decides
#               (out above 3,000 packets/s per instance, in below 500)
#
# Usage: Scripts/scenario.sh STATELESSNF SCENARIO [--nf nat|firewall|lb] [--store redis|memory]
#            [--connections N] [--megabytes-each M] [--seconds S] [--out DIR]
# --store memory runs the traditional design: each instance keeps its state
# to itself. Prints one JSON line (the scenario, the events, connections
# intact and broken, UDP datagrams lost, the longest gaps in ms) and leaves
# DIR/result.json, DIR/timeline.csv (what arrived per 50 ms), DIR/fleet.csv
# (the instances traffic went to, every 0.25 s) and the logs.
# Needs root, iproute2, ethtool, python3 and redis-server.
set -euo pipefail
binary=$(realpath "$1"); scenario=$2; shift 2
nf=nat; store=redis; connections=20; seconds=8; each=2; out=""
while [ $# -gt 0 ]; do
    case $1 in
    --nf) nf=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --connections) connections=$2; shift 2 ;;
    --megabytes-each) each=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
dir=$(mktemp -d /tmp/statelessnf-scenario.XXXXXX)
out=${out:-$dir/out}
mkdir -p "$out"
controller=""
cleanup() {
    [ -n "$controller" ] && kill "$controller" 2>/dev/null && wait "$controller" 2>/dev/null || true
    stopped
    cp -r "$dir/testbed/logs" "$out/" 2>/dev/null || true
    "$here/testbed.sh" down --dir "$dir/testbed" >/dev/null 2>&1 || true
    [ "$out" = "$dir/out" ] || rm -rf "$dir"
}
# Stops the instances with SIGTERM and waits for them: each writes its
# summary (packets, drops, latency) to its log as it ends.
stopped() {
    for ns in $(ip netns list | awk '{print $1}' | grep '^skb-nf' || true); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    done
    for _ in $(seq 50); do
        running=0
        for ns in $(ip netns list | awk '{print $1}' | grep '^skb-nf' || true); do
            [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && running=1
        done
        [ $running = 0 ] && break
        sleep 0.1
    done
}
trap cleanup EXIT
case $scenario in
failure) slots=2; start=2 ;;
scale) slots=3; start=1 ;;
asymmetric) slots=2; start=2 ;;
autoscale) slots=3; start=auto ;;
pause) slots=2; start=2 ;;
*) echo "scenario $scenario: failure, scale, asymmetric, pause or autoscale" >&2; exit 2 ;;
esac
"$here/testbed.sh" up "$binary" --instances "$slots" --nf "$nf" --store "$store" --dir "$dir/testbed" >/dev/null
if [ "$scenario" = autoscale ]; then
    sed -i 's/^settings: { \(.*\) }$/settings: { \1, scaleOutAbove: 3000, scaleInBelow: 500, sustain: 0.5, cooldown: 1.5 }/' \
        "$dir/testbed/controller.yaml"
fi
# shellcheck disable=SC1091
. "$dir/testbed/env"
ns=$(sed -n 's/^namespace: //p' "$dir/testbed/controller.yaml")
ctl() { "$binary" controller "$@" --registry "$TESTBED_REGISTRY" --namespace "$ns"; }
"$binary" controller run --config "$dir/testbed/controller.yaml" --stop-instances > "$out/controller.log" 2>&1 &
controller=$!
ctl scale "$start" >/dev/null
# How many instances traffic goes to, as the controller last published.
steered() {
    local list
    list=$(redis-cli -s "$dir/testbed/redis.sock" hget "{$ns}:controller" steered 2>/dev/null || true)
    if [ -z "$list" ]; then echo 0; else echo "$list" | tr ',' '\n' | grep -c .; fi
}
ready=$([ "$start" = auto ] && echo 1 || echo "$start")
# Up once is enough: while instances start on two cores the controller
# may steer away from one for a moment and back (it is speculative), and
# a second look could land in that moment.
up=""
for _ in $(seq 300); do [ "$(steered)" = "$ready" ] && { up=1; break; }; sleep 0.1; done
[ -n "$up" ] || { echo "the fleet did not come up" >&2; tail "$out/controller.log" >&2; exit 1; }
sleep 1
if [ "$scenario" = asymmetric ]; then
    # The controller stops watching (SIGKILL: the instances it started stay);
    # each router gets one instance.
    kill -9 "$controller"; wait "$controller" 2>/dev/null || true; controller=""
    ip -n skb-r1 nexthop replace id 1000 group 1001 type resilient buckets 256 idle_timer 0
    ip -n skb-r2 nexthop replace id 1000 group 1002 type resilient buckets 256 idle_timer 0
fi

udp=6001
port=5001
[ "$nf" = lb ] && udp=0   # the load balancer's VIP serves TCP only
bytes=$(( each * 1024 * 1024 ))
rate=$(( bytes / seconds ))
ip netns exec "$TESTBED_SERVER" python3 "$here/traffic.py" serve --tcp "$port" --connections "$connections" \
    --udp "$udp" --timeline "$out/timeline.csv" --idle 30 > "$out/server.json" &
server=$!
for _ in $(seq 50); do grep -q listening "$out/server.json" 2>/dev/null && break; sleep 0.1; done
began=$(date +%s.%N)
ip netns exec "$TESTBED_CLIENT" timeout $((seconds * 6 + 60)) python3 "$here/traffic.py" send "$TESTBED_TARGET" \
    --tcp "$port" --connections "$connections" --bytes "$bytes" --rate "$rate" \
    --udp "$udp" --flows 10 --pps 200 --duration "$seconds" > "$out/client.json" &
client=$!
at() { sleep "$(awk "BEGIN { d = $1 - ($(date +%s.%N) - $began); print (d > 0 ? d : 0) }")"; }
# Where traffic goes, every 0.25 s, while the client sends.
(
    echo "seconds,instances" > "$out/fleet.csv"
    while kill -0 "$client" 2>/dev/null; do
        echo "$(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $began }"),$(steered 2>/dev/null || echo)" >> "$out/fleet.csv"
        sleep 0.25
    done
) &
watcher=$!
events=""
case $scenario in
failure)
    at 3
    victim=$(redis-cli -s "$dir/testbed/redis.sock" hget "{$ns}:instance:nf1" pid)
    kill -9 "$victim" || { echo "nf1 ($victim) was not running at 3 s" >&2; exit 1; }
    events="\"kill nf1 at 3 s\""
    ;;
scale)
    at 2; ctl scale 3 >/dev/null
    at 6; ctl scale 1 >/dev/null
    events="\"scale to 3 at 2 s\", \"scale to 1 at 6 s\""
    ;;
asymmetric) events="\"r1 through nf1, r2 through nf2\"" ;;
autoscale) events="\"the load policy decides\"" ;;
pause)
    at 3
    victim=$(redis-cli -s "$dir/testbed/redis.sock" hget "{$ns}:instance:nf1" pid)
    kill -STOP "$victim"
    at 3.3
    kill -CONT "$victim"
    sleep 1.5
    after=$(redis-cli -s "$dir/testbed/redis.sock" hget "{$ns}:instance:nf1" pid)
    steps=$(grep -c "steering traffic" "$out/controller.log" || true)
    events="\"SIGSTOP nf1 at 3 s, SIGCONT at 3.3 s\", \"nf1 pid $victim before, $after after\", \"$steps steering changes\""
    ;;
esac
wait "$client" || true
wait "$server" || true
wait "$watcher" 2>/dev/null || true
if [ "$scenario" = autoscale ]; then
    # After the traffic: the fleet shrinks back to its floor.
    for _ in $(seq 100); do [ "$(steered)" = 1 ] && break; sleep 0.1; done
    echo "$(awk "BEGIN { printf \"%.2f\", $(date +%s.%N) - $began }"),$(steered)" >> "$out/fleet.csv"
fi
[ -n "$controller" ] && { kill "$controller"; wait "$controller" 2>/dev/null || true; controller=""; }
stopped
python3 "$here/traffic.py" check "$out/client.json" "$out/server.json" > "$out/check.json" || true
python3 - "$out/check.json" "$scenario" "$nf" "$store" "[$events]" "$dir/testbed/logs" "$out/fleet.csv" > "$out/result.json" <<'PY'
import csv, glob, json, os, sys
result = json.load(open(sys.argv[1]))
result.pop("errors", None)
# Each instance's summary, the last JSON object in its log (killed ones have none).
instances = {}
for path in sorted(glob.glob(os.path.join(sys.argv[6], "nf*.log"))):
    text = open(path).read()
    start = text.rfind("\n{\n")
    if start < 0:
        continue
    try:
        summary = json.loads(text[start + 1:])
    except ValueError:
        continue
    counters = summary.get("counters", {})
    instances[os.path.basename(path)[:-4]] = {
        "packets": summary.get("packetsIn", 0),
        "latencyP50Us": counters.get("dpdk.latency.p50Microseconds"),
        "latencyP99Us": counters.get("dpdk.latency.p99Microseconds"),
    }
p50 = [i["latencyP50Us"] for i in instances.values() if i["latencyP50Us"] is not None]
p99 = [i["latencyP99Us"] for i in instances.values() if i["latencyP99Us"] is not None]
fleet = [int(row["instances"]) for row in csv.DictReader(open(sys.argv[7])) if row["instances"].strip()]
print(json.dumps({"scenario": sys.argv[2], "nf": sys.argv[3], "store": sys.argv[4], "events": json.loads(sys.argv[5]),
                  **result, "latencyP50UsMax": max(p50, default=None), "latencyP99UsMax": max(p99, default=None),
                  "fleetMax": max(fleet, default=0), "fleetEnd": fleet[-1] if fleet else 0, "instances": instances}))
PY
cat "$out/result.json"
