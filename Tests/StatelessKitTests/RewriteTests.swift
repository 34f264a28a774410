import StatelessKit
import Testing

@Suite("Rewriting with incremental checksums")
struct RewriteTests {
    let inside = IPv4Address(10, 0, 0, 7)
    let outside = IPv4Address(203, 0, 113, 9)
    let server = IPv4Address(198, 51, 100, 20)
    let inside6 = IPv6Address("fd00::7")!
    let outside6 = IPv6Address("2001:db8:ffff::9")!
    let server6 = IPv6Address("2001:db8:1::20")!

    /// Rewriting a packet gives the bytes of the packet built with the new
    /// values from scratch, every checksum included.
    @Test("a rewritten IPv4 packet equals the one built with the new values")
    func ipv4EqualsRebuilt() throws {
        let before = PacketBuilder(vlans: [7]).ipv4(source: inside, destination: server)
        let after = PacketBuilder(vlans: [7]).ipv4(source: outside, destination: server)
        for (a, b, port) in [
            (before.tcp(source: 40000, destination: 443, flags: [.syn], options: [2, 4, 5, 0xB4], payload: [1, 2, 3]),
             after.tcp(source: 61000, destination: 443, flags: [.syn], options: [2, 4, 5, 0xB4], payload: [1, 2, 3]), true),
            (before.udp(source: 40000, destination: 53, payload: Array("query".utf8)),
             after.udp(source: 61000, destination: 53, payload: Array("query".utf8)), true),
            (before.udp(source: 40000, destination: 53, payload: [9], zeroChecksum: true),
             after.udp(source: 61000, destination: 53, payload: [9], zeroChecksum: true), true),
            (before.icmpEcho(request: true, identifier: 40000, payload: [1, 2, 3, 4, 5]),
             after.icmpEcho(request: true, identifier: 61000, payload: [1, 2, 3, 4, 5]), false),
        ] {
            let test = TestPacket(a)
            let packet = try test.parse()
            #expect(packet.setIPv4Address(outside, at: .source))
            #expect(port ? packet.setPort(61000, at: .source) : packet.setICMPIdentifier(61000))
            #expect(test.bytes == b)
        }
    }

    @Test("a rewritten IPv6 packet equals the one built with the new values")
    func ipv6EqualsRebuilt() throws {
        let before = PacketBuilder().ipv6(source: inside6, destination: server6, extensions: [.hopByHop])
        let after = PacketBuilder().ipv6(source: outside6, destination: server6, extensions: [.hopByHop])
        for (a, b, port) in [
            (before.tcp(source: 40000, destination: 443, payload: [7]), after.tcp(source: 61000, destination: 443, payload: [7]), true),
            (before.udp(source: 40000, destination: 53), after.udp(source: 61000, destination: 53), true),
            (before.icmpEcho(request: true, identifier: 40000), after.icmpEcho(request: true, identifier: 61000), false),
        ] {
            let test = TestPacket(a)
            let packet = try test.parse()
            #expect(packet.setIPv6Address(outside6, at: .source))
            #expect(port ? packet.setPort(61000, at: .source) : packet.setICMPIdentifier(61000))
            #expect(test.bytes == b)
        }
    }

