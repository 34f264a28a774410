import StatelessKit
import StatelessKitStore
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

@Suite("Stateful graphs on the embedded store")
struct StatefulRuntimeTests {
    @Test("batches park on the store, several in flight, and every packet comes out once")
    func firstSeen() throws {
        let store = EmbeddedStore()
        let schema = StateSchema(namespace: "first-seen")
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
        #expect(store.statistics(namespace: "first-seen")?.tables["flows"]?.entries == 10)
    }
}
