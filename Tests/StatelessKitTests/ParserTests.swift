import StatelessKit
import Testing

@Suite("Parsing")
struct ParserTests {
    let a = IPv4Address(10, 1, 2, 3)
    let b = IPv4Address(192, 0, 2, 44)
    let a6 = IPv6Address("2001:db8::a")!
    let b6 = IPv6Address("2001:db8::b")!

    func parse(_ bytes: [UInt8], _ linkType: LinkType = .ethernet) throws(ParseError) -> Packet {
        try TestPacket(bytes, linkType: linkType).parse()
    }

    func reason(_ bytes: [UInt8], _ linkType: LinkType = .ethernet) -> ParseError? {
        do {
            _ = try parse(bytes, linkType)
            return nil
        } catch {
            return error
        }
    }

    @Test("TCP over IPv4 with options, in QinQ")
    func qinqTCP() throws {
        let p = try parse(PacketBuilder(vlans: [100, 200]).ipv4(source: a, destination: b, options: [1, 1, 1, 0])
            .tcp(source: 1234, destination: 80, flags: [.syn], options: [2, 4, 5, 0xB4, 1, 1, 4, 2]))
        #expect(p.layout.vlanIDs == [100, 200])
        #expect(p.layout.network == .ipv4 && p.layout.transport == .tcp)
        #expect(p.layout.l3Offset == 22 && p.layout.l4Offset == 22 + 24)
        #expect(p.ipv4Address(.source) == a && p.ipv4Address(.destination) == b)
        #expect(p.port(.source) == 1234 && p.port(.destination) == 80)
        #expect(p.tcpFlags == 0x02 && p.tcpPayloadLength == 0)
        #expect(p.verifyChecksums() == ChecksumReport(ipv4Header: .good, transport: .good, quotedIPv4Header: .unverifiable))
    }

    @Test("UDP over IPv6 behind hop-by-hop and destination options")
    func ipv6Extensions() throws {
        let p = try parse(PacketBuilder().ipv6(source: a6, destination: b6, extensions: [.hopByHop, .destinationOptions])
            .udp(source: 5353, destination: 5353, payload: [1, 2, 3]))
        #expect(p.layout.network == .ipv6 && p.layout.transport == .udp)
        #expect(p.layout.ipProtocol == IPProtocol.udp)
        #expect(p.layout.l4Offset == 14 + 40 + 16)
        #expect(p.address(.source) == IPAddress(a6))
        #expect(p.verifyChecksums().transport == .good)
    }

    @Test("IPv4 and IPv6 fragments: ports in the first, none in the rest")
    func fragments() throws {
        let first = try parse(PacketBuilder().ipv4(source: a, destination: b, identification: 77, moreFragments: true)
            .udp(source: 1, destination: 2, payload: Array(repeating: 0, count: 64)))
        #expect(first.layout.fragment.isFragment && first.layout.fragment.moreFragments)
        #expect(first.layout.transport == .udp && first.port(.destination) == 2)
        #expect(first.verifyChecksums().transport == .unverifiable)
        let rest = try parse(PacketBuilder().ipv4(source: a, destination: b, identification: 77, fragmentOffset: 72)
            .other(protocol: IPProtocol.udp, payload: Array(repeating: 0, count: 16)))
        #expect(rest.layout.transport == .fragment && rest.layout.fragment.offset == 72)
        #expect(rest.layout.fragment.identification == 77)
        #expect(rest.flowKey?.sourcePort == 0)
        let v6 = try parse(PacketBuilder().ipv6(source: a6, destination: b6,
                                                extensions: [.fragment(offset: 1232, moreFragments: true, identification: 0xDEAD_BEEF)])
            .other(protocol: IPProtocol.tcp, payload: Array(repeating: 0, count: 8)))
        #expect(v6.layout.transport == .fragment && v6.layout.fragment.offset == 1232)
        #expect(v6.layout.fragment.identification == 0xDEAD_BEEF && v6.layout.ipProtocol == IPProtocol.tcp)
        let atomic = try parse(PacketBuilder().ipv6(source: a6, destination: b6,
                                                    extensions: [.fragment(offset: 0, moreFragments: false, identification: 1)])
            .tcp(source: 80, destination: 5555))
        #expect(!atomic.layout.fragment.isFragment && atomic.layout.fragment.hasIPv6FragmentHeader)
        #expect(atomic.layout.transport == .tcp && atomic.verifyChecksums().transport == .good)
    }

