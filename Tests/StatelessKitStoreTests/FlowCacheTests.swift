import Foundation
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// Gives each flow's source a new address from a table (a flow's first
/// packet inserts it), and lets the flow cache keep an established flow's
/// translation for `lease` nanoseconds. With `touchesTTL`, it also lowers
/// the TTL, which a cached rewrite cannot express.
struct Readdress: StatefulNode {
    enum Output: UInt8, NodeOutput { case out }
    struct Scratch {
        var key = FlowKey(source: .zero, destination: .zero, sourcePort: 0, destinationPort: 0, ipProtocol: 0)
        var read: Ticket<Entry<UInt64>?>? = nil
        var inserted = false
    }
    static var emptyScratch: Scratch { Scratch() }
    let table: StateTable<FlowKey, UInt64>
    let lease: Int64
    var touchesTTL = false

    func start(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        scratch.key = packet.flowKey!
        scratch.read = state.read(table, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        let address = IPv4Address(198, 51, 100, UInt8(truncatingIfNeeded: scratch.key.sourcePort))
        if let entry = state[scratch.read!] {
            if lease > 0 { context.cacheFlow(until: Timestamp(nanoseconds: state.now.nanoseconds + lease)) }
            packet.setIPv4Address(IPv4Address(UInt32(entry.value)), at: .source)
        } else {
            state.insertIfAbsent(table, scratch.key, UInt64(address.value),
                                 deadline: Timestamp(nanoseconds: state.now.nanoseconds + 60_000_000_000))
            packet.setIPv4Address(address, at: .source)
        }
        if touchesTTL {
            let l3 = Int(packet.layout.l3Offset)
            let word = UInt16(bigEndian: packet.data.loadUnaligned(fromByteOffset: l3 + 8, as: UInt16.self))
            let lowered = word - 0x100
            packet.data.storeBytes(of: lowered.bigEndian, toByteOffset: l3 + 8, as: UInt16.self)
            let checksum = UInt16(bigEndian: packet.data.loadUnaligned(fromByteOffset: l3 + 10, as: UInt16.self))
            packet.data.storeBytes(of: InternetChecksum.updated(checksum, old: word, new: lowered).bigEndian,
                                   toByteOffset: l3 + 10, as: UInt16.self)
        }
        return .done(.out)
    }
}

@Suite("The flow cache")
struct FlowCacheTests {
    /// A runner over parse → (count) → readdress → port 1.
    static func runner(cache: Int, lease: Int64 = 10_000_000_000, counting: Bool = false, touchesTTL: Bool = false)
        throws -> (GraphRunner, BufferPool) {
        let schema = StateSchema(namespace: "flow-cache-\(UUID())")
        let table = schema.table("addresses", key: FlowKey.self, value: UInt64.self, capacity: 1000)
        let graph = try Graph("readdress") { g in
            let parse = g.add(ParseNode())
            let readdress = g.add(Readdress(table: table, lease: lease, touchesTTL: touchesTTL))
            g.entry(parse)
            if counting {
                let count = g.add(CountNode("seen"))
                g.route(parse) { $0 == .ip ? count as any Destination : g.drop("not ip") }
                g.route(count) { _ in readdress }
            } else {
                g.route(parse) { $0 == .ip ? readdress as any Destination : g.drop("not ip") }
            }
            g.route(readdress) { _ in g.port(1) }
        }
        let pool = BufferPool(count: 256)
        let runner = GraphRunner(graph: graph, pool: pool, session: try EmbeddedStore().makeSession(for: schema),
                                 batchCapacity: 8, inFlight: 3, flowCacheEntries: cache)
        return (runner, pool)
    }

    /// Runs `frames` through `runner`, batch by batch, each batch at its time
    /// (`times[i]` for frame i); returns what came out, in order.
    static func run(_ runner: GraphRunner, _ pool: BufferPool, _ frames: [[UInt8]], times: [Int64]) -> [[UInt8]] {
        var out: [[UInt8]] = []
        let batch = PacketBatch(capacity: 8)
        var next = 0
        while next < frames.count || runner.inFlight > 0 {
            if runner.canAdmit && next < frames.count {
                let now = Self.fill(batch, pool, frames, times: times, next: &next)
                runner.admit(batch, now: Timestamp(nanoseconds: now))
            }
            runner.advance(wait: true)
            runner.drain { _, packets in
                for i in 0..<packets.count { out.append(Array(packets[i].bytes)) }
                pool.release(packets)
            }
        }
        return out
    }

