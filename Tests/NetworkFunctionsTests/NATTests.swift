import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// The NAT, packet in and packets out per port, under a manual clock, on
/// the embedded store or Redis. One port (0): direction from the internal
/// prefixes.
final class NATBench {
    let nat: NAT
    let store: any InspectableStore
    let namespace = "nat-test-\(UUID())"
    let harness: GraphHarness

    static let hostA = IPv4Address(10, 0, 0, 1)
    static let hostB = IPv4Address(10, 0, 0, 2)
    static let server = IPv4Address(198, 51, 100, 7)
    static let server2 = IPv4Address(198, 51, 100, 8)
    static let external = [IPv4Address(203, 0, 113, 1), IPv4Address(203, 0, 113, 2)]

    init(_ kind: StoreKind, ports: String = "20000-20999", external: [IPv4Address] = NATBench.external, twoPorts: Bool = false,
         configure: (inout NATConfig) -> Void = { _ in }) throws {
        var config = NATConfig()
        config.external = external.map(\.description)
        config.ports = ports
        config.capacity = 10_000
        config.namespace = namespace
        if twoPorts {
            config.insidePort = 1
            config.outsidePort = 2
        }
        configure(&config)
        nat = NAT(try config.resolved())
        store = try kind.make()
        harness = GraphHarness(graph: try nat.graph(), session: try store.makeSession(for: nat.state.schema))
    }

    func out(_ frame: [UInt8]) -> GraphHarness.Output { harness.send(frame, port: nat.insidePort) }
    func `in`(_ frame: [UInt8]) -> GraphHarness.Output { harness.send(frame, port: nat.outsidePort) }

    var mappings: Int { try! store.statistics(namespace: namespace)!.tables["mappings"]!.entries }
    var freePorts: Int { try! store.statistics(namespace: namespace)!.freeItems.values.reduce(0, +) }

    /// Sends a UDP packet out and returns the translated source.
    func udpOut(from host: IPv4Address, _ port: UInt16, to server: IPv4Address = server, _ serverPort: UInt16 = 53)
        throws -> NATEndpoint {
        let sent = out(PacketBuilder().ipv4(source: host, destination: server).udp(source: port, destination: serverPort))
        let frame = try #require(sent.packets(on: nat.outsidePort).first, "dropped: \(sent.drops)")
        let packet = TestFrame(frame)
        return NATEndpoint(packet.ipv4Address(.source)!, packet.port(.source))
    }
}

/// A parsed copy of a frame, for reading fields. The frame owns the buffer
/// its packet views, so fields are read through the frame (which lives as
/// long as it is used), never through a `Packet` taken out of it.
@dynamicMemberLookup
final class TestFrame {
    private let pool = BufferPool(count: 1, dataRoom: 9216)
    private var packet: Packet

    init(_ bytes: [UInt8]) {
        packet = pool.allocate()!
        _ = bytes.withUnsafeBytes { packet.setBytes($0) }
        try! packet.parse()
    }

    deinit { pool.release(packet) }

    subscript<T>(dynamicMember field: KeyPath<Packet, T>) -> T { packet[keyPath: field] }

    func ipv4Address(_ end: Endpoint) -> IPv4Address? { packet.ipv4Address(end) }
    func port(_ end: Endpoint) -> UInt16 { packet.port(end) }
    func verifyChecksums() -> ChecksumReport { packet.verifyChecksums() }
    func quotedAddress(_ end: Endpoint) -> IPAddress? { packet.quotedAddress(end) }
    func quotedPort(_ end: Endpoint) -> UInt16? { packet.quotedPort(end) }
}

@Suite("NAT")
struct NATTests {
    typealias B = NATBench

