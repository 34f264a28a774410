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
                    // A truncated packet the graph drops as malformed: removing its flow's entry costs nothing.
                    #expect(cacheable == .changesState, "\(trace) packet \(i + 1): served, malformed to the full parser")
                    continue
                }
                #expect(full.vlanCount == 0 && full.network == .ipv4 && full.hasPorts && full.fragment.offset == 0
                        && full.quote == nil, "\(trace) packet \(i + 1)")
                packet.layout = full
                let ipLength = Int(packet.data.loadBigEndian(Int(full.l3Offset) + 2, as: UInt16.self))
                if Int(packet.length) >= Int(full.l3Offset) + ipLength && !full.fragment.isFragment {
                    #expect(headers.l3Offset == full.l3Offset && headers.l4Offset == full.l4Offset
                            && headers.isUDP == (full.transport == .udp), "\(trace) packet \(i + 1)")
                    #expect((cacheable == .changesState) == ((packet.tcpFlags ?? 0) & 0x07 != 0),
                            "\(trace) packet \(i + 1): \(packet.length) bytes, IP length \(ipLength) at \(full.l3Offset)")
                } else {
                    // Truncated, or a first fragment: its flow's entry goes.
                    #expect(cacheable == .changesState, "\(trace) packet \(i + 1)")
                }
                guard let flow = packet.flowKey else { continue }
                // Addresses and ports as they lie in the packet (network order).
                #expect(key.addresses == (UInt64(flow.source.ipv4!.value) << 32 | UInt64(flow.destination.ipv4!.value)).bigEndian)
                #expect(key.rest == UInt64((UInt32(flow.sourcePort) << 16 | UInt32(flow.destinationPort)).bigEndian) << 32
                    | UInt64(packet.linkType.rawValue) << 24 | UInt64(flow.ipProtocol) << 16 | 7)
            } else if let full, full.vlanCount == 0, full.network == .ipv4, full.hasPorts, !full.fragment.isFragment {
                #expect(Bool(false), "\(trace) packet \(i + 1): a plain \(full.transport) packet refused")
            }
        }
    }

    @Test("packets that open or close a connection, truncated packets, fragments, tags, IPv6 and ICMP are never served from the cache")
    func refusals() {
        let a = IPv4Address(10, 0, 0, 1), b = IPv4Address(192, 0, 2, 1)
        let changing: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x02)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x11)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x14)),
            // A first fragment, and a truncated datagram: their ports can be read.
            PacketBuilder().ipv4(source: a, destination: b, identification: 9, moreFragments: true).udp(source: 1, destination: 2),
            Array(PacketBuilder().ipv4(source: a, destination: b).udp(source: 1, destination: 2, payload: [UInt8](repeating: 7, count: 40))
                .dropLast(10)),
        ]
        let refused: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).icmpEcho(request: true, identifier: 1),
            PacketBuilder().ipv6(source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!).udp(source: 1, destination: 2),
            PacketBuilder(vlans: [5]).ipv4(source: a, destination: b).udp(source: 1, destination: 2),
            PacketBuilder().ipv4(source: a, destination: b, identification: 9, fragmentOffset: 8).udp(source: 1, destination: 2),
        ]
        let accepted: [[UInt8]] = [
            PacketBuilder().ipv4(source: a, destination: b).udp(source: 1, destination: 2),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x10)),
            PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2, flags: PacketBuilder.TCPFlags(rawValue: 0x18)),
        ]
        for (frames, expected) in [(refused, FlowCacheParse.refused), (changing, .changesState), (accepted, .servable)] {
            for (n, frame) in frames.enumerated() {
                #expect(FlowCacheTableTests.parsed(frame).parse == expected, "frame \(n) of the \(expected)")
            }
        }
    }
}
