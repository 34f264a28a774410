#!/usr/bin/env bash
# Instructions per packet of `statelessnf bench NF` on its measured path,
# counted by callgrind inside the benchmark's worker (so that start-up, the
# EAL and testpmd's runs stay out): the difference between a run of N and
# of 2N measured packets (cancelling the warm-up), divided by N, or by 2N
# with --dpdk, which measures N packets on each of two devices.
#
#   Scripts/nf-instructions-per-packet.sh BINARY NF N [bench options...]
set -euo pipefail
binary=$1 nf=$2 packets=$3
shift 3
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -g -o "$stripped" "$binary"  # valgrind 3.19 cannot read Swift's DWARF 5
count() {
    local measured=$1
    shift
    valgrind --tool=callgrind --toggle-collect='$s11statelessnf8BenchNATV4work4pool*PoolRzlFZA*' --callgrind-out-file=/dev/null "$stripped" bench "$nf" --packets "$measured" "$@" 2>&1 >/dev/null \
        | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
one=$(count "$packets" "$@")
two=$(count $((packets * 2)) "$@")
devices=1
for option in "$@"; do [ "$option" = --dpdk ] && devices=2; done
echo "$nf: $(( (two - one) / (packets * devices) )) instructions per packet ($packets packets measured on each of $devices device(s))"