    @Test("ICMP errors quote a header and its first transport bytes")
    func icmpQuote() throws {
        let original = PacketBuilder(rawIP: true).ipv4(source: a, destination: b).tcp(source: 4444, destination: 22)
        let p = try parse(PacketBuilder().ipv4(source: b, destination: a).icmpError(type: 3, code: 3, quoting: original, quoteLength: 28))
        #expect(p.layout.icmp == .error)
        let quote = try #require(p.layout.quote)
        #expect(quote.network == .ipv4 && quote.transport == .tcp && quote.transportBytes == 8)
        #expect(p.quotedFlowKey == FlowKey(source: IPAddress(a), destination: IPAddress(b), sourcePort: 4444,
                                           destinationPort: 22, ipProtocol: IPProtocol.tcp))
        // A quote that stops inside the ports is refused.
        #expect(reason(PacketBuilder().ipv4(source: b, destination: a).icmpError(type: 3, code: 3, quoting: original, quoteLength: 22))
            == .truncatedICMPQuote)
        // A quote that is not IPv4 is refused.
        var bogus = original
        bogus[0] = 0x75
        #expect(reason(PacketBuilder().ipv4(source: b, destination: a).icmpError(type: 11, code: 0, quoting: bogus)) == .badICMPQuote)
    }

    @Test("ICMP queries key the identifier to the requester's side")
    func icmpKeys() throws {
        let request = try parse(PacketBuilder().ipv4(source: a, destination: b).icmpEcho(request: true, identifier: 99))
        let reply = try parse(PacketBuilder().ipv4(source: b, destination: a).icmpEcho(request: false, identifier: 99))
        #expect(request.icmpIdentifier == 99 && request.layout.icmp == .query)
        #expect(request.flowKey!.reversed == reply.flowKey!)
        #expect(request.flowKey!.symmetricHash() == reply.flowKey!.symmetricHash())
        let request6 = try parse(PacketBuilder().ipv6(source: a6, destination: b6).icmpEcho(request: true, identifier: 7))
        #expect(request6.flowKey!.sourcePort == 7 && request6.verifyChecksums().transport == .good)
    }

    @Test("raw IP, ARP, and other protocols")
    func rawAndOthers() throws {
        let raw = try parse(PacketBuilder(rawIP: true).ipv4(source: a, destination: b).udp(source: 1, destination: 2), .rawIP)
        #expect(raw.layout.l3Offset == 0 && raw.layout.transport == .udp)
        var arp: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 2, 0, 0, 0, 0, 1, 0x08, 0x06]
        arp += [0, 1, 8, 0, 6, 4, 0, 1] + Array(repeating: 0, count: 20)
        let p = try parse(arp)
        #expect(p.layout.network == .arp && p.flowKey == nil)
        let gre = try parse(PacketBuilder().ipv4(source: a, destination: b).other(protocol: 47, payload: [0, 0, 8, 0]))
        #expect(gre.layout.transport == .other && gre.layout.ipProtocol == 47)
        #expect(gre.flowKey?.ipProtocol == 47)
    }

    @Test("every malformation has its own named reason")
    func reasons() {
        let udp = PacketBuilder().ipv4(source: a, destination: b).udp(source: 1, destination: 2, payload: [1, 2, 3, 4])
        let tcp = PacketBuilder().ipv4(source: a, destination: b).tcp(source: 1, destination: 2)
        let udp6 = PacketBuilder().ipv6(source: a6, destination: b6).udp(source: 1, destination: 2)
        func edit(_ bytes: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var copy = bytes
            change(&copy)
            return copy
        }
        var seen: Set<ParseError> = []
        func expectReason(_ bytes: [UInt8], _ expected: ParseError, _ linkType: LinkType = .ethernet,
                          sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(reason(bytes, linkType) == expected, sourceLocation: sourceLocation)
            seen.insert(expected)
        }
        expectReason(Array(udp.prefix(13)), .truncatedEthernet)
        expectReason(Array(PacketBuilder(vlans: [5]).ipv4(source: a, destination: b).udp(source: 1, destination: 2).prefix(16)), .truncatedVLANTag)
        expectReason(edit(PacketBuilder(vlans: [1, 2]).ipv4(source: a, destination: b).udp(source: 1, destination: 2)) { $0[20] = 0x81; $0[21] = 0 }, .tooManyVLANTags)
        expectReason(edit(udp) { $0[12] = 0x88; $0[13] = 0x47 }, .unsupportedEtherType)
        expectReason(edit(udp) { $0[12] = 0x08; $0[13] = 0x06 }.prefix(20).map { $0 }, .truncatedARP)
        expectReason(edit(udp) { $0[14] = 0x65 }, .badIPVersion)
        expectReason([0x50] + Array(repeating: 0, count: 30), .badIPVersion, .rawIP)
        expectReason(Array(udp.prefix(30)), .truncatedIPv4Header)
        expectReason(edit(udp) { $0[14] = 0x44 }, .badIPv4HeaderLength)
        expectReason(edit(udp) { $0[16] = 0; $0[17] = 10 }, .badIPv4TotalLength)
        expectReason(Array(udp.dropLast(2)), .ipv4TotalLengthExceedsPacket)
        expectReason(edit(udp) { $0[20] = 0x1F; $0[21] = 0xFF }, .badFragmentOffset)
        expectReason(Array(udp6.prefix(14 + 39)), .truncatedIPv6Header)
        expectReason(Array(udp6.dropLast(1)), .badIPv6PayloadLength)
        let hop = PacketBuilder().ipv6(source: a6, destination: b6, extensions: [.hopByHop]).udp(source: 1, destination: 2)
        expectReason(edit(hop) { $0[14 + 41] = 9 }, .truncatedIPv6ExtensionHeader)
        var chain = Array(udp6.prefix(54))
        chain[14 + 6] = 60
        for i in 0..<9 { chain += [i == 8 ? 17 : 60, 0, 1, 4, 0, 0, 0, 0] }
        chain += Array(udp6.suffix(8))
        chain[18] = UInt8((chain.count - 54) >> 8)
        chain[19] = UInt8((chain.count - 54) & 0xFF)
        expectReason(chain, .tooManyIPv6ExtensionHeaders)
        expectReason(edit(PacketBuilder().ipv4(source: a, destination: b).other(protocol: 6, payload: Array(repeating: 0, count: 19))) { _ in }, .truncatedTCPHeader)
        expectReason(edit(tcp) { $0[34 + 12] = 0x40 }, .badTCPDataOffset)
        expectReason(edit(tcp) { $0[34 + 12] = 0xF0 }, .badTCPDataOffset)
        expectReason(PacketBuilder().ipv4(source: a, destination: b).other(protocol: 17, payload: [1, 2, 3]), .truncatedUDPHeader)
        expectReason(edit(udp) { $0[34 + 5] = 200 }, .badUDPLength)
        expectReason(PacketBuilder().ipv4(source: a, destination: b).other(protocol: 1, payload: [8, 0, 0]), .truncatedICMPHeader)
        let quote = PacketBuilder(rawIP: true).ipv4(source: a, destination: b).udp(source: 1, destination: 2)
        expectReason(PacketBuilder().ipv4(source: b, destination: a).icmpError(type: 3, code: 1, quoting: quote, quoteLength: 12), .truncatedICMPQuote)
        expectReason(PacketBuilder().ipv4(source: b, destination: a).icmpError(type: 3, code: 1, quoting: [0x35] + quote.dropFirst()), .badICMPQuote)
        #expect(seen == Set(ParseError.allCases), "reasons without a test: \(Set(ParseError.allCases).subtracting(seen))")
        #expect(Set(ParseError.allCases.map(\.name)).count == ParseError.allCases.count)
    }

    @Test("every prefix of a valid packet is parsed or refused, never read past")
    func everyPrefix() {
        let packets = [
            PacketBuilder(vlans: [3, 4]).ipv4(source: a, destination: b, options: [1, 1, 1, 1]).tcp(source: 1, destination: 2, options: [1, 1, 1, 1]),
            PacketBuilder().ipv6(source: a6, destination: b6, extensions: [.hopByHop, .fragment(offset: 0, moreFragments: true, identification: 3)])
                .udp(source: 1, destination: 2, payload: [1]),
            PacketBuilder().ipv4(source: b, destination: a).icmpError(
                type: 3, code: 3, quoting: PacketBuilder(rawIP: true).ipv4(source: a, destination: b).udp(source: 1, destination: 2)),
            PacketBuilder().ipv6(source: b6, destination: a6).icmpError(
                type: 1, code: 3, quoting: PacketBuilder(rawIP: true).ipv6(source: a6, destination: b6).icmpEcho(request: true, identifier: 3)),
        ]
        for full in packets {
            for length in 0..<full.count {
                // Each prefix sits in a buffer of exactly its size: reading
                // past it would read another pool's memory (and under the
                // address sanitizer, in the fuzz target, crash).
                #expect(reason(Array(full.prefix(length))) != nil, "a \(length)-byte prefix of \(full.count) parsed")
            }
            #expect(reason(full) == nil)
        }
    }
}

