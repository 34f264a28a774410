import Foundation
import StatelessKit
import Testing

/// The captures under ../shared/traces, decoded by StatelessKit and compared
/// with tshark's decoding of the same packets (Fixtures/tshark, made once by
/// Scripts/make-tshark-fixtures.py).
@Suite(.enabled(if: Traces.available, Traces.skipNote))
struct TraceDecodeTests {
    @Test("every capture reads and parses without a crash", arguments: Traces.all)
    func parsesEveryPacket(trace: String) throws {
        let loaded = try LoadedTrace(path: Traces.path(trace))
        #expect(!loaded.packets.isEmpty)
        for i in loaded.packets.indices {
            if (try? loaded.packets[i].parse()) != nil {
                _ = loaded.packets[i].verifyChecksums()
                _ = loaded.packets[i].flowKey
                _ = loaded.packets[i].quotedFlowKey
            }
        }
    }

    @Test("the sample's decoding equals tshark's", arguments: Traces.all)
    func matchesTshark(trace: String) throws {
        let fixtureURL = Traces.fixtures.appendingPathComponent(
            "tshark/" + trace.replacingOccurrences(of: "/", with: "__") + ".json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: fixtureURL))
        let loaded = try LoadedTrace(path: Traces.path(trace))
        #expect(loaded.packets.count == fixture.packets, "the fixture was made from a capture of another size")
        #expect(!fixture.sample.isEmpty)
        for expected in fixture.sample {
            let number = Int(expected.first("frame.number")!)!
            var packet = loaded.packets[number - 1]
            compare(&packet, expected, "\(trace) frame \(number)")
        }
    }

    struct Fixture: Decodable {
        var trace: String
        var packets: Int
        var sample: [[String: [String]]]
    }

    func compare(_ packet: inout Packet, _ t: [String: [String]], _ context: String) {
        let where_ = Checker(context: context)
        where_.check(packet.timestamp.description == t.first("frame.time_epoch"), "timestamp \(packet.timestamp)")
        where_.check("\(packet.originalLength)" == t.first("frame.len"), "original length")
        where_.check("\(packet.length)" == t.first("frame.cap_len"), "captured length")
        let protocols = t.first("frame.protocols")!.split(separator: ":").map(String.init)
        // The protocol tshark found after Ethernet and any VLAN tags.
        let network = protocols.drop { ["eth", "ethertype", "vlan", "raw"].contains($0) }.first ?? ""
        do {
            try packet.parse()
        } catch {
            if error == .unsupportedEtherType {
                where_.check(!["ip", "ipv6", "arp"].contains(network), "tshark decodes \(network) here")
            } else {
                let cut = Int(t.first("frame.cap_len")!)! < Int(t.first("frame.len")!)!
                let flagged = t["_ws.malformed"] != nil
                    || (t["_ws.expert.severity"] ?? []).contains { Int($0).map { $0 >= 0x0060_0000 } ?? false }
                where_.check(cut || flagged, "we say \(error.name); tshark sees nothing wrong: \(t)")
            }
            return
        }
        let layout = packet.layout
        where_.check(layout.vlanIDs.map(String.init) == (t["vlan.id"] ?? []), "VLAN ids")
        switch layout.network {
        case .arp:
            where_.check(network == "arp")
            return
        case .ipv4:
            where_.check(network == "ip")
            where_.check(packet.address(.source) == IPAddress(t["ip.src"]![0]))
            where_.check(packet.address(.destination) == IPAddress(t["ip.dst"]![0]))
            where_.check("\(layout.ipProtocol)" == t["ip.proto"]![0])
            where_.check((layout.fragment.dontFragment ? "1" : "0") == t["ip.flags.df"]![0])
            where_.check((layout.fragment.moreFragments ? "1" : "0") == t["ip.flags.mf"]![0])
            where_.check("\(layout.fragment.offset / 8)" == t["ip.frag_offset"]![0])
        case .ipv6:
            where_.check(network == "ipv6")
            where_.check(packet.address(.source) == IPAddress(t["ipv6.src"]![0]))
            where_.check(packet.address(.destination) == IPAddress(t["ipv6.dst"]![0]))
            // Fragment headers tshark lists after an ICMPv6 header are the quote's.
            let outer = protocols.prefix { $0 != "icmpv6" }
            if outer.contains("ipv6.fraghdr"), let offset = t["ipv6.fraghdr.offset"]?.first {
                where_.check(layout.fragment.hasIPv6FragmentHeader)
                where_.check("\(layout.fragment.offset / 8)" == offset)
                where_.check((layout.fragment.moreFragments ? "1" : "0") == t["ipv6.fraghdr.more"]![0])
                where_.check(UInt32(t["ipv6.fraghdr.ident"]![0].dropFirst(2), radix: 16) == layout.fragment.identification)
            } else {
                where_.check(!layout.fragment.hasIPv6FragmentHeader)
            }
        case .none:
            where_.check(false, "parsed with no network layer")
        }
        // The transport protocol tshark found after the IP header and any
        // IPv6 extension headers is ours.
        let afterIP = protocols.drop { $0 != "ip" && $0 != "ipv6" }.dropFirst().drop { $0.hasPrefix("ipv6.") }.first
        switch layout.transport {
        case .tcp: where_.check(afterIP == "tcp" && layout.ipProtocol == 6, "transport: tshark says \(afterIP ?? "none")")
        case .udp: where_.check(afterIP == "udp" && layout.ipProtocol == 17, "transport: tshark says \(afterIP ?? "none")")
        case .icmpv4: where_.check(afterIP == "icmp", "transport: tshark says \(afterIP ?? "none")")
        case .icmpv6: where_.check(afterIP == "icmpv6", "transport: tshark says \(afterIP ?? "none")")
        case .fragment, .other, .none:
            where_.check(!["tcp", "udp", "icmp", "icmpv6"].contains(afterIP ?? ""),
                         "we see no transport header; tshark decodes \(afterIP ?? "")")
        }
        let checksums = packet.verifyChecksums()
        if layout.network == .ipv4 {
            where_.check(Self.status(checksums.ipv4Header) == t["ip.checksum.status"]?.first, "IPv4 header checksum")
        }
        switch layout.transport {
        case .tcp:
            where_.check("\(packet.port(.source))" == t["tcp.srcport"]?.first)
            where_.check("\(packet.port(.destination))" == t["tcp.dstport"]?.first)
            where_.check(Self.status(checksums.transport) == t["tcp.checksum.status"]?.first, "TCP checksum")
        case .udp:
            where_.check("\(packet.port(.source))" == t["udp.srcport"]?.first)
            where_.check("\(packet.port(.destination))" == t["udp.dstport"]?.first)
            where_.check(Self.status(checksums.transport) == t["udp.checksum.status"]?.first, "UDP checksum")
        case .icmpv4, .icmpv6:
            let prefix = layout.transport == .icmpv4 ? "icmp" : "icmpv6"
            where_.check(packet.icmpType.map { "\($0)" } == t["\(prefix).type"]?.first)
            where_.check(packet.icmpCode.map { "\($0)" } == t["\(prefix).code"]?.first)
            where_.check(Self.status(checksums.transport) == t["\(prefix).checksum.status"]?.first, "ICMP checksum")
            let identifiers = t[layout.transport == .icmpv4 ? "icmp.ident" : "icmpv6.echo.identifier"] ?? []
            if let identifier = packet.icmpIdentifier {
                where_.check(Int(identifier) == identifiers.first.flatMap(Self.number), "ICMP identifier")
            }
            if layout.icmp == .error, let quote = layout.quote {
                compareQuote(packet, quote, t, checksums, identifiers, where_)
            }
        case .fragment:
            where_.check(t["tcp.srcport"] == nil && t["udp.srcport"] == nil, "tshark found ports in a non-first fragment")
        case .none, .other:
            break
        }
    }

    func compareQuote(_ packet: Packet, _ quote: QuotedPacket, _ t: [String: [String]], _ checksums: ChecksumReport,
                      _ identifiers: [String], _ where_: Checker) {
        let family = quote.network == .ipv4 ? "ip" : "ipv6"
        where_.check(packet.quotedAddress(.source) == IPAddress(t["\(family).src"]?.last ?? ""), "quoted source")
        where_.check(packet.quotedAddress(.destination) == IPAddress(t["\(family).dst"]?.last ?? ""), "quoted destination")
        if quote.network == .ipv4 {
            where_.check(t["ip.proto"]?.last == "\(quote.ipProtocol)")
            where_.check(Self.status(checksums.quotedIPv4Header) == t["ip.checksum.status"]?.last,
                    "quoted IPv4 header checksum")
        }
        switch quote.transport {
        case .tcp, .udp:
            let name = quote.transport == .tcp ? "tcp" : "udp"
            where_.check(packet.quotedPort(.source).map { "\($0)" } == t["\(name).srcport"]?.last)
            where_.check(packet.quotedPort(.destination).map { "\($0)" } == t["\(name).dstport"]?.last)
        case .icmpv4, .icmpv6:
            let prefix = quote.transport == .icmpv4 ? "icmp" : "icmpv6"
            where_.check(packet.quotedICMPType.map { "\($0)" } == t["\(prefix).type"]?.last)
            if let identifier = packet.quotedICMPIdentifier {
                where_.check(Int(identifier) == identifiers.last.flatMap(Self.number), "quoted ICMP identifier")
            }
        default:
            break
        }
    }

    /// A number as tshark prints it, in decimal or 0x-prefixed hexadecimal.
    static func number(_ text: String) -> Int? {
        text.hasPrefix("0x") ? Int(text.dropFirst(2), radix: 16) : Int(text)
    }

    /// tshark's checksum status: 0 bad, 1 good, 2 unverified.
    static func status(_ verdict: ChecksumVerdict) -> String? {
        switch verdict {
        case .good: "1"
        case .bad: "0"
        case .absent, .unverifiable: "2"
        }
    }
}

extension Dictionary where Key == String, Value == [String] {
    func first(_ key: String) -> String? { self[key]?.first }
}

/// Checks that name the packet in their message.
struct Checker {
    var context: String

    func check(_ condition: Bool, _ what: @autoclosure () -> String = "", sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(condition, "\(context): \(what())", sourceLocation: sourceLocation)
    }
}
