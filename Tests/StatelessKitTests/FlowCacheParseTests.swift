import Foundation
@testable import StatelessKit
import Testing

/// The flow cache's parser against the full parser, on every packet of the
/// real captures: where it accepts a packet, its headers are where the full
/// parser puts them, in a packet as plain as it assumes; every packet it
/// should accept, it does.
@Suite(.enabled(if: Traces.available, Traces.skipNote))
struct FlowCacheParseTests {
    @Test("the flow cache's parse finds the headers where the full parser does, and takes every IPv4 TCP and UDP packet without tags or fragmentation", arguments: Traces.all)
    func sameLayout(trace: String) throws {
        let loaded = try LoadedTrace(path: Traces.path(trace))
        for i in loaded.packets.indices {
            var packet = loaded.packets[i]
            var headers = CacheableHeaders()
            var key = FlowCacheKey.none
            let cacheable = PacketParser.parseCacheable(packet.data, length: Int(packet.length), linkType: packet.linkType,
                                                        port: 7, headers: &headers, key: &key)
            let full = try? PacketParser.parse(packet.data, length: Int(packet.length), linkType: packet.linkType)
            if cacheable != .refused {
                guard let full else {
                    Issue.record("\(trace) packet \(i + 1): taken by the cache, malformed to the full parser")
                    continue
                }
                #expect(full.vlanCount == 0 && full.network == .ipv4 && full.hasPorts && !full.fragment.isFragment
                        && full.quote == nil, "\(trace) packet \(i + 1)")
                #expect(headers.l3Offset == full.l3Offset && headers.l4Offset == full.l4Offset
                        && headers.isUDP == (full.transport == .udp), "\(trace) packet \(i + 1)")
                packet.layout = full
                let flow = packet.flowKey!
                // Addresses and ports as they lie in the packet (network order).
                #expect(key.addresses == (UInt64(flow.source.ipv4!.value) << 32 | UInt64(flow.destination.ipv4!.value)).bigEndian)
                #expect(key.rest == UInt64((UInt32(flow.sourcePort) << 16 | UInt32(flow.destinationPort)).bigEndian) << 32
                    | UInt64(packet.linkType.rawValue) << 24 | UInt64(flow.ipProtocol) << 16 | 7)
                #expect((cacheable == .changesState) == ((packet.tcpFlags ?? 0) & 0x07 != 0))
            } else if let full, full.vlanCount == 0, full.network == .ipv4, full.hasPorts, !full.fragment.isFragment {
                #expect(Bool(false), "\(trace) packet \(i + 1): a plain \(full.transport) packet refused")
            }
        }
    }

    @Test("packets that open or close a connection, fragments, tags, IPv6 and ICMP are never served from the cache")
    func refusals() {
        let a = IPv4Address(10, 0, 0, 1), b = IPv4Address(192, 0, 2, 1)
        let changing: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x02)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x11)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x14)),
        ]
        let refused: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).icmpEcho(request: true, identifier: 1),
            PacketBuilder().ipv6(source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!).udp(source: 1, destination: 2),
            PacketBuilder(vlans: [5]).ipv4(source: a, destination: b).udp(source: 1, destination: 2),
            PacketBuilder().ipv4(source: a, destination: b, identification: 9, moreFragments: true).udp(source: 1, destination: 2),
        ]
        let accepted: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).udp(source: 1, destination: 2),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x10)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x18)),
        ]
        for (frames, expected) in [(refused, FlowCacheParse.refused), (changing, .changesState), (accepted, .servable)] {
            for (n, frame) in frames.enumerated() {
                var bytes = frame
                var headers = CacheableHeaders()
                var key = FlowCacheKey.none
                let taken = bytes.withUnsafeMutableBytes {
                    PacketParser.parseCacheable($0.baseAddress!, length: $0.count, linkType: .ethernet, port: 0,
                                                headers: &headers, key: &key)
                }
                #expect(taken == expected, "frame \(n) of the \(expected)")
            }
        }
    }
}
