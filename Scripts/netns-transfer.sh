#!/usr/bin/env bash
# A real TCP transfer through an NF on DPDK ports, across network namespaces
# made (and removed) here:
#
#   client ns  c0 --veth-- n0  NF ns  n1 --veth-- s0  server ns
#   10.10.0.2          dpdk:0     dpdk:1          10.20.0.2
#                   10.10.0.1     10.20.0.1
#
# The NF runs as `statelessnf run NF --inside/--outside` on net_af_packet
# ports over n0 and n1, answering ARP for 10.10.0.1 and 10.20.0.1. With
# net_tap, there are no veths: the NF's ports create the tap interfaces c0
# and s0, which are then moved into the client's and the server's namespaces.
# CONNECTIONS connections at once carry MEGABYTES between them
# (Scripts/traffic.py), and every connection's SHA-256 is checked at both
# ends.
#
#   nat       the client's connections leave translated to 10.20.0.1
#   firewall  routed as they are, tracked by the firewall's rules
#   lb        the client connects to the VIP 10.99.0.1:5001, balanced to the server
#
# Usage: Scripts/netns-transfer.sh STATELESSNF [nat|firewall|lb] [af_packet|tap] [MEGABYTES] [CONNECTIONS] [-- RUN OPTIONS]
# With WORKERS=N in the environment, the NF runs N workers, each with a
# queue pair of each af_packet port (the kernel spreads flows over them).
# Needs root, iproute2, ethtool and python3. Prints the NF's summary and
# `transfer: N connections, M bytes, all intact` on success.
set -euo pipefail
binary=$(realpath "$1"); nf=${2:-nat}; pmd=${3:-af_packet}; megabytes=${4:-32}; connections=${5:-4}
shift $(( $# < 5 ? $# : 5 )); [ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "$0")" && pwd)
p=sk$$
work=$(mktemp -d)
nfpid=""
cleanup() {
    [ -n "$nfpid" ] && kill -9 "$nfpid" 2>/dev/null || true
    for ns in c n s; do ip netns del "$p$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
at() { ip netns exec "$p$1" "${@:2}"; }

for ns in c n s; do
    ip netns add "$p$ns"
    at "$ns" ip link set lo up
    at "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
done
case $pmd in
af_packet)
    ip link add c0 netns "${p}c" type veth peer name n0 netns "${p}n"
    ip link add s0 netns "${p}s" type veth peer name n1 netns "${p}n"
    at n ip link set n0 up
    at n ip link set n1 up
    devices="--vdev=net_af_packet0,iface=n0,qpairs=${WORKERS:-1} --vdev=net_af_packet1,iface=n1,qpairs=${WORKERS:-1}"
    ;;
tap)
    # The NF creates the tap interfaces c0 and s0 in its namespace when its
    # ports start; they are then moved to the client's and the server's.
    devices="--vdev=net_tap0,iface=c0 --vdev=net_tap1,iface=s0"
    ;;
*) echo "pmd $pmd: af_packet or tap" >&2; exit 2 ;;
esac

serverroute=""
case $nf in
nat)
    sides="--inside dpdk:0 --outside dpdk:1"
    options="--external 10.20.0.1 --internal 10.10.0.0/24 --ports 20000-29999"
    target=10.20.0.2
    ;;
firewall)
    printf 'accept state established,related\naccept out state new proto tcp dport 5001\n' > "$work/rules"
    sides="--inside dpdk:0 --outside dpdk:1"
    options="--rules $work/rules --internal 10.10.0.0/24"
    serverroute=yes
    target=10.20.0.2
    ;;
lb)
    # The clients are outside (port 0), the backend inside (port 1).
    sides="--inside dpdk:1 --outside dpdk:0"
    options="--vip 10.99.0.1:5001/tcp --backend 10.20.0.2:5001"
    serverroute=yes
    target=10.99.0.1
    ;;
*) echo "nf $nf: nat, firewall or lb" >&2; exit 2 ;;
esac

# shellcheck disable=SC2086
ip netns exec "${p}n" "$binary" run "$nf" $sides --address dpdk:0=10.10.0.1/24 --address dpdk:1=10.20.0.1/24 $options \
    --workers "${WORKERS:-1}" --eal "$devices" "$@" > "$work/nf.out" 2> "$work/nf.err" &
nfpid=$!
for _ in $(seq 100); do grep -q "dpdk port up.*port=1\|port=1.*dpdk port up" "$work/nf.err" 2>/dev/null && break; sleep 0.1; done
grep -q "port=1" "$work/nf.err" || { cat "$work/nf.err" >&2; echo "the NF did not start" >&2; exit 1; }
if [ "$pmd" = tap ]; then
    at n ip link set c0 netns "${p}c"
    at n ip link set s0 netns "${p}s"
fi
# The endpoints compute full checksums: an NF that rewrites addresses needs them.
at c ethtool -K c0 tx off >/dev/null 2>&1 || true
at s ethtool -K s0 tx off >/dev/null 2>&1 || true
at c ip addr add 10.10.0.2/24 dev c0
at c ip link set c0 up
at c ip route add default via 10.10.0.1
at s ip addr add 10.20.0.2/24 dev s0
at s ip link set s0 up
if [ -n "$serverroute" ]; then at s ip route add default via 10.20.0.1; fi

at s python3 "$here/traffic.py" serve --tcp 5001 --connections "$connections" --idle 60 > "$work/server.out" &
serverpid=$!
for _ in $(seq 50); do grep -q listening "$work/server.out" 2>/dev/null && break; sleep 0.1; done
bytes=$(( megabytes * 1024 * 1024 / connections ))
started=$(date +%s.%N)
at c timeout 120 python3 "$here/traffic.py" send "$target" --tcp 5001 --connections "$connections" --bytes "$bytes" \
    > "$work/client.out" || true
finished=$(date +%s.%N)
wait "$serverpid" || true
kill -TERM "$nfpid"; wait "$nfpid" || echo "the NF ended with status $?" >&2; nfpid=""
cat "$work/nf.out"; [ -n "${VERBOSE:-}" ] && cat "$work/nf.err" >&2
if ! python3 "$here/traffic.py" check "$work/client.out" "$work/server.out" > "$work/check.out"; then
    echo "transfer FAILED: $(cat "$work/check.out")" >&2
    echo "client: $(cat "$work/client.out")" >&2
    echo "server: $(cat "$work/server.out")" >&2
    tail -20 "$work/nf.err" >&2
    exit 1
fi
echo "transfer: $connections connections, $(( bytes * connections )) bytes, all intact, $(awk "BEGIN { printf \"%.2f\", $finished - $started }") s"