    /// What a NAT does to an ICMP error coming back from outside: the outer
    /// destination and the quoted source go back to the inside host.
    @Test("an ICMP error's outer and quoted headers translate back, all four checksums right",
          arguments: [IPProtocol.udp, IPProtocol.tcp, IPProtocol.icmp])
    func icmpErrorEqualsRebuilt(quoted: UInt8) throws {
        func original(_ source: IPv4Address, _ port: UInt16) -> [UInt8] {
            let b = PacketBuilder(rawIP: true).ipv4(source: source, destination: server, ttl: 1)
            switch quoted {
            case IPProtocol.udp: return b.udp(source: port, destination: 33434, payload: Array(repeating: 0x41, count: 20))
            case IPProtocol.tcp: return b.tcp(source: port, destination: 80, flags: .syn)
            default: return b.icmpEcho(request: true, identifier: port, payload: [1, 2, 3, 4])
            }
        }
        let router = IPv4Address(192, 0, 2, 254)
        let arrived = PacketBuilder().ipv4(source: router, destination: outside)
            .icmpError(type: 11, code: 0, quoting: original(outside, 61000), quoteLength: 28 + 12)
        let expected = PacketBuilder().ipv4(source: router, destination: inside)
            .icmpError(type: 11, code: 0, quoting: original(inside, 40000), quoteLength: 28 + 12)
        let test = TestPacket(arrived)
        let packet = try test.parse()
        #expect(packet.layout.icmp == .error)
        #expect(packet.setIPv4Address(inside, at: .destination))
        #expect(packet.setQuotedIPv4Address(inside, at: .source))
        if quoted == IPProtocol.icmp {
            #expect(packet.setQuotedICMPIdentifier(40000))
        } else {
            #expect(packet.setQuotedPort(40000, at: .source))
        }
        #expect(test.bytes == expected)
        let report = packet.verifyChecksums()
        #expect(report.ipv4Header == .good && report.transport == .good && report.quotedIPv4Header == .good)
    }

    @Test("an ICMPv6 error's outer and quoted headers translate back")
    func icmpv6ErrorEqualsRebuilt() throws {
        func original(_ source: IPv6Address) -> [UInt8] {
            PacketBuilder(rawIP: true).ipv6(source: source, destination: server6).udp(source: 5000, destination: 6000, payload: [1, 2])
        }
        let router = IPv6Address("2001:db8::fe")!
        let arrived = PacketBuilder().ipv6(source: router, destination: outside6)
            .icmpError(type: 1, code: 4, quoting: original(outside6))
        let expected = PacketBuilder().ipv6(source: router, destination: inside6)
            .icmpError(type: 1, code: 4, quoting: original(inside6))
        let test = TestPacket(arrived)
        let packet = try test.parse()
        #expect(packet.setIPv6Address(inside6, at: .destination))
        #expect(packet.setQuotedIPv6Address(inside6, at: .source))
        #expect(test.bytes == expected)
    }

    @Test("rewrites refuse fields the packet does not have")
    func refusals() throws {
        let udp = TestPacket(PacketBuilder().ipv4(source: inside, destination: server).udp(source: 1, destination: 2))
        let packet = try udp.parse()
        let before = udp.bytes
        #expect(!packet.setIPv6Address(outside6, at: .source))
        #expect(!packet.setICMPIdentifier(5))
        #expect(!packet.setQuotedPort(5, at: .source))
        #expect(!packet.setQuotedIPv4Address(outside, at: .source))
        #expect(udp.bytes == before)
        let fragment = TestPacket(PacketBuilder().ipv4(source: inside, destination: server, fragmentOffset: 1480)
            .other(protocol: IPProtocol.udp, payload: [1, 2, 3, 4, 5, 6, 7, 8]))
        let f = try fragment.parse()
        #expect(f.layout.transport == .fragment)
        #expect(!f.setPort(9, at: .source))
        #expect(f.setIPv4Address(outside, at: .source))
        #expect(f.verifyChecksums().ipv4Header == .good)
    }

    /// On every packet of the real captures: rewrite every address, port and
    /// identifier, check that each checksum that was right still is, then
    /// restore the old values and get the original bytes back.
    @Test("rewrite then restore gives back the original bytes", .enabled(if: Traces.available, Traces.skipNote),
          arguments: Traces.all)
    func restoreOnTraces(trace: String) throws {
        let loaded = try LoadedTrace(path: Traces.path(trace))
        var rewritten = 0
        for i in loaded.packets.indices {
            guard (try? loaded.packets[i].parse()) != nil else { continue }
            let packet = loaded.packets[i]
            guard packet.layout.network == .ipv4 || packet.layout.network == .ipv6 else { continue }
            let original = Array(packet.bytes)
            let before = packet.verifyChecksums()
            let restore = rewriteEverything(packet)
            let during = packet.verifyChecksums()
            #expect(before.ipv4Header != .good || during.ipv4Header == .good, "\(trace) #\(i + 1) IPv4 header")
            #expect(before.transport != .good || during.transport == .good, "\(trace) #\(i + 1) transport")
            #expect(before.quotedIPv4Header != .good || during.quotedIPv4Header == .good, "\(trace) #\(i + 1) quoted")
            restore()
            #expect(Array(packet.bytes) == original, "\(trace) #\(i + 1) not restored")
            rewritten += 1
        }
        #expect(rewritten > 0 || trace.hasSuffix("malformed.pcap") || trace.hasSuffix("trunc.pcap"))
    }

