import Atomics
import StatelessKit

/// One worker's receive queues as a runtime's packet source: the packets of
/// each queue arrive on the graph port it is given, stamped with the wall
/// clock, the queues read in turn. With a ``LinkLayer``, ARP frames are
/// answered and taken out before the graph sees them.
///
/// Live, a burst of nothing is not the end: the source ends when ``stop()``
/// is called (on SIGINT or SIGTERM) or, when every queue reads a capture
/// through net_pcap, once each capture's packets have come.
///
/// With a runner that has a flow cache and no link layer, each burst goes
/// to the cache first, where its mbufs lie (``InPlacePath``): what the cache
/// serves leaves by the sink's queues at once, and only the rest becomes
/// packets.
///
/// One worker thread reads it; ``stop()``, ``received`` and ``activity``
/// are safe from any thread.
public final class DPDKSource: InPlaceSource, @unchecked Sendable {
    /// A receive queue and where its packets enter the graph.
    public struct Input {
        /// The queue.
        public var queue: DPDKQueue
        /// The graph port its packets arrive on.
        public var graphPort: UInt16
        /// The packets it will bring in all (a net_pcap capture's records),
        /// or `nil` when it is live.
        public var expected: Int?

        /// `queue`'s packets arriving on `graphPort`, `expected` of them in
        /// all (`nil`: live).
        public init(queue: DPDKQueue, graphPort: UInt16, expected: Int? = nil) {
            self.queue = queue
            self.graphPort = graphPort
            self.expected = expected
        }
    }

    /// The inputs.
    public let inputs: [Input]
    /// The link layer of the ports that have a network.
    public let link: LinkLayer?
    let budget: ManagedAtomic<Int>?
    private let stopped = ManagedAtomic<Bool>(false)
    private var next = 0
    private var counts: [Int]
    private let receivedCount = ManagedAtomic<Int>(0)
    private let polls = ManagedAtomic<Int>(0)
    /// Packets received (safe to read from any thread).
    public var received: Int { receivedCount.load(ordering: .relaxed) }
    /// How many times the source was read: a worker that polls is alive,
    /// packets or not (safe to read from any thread).
    public var activity: Int { polls.load(ordering: .relaxed) }
    /// Packets dropped on receipt (several segments).
    public private(set) var dropped = 0
    /// The path serving bursts where they lie, once a runner has it.
    public private(set) var inPlace: InPlacePath?

    /// A source reading `inputs` in turn, through `link` when given; with
    /// `budget` (shared by the sources of several workers), it ends once
    /// that many packets have come to them all.
    public init(inputs: [Input], link: LinkLayer? = nil, budget: ManagedAtomic<Int>? = nil) {
        precondition(!inputs.isEmpty, "a DPDK source needs a queue")
        self.inputs = inputs
        self.link = link
        self.budget = budget
        counts = Array(repeating: 0, count: inputs.count)
    }

    /// Ends the source: the run drains what is in flight and returns.
    /// Safe from any thread.
    public func stop() { stopped.store(true, ordering: .releasing) }

    public var isExhausted: Bool {
        if stopped.load(ordering: .acquiring) { return true }
        if let budget, budget.load(ordering: .relaxed) <= 0 { return true }
        for (index, input) in inputs.enumerated() {
            guard let expected = input.expected, counts[index] >= expected else { return false }
        }
        return true
    }

    public func serveInPlace(through runner: GraphRunner, to sink: any PacketSink) -> Bool {
        // Frames sent through a link layer take Ethernet addresses the cached rewrite does not hold.
        guard link == nil, let sink = sink as? DPDKSink, sink.link == nil else { return false }
        let path = InPlacePath(runner: runner, outputs: sink.outputs)
        inPlace = path
        sink.inPlace = path
        return true
    }

    public var servedInPlace: [UInt16: Int] {
        guard let inPlace else { return [:] }
        return inPlace.sent.merging(inPlace.unsent, uniquingKeysWith: +)
    }

