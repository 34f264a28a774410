import Foundation
import StatelessKit
import StatelessKitStore
import Testing

/// What two instances sharing a store did with a list of events: each
/// packet's bytes as it left (empty where it was dropped), the drops, and
/// the packets served from the flow caches.
struct InstancesRun {
    var frames: [[UInt8]] = []
    var drops: [String: Int] = [:]
    var hits = 0
}

/// What the NAT's and the load balancer's flow cache tests share.
enum FlowCacheRig {
    /// Plays `events` (instance, time, arrival port, frame) one packet at a
    /// time through two runners of `graph` sharing one embedded store, each
    /// sweeping expired entries before its packet.
    static func runInstances(graph: () throws -> Graph, schema: StateSchema,
                             events: [(instance: Int, time: Int64, port: UInt16, frame: [UInt8])],
                             cache: Int) throws -> InstancesRun {
        let store = EmbeddedStore()
        let pool = BufferPool(count: 64)
        let instances = try (0..<2).map { _ in
            GraphRunner(graph: try graph(), pool: pool, session: try store.makeSession(for: schema),
                        batchCapacity: 1, inFlight: 1, flowCacheEntries: cache)
        }
        var run = InstancesRun()
        let batch = PacketBatch(capacity: 1)
        for event in events {
            let runner = instances[event.instance]
            _ = runner.session!.expire(now: Timestamp(nanoseconds: event.time), budget: 1000)
            var packet = pool.allocate()!
            _ = event.frame.withUnsafeBytes { packet.setBytes($0) }
            packet.port = event.port
            batch.append(packet)
            let before = run.frames.count
            runner.admit(batch, now: Timestamp(nanoseconds: event.time))
            while runner.inFlight > 0 {
                runner.advance(wait: true)
                runner.drain { _, packets in
                    for i in 0..<packets.count { run.frames.append(Array(packets[i].bytes)) }
                    pool.release(packets)
                }
            }
            if run.frames.count == before { run.frames.append([]) } // a dropped packet: an empty place
        }
        run.drops = instances.reduce(into: [String: Int]()) { all, runner in all.merge(runner.drops, uniquingKeysWith: +) }
        run.hits = instances.reduce(0) { $0 + $1.counters["flowCache.hits"] }
        return run
    }

    /// Expects the run with caches to have served many packets from them
    /// and to have done exactly what the run without did, packet by packet.
    static func expectSame(_ cached: InstancesRun, _ plain: InstancesRun,
                           sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(cached.hits > 500, "the cache served \(cached.hits) packets", sourceLocation: sourceLocation)
        #expect(plain.hits == 0, sourceLocation: sourceLocation)
        #expect(cached.drops == plain.drops, sourceLocation: sourceLocation)
        let differing = zip(cached.frames, plain.frames).enumerated().filter { $0.element.0 != $0.element.1 }.map(\.offset)
        #expect(cached.frames.count == plain.frames.count && differing.isEmpty, "packets \(differing.prefix(10)) differ",
                sourceLocation: sourceLocation)
    }
}

/// A small deterministic generator (SplitMix64), so that the traffic is the
/// same in both runs and in every test run.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
