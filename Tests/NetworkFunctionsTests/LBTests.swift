import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// The load balancer under a manual clock, on the embedded store or Redis.
/// One port (0) unless `twoPorts`.
final class LBBench {
    let lb: LoadBalancer
    let store: any InspectableStore
    let namespace = "lb-test-\(UUID())"
    let harness: GraphHarness
    let session: any StateSession

    static let vip = NATEndpoint(IPv4Address(10, 0, 0, 10), 80)
    static let udpVIP = NATEndpoint(IPv4Address(10, 0, 0, 10), 53)
    static let backends = (1...3).map { NATEndpoint(IPv4Address(192, 168, 1, UInt8($0)), 8080) }
    static let source = IPv4Address(10, 0, 0, 2)

    init(_ kind: StoreKind, weights: [Int] = [1, 2, 1], fullNAT: Bool = false) throws {
        var config = LBConfig()
        let list = zip(Self.backends, weights).map { "\($0.0)@\($0.1)" }
        config.vips = [LBVIPConfig(vip: "\(Self.vip)/tcp", backends: list),
                       LBVIPConfig(vip: "\(Self.udpVIP)/udp", backends: list)]
        if fullNAT {
            config.mode = "fullnat"
            config.sourceAddresses = [Self.source.description]
            config.ports = "20000-29999"
        }
        config.namespace = namespace
        lb = LoadBalancer(try config.resolved())
        store = try kind.make()
        session = try store.makeSession(for: lb.state.schema)
        harness = GraphHarness(graph: try lb.graph(), session: try store.makeSession(for: lb.state.schema))
    }

    static func client(_ i: Int) -> NATEndpoint {
        NATEndpoint(IPv4Address(198, 51, UInt8(100 + i / 60_000), UInt8(i / 250 % 240 + 1)), UInt16(1024 + i % 60_000))
    }

    /// A packet from client `i` to a VIP.
    static func toVIP(_ i: Int, udp: Bool = false, flags: PacketBuilder.TCPFlags = .ack) -> [UInt8] {
        let client = client(i)
        let builder = PacketBuilder().ipv4(source: client.address, destination: vip.address)
        return udp ? builder.udp(source: client.port, destination: udpVIP.port, payload: [1, 2, 3])
                   : builder.tcp(source: client.port, destination: vip.port, flags: flags)
    }

    /// Sends frames in batches; returns the packets out, in order.
    func send(_ frames: [[UInt8]]) -> (packets: [[UInt8]], drops: [String: Int]) {
        var packets: [[UInt8]] = []
        var drops: [String: Int] = [:]
        for start in stride(from: 0, to: frames.count, by: 32) {
            let out = harness.send(Array(frames[start..<min(start + 32, frames.count)]), port: 0)
            packets += out.packets(on: 0)
            drops.merge(out.drops, uniquingKeysWith: +)
        }
        return (packets, drops)
    }

    /// The backend (destination) each packet went to.
    static func destinations(_ packets: [[UInt8]]) -> [NATEndpoint] {
        packets.map { frame in
            let packet = TestFrame(frame)
            return NATEndpoint(packet.ipv4Address(.destination)!, packet.port(.destination))
        }
    }
}

@Suite("Load balancer")
struct LBTests {
    typealias B = LBBench

    @Test("100,000 new flows: each backend's share within 2% of its weight, counted per backend",
          arguments: StoreKind.available)
    func weightedShares(_ kind: StoreKind) throws {
        let lb = try LBBench(kind)
        let flows = 100_000
        let (packets, drops) = lb.send((0..<flows).map { B.toVIP($0, flags: .syn) })
        #expect(drops.isEmpty && packets.count == flows, "\(drops)")
        var counts: [NATEndpoint: Int] = [:]
        for backend in B.destinations(packets) { counts[backend, default: 0] += 1 }
        for (backend, weight) in zip(B.backends, [1, 2, 1]) {
            let share = Double(counts[backend] ?? 0) / Double(flows)
            let expected = Double(weight) / 4
            #expect(abs(share - expected) / expected < 0.02, "\(backend): \(share) against \(expected)")
        }
        let counted = lb.lb.connectionCounts(lb.session, backends: B.backends)
        #expect(counted == counts, "the per-backend counters match what was sent")
    }