    public func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int {
        // One thread writes these counters: a load and a store, not a locked add.
        polls.store(polls.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        guard !isExhausted else { return 0 }
        let now = Timestamp.wallClock()
        var served = 0
        for _ in 0..<inputs.count {
            let index = next
            next = next + 1 == inputs.count ? 0 : next + 1
            let input = inputs[index]
            let before = batch.count
            var room = batch.capacity - batch.count
            if let budget {
                // Reserve room from the budget, and give back what did not come.
                var left = budget.load(ordering: .relaxed)
                repeat {
                    room = min(batch.capacity - batch.count, left)
                    guard room > 0 else { return batch.count - before + served }
                    let (exchanged, original) = budget.compareExchange(expected: left, desired: left - room, ordering: .relaxed)
                    if exchanged { break }
                    left = original
                } while true
            }
            var droppedNow = 0
            let count = input.queue.receiveBurst(limit: room)
            if let budget, count < room { budget.wrappingIncrement(by: room - count, ordering: .relaxed) }
            let left = inPlace?.serve(input.queue, count: count, as: input.graphPort, at: now) ?? count
            served += count - left
            input.queue.makePackets(left, into: batch, as: input.graphPort, at: now, dropped: &droppedNow)
            counts[index] += count
            if count > droppedNow {
                receivedCount.store(receivedCount.load(ordering: .relaxed) &+ count &- droppedNow, ordering: .relaxed)
            }
            dropped += droppedNow
            if let link { link.receive(batch, from: before, on: input.queue, now: now) }
            if batch.count > before || batch.isFull || served > 0 { return batch.count - before + served }
        }
        return 0
    }
}

/// One worker's transmit queues as a runtime's packet sink: the packets
/// leaving by each graph port go out of its queue, their mbufs handed on as
/// they are; with a ``LinkLayer``, their Ethernet addresses written first.
public final class DPDKSink: PacketSink {
    let outputs: [UInt16: DPDKQueue]
    let link: LinkLayer?
    /// The source's path for frames served where they lie, whose sends
    /// count here too.
    var inPlace: InPlacePath?
    /// Packets sent, by graph port (frames served in place included).
    public var sent: [UInt16: Int] { sentPackets.merging(inPlace?.sent ?? [:], uniquingKeysWith: +) }
    /// Packets the ports would not take (their rings full) or that left by
    /// a graph port with no queue, by graph port (frames served in place
    /// included).
    public var unsent: [UInt16: Int] { unsentPackets.merging(inPlace?.unsent ?? [:], uniquingKeysWith: +) }
    var sentPackets: [UInt16: Int] = [:]
    var unsentPackets: [UInt16: Int] = [:]
    /// How long each packet sent spent from its receipt to its send (its
    /// timestamp, stamped on receipt, to the send's clock): the latency the
    /// NF adds, store round trips included (frames served in place too).
    public var latency: LatencyHistogram {
        var all = packetLatency
        if let inPlace { all.merge(inPlace.latency) }
        return all
    }
    var packetLatency = LatencyHistogram()

    /// A sink sending what leaves by each graph port out of its queue.
    public init(outputs: [UInt16: DPDKQueue], link: LinkLayer? = nil) {
        self.outputs = outputs
        self.link = link
    }

    public func write(_ batch: PacketBatch, port: UInt16) throws {
        guard let out = outputs[port] else {
            unsentPackets[port, default: 0] += batch.count
            return
        }
        let now = Timestamp.wallClock()
        packetLatency.record(batch, at: now)
        link?.prepare(batch, for: out, now: now)
        let count = batch.count
        let taken = out.send(batch)
        sentPackets[port, default: 0] += taken
        if taken < count { unsentPackets[port, default: 0] += count - taken }
    }

    /// Frees the frames the link layer still holds (the ports are their
    /// owner's to stop).
    public func close() throws {
        link?.discardHeld()
    }
}
