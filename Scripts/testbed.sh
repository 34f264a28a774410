#!/usr/bin/env bash
# The orchestration testbed: network namespaces on this machine, as a
# deployment would have them, and the controller's configuration for them.
#
#   client --- r1 ===(one link per instance)=== nf1..nfN ===(one link each)=== r2 --- server
#   10.0.0.2   router     inside 10.1.I.2/24      NF      outside 10.2.I.2/24  router   10.9.0.2
#
# r1 routes the server's prefix, and r2 the return traffic (the NAT's
# external prefix 198.18.0.0/24, or the client's prefix for the firewall
# and the load balancer's VIP prefix), through resilient nexthop groups of
# the instances' addresses, which the controller reprograms; both hash flows
# by addresses and ports, independently, so a flow's two directions
# usually cross different instances. Each instance is a separate
# `statelessnf run` process on two net_af_packet ports (its namespace's
# `in` and `out`), and they all share one redis-server on a unix socket.
#
#   Scripts/testbed.sh up STATELESSNF [--instances N] [--nf nat|firewall|lb] [--store redis|memory] [--dir DIR]
#   Scripts/testbed.sh down [--dir DIR]
#
# `up` writes DIR/controller.yaml (run it with `statelessnf controller run
# --config DIR/controller.yaml`) and DIR/env (the addresses, for scripts).
# `--store memory` gives every instance a store of its own (the traditional
# design), with heartbeats still through the redis-server. Needs root,
# iproute2, ethtool and redis-server.
set -euo pipefail
command=${1:-}; shift || true
dir=/tmp/statelessnf-testbed
instances=3; nf=nat; store=redis; binary=""
if [ "$command" = up ]; then binary=$(realpath "${1:?the statelessnf binary}"); shift; fi
while [ $# -gt 0 ]; do
    case $1 in
    --instances) instances=$2; shift 2 ;;
    --nf) nf=$2; shift 2 ;;
    --store) store=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
p=skb
at() { ip netns exec "$p-$1" "${@:2}"; }

down() {
    if [ -f "$dir/redis.pid" ]; then kill -9 "$(cat "$dir/redis.pid")" 2>/dev/null || true; fi
    for ns in $(ip netns list | awk '{print $1}' | grep "^$p-" || true); do
        # Whatever still runs in the namespace (instances, transfers) goes with it.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
        ip netns del "$ns"
    done
    rm -rf "$dir"
}

case $command in
down) down; exit 0 ;;
up) ;;
*) echo "usage: $0 up STATELESSNF [options] | down [--dir DIR]" >&2; exit 2 ;;
esac
[ "$instances" -ge 1 ] && [ "$instances" -le 8 ] || { echo "--instances: 1 to 8" >&2; exit 2; }
down
mkdir -p "$dir/logs"

for ns in client r1 r2 server; do ip netns add "$p-$ns"; done
for i in $(seq "$instances"); do ip netns add "$p-nf$i"; done
for ns in client r1 r2 server $(seq -f 'nf%g' "$instances"); do
    at "$ns" ip link set lo up
    at "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
for router in r1 r2; do
    at $router sysctl -qw net.ipv4.ip_forward=1
    at $router sysctl -qw net.ipv4.fib_multipath_hash_policy=1
done

ip link add c0 netns "$p-client" type veth peer name r1c netns "$p-r1"
ip link add s0 netns "$p-server" type veth peer name r2s netns "$p-r2"
at client ip addr add 10.0.0.2/24 dev c0
at r1 ip addr add 10.0.0.1/24 dev r1c
at server ip addr add 10.9.0.2/24 dev s0
at r2 ip addr add 10.9.0.1/24 dev r2s
# The endpoints compute full checksums: the NF rewrites addresses.
at client ethtool -K c0 tx off >/dev/null
at server ethtool -K s0 tx off >/dev/null
for i in $(seq "$instances"); do
    ip link add "r1-nf$i" netns "$p-r1" type veth peer name in netns "$p-nf$i"
    ip link add "r2-nf$i" netns "$p-r2" type veth peer name out netns "$p-nf$i"
    at r1 ip addr add "10.1.$i.1/24" dev "r1-nf$i"
    at r2 ip addr add "10.2.$i.1/24" dev "r2-nf$i"
    at r1 ip link set "r1-nf$i" up
    at r2 ip link set "r2-nf$i" up
    at "nf$i" ip link set in up
    at "nf$i" ip link set out up
