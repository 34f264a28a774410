/// Runs a graph on packets a test injects, under a manual clock, and
/// returns what came out of each port and what was dropped: golden-file
/// style tests for NFs, in the spirit of SwiftNIO's `EmbeddedChannel`.
///
/// ```swift
/// let harness = GraphHarness(graph: try nat.graph(), session: try store.makeSession(for: nat.state.schema))
/// let out = harness.send([syn], port: 0)
/// #expect(out.packets(on: 1) == [expectedSyn])
/// harness.advance(seconds: 300)
/// ```
public final class GraphHarness {
    /// What came out of one injection.
    public struct Output: Sendable {
        /// The packets that left, by port, in order.
        public var ports: [UInt16: [[UInt8]]] = [:]
        /// The drops during the injection, by reason.
        public var drops: [String: Int] = [:]

        /// The packets that left by `port`.
        public func packets(on port: UInt16) -> [[UInt8]] { ports[port] ?? [] }

        /// Nothing out, nothing dropped.
        public init() {}

        /// Whether nothing left and nothing was dropped.
        public var isEmpty: Bool { ports.isEmpty && drops.isEmpty }
    }

    /// The runner.
    public let runner: GraphRunner
    /// The store session (for expiry).
    public let session: (any StateSession)?
    /// The manual clock's reading.
    public var now: Timestamp
    let pool: BufferPool

    /// A harness for `graph`, starting its clock at `start`.
    public init(graph: Graph, session: (any StateSession)?, start: Timestamp = Timestamp(seconds: 1_700_000_000, nanoseconds: 0),
                batchCapacity: Int = 32) {
        pool = BufferPool(count: batchCapacity * 8, dataRoom: 9216)
        self.session = session
        now = start
        runner = GraphRunner(graph: graph, pool: pool, session: session, batchCapacity: batchCapacity)
    }

    /// Moves the clock on.
    public func advance(seconds: Double) {
        now = Timestamp(nanoseconds: now.nanoseconds + Int64(seconds * 1e9))
    }

    /// Removes the store's entries that expired by now; returns how many.
    @discardableResult
    public func expire() -> Int {
        session?.expire(now: now, budget: .max) ?? 0
    }

    /// Injects `frames` (Ethernet) on `port` in one batch and runs them to
    /// the end.
    public func send(_ frames: [[UInt8]], port: UInt16, linkType: LinkType = .ethernet) -> Output {
        precondition(frames.count <= runner.batchCapacity, "inject at most a batch at a time")
        let before = runner.drops
        let batch = PacketBatch(capacity: runner.batchCapacity)
        for frame in frames {
            var packet = pool.allocate()!
            precondition(frame.withUnsafeBytes { packet.setBytes($0) }, "a frame larger than the harness's buffers")
            packet.port = port
            packet.linkType = linkType
            packet.timestamp = now
            batch.append(packet)
        }
        runner.admit(batch, now: now)
        var output = Output()
        while runner.inFlight > 0 {
            runner.advance(wait: true)
            runner.drain { port, packets in
                for i in 0..<packets.count {
                    output.ports[port, default: []].append(Array(packets[i].bytes))
                }
                pool.release(packets)
            }
        }
        for (reason, count) in runner.drops where count != before[reason] ?? 0 {
            output.drops[reason] = count - (before[reason] ?? 0)
        }
        return output
    }

    /// Injects one frame.
    public func send(_ frame: [UInt8], port: UInt16) -> Output { send([frame], port: port) }
}
