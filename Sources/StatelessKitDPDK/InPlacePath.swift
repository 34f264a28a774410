import CDPDKShim
import StatelessKit

/// A worker's path for established flows on DPDK: each burst received is
/// offered to the runner's flow cache first
/// (``GraphRunner/serveInPlace(_:count:arrivingOn:linkType:now:outputs:)``),
/// and what it serves leaves by its port's queue as the mbufs it came in,
/// rewritten where they lie: no packet is made of them, no batch holds
/// them. The frames the cache does not serve go on into the graph as
/// packets, in their order.
///
/// One worker thread uses it, with the runner it was made for.
public final class InPlacePath {
    /// The runner whose flow cache serves the bursts.
    public let runner: GraphRunner
    /// The queue each of the runner's ports leaves by (`nil`: none).
    let queues: [DPDKQueue?]
    let outputs: UnsafeMutablePointer<Int16>
    /// Each port's frames of the burst, `capacity` places a port.
    let staging: UnsafeMutablePointer<OpaquePointer?>
    let staged: UnsafeMutablePointer<Int>
    let capacity: Int
    /// Frames served and sent, by graph port.
    public var sent: [UInt16: Int] { tally(sentCounts) }
    /// Frames served but not sent (their port's ring full, or a graph port
    /// with no queue), by graph port.
    public var unsent: [UInt16: Int] { tally(unsentCounts) }
    @exclusivity(unchecked) var sentCounts: [Int]
    @exclusivity(unchecked) var unsentCounts: [Int]
    /// How long the frames served took from their burst's receipt to its
    /// send, sampled: the frames of one burst in ``latencySampling`` (a
    /// clock read costs as much as serving a few frames), so that its
    /// percentiles stand for all of them.
    @exclusivity(unchecked) public private(set) var latency = LatencyHistogram()
    /// One burst in this many (a power of two) has its frames' latency recorded.
    public static let latencySampling = 16
    @exclusivity(unchecked) var bursts = 0

    /// A path serving bursts from `runner`'s flow cache, each frame leaving
    /// by the queue given for its graph port in `outputs`.
    public init(runner: GraphRunner, outputs: [UInt16: DPDKQueue]) {
        self.runner = runner
        queues = runner.ports.map { outputs[$0] }
        capacity = runner.batchCapacity
        self.outputs = .allocate(capacity: capacity)
        staging = .allocate(capacity: max(1, queues.count) * capacity)
        staged = .allocate(capacity: max(1, queues.count))
        staged.initialize(repeating: 0, count: max(1, queues.count))
        sentCounts = Array(repeating: 0, count: queues.count)
        unsentCounts = sentCounts
    }

    deinit {
        outputs.deallocate()
        staging.deallocate()
        staged.deallocate()
    }

    /// Serves what the flow cache can of the first `count` mbufs `queue`
    /// received (all arriving on graph port `graphPort` at `time`, at most
    /// the runner's batch capacity): sends them, and moves the others to
    /// the front of the queue's array, in their order. Returns how many are
    /// left there.
    @inline(__always)
    public func serve(_ queue: DPDKQueue, count: Int, as graphPort: UInt16, at time: Timestamp) -> Int {
        let mbufs = queue.mbufs, outputs = self.outputs
        let served = runner.serveInPlace(MbufBurst(mbufs: mbufs, fields: queue.fields), count: count,
                                         arrivingOn: graphPort, linkType: .ethernet, now: time, outputs: outputs)
        guard served > 0 else { return count }
        if served == count, let output = Self.commonOutput(outputs, count: count), let out = queues[output] {
            // The whole burst leaves by one port: as it came.
            let taken = out.transmit(mbufs, count: count)
            sentCounts[output] &+= taken
            unsentCounts[output] &+= count &- taken
            recordLatency(count: served, since: time)
            return 0
        }
        var left = 0
        for i in 0..<count {
            let output = Int(outputs[i])
            if output < 0 {
                mbufs[left] = mbufs[i]
                left &+= 1
            } else {
                staging[output &* capacity &+ staged[output]] = mbufs[i]
                staged[output] &+= 1
            }
        }
        for output in queues.indices where staged[output] > 0 {
            let number = staged[output]
            staged[output] = 0
            let frames = staging + output &* capacity
            guard let out = queues[output] else {
                sk_pktmbuf_free_bulk(frames, UInt32(number))
                unsentCounts[output] &+= number
                continue
            }
            let taken = out.transmit(frames, count: number)
            sentCounts[output] &+= taken
            unsentCounts[output] &+= number &- taken
        }
        recordLatency(count: served, since: time)
        return left
    }

    /// Records the latency of a burst's `count` frames served, received at
    /// `time`, for one burst in ``latencySampling`` (the first among them).
    @inline(__always)
    func recordLatency(count: Int, since time: Timestamp) {
        bursts &+= 1
        guard bursts & (Self.latencySampling - 1) == 1 else { return }
        latency.record(nanoseconds: Timestamp.wallClock().nanoseconds &- time.nanoseconds, count: count)
    }

    /// The port index all `count` outputs share, if they share one.
    @inline(__always)
    static func commonOutput(_ outputs: UnsafeMutablePointer<Int16>, count: Int) -> Int? {
        let first = outputs[0]
        for i in 1..<count where outputs[i] != first { return nil }
        return Int(first)
    }

    func tally(_ counts: [Int]) -> [UInt16: Int] {
        var byPort: [UInt16: Int] = [:]
        for (index, number) in counts.enumerated() where number > 0 { byPort[runner.ports[index]] = number }
        return byPort
    }
}