@Suite("Flow keys")
struct FlowKeyTests {
    @Test("the symmetric hash is the same both ways; the plain one differs")
    func hashes() {
        let key = FlowKey(source: IPAddress("10.0.0.1")!, destination: IPAddress("8.8.8.8")!, sourcePort: 4000,
                          destinationPort: 53, ipProtocol: IPProtocol.udp)
        #expect(key.symmetricHash() == key.reversed.symmetricHash())
        #expect(key.hash() != key.reversed.hash())
        #expect(key.canonical == key.reversed.canonical)
        #expect(key.hash(seed: 1) != key.hash(seed: 2))
    }

    @Test("the same tuple on another VLAN is another flow")
    func vlans() throws {
        let b = PacketBuilder(vlans: [10]).ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2))
        let one = try TestPacket(b.udp(source: 1, destination: 2)).parse().flowKey!
        var other = b
        other.vlans = [11]
        let two = try TestPacket(other.udp(source: 1, destination: 2)).parse().flowKey!
        #expect(one != two)
        #expect(one.symmetricHash() != two.symmetricHash())
        #expect(one.vlans.ids == [10])
        #expect(one.description == "udp 10.0.0.1:1 -> 10.0.0.2:2 vlan 10")
    }

    @Test("hashes spread: 100,000 flows fall evenly into 64 buckets")
    func spread() {
        var buckets = [Int](repeating: 0, count: 64)
        for i in 0..<100_000 {
            let key = FlowKey(source: IPAddress(IPv4Address(0x0A00_0000 | UInt32(i >> 8))), destination: IPAddress("1.1.1.1")!,
                              sourcePort: UInt16(1024 + i & 0xFF), destinationPort: 443, ipProtocol: IPProtocol.tcp)
            buckets[Int(key.symmetricHash() & 63)] += 1
        }
        let expected = 100_000 / 64
        #expect(buckets.allSatisfy { abs($0 - expected) < expected / 5 }, "\(buckets)")
    }

    @Test("addresses print and parse")
    func addresses() {
        #expect(IPv6Address("2001:db8:0:0:1:0:0:1")!.description == "2001:db8::1:0:0:1")
        #expect(IPv6Address("::")!.description == "::")
        #expect(IPv6Address("::ffff:1.2.3.4") == IPAddress(IPv4Address(1, 2, 3, 4)).ipv6)
        #expect(IPAddress("::ffff:1.2.3.4")!.isIPv4)
        #expect(IPv4Address("256.1.1.1") == nil && IPv4Address("1.2.3") == nil && IPv6Address("1::2::3") == nil)
        #expect(IPv6Address("fe80::1:2:3:4:5:6:7") == nil || IPv6Address("fe80::1:2:3:4:5:6:7")!.groups.count == 8)
    }
}