    /// Appends `frames` from `next` on, in `pool`'s buffers, while they
    /// share the time of the first and `batch` has room; returns that time.
    static func fill(_ batch: PacketBatch, _ pool: BufferPool, _ frames: [[UInt8]], times: [Int64],
                     next: inout Int) -> Int64 {
        let now = times[next]
        while !batch.isFull && next < frames.count && times[next] == now {
            batch.append(Self.packet(frames[next], pool))
            next += 1
        }
        return now
    }

    /// `frame` in a buffer of `pool`.
    static func packet(_ frame: [UInt8], _ pool: BufferPool) -> Packet {
        var packet = pool.allocate()!
        _ = frame.withUnsafeBytes { packet.setBytes($0) }
        return packet
    }

    /// A batch of `frames`, in buffers of `pool`.
    static func batch(_ frames: [[UInt8]], _ pool: BufferPool) -> PacketBatch {
        let batch = PacketBatch(capacity: 8)
        for frame in frames { batch.append(Self.packet(frame, pool)) }
        return batch
    }

    /// Flows of UDP and TCP ACK packets whose IP identification, length and
    /// payload change from packet to packet (so does every checksum).
    static func frames(flows: Int, rounds: Int) -> [[UInt8]] {
        var frames: [[UInt8]] = []
        for round in 0..<rounds {
            for flow in 0..<flows {
                let builder = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, UInt8(flow + 1)), destination: IPv4Address(192, 0, 2, 1),
                                                   identification: UInt16(round * 31 + flow))
                let payload = [UInt8](repeating: UInt8(truncatingIfNeeded: round * 7 + flow), count: round % 5 + flow)
                frames.append(flow % 2 == 0
                    ? builder.udp(source: UInt16(1000 + flow), destination: 53, payload: payload)
                    : builder.tcp(source: UInt16(1000 + flow), destination: 80, sequence: UInt32(round * 100),
                                  flags: [.ack, .psh], payload: payload))
            }
        }
        return frames
    }

    /// Each frame's time: 1 ms per batch of 8.
    static func times(_ frames: [[UInt8]]) -> [Int64] {
        frames.indices.map { Int64($0 / 8) * 1_000_000 }
    }

    /// Runs `frames` at `times` through a runner with a cache of `cache`
    /// entries and through one without, otherwise alike; expects the same
    /// bytes out of both and returns the runners and their pools.
    static func cachedAndPlain(_ frames: [[UInt8]], times: [Int64], cache: Int = 64, lease: Int64 = 10_000_000_000,
                               touchesTTL: Bool = false)
        throws -> (cached: GraphRunner, plain: GraphRunner, cachedPool: BufferPool, plainPool: BufferPool) {
        let (cached, cachedPool) = try runner(cache: cache, lease: lease, touchesTTL: touchesTTL)
        let (plain, plainPool) = try runner(cache: 0, touchesTTL: touchesTTL)
        let withCache = run(cached, cachedPool, frames, times: times)
        #expect(withCache.count == frames.count)
        #expect(withCache == run(plain, plainPool, frames, times: times))
        return (cached, plain, cachedPool, plainPool)
    }

    @Test("an established flow's packets skip the graph, with the bytes the graph gives them")
    func sameBytes() throws {
        let frames = Self.frames(flows: 6, rounds: 20)
        let (cached, plain, cachedPool, plainPool) = try Self.cachedAndPlain(frames, times: Self.times(frames))
        // Each flow: an insert, a read that installs it, then hits.
        #expect(cached.counters["flowCache.installed"] >= 6)
        #expect(cached.counters["flowCache.hits"] >= 6 * 15)
        #expect(cached.counters["flowCache.rejected"] == 0)
        #expect(cached.stateOperations < plain.stateOperations / 4)
        #expect(plain.counters["flowCache.hits"] == 0 && plain.flowCacheEntries == 0)
        #expect(cachedPool.available == 256 && plainPool.available == 256)
    }

    @Test("a node that does not vouch for the flow keeps every packet in the graph")
    func countingNode() throws {
        let frames = Self.frames(flows: 4, rounds: 10)
        let (runner, pool) = try Self.runner(cache: 64, counting: true)
        let out = Self.run(runner, pool, frames, times: Self.times(frames))
        #expect(out.count == frames.count)
        #expect(runner.counters["seen"] == frames.count)
        #expect(runner.counters["flowCache.hits"] == 0 && runner.counters["flowCache.installed"] == 0)
    }

    @Test("when the lease ends, the flow crosses the graph and reads the store again")
    func leaseEnds() throws {
        // One flow: t=0 inserts, t=1 ms reads (lease to 1.001 s), t=2..5 ms hit,
        // t=2 s reads again and installs again, t=2.5 s hits.
        let frames = Self.frames(flows: 1, rounds: 8)
        let times: [Int64] = [0, 1, 2, 3, 4, 5, 2_000, 2_500].map { $0 * 1_000_000 }
        let runner = try Self.cachedAndPlain(frames, times: times, lease: 1_000_000_000).cached
        #expect(runner.counters["flowCache.hits"] == 5)
        #expect(runner.counters["flowCache.installed"] == 2)
        #expect(runner.stateOperations == 4, "a read and an insert, then two reads")
    }

    @Test("a rewrite beyond addresses and ports is checked and never cached")
    func rejected() throws {
        let frames = Self.frames(flows: 3, rounds: 6)
        let runner = try Self.cachedAndPlain(frames, times: Self.times(frames), touchesTTL: true).cached
        #expect(runner.counters["flowCache.hits"] == 0 && runner.counters["flowCache.installed"] == 0)
        #expect(runner.counters["flowCache.rejected"] > 0)
    }

    /// One TCP flow: t=0 inserts, t=1 ms reads and installs, t=2..5 ms hit;
    /// then, at 6 ms, ACK, FIN, ACK, ACK.
    static func finFlow() -> (frames: [[UInt8]], times: [Int64]) {
        func segment(_ n: Int, flags: PacketBuilder.TCPFlags) -> [UInt8] {
            PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 9), destination: IPv4Address(192, 0, 2, 1),
                                 identification: UInt16(n))
                .tcp(source: 4_000, destination: 80, sequence: UInt32(n * 10), flags: flags, payload: [UInt8(n)])
        }
        let frames = (0..<6).map { segment($0, flags: [.ack, .psh]) }
            + [segment(6, flags: [.ack]), segment(7, flags: PacketBuilder.TCPFlags(rawValue: 0x11)),
               segment(8, flags: [.ack]), segment(9, flags: [.ack])]
        return (frames, [0, 1, 2, 3, 4, 5, 6, 6, 6, 6].map { $0 * 1_000_000 })
    }

    @Test("a FIN keeps its flow's later packets in the same batch behind it")
    func finInBatch() throws {
        // One TCP flow: t=0 inserts, t=1 ms reads and installs, t=2..5 ms hit;
        // then one batch of ACK, FIN, ACK, ACK: the first ACK is served, the
        // FIN removes the entry and crosses the graph, and the ACKs after it
        // must follow it there rather than leave first.
        let (frames, times) = Self.finFlow()
        let runner = try Self.cachedAndPlain(frames, times: times).cached
        #expect(runner.counters["flowCache.hits"] == 5, "four in rounds 2-5, and the ACK before the FIN")
    }

    @Test("a batch the cache serves whole waits for an older batch still waiting for the store")
    func batchesLeaveInOrder() throws {
        // Flow A is cached; then one batch holds a new flow B (an insert: it
        // waits for the store) and A's next packet, and the batch after it
        // A's packet after that, served whole and finished at once. A's
        // packets must leave in their order all the same.
        let (runner, pool) = try Self.runner(cache: 64)
        let frames = Self.frames(flows: 2, rounds: 4)  // flows 0 (UDP) and 1 (TCP)
        let a = frames.indices.filter { $0 % 2 == 0 }.map { frames[$0] }
        _ = Self.run(runner, pool, Array(a.prefix(2)), times: [0, 1_000_000])
        let now = Timestamp(nanoseconds: 2_000_000)
        runner.admit(Self.batch([frames[1], a[2]], pool), now: now)
        runner.admit(Self.batch([a[3]], pool), now: now)
        var out: [[UInt8]] = []
        // Drained while the first batch still waits for the store, then until all have left.
        repeat {
            runner.drain { _, packets in
                for i in 0..<packets.count { out.append(Array(packets[i].bytes)) }
                pool.release(packets)
            }
            runner.advance(wait: true)
        } while runner.inFlight > 0
        let ids = out.map { UInt16($0[18]) << 8 | UInt16($0[19]) }  // IP identification: round * 31 + flow
        let expected: [UInt16] = [62, 93]  // A's: rounds 2 and 3
        let ofA = ids.filter { $0 != 1 }
        #expect(ids.count == 3 && ids.contains(1))
        #expect(ofA == expected, "A's packets in their order")
        #expect(runner.counters["flowCache.hits"] == 2)
        #expect(pool.available == 256)
    }

    @Test("a cache smaller than the flows replaces entries and stays right")
    func smallCache() throws {
        let frames = Self.frames(flows: 40, rounds: 6)
        let runner = try Self.cachedAndPlain(frames, times: Self.times(frames), cache: 4).cached
        #expect(runner.flowCacheEntries == 4)
    }
}