    @Test("endpoint-independent mapping: one inside endpoint keeps one outside endpoint for every destination", arguments: StoreKind.available)
    func endpointIndependentMapping(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let first = try nat.udpOut(from: B.hostA, 5000, to: B.server, 53)
        let second = try nat.udpOut(from: B.hostA, 5000, to: B.server2, 123)
        #expect(first == second)
        #expect(B.external.contains(first.address) && (20000...20999).contains(first.port))
        #expect(nat.mappings == 1)
        // Filtering of a mapped endpoint is endpoint-independent too: a third server may reply.
        let reply = nat.in(PacketBuilder().ipv4(source: IPv4Address(192, 0, 2, 99), destination: first.address)
            .udp(source: 9999, destination: first.port))
        let back = TestFrame(try #require(reply.packets(on: nat.nat.insidePort).first))
        #expect(back.ipv4Address(.destination) == B.hostA && back.port(.destination) == 5000)
    }

    @Test("a translated packet equals the packet built with the new source, checksums included; and back", arguments: StoreKind.available)
    func exactBytes(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let syn = PacketBuilder().ipv4(source: B.hostA, destination: B.server).tcp(source: 40000, destination: 443, flags: .syn)
        let sent = nat.out(syn).packets(on: nat.nat.outsidePort)
        let mapped = TestFrame(try #require(sent.first))
        let external = NATEndpoint(mapped.ipv4Address(.source)!, mapped.port(.source))
        #expect(sent == [PacketBuilder().ipv4(source: external.address, destination: B.server)
            .tcp(source: external.port, destination: 443, flags: .syn)])
        let synAck = PacketBuilder().ipv4(source: B.server, destination: external.address)
            .tcp(source: 443, destination: external.port, acknowledgement: 1001, flags: [.syn, .ack])
        #expect(nat.in(synAck).packets(on: nat.nat.insidePort) == [PacketBuilder().ipv4(source: B.server, destination: B.hostA)
            .tcp(source: 443, destination: 40000, acknowledgement: 1001, flags: [.syn, .ack])])
    }

    @Test("paired pooling: a host keeps one external address; hosts spread over the addresses", arguments: StoreKind.available)
    func pairedPooling(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        var addressOf: [IPv4Address: Set<IPv4Address>] = [:]
        for host in 1...40 {
            for port in [1000, 2000, 3000] as [UInt16] {
                let mapped = try nat.udpOut(from: IPv4Address(10, 0, 1, UInt8(host)), port)
                addressOf[IPv4Address(10, 0, 1, UInt8(host)), default: []].insert(mapped.address)
            }
        }
        #expect(addressOf.values.allSatisfy { $0.count == 1 }, "each host kept one address")
        #expect(Set(addressOf.values.flatMap { $0 }) == Set(B.external), "the hosts use both addresses")
    }

    @Test("no external port is held by two live mappings; exhaustion is dropped and counted", arguments: StoreKind.available)
    func exhaustion(_ kind: StoreKind) throws {
        let nat = try NATBench(kind, ports: "30000-30009", external: [B.external[0]])
        var seen: Set<NATEndpoint> = []
        for port in 1...10 as ClosedRange<UInt16> {
            let mapped = try nat.udpOut(from: B.hostA, port)
            #expect(seen.insert(mapped).inserted, "port \(mapped) handed out twice")
            #expect((30000...30009).contains(mapped.port))
        }
        let refused = nat.out(PacketBuilder().ipv4(source: B.hostA, destination: B.server).udp(source: 11, destination: 53))
        #expect(refused.drops == ["portsExhausted": 1] && refused.ports.isEmpty)
        // TCP has ports of its own.
        let tcp = nat.out(PacketBuilder().ipv4(source: B.hostA, destination: B.server).tcp(source: 11, destination: 80, flags: .syn))
        #expect(tcp.packets(on: nat.nat.outsidePort).count == 1)
        // When a mapping expires its port returns, and a new flow gets it
        // (a mapping lives its timeout, and at most 1/32 more).
        nat.harness.advance(seconds: 311)
        nat.harness.expire()
        let again = try nat.udpOut(from: B.hostB, 7)
        #expect(seen.contains(again), "an expired mapping's port is reused")
    }

    @Test("unsolicited inbound traffic is dropped and counted", arguments: StoreKind.available)
    func unsolicited(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let probe = nat.in(PacketBuilder().ipv4(source: B.server, destination: B.external[0]).tcp(source: 1, destination: 20500, flags: .syn))
        #expect(probe.drops == ["unsolicited": 1] && probe.ports.isEmpty)
        let ping = nat.in(PacketBuilder().ipv4(source: B.server, destination: B.external[0]).icmpEcho(request: true, identifier: 9))
        #expect(ping.drops == ["unsolicited": 1])
        let stray = nat.in(PacketBuilder().ipv4(source: B.server, destination: IPv4Address(192, 0, 2, 200)).udp(source: 1, destination: 2))
        #expect(stray.drops == ["notForNAT": 1])
    }

    @Test("ICMP echo identifiers are translated like ports, and the reply comes back", arguments: StoreKind.available)
    func icmpEcho(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let request = nat.out(PacketBuilder().ipv4(source: B.hostA, destination: B.server).icmpEcho(request: true, identifier: 777, payload: [1, 2, 3]))
        let sent = TestFrame(try #require(request.packets(on: nat.nat.outsidePort).first))
        let id = try #require(sent.icmpIdentifier)
        #expect((20000...20999).contains(id) && sent.verifyChecksums().transport == .good)
        let reply = PacketBuilder().ipv4(source: B.server, destination: sent.ipv4Address(.source)!)
            .icmpEcho(request: false, identifier: id, payload: [1, 2, 3])
        #expect(nat.in(reply).packets(on: nat.nat.insidePort) == [PacketBuilder().ipv4(source: B.server, destination: B.hostA)
            .icmpEcho(request: false, identifier: 777, payload: [1, 2, 3])])
        // 60 s (and at most 1/32 more, at least 1 s) later the mapping is gone.
        nat.harness.advance(seconds: 63)
        #expect(nat.in(reply).drops == ["unsolicited": 1])
    }

    @Test("ICMP errors about a translated flow are translated back: outer, quoted header, both checksums", arguments: StoreKind.available)
    func icmpErrors(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let original = PacketBuilder(rawIP: true).ipv4(source: B.hostA, destination: B.server, ttl: 1)
            .udp(source: 5000, destination: 33434, payload: Array(repeating: 0, count: 12))
        let mapped = try nat.udpOut(from: B.hostA, 5000, to: B.server, 33434)
        let sentOriginal = PacketBuilder(rawIP: true).ipv4(source: mapped.address, destination: B.server, ttl: 1)
            .udp(source: mapped.port, destination: 33434, payload: Array(repeating: 0, count: 12))
        let router = IPv4Address(192, 0, 2, 254)
        let error = PacketBuilder().ipv4(source: router, destination: mapped.address)
            .icmpError(type: 11, code: 0, quoting: sentOriginal, quoteLength: 28)
        let translated = nat.in(error)
        #expect(translated.packets(on: nat.nat.insidePort) == [PacketBuilder().ipv4(source: router, destination: B.hostA)
            .icmpError(type: 11, code: 0, quoting: original, quoteLength: 28)])
        // An error quoting no mapping is dropped.
        let stray = PacketBuilder(rawIP: true).ipv4(source: mapped.address, destination: B.server).udp(source: mapped.port ^ 1, destination: 1)
        #expect(nat.in(PacketBuilder().ipv4(source: router, destination: mapped.address)
            .icmpError(type: 3, code: 3, quoting: stray, quoteLength: 28)).drops == ["icmpErrorWithoutMapping": 1])
        // An inside host's error about an inbound packet goes out translated.
        let inbound = PacketBuilder(rawIP: true).ipv4(source: B.server, destination: B.hostA).udp(source: 33434, destination: 5000)
        let outError = nat.out(PacketBuilder().ipv4(source: B.hostA, destination: B.server).icmpError(type: 3, code: 3, quoting: inbound))
        let expected = PacketBuilder().ipv4(source: mapped.address, destination: B.server).icmpError(
            type: 3, code: 3, quoting: PacketBuilder(rawIP: true).ipv4(source: B.server, destination: mapped.address)
                .udp(source: 33434, destination: mapped.port))
        #expect(outError.packets(on: nat.nat.outsidePort) == [expected])
    }

    @Test("an ICMP error never refreshes or removes a mapping", arguments: StoreKind.available)
    func errorsDoNotRefresh(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let mapped = try nat.udpOut(from: B.hostA, 5000)
        let quote = PacketBuilder(rawIP: true).ipv4(source: mapped.address, destination: B.server).udp(source: mapped.port, destination: 53)
        nat.harness.advance(seconds: 200)
        #expect(nat.in(PacketBuilder().ipv4(source: B.server, destination: mapped.address)
            .icmpError(type: 3, code: 1, quoting: quote)).packets(on: nat.nat.insidePort).count == 1)
        // Nor removes it: a reply still comes through.
        let reply = PacketBuilder().ipv4(source: B.server, destination: mapped.address).udp(source: 53, destination: mapped.port)
        #expect(nat.in(reply).packets(on: nat.nat.insidePort).count == 1)
        #expect(nat.mappings == 1)
        nat.harness.advance(seconds: 111)  // 311 s after the last outbound packet
        let late = nat.in(PacketBuilder().ipv4(source: B.server, destination: mapped.address).udp(source: 53, destination: mapped.port))
        #expect(late.drops == ["unsolicited": 1])
    }

    @Test("UDP mappings live 5 minutes (at most 1/32 more), refreshed by outbound packets only", arguments: StoreKind.available)
    func udpTimeout(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let mapped = try nat.udpOut(from: B.hostA, 5000)
        let reply = PacketBuilder().ipv4(source: B.server, destination: mapped.address).udp(source: 53, destination: mapped.port)
        nat.harness.advance(seconds: 240)
        #expect(nat.in(reply).packets(on: nat.nat.insidePort).count == 1, "alive at 4 min")
        nat.harness.advance(seconds: 71)  // 5 min 11 s (beyond 5 min + 1/32) after the outbound packet; the reply did not refresh
        #expect(nat.in(reply).drops == ["unsolicited": 1])
        let again = try nat.udpOut(from: B.hostA, 5000)
        nat.harness.advance(seconds: 240)
        _ = try nat.udpOut(from: B.hostA, 5000)  // refresh at 4 min
        nat.harness.advance(seconds: 240)        // 8 min after the first
        let reply2 = PacketBuilder().ipv4(source: B.server, destination: again.address).udp(source: 53, destination: again.port)
        #expect(nat.in(reply2).packets(on: nat.nat.insidePort).count == 1, "an outbound packet refreshed it")
    }

    @Test("TCP: established 2 h 4 min; transitory 4 min after RST, or FIN both ways, or before an answer", arguments: StoreKind.available)
    func tcpTimeouts(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let b = PacketBuilder().ipv4(source: B.hostA, destination: B.server)
        func open(_ port: UInt16) throws -> NATEndpoint {
            let sent = nat.out(b.tcp(source: port, destination: 80, flags: .syn)).packets(on: nat.nat.outsidePort)
            let p = TestFrame(try #require(sent.first))
            let mapped = NATEndpoint(p.ipv4Address(.source)!, p.port(.source))
            #expect(nat.in(PacketBuilder().ipv4(source: B.server, destination: mapped.address)
                .tcp(source: 80, destination: mapped.port, flags: [.syn, .ack])).packets(on: nat.nat.insidePort).count == 1)
            return mapped
        }
        func inbound(_ mapped: NATEndpoint, _ flags: PacketBuilder.TCPFlags = .ack) -> GraphHarness.Output {
            nat.in(PacketBuilder().ipv4(source: B.server, destination: mapped.address).tcp(source: 80, destination: mapped.port, flags: flags))
        }
        let established = try open(1000)
        let reset = try open(1001)
        let closed = try open(1002)
        let halfOpen = TestFrame(nat.out(b.tcp(source: 1003, destination: 80, flags: .syn)).packets(on: nat.nat.outsidePort)[0])
        let halfOpenMapped = NATEndpoint(halfOpen.ipv4Address(.source)!, halfOpen.port(.source))
        _ = nat.out(b.tcp(source: 1001, destination: 80, flags: .rst))
        _ = nat.out(b.tcp(source: 1002, destination: 80, flags: [.fin, .ack]))
        _ = inbound(closed, [.fin, .ack])
        nat.harness.advance(seconds: 249)  // 4 min + 1/32 + 1 s
        #expect(inbound(reset).drops == ["unsolicited": 1], "4 min after RST")
        #expect(inbound(closed).drops == ["unsolicited": 1], "4 min after FIN both ways")
        #expect(inbound(halfOpenMapped).drops == ["unsolicited": 1], "4 min without an answer")
        #expect(inbound(established).packets(on: nat.nat.insidePort).count == 1, "established lives on")
        nat.harness.advance(seconds: 7440 - 1)
        #expect(inbound(established).packets(on: nat.nat.insidePort).count == 1, "inbound packets refresh TCP")
        nat.harness.advance(seconds: 7440 + 7440 / 32 + 2)
        #expect(inbound(established).drops == ["unsolicited": 1], "2 h 4 min (+ 1/32) idle")
    }

    @Test("hairpinning: an inside host reaches another through its external mapping", arguments: StoreKind.available)
    func hairpin(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let server = try nat.udpOut(from: B.hostA, 7000)  // A's mapping
        let sent = nat.out(PacketBuilder().ipv4(source: B.hostB, destination: server.address).udp(source: 8000, destination: server.port))
        let looped = TestFrame(try #require(sent.packets(on: nat.nat.insidePort).first, "\(sent.drops)"))
        #expect(looped.ipv4Address(.destination) == B.hostA && looped.port(.destination) == 7000)
        #expect(B.external.contains(looped.ipv4Address(.source)!), "B appears by its external address")
        #expect(looped.verifyChecksums().transport == .good && looped.verifyChecksums().ipv4Header == .good)
    }

    @Test("fragments follow their first; a fragment before its first is dropped and counted", arguments: StoreKind.available)
    func fragments(_ kind: StoreKind) throws {
        let nat = try NATBench(kind)
        let b = PacketBuilder().ipv4(source: B.hostA, destination: B.server, identification: 4242, moreFragments: true)
        let first = nat.out(b.udp(source: 6000, destination: 53, payload: Array(repeating: 1, count: 32)))
        let mapped = TestFrame(try #require(first.packets(on: nat.nat.outsidePort).first))
        let external = mapped.ipv4Address(.source)!
        let rest = PacketBuilder().ipv4(source: B.hostA, destination: B.server, identification: 4242, fragmentOffset: 40)
            .other(protocol: IPProtocol.udp, payload: Array(repeating: 2, count: 16))
        let followed = nat.out(rest).packets(on: nat.nat.outsidePort)
        #expect(followed == [PacketBuilder().ipv4(source: external, destination: B.server, identification: 4242, fragmentOffset: 40)
            .other(protocol: IPProtocol.udp, payload: Array(repeating: 2, count: 16))])
        let orphan = PacketBuilder().ipv4(source: B.hostA, destination: B.server, identification: 999, fragmentOffset: 40)
            .other(protocol: IPProtocol.udp, payload: [1])
        #expect(nat.out(orphan).drops == ["fragmentWithoutFirst": 1])
        nat.harness.advance(seconds: 3)
        #expect(nat.out(rest).drops == ["fragmentWithoutFirst": 1], "the fragment entry is short-lived")
    }

    @Test("with two ports, the arrival port decides the direction", arguments: StoreKind.available)
    func twoPorts(_ kind: StoreKind) throws {
        let nat = try NATBench(kind, twoPorts: true) { $0.internal = ["100.64.0.0/10"] }
        let sent = nat.harness.send(PacketBuilder().ipv4(source: IPv4Address(172, 16, 9, 9), destination: B.server)
            .udp(source: 1, destination: 2), port: 1)
        #expect(sent.packets(on: 2).count == 1, "from the inside port, whatever the prefix")
        let stray = nat.harness.send(PacketBuilder().ipv4(source: B.server, destination: B.external[0]).udp(source: 2, destination: 1), port: 3)
        #expect(stray.drops == ["notForNAT": 1])
    }

    @Test("bad configurations name the field and the problem")
    func configErrors() {
        func problem(_ change: (inout NATConfig) -> Void) -> String {
            var config = NATConfig()
            config.external = ["203.0.113.1"]
            change(&config)
            do {
                _ = try config.resolved()
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem { $0.external = [] }.hasPrefix("external: give at least one"))
        #expect(problem { $0.external = ["10.1.1.1"] } == "external: 10.1.1.1 lies inside an internal prefix")
        #expect(problem { $0.ports = "9-3" }.hasPrefix("ports: \"9-3\" is not a range"))
        #expect(problem { $0.internal = ["10.0.0.0/33"] }.hasPrefix("internal: \"10.0.0.0/33\""))
        #expect(problem { $0.timeouts.udp = 0 }.hasPrefix("timeouts.udp:"))
        #expect(problem { $0.insidePort = 0 }.hasPrefix("insidePort:"))
        #expect(problem { _ in } == "accepted")
    }
}
