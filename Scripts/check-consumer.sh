#!/usr/bin/env bash
# Builds a package that depends only on the StatelessKit product, without the
# pkg-config fix DPDK needs, and checks that nothing of DPDK or hiredis was
# compiled or linked: such a consumer builds on a machine without them.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
consumer=$root/.build/consumer
identity=$(basename "$root" | tr '[:upper:]' '[:lower:]')
mkdir -p "$consumer/Sources/Consumer"
cat > "$consumer/Package.swift" <<SWIFT
// swift-tools-version: 6.1
import PackageDescription
let package = Package(
    name: "Consumer",
    dependencies: [.package(path: "$root")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "StatelessKit", package: "$identity")])]
)
SWIFT
cat > "$consumer/Sources/Consumer/main.swift" <<'SWIFT'
import StatelessKit
let frame = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
    .udp(source: 1, destination: 2)
let pool = BufferPool(count: 1)
var packet = pool.allocate()!
_ = frame.withUnsafeBytes { packet.setBytes($0) }
try packet.parse()
print("consumer parsed: \(packet.flowKey!)")
SWIFT
cd "$consumer"
env -u PKG_CONFIG_PATH swift build 2>&1 | grep -E '(^|: )error:|Compiling (CDPDK|StatelessKitDPDK|StatelessKitStore)' && {
    echo "check-consumer: a StatelessKit-only consumer compiled DPDK or hiredis code" >&2; exit 1; }
objects=$(find .build/debug -path '*CDPDKShim.build*' -name '*.o' -o -path '*StatelessKitStore.build*' -name '*.o' \
    -o -path '*StatelessKitDPDK.build*' -name '*.o' | wc -l)
[ "$objects" -eq 0 ] || { echo "check-consumer: $objects DPDK/Store objects were built" >&2; exit 1; }
if ldd .build/debug/Consumer | grep -E 'librte|hiredis'; then
    echo "check-consumer: the consumer links DPDK or hiredis" >&2; exit 1
fi
.build/debug/Consumer