done
for link in "client c0" "r1 r1c" "server s0" "r2 r2s"; do set -- $link; at "$1" ip link set "$2" up; done
at client ip route add default via 10.0.0.1
at server ip route add default via 10.9.0.1

# What the routers send through the instances, and how each instance runs.
case $nf in
nat)
    forward=10.9.0.0/24; back=198.18.0.0/24; target=10.9.0.2
    options="--external 198.18.0.1 --internal 10.0.0.0/24 --ports 10000-60000"
    sides="--inside dpdk:0 --outside dpdk:1"
    ;;
firewall)
    forward=10.9.0.0/24; back=10.0.0.0/24; target=10.9.0.2
    printf 'accept state established,related\naccept out state new\naccept in state new proto icmp\n' > "$dir/firewall.rules"
    options="--rules $dir/firewall.rules --internal 10.0.0.0/24"
    sides="--inside dpdk:0 --outside dpdk:1"
    ;;
lb)
    # The client (outside, on r1's side) reaches the VIP; the server is the backend.
    forward=10.99.0.0/24; back=10.0.0.0/24; target=10.99.0.1
    options="--vip 10.99.0.1:5001/tcp --backend 10.9.0.2:5001"
    sides="--outside dpdk:0 --inside dpdk:1"
    ;;
*) echo "--nf: nat, firewall or lb" >&2; exit 2 ;;
esac
case $store in
redis) storeurl="redis+unix://$dir/redis.sock" ;;
memory) storeurl=memory ;;
*) echo "--store: redis or memory" >&2; exit 2 ;;
esac

redis-server --unixsocket "$dir/redis.sock" --unixsocketperm 700 --port 0 --save "" --appendonly no \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/logs/redis.log" --dir "$dir"
for _ in $(seq 50); do [ -S "$dir/redis.sock" ] && break; sleep 0.1; done

# The controller's configuration: the instance slots and the routers.
{
    echo "registry: redis+unix://$dir/redis.sock"
    case $nf in nat) echo "namespace: nat" ;; firewall) echo "namespace: fw" ;; lb) echo "namespace: lb" ;; esac
    echo "interval: 0.005"
    echo "logs: $dir/logs"
    echo "settings: { heartbeatTimeout: 0.03, failAfter: 1, floor: 1, ceiling: $instances, drain: 1 }"
    echo "instances:"
    for i in $(seq "$instances"); do
        echo "  - name: nf$i"
        echo "    command: ip netns exec $p-nf$i $binary run $nf $sides $options --store $storeurl --registry redis+unix://$dir/redis.sock --instance nf$i --json --idle-sleep 100 --address dpdk:0=10.1.$i.2/24,gateway=10.1.$i.1 --address dpdk:1=10.2.$i.2/24,gateway=10.2.$i.1 --eal \"--vdev=net_af_packet0,iface=in --vdev=net_af_packet1,iface=out\""
    done
    echo "steering:"
    echo "  routers:"
    for router in r1 r2; do
        echo "    - namespace: $p-$router"
        if [ $router = r1 ]; then echo "      prefixes: [$forward]"; else echo "      prefixes: [$back]"; fi
        echo "      nexthops:"
        for i in $(seq "$instances"); do
            n=$([ $router = r1 ] && echo 1 || echo 2)
            echo "        nf$i: via 10.$n.$i.2 dev $router-nf$i"
        done
    done
} > "$dir/controller.yaml"
cat > "$dir/env" <<ENV
TESTBED_NF=$nf
TESTBED_TARGET=$target
TESTBED_INSTANCES=$instances
TESTBED_REGISTRY=redis+unix://$dir/redis.sock
TESTBED_CLIENT=$p-client
TESTBED_SERVER=$p-server
ENV
echo "testbed up: $instances instance slot(s) for the $nf ($store store), controller config $dir/controller.yaml"
