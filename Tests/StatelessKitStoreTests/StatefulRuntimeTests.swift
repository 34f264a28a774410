import StatelessKit
import Foundation
import StatelessKitStore
import StoreTestSupport
import Testing

/// Remembers each flow's first packet: a read, and on a miss an
/// insert-if-absent whose winner decides (two steps for a new flow, one for
/// a known one).
struct FirstSeen: StatefulNode {
    enum Output: UInt8, NodeOutput { case new, known, full }
    struct Scratch {
        var key = FlowKey(source: .zero, destination: .zero, sourcePort: 0, destinationPort: 0, ipProtocol: 0)
        var read: Ticket<Entry<UInt64>?>? = nil
        var insert: Ticket<Insertion<UInt64>>? = nil
    }
    static var emptyScratch: Scratch { Scratch() }
    let table: StateTable<FlowKey, UInt64>

    func start(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        scratch.key = packet.flowKey!.canonical
        scratch.read = state.read(table, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        if let insert = scratch.insert {
            switch state[insert] {
            case .inserted: return .done(.new)
            case .present: return .done(.known)
            case .full, .collision: return .done(.full)
            }
        }
        if state[scratch.read!] != nil { return .done(.known) }
        scratch.insert = state.insertIfAbsent(table, scratch.key, UInt64(packet.timestamp.nanoseconds),
                                              deadline: Timestamp(nanoseconds: state.now.nanoseconds + 1_000_000_000))
        return .wait
    }
}

@Suite("Stateful graphs on the embedded store and on Redis")
struct StatefulRuntimeTests {
    @Test("batches park on the store, several in flight, and every packet comes out once", arguments: StoreKind.available)
    func firstSeen(_ kind: StoreKind) throws {
        let store = try kind.make()
        let namespace = "first-seen-\(UUID())"
        let schema = StateSchema(namespace: namespace)
        let table = schema.table("flows", key: FlowKey.self, value: UInt64.self, capacity: 1000)
        let graph = try Graph("first-seen") { g in
            let parse = g.add(ParseNode())
            let seen = g.add(FirstSeen(table: table))
            g.entry(parse)
            g.route(parse) { $0 == .ip ? seen as any Destination : g.drop("not ip") }
            g.route(seen) { switch $0 { case .new: g.port(1); case .known: g.port(2); case .full: g.drop("full") } }
        }
        let pool = BufferPool(count: 256)
        let runner = GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                                 batchCapacity: 8, inFlight: 3)
        // 10 flows, each in both directions, 3 packets per direction, spread over batches.
        var frames: [[UInt8]] = []
        for round in 0..<3 {
            for flow in 0..<10 {
                let a = IPv4Address(10, 0, 0, UInt8(flow)), b = IPv4Address(192, 0, 2, 1)
                frames.append(PacketBuilder().ipv4(source: a, destination: b).udp(source: 1000, destination: 53))
                if round > 0 {
                    frames.append(PacketBuilder().ipv4(source: b, destination: a).udp(source: 53, destination: 1000))
                }
            }
        }
        var out: [UInt16: Int] = [:]
        var next = 0
        let batch = PacketBatch(capacity: 8)
        while next < frames.count || runner.inFlight > 0 {
            // Admit as many batches as there are slots before collecting answers.
            while runner.canAdmit && next < frames.count {
                while !batch.isFull && next < frames.count {
                    var packet = pool.allocate()!
                    _ = frames[next].withUnsafeBytes { packet.setBytes($0) }
                    batch.append(packet)
                    next += 1
                }
                runner.admit(batch, now: Timestamp(nanoseconds: 1_000))
            }
            #expect(runner.waitingForStore <= 3)
            runner.advance(wait: true)
            runner.drain { port, packets in
                out[port, default: 0] += packets.count
                pool.release(packets)
            }
        }
        #expect(out[1] == 10, "each flow is new once")
        #expect(out[2] == frames.count - 10)
        #expect(pool.available == 256)
        #expect(try store.statistics(namespace: namespace)?.tables["flows"]?.entries == 10)
    }
}

/// Counts packets per source host through a table that declares its key and
/// idle timeout.
struct HostCounter: StatefulNode {
    enum Output: UInt8, NodeOutput { case counted, skipped }
    struct Scratch { var read: Ticket<Entry<UInt64>?>? = nil }
    static var emptyScratch: Scratch { Scratch() }
    let hosts: StateTable<IPAddress, UInt64>

    func start(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        guard let read = state.read(hosts, of: packet) else { return .done(.skipped) }
        scratch.read = read
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        let key = hosts.keyOf!(packet)!
        if let entry = state[scratch.read!] {
            state.refresh(hosts, key, entry, updated: entry.value + 1)
        } else {
            state.insertIfAbsent(hosts, key, 1)
        }
        return .done(.counted)
    }
}

@Suite("Declared keys and idle timeouts")
struct DeclaredTableTests {
    @Test("a table's keyOf and idleTimeout drive reads, inserts and refreshes", arguments: StoreKind.available)
    func hostCounter(_ kind: StoreKind) throws {
        let namespace = "hosts-\(UUID())"
        let schema = StateSchema(namespace: namespace)
        let hosts = schema.table("hosts", key: IPAddress.self, value: UInt64.self, capacity: 100,
                                 idleTimeout: { _, count in count >= 3 ? 100_000_000_000 : 10_000_000_000 },
                                 keyOf: { $0.layout.network == .ipv4 ? $0.address(.source) : nil })
        let graph = try Graph("hosts") { g in
            let parse = g.add(ParseNode())
            let counter = g.add(HostCounter(hosts: hosts))
            g.entry(parse)
            g.route(parse) { $0 == .ip ? counter as any Destination : g.drop("not ip") }
            g.route(counter) { $0 == .counted ? g.port(1) : g.drop("skipped") }
        }
        let store = try kind.make()
        let harness = GraphHarness(graph: graph, session: try store.makeSession(for: schema))
        let v4 = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)).udp(source: 1, destination: 2)
        let v6 = PacketBuilder().ipv6(source: IPv6Address("fd00::1")!, destination: IPv6Address("fd00::2")!).udp(source: 1, destination: 2)
        #expect(harness.send([v4, v4, v6], port: 0).packets(on: 1).count == 2, "the IPv6 packet has no key")
        #expect(harness.send(v4, port: 0).packets(on: 1).count == 1)
        // Two packets in one batch both missed and both inserted 1; the third updated it to 2.
        // Count 2 lives 10 s (+ 1 s of slack); after 12 s the host starts again from 1.
        harness.advance(seconds: 12)
        _ = harness.send(v4, port: 0)
        let read = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 3)).udp(source: 1, destination: 2)
        for _ in 0..<3 { _ = harness.send(read, port: 0) }
        // Now at 4: the long timeout applies; after 50 s it is still there.
        harness.advance(seconds: 50)
        harness.expire()
        #expect(try store.statistics(namespace: namespace)?.tables["hosts"]?.entries == 1)
        harness.advance(seconds: 60)
        harness.expire()
        #expect(try store.statistics(namespace: namespace)?.tables["hosts"]?.entries == 0)
    }
}