@Suite("Buffers and batches")
struct BufferTests {
    @Test("a pool hands out each buffer once and takes it back")
    func pool() {
        let pool = BufferPool(count: 4, dataRoom: 256, headroom: 32)
        var packets: [Packet] = []
        while let packet = pool.allocate() { packets.append(packet) }
        #expect(packets.count == 4 && pool.available == 0)
        #expect(Set(packets.map(\.handle)).count == 4)
        #expect(Set(packets.map { UInt(bitPattern: $0.buffer) }).count == 4)
        #expect(packets.allSatisfy { $0.headroom == 32 && $0.tailroom == 256 })
        packets.forEach(pool.release)
        #expect(pool.available == 4)
    }

    @Test("headroom takes a pushed header; sizes are checked")
    func headroom() throws {
        let pool = BufferPool(count: 1, dataRoom: 64, headroom: 8)
        var packet = pool.allocate()!
        defer { pool.release(packet) }
        #expect([UInt8](repeating: 1, count: 64).withUnsafeBytes { packet.setBytes($0) })
        #expect(![UInt8](repeating: 1, count: 65).withUnsafeBytes { packet.setBytes($0) })
        #expect(packet.prepend(4) != nil && packet.length == 68 && packet.headroom == 4)
        #expect(packet.prepend(5) == nil)
        #expect(packet.removeFirst(4) && packet.length == 64)
        #expect(!packet.setLength(65) && packet.setLength(10) && packet.length == 10)
    }

    @Test("a batch fills to its capacity and empties")
    func batch() {
        let pool = BufferPool(count: 8)
        let batch = PacketBatch(capacity: 4)
        var appended = 0
        while let packet = pool.allocate() {
            if batch.append(packet) { appended += 1 } else { pool.release(packet); break }
        }
        #expect(appended == 4 && batch.isFull && batch.count == 4)
        batch[2].port = 9
        #expect(batch[2].port == 9)
        pool.release(batch)
        #expect(batch.isEmpty && pool.available == 8)
    }
}