    /// Rewrites every field there is; returns what puts them back.
    func rewriteEverything(_ packet: Packet) -> () -> Void {
        var undo: [() -> Void] = []
        for end in [Endpoint.source, .destination] {
            if let v4 = packet.ipv4Address(end) {
                #expect(packet.setIPv4Address(IPv4Address(v4.value ^ 0x5A5A_0F0F), at: end))
                undo.append { packet.setIPv4Address(v4, at: end) }
            } else if packet.layout.network == .ipv6 {
                let v6 = packet.address(end).ipv6
                #expect(packet.setIPv6Address(IPv6Address(high: v6.high ^ 0x1234, low: ~v6.low), at: end))
                undo.append { packet.setIPv6Address(v6, at: end) }
            }
            if packet.layout.hasPorts {
                let port = packet.port(end)
                #expect(packet.setPort(port &+ 4321, at: end))
                undo.append { packet.setPort(port, at: end) }
            }
            if let quoted = packet.quotedAddress(end) {
                if let v4 = quoted.ipv4 {
                    #expect(packet.setQuotedIPv4Address(IPv4Address(~v4.value), at: end))
                    undo.append { packet.setQuotedIPv4Address(v4, at: end) }
                } else {
                    #expect(packet.setQuotedIPv6Address(IPv6Address(high: ~quoted.high, low: quoted.low ^ 99), at: end))
                    undo.append { packet.setQuotedIPv6Address(quoted.ipv6, at: end) }
                }
            }
            if let port = packet.quotedPort(end) {
                #expect(packet.setQuotedPort(port &+ 77, at: end))
                undo.append { packet.setQuotedPort(port, at: end) }
            }
        }
        if let identifier = packet.icmpIdentifier {
            #expect(packet.setICMPIdentifier(~identifier))
            undo.append { packet.setICMPIdentifier(identifier) }
        }
        if let identifier = packet.quotedICMPIdentifier {
            #expect(packet.setQuotedICMPIdentifier(identifier &+ 1))
            undo.append { packet.setQuotedICMPIdentifier(identifier) }
        }
        return { undo.reversed().forEach { $0() } }
    }
}

@Suite("Checksum edge cases")
struct ChecksumEdgeTests {
    @Test("an echo reply whose words are all zero keeps the checksum 0xFFFF after its identifier is translated back")
    func allZeroEchoReply() throws {
        let builder = PacketBuilder().ipv4(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2))
        let zero = builder.icmpEcho(request: false, identifier: 0, sequence: 0)
        #expect(zero[36] == 0xFF && zero[37] == 0xFF, "the builder's checksum of an all-zero message")
        let test = TestPacket(builder.icmpEcho(request: false, identifier: 0x1234, sequence: 0))
        let packet = try test.parse()
        #expect(packet.setICMPIdentifier(0))
        #expect(test.bytes == zero)
        #expect(packet.verifyChecksums().transport == .good)
    }

    @Test("a UDP checksum that computes to zero is sent as 0xFFFF and survives a round trip")
    func udpNegativeZero() throws {
        // Find a source port that makes the checksum compute to zero.
        let builder = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
        let port = try #require((UInt16(1)...UInt16.max).first { p in
            let bytes = builder.udp(source: p, destination: 9)
            return bytes[40] == 0xFF && bytes[41] == 0xFF
        })
        let test = TestPacket(builder.udp(source: port, destination: 9))
        let original = test.bytes
        let packet = try test.parse()
        #expect(packet.setPort(port &+ 1, at: .source) && packet.setPort(port, at: .source))
        #expect(test.bytes == original)
    }
}