    @Test("every packet of a flow reaches the same backend, and replies come back from the VIP",
          arguments: StoreKind.available)
    func stickyAndReturn(_ kind: StoreKind) throws {
        let lb = try LBBench(kind)
        let first = B.destinations(lb.send((0..<2_000).map { B.toVIP($0, flags: .syn) }).packets)
        let again = B.destinations(lb.send((0..<2_000).map { B.toVIP($0) }).packets)
        #expect(first == again)
        // Two packets of one new flow in one batch: the second follows the first's assignment.
        let pair = lb.send([B.toVIP(50_000, flags: .syn), B.toVIP(50_000, flags: .syn)])
        #expect(pair.drops.isEmpty && Set(B.destinations(pair.packets)).count == 1 && pair.packets.count == 2)
        // The backend answers the client; the reply leaves from the VIP.
        let backend = first[7], client = B.client(7)
        let reply = lb.send([PacketBuilder().ipv4(source: backend.address, destination: client.address)
            .tcp(source: backend.port, destination: client.port, flags: [.syn, .ack])])
        let back = TestFrame(try #require(reply.packets.first, "\(reply.drops)"))
        #expect(back.ipv4Address(.source) == B.vip.address && back.port(.source) == B.vip.port)
        #expect(back.ipv4Address(.destination) == client.address && back.port(.destination) == client.port)
        #expect(back.verifyChecksums().transport == .good && back.verifyChecksums().ipv4Header == .good)
        // A packet from a backend for no flow is dropped and counted.
        let stray = lb.send([PacketBuilder().ipv4(source: backend.address, destination: IPv4Address(1, 2, 3, 4))
            .tcp(source: backend.port, destination: 9, flags: .ack)])
        #expect(stray.packets.isEmpty && stray.drops["noFlow"] == 1)
    }

    @Test("draining, adding and removing backends moves no existing flow; new flows follow the change",
          arguments: StoreKind.available)
    func backendChanges(_ kind: StoreKind) throws {
        let lb = try LBBench(kind, weights: [1, 1, 1])
        let old = B.destinations(lb.send((0..<3_000).map { B.toVIP($0, flags: .syn) }).packets)
        let (a, b, c) = (B.backends[0], B.backends[1], B.backends[2])
        let d = NATEndpoint(IPv4Address(192, 168, 1, 4), 8080)
        // Drain b, add d, remove c.
        try lb.lb.backends.update(vip: B.vip, ipProtocol: IPProtocol.tcp,
                                  backends: [LBBackend(endpoint: a, weight: 1), LBBackend(endpoint: b, weight: 0),
                                             LBBackend(endpoint: d, weight: 1)])
        let existing = B.destinations(lb.send((0..<3_000).map { B.toVIP($0) }).packets)
        #expect(existing == old, "existing flows keep their backend, drained and removed ones included")
        #expect(old.contains(b) && old.contains(c))
        let fresh = B.destinations(lb.send((3_000..<6_000).map { B.toVIP($0, flags: .syn) }).packets)
        #expect(!fresh.contains(b) && !fresh.contains(c), "no new flow to a drained or removed backend")
        #expect(fresh.filter { $0 == d }.count > 1_200, "the added backend takes about half of the new flows")
        #expect(throws: ConfigError.self) {
            try lb.lb.backends.update(vip: NATEndpoint(IPv4Address(9, 9, 9, 9), 1), ipProtocol: IPProtocol.tcp, backends: [])
        }
    }

