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
/// One worker thread reads it; ``stop()``, ``received`` and ``activity``
/// are safe from any thread.
public final class DPDKSource: PacketSource, @unchecked Sendable {
    /// A receive queue and where its packets enter the graph.
    public struct Input {
        /// The queue.
        public var queue: DPDKQueue
        /// The graph port its packets arrive on.
        public var graphPort: UInt16
        /// The packets it will bring in all (a net_pcap capture's records),
        /// or `nil` when it is live.
        public var expected: Int?

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

    public func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int {
        polls.wrappingIncrement(ordering: .relaxed)
        guard !isExhausted else { return 0 }
        let now = Timestamp.wallClock()
        for _ in 0..<inputs.count {
            let index = next
            next = next + 1 == inputs.count ? 0 : next + 1
            let input = inputs[index]
            let before = batch.count
            var droppedNow = 0
            let count: Int
            if let budget {
                // Reserve room from the budget, and give back what did not come.
                var left = budget.load(ordering: .relaxed)
                var room = 0
                repeat {
                    room = min(batch.capacity - batch.count, left)
                    guard room > 0 else { return 0 }
                    let (exchanged, original) = budget.compareExchange(expected: left, desired: left - room, ordering: .relaxed)
                    if exchanged { break }
                    left = original
                } while true
                count = input.queue.receive(into: batch, as: input.graphPort, at: now, limit: room, dropped: &droppedNow)
                if count < room { budget.wrappingIncrement(by: room - count, ordering: .relaxed) }
            } else {
                count = input.queue.receive(into: batch, as: input.graphPort, at: now, dropped: &droppedNow)
            }
            counts[index] += count
            if count > droppedNow { receivedCount.wrappingIncrement(by: count - droppedNow, ordering: .relaxed) }
            dropped += droppedNow
            if let link { link.receive(batch, from: before, on: input.queue, now: now) }
            if batch.count > before || batch.isFull { return batch.count - before }
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
    /// Packets sent, and packets the ports would not take (their rings
    /// full) or that left by a graph port with no queue, by graph port.
    public private(set) var sent: [UInt16: Int] = [:]
    public private(set) var unsent: [UInt16: Int] = [:]
    /// How long each packet sent spent from its receipt to its send (its
    /// timestamp, stamped on receipt, to the send's clock): the latency the
    /// NF adds, store round trips included.
    public private(set) var latency = LatencyHistogram()

    /// A sink sending what leaves by each graph port out of its queue.
    public init(outputs: [UInt16: DPDKQueue], link: LinkLayer? = nil) {
        self.outputs = outputs
        self.link = link
    }

    public func write(_ batch: PacketBatch, port: UInt16) throws {
        guard let out = outputs[port] else {
            unsent[port, default: 0] += batch.count
            return
        }
        let now = Timestamp.wallClock()
        latency.record(batch, at: now)
        link?.prepare(batch, for: out, now: now)
        let count = batch.count
        let taken = out.send(batch)
        sent[port, default: 0] += taken
        if taken < count { unsent[port, default: 0] += count - taken }
    }

    /// Frees the frames the link layer still holds (the ports are their
    /// owner's to stop).
    public func close() throws {
        link?.discardHeld()
    }
}
