#!/usr/bin/env bash
# Instructions per packet of `statelessnf bench parser`, counted by callgrind:
# the difference between a 1-pass and a 3-pass run (which cancels start-up
# and capture loading), divided by 2 passes × the packets.
#
#   Scripts/instructions-per-packet.sh BINARY VARIANT TRACE...
set -euo pipefail
binary=$1 variant=$2
shift 2
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
# valgrind 3.19 cannot read the DWARF 5 that Swift's toolchain writes: count
# a copy without debug information.
stripped=$(mktemp)
trap 'rm -f "$stripped"' EXIT
strip -g -o "$stripped" "$binary"
binary=$stripped
count() {
    local passes=$1
    shift
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" bench parser --variant "$variant" \
        --passes "$passes" "$@" 2>&1 >/dev/null | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
packets=$("$binary" bench parser --variant "$variant" --passes 1 --json "$@" | sed -n 's/.*"packets" : \([0-9]*\).*/\1/p')
one=$(count 1 "$@")
three=$(count 3 "$@")
echo "$variant: $(( (three - one) / (2 * packets) )) instructions per packet over $packets packets"