    @Test("full-NAT: backends see the balancer's address, replies find the client again; UDP too",
          arguments: StoreKind.available)
    func fullNAT(_ kind: StoreKind) throws {
        let lb = try LBBench(kind, fullNAT: true)
        for udp in [false, true] {
            let out = lb.send([B.toVIP(1, udp: udp, flags: .syn)])
            let sent = TestFrame(try #require(out.packets.first, "\(out.drops)"))
            #expect(sent.ipv4Address(.source) == B.source && (20000...29999).contains(sent.port(.source)))
            #expect(B.backends.contains(NATEndpoint(sent.ipv4Address(.destination)!, sent.port(.destination))))
            #expect(sent.verifyChecksums().transport == .good && sent.verifyChecksums().ipv4Header == .good)
            let builder = PacketBuilder().ipv4(source: sent.ipv4Address(.destination)!, destination: B.source)
            let reply = lb.send([udp ? builder.udp(source: sent.port(.destination), destination: sent.port(.source), payload: [9])
                                     : builder.tcp(source: sent.port(.destination), destination: sent.port(.source), flags: [.syn, .ack])])
            let back = TestFrame(try #require(reply.packets.first, "\(reply.drops)"))
            #expect(back.ipv4Address(.destination) == B.client(1).address && back.port(.destination) == B.client(1).port)
            #expect(back.ipv4Address(.source) == B.vip.address)
        }
        let free = try lb.store.statistics(namespace: lb.namespace)!.freeItems.values.reduce(0, +)
        #expect(free == 20_000 - 2, "one source port per flow")
    }

    @Test("timeouts: UDP 5 min; TCP transitory until answered and after FIN both ways, established 2 h 4 min",
          arguments: StoreKind.available)
    func timeouts(_ kind: StoreKind) throws {
        let lb = try LBBench(kind)
        let flows = { (lb: LBBench) in
            try lb.store.statistics(namespace: lb.namespace)!.tables["flows"]!.entries
        }
        _ = lb.send([B.toVIP(1, udp: true), B.toVIP(2, flags: .syn), B.toVIP(3, flags: .syn)])
        #expect(try flows(lb) == 3)
        // Flow 3 is answered: established.
        let backend3 = B.destinations(lb.send([B.toVIP(3)]).packets)[0]
        _ = lb.send([PacketBuilder().ipv4(source: backend3.address, destination: B.client(3).address)
            .tcp(source: backend3.port, destination: B.client(3).port, flags: [.syn, .ack])])
        lb.harness.advance(seconds: 250)
        _ = lb.harness.expire()
        #expect(try flows(lb) == 2, "the unanswered SYN went after 4 min")
        lb.harness.advance(seconds: 60)
        _ = lb.harness.expire()
        #expect(try flows(lb) == 1, "UDP went after 5 min")
        // FIN both ways: transitory again.
        _ = lb.send([B.toVIP(3, flags: [.fin, .ack])])
        _ = lb.send([PacketBuilder().ipv4(source: backend3.address, destination: B.client(3).address)
            .tcp(source: backend3.port, destination: B.client(3).port, flags: [.fin, .ack])])
        lb.harness.advance(seconds: 250)
        _ = lb.harness.expire()
        #expect(try flows(lb) == 0, "closed connections go after 4 min")
    }

    @Test("ICMP errors about a balanced flow are translated both ways, byte for byte", arguments: StoreKind.available)
    func icmpErrors(_ kind: StoreKind) throws {
        for fullNAT in [false, true] {
            let lb = try LBBench(kind, fullNAT: fullNAT)
            let client = B.client(5)
            let sent = TestFrame(try #require(lb.send([B.toVIP(5, udp: true)]).packets.first))
            let backend = NATEndpoint(sent.ipv4Address(.destination)!, sent.port(.destination))
            let seenAs = NATEndpoint(sent.ipv4Address(.source)!, sent.port(.source))  // the client, or the balancer's endpoint
            // A router near the client reports a reply the balancer sent it.
            let router = IPv4Address(203, 0, 113, 254)
            let reply = { (from: NATEndpoint, to: NATEndpoint) in
                PacketBuilder(rawIP: true).ipv4(source: from.address, destination: to.address).udp(source: from.port, destination: to.port, payload: [7])
            }
            let toVIP = lb.send([PacketBuilder().ipv4(source: router, destination: B.udpVIP.address)
                .icmpError(type: 3, code: 4, quoting: reply(B.udpVIP, client))])
            let expectedForward = PacketBuilder().ipv4(source: fullNAT ? B.source : router, destination: backend.address)
                .icmpError(type: 3, code: 4, quoting: reply(backend, seenAs))
            #expect(toVIP.packets == [expectedForward], "full-NAT \(fullNAT): \(toVIP.drops)")
            // A backend reports a packet the balancer sent it.
            let fromBackend = lb.send([PacketBuilder().ipv4(source: backend.address, destination: seenAs.address)
                .icmpError(type: 3, code: 3, quoting: reply(seenAs, backend))])
            let expectedBack = PacketBuilder().ipv4(source: B.udpVIP.address, destination: client.address)
                .icmpError(type: 3, code: 3, quoting: reply(client, B.udpVIP))
            #expect(fromBackend.packets == [expectedBack], "full-NAT \(fullNAT): \(fromBackend.drops)")
            // An error about no flow is dropped and counted.
            let stray = lb.send([PacketBuilder().ipv4(source: backend.address, destination: seenAs.address)
                .icmpError(type: 3, code: 3, quoting: reply(NATEndpoint(seenAs.address, 1), backend))])
            #expect(stray.packets.isEmpty && stray.drops == ["noFlow": 1])
        }
    }

    @Test("bad configurations name the field and the problem")
    func badConfig() {
        func problem(_ change: (inout LBConfig) -> Void) -> String {
            var config = LBConfig()
            config.vips = [LBVIPConfig(vip: "10.0.0.10:80/tcp", backends: ["192.168.1.1:8080"])]
            change(&config)
            do {
                _ = try config.resolved()
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem { _ in } == "accepted")
        #expect(problem { $0.vips = [] }.hasPrefix("vips: give at least one VIP"))
        #expect(problem { $0.vips[0].vip = "10.0.0.10:80/sctp" }.contains("the protocol must be tcp or udp"))
        #expect(problem { $0.vips[0].backends = ["192.168.1.1:8080@x"] }.contains("vips[0].backends: \"192.168.1.1:8080@x\": the weight"))
        #expect(problem { $0.mode = "fullnat" }.hasPrefix("sourceAddresses: full-NAT needs"))
        #expect(problem { $0.tableSize = 65536 }.hasPrefix("tableSize: 65536 is not a prime"))
    }
}
