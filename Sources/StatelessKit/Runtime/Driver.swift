/// The clock a runtime gives its nodes.
public enum RuntimeClock: Sendable {
    /// The wall clock: live traffic.
    case wall
    /// The packets' own timestamps: a replay, where expiry follows the
    /// capture's time and is the same on every run.
    case replay
}

/// What a run did.
public struct RunSummary: Sendable {
    /// Packets read.
    public var packetsIn = 0
    /// Packets out, by port.
    public var packetsOut: [UInt16: Int] = [:]
    /// Drops by reason.
    public var drops: [String: Int] = [:]
    /// Every counter nodes kept.
    public var counters: [String: Int] = [:]
    /// Requests sent to the store.
    public var roundTrips = 0
    /// State operations sent to the store.
    public var stateOperations = 0
    /// Batches run.
    public var batches = 0
    /// Entries the expiry removed.
    public var expired = 0
    /// Seconds from start to end.
    public var elapsed: Double = 0

    public init() {}

    /// What `runner` has counted, with the packets out by port and the
    /// entries expired that its driver saw.
    public init(_ runner: GraphRunner, packetsOut: [UInt16: Int], expired: Int) {
        packetsIn = runner.packetsIn
        self.packetsOut = packetsOut
        drops = runner.drops
        counters = runner.counters.all
        counters.merge(runner.session?.statistics ?? [:], uniquingKeysWith: +)
        roundTrips = runner.roundTrips
        stateOperations = runner.stateOperations
        batches = runner.batchesIn
        self.expired = expired
    }

    /// Adds another worker's summary.
    public mutating func merge(_ other: RunSummary) {
        packetsIn += other.packetsIn
        packetsOut.merge(other.packetsOut, uniquingKeysWith: +)
        drops.merge(other.drops, uniquingKeysWith: +)
        counters.merge(other.counters, uniquingKeysWith: +)
        roundTrips += other.roundTrips
        stateOperations += other.stateOperations
        batches += other.batches
        expired += other.expired
        elapsed = max(elapsed, other.elapsed)
    }
}

/// Runs a graph over a packet source into a sink on the calling thread: the
/// loop of one worker. Batches are admitted while a slot is free; the worker
/// waits for the store only when every slot waits; after every round of
/// batches in a replay, and every millisecond live, the expiry sweeps a
/// bounded number of index slots (`expiryBudget`); the counters go to
/// swift-metrics (``MetricsPublisher``) now and then and at the end. A
/// source that can serve established flows where their frames lie
/// (``InPlaceSource``) does so when the runner has a flow cache and no
/// batch is in flight; what it did not serve is admitted as a batch.
public final class Driver {
    /// The runner.
    public let runner: GraphRunner
    let pool: any PacketPool
    let clock: RuntimeClock
    let expiryBudget: Int
    let idleSleep: Double
    let metrics: MetricsPublisher
    var now = Timestamp.zero
    var expired = 0
    var lastSweep: Int64 = 0
    /// How often a live run sweeps, in nanoseconds.
    static let sweepInterval: Int64 = 1_000_000

    /// A driver for `runner`, whose packets come from `pool`. With
    /// `idleSleep` (seconds), a live source that has brought nothing for 100
    /// polls in a row, with nothing in flight, is polled again only after
    /// that long: a worker then leaves its core to others (several instances
    /// on few cores) at the cost of up to `idleSleep` for the first packet
    /// after a quiet spell. Zero polls without pause, as DPDK does.
    public init(runner: GraphRunner, pool: any PacketPool, clock: RuntimeClock, expiryBudget: Int = 1024,
                idleSleep: Double = 0) {
        self.runner = runner
        self.pool = pool
        self.clock = clock
        self.expiryBudget = expiryBudget
        self.idleSleep = idleSleep
        metrics = MetricsPublisher(runner: runner, dimensions: [("graph", runner.graph.name)])
    }

    /// Runs until the source ends, `progress` called after every batch with
    /// the packets read so far (return `false` to stop early).
    public func run(_ source: any PacketSource, into sink: any PacketSink,
                    progress: (Int) -> Bool = { _ in true }) throws -> RunSummary {
        let started = Timestamp.wallClock()
        let batch = PacketBatch(capacity: runner.batchCapacity)
        var out: [UInt16: Int] = [:]
        var ended = false
        var sinkError: (any Error)? = nil
        var emptyPolls = 0
        var rounds = 0
        // The source that serves in place, if it does.
        let inPlace = (runner.flowCacheEntries > 0 ? source as? InPlaceSource : nil)
            .flatMap { $0.serveInPlace(through: runner, to: sink) ? $0 : nil }
        while !ended || runner.inFlight > 0 {
            while !ended && runner.canAdmit {
                let read = try source.read(into: batch, from: pool)
                if read == 0 {
                    // The end, or (a live source) nothing now: finish what is in flight meanwhile.
                    ended = source.isExhausted
                    emptyPolls += 1
                    if idleSleep > 0 && emptyPolls > 100 && runner.inFlight == 0 && !ended {
                        usleep(UInt32(idleSleep * 1e6))
                    }
                    break
                }
                emptyPolls = 0
                if batch.isEmpty {
                    // Every frame of the burst was served where it lay.
                    if !progress(runner.packetsIn) { ended = true }
                    break
                }
                switch clock {
                case .wall: now = Timestamp.wallClock()
                case .replay:
                    for i in 0..<batch.count where batch[i].timestamp > now { now = batch[i].timestamp }
                }
                runner.admit(batch, now: now)
                if !progress(runner.packetsIn) { ended = true }
            }
            runner.advance(wait: !runner.canAdmit || ended)
            runner.drain { port, packets in
                out[port, default: 0] += packets.count
                do { try sink.write(packets, port: port) } catch { sinkError = error }
                pool.release(packets)
            }
            if let sinkError { throw sinkError }
            if let session = runner.session {
                if clock == .replay {
                    expired += session.expire(now: now, budget: expiryBudget)
                } else if rounds & 15 == 0 {
                    // Live: a sweep per millisecond, not per batch, so that its
                    // cost does not grow with the packet rate; the clock read
                    // every 16 rounds (a round can be one burst served in place,
                    // and a read costs as much as serving a few frames).
                    let wall = Timestamp.wallClock()
                    if wall.nanoseconds - lastSweep >= Self.sweepInterval {
                        lastSweep = wall.nanoseconds
                        expired += session.expire(now: wall, budget: expiryBudget)
                    }
                }
            }
            rounds &+= 1
            if rounds & 1023 == 0 { metrics.publish() }
        }
        metrics.publish()
        if let inPlace { out.merge(inPlace.servedInPlace, uniquingKeysWith: +) }
        var summary = RunSummary(runner, packetsOut: out, expired: expired)
        summary.elapsed = Double(Timestamp.wallClock().nanoseconds - started.nanoseconds) / 1e9
        return summary
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension Timestamp {
    /// The wall clock now.
    public static func wallClock() -> Timestamp {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Timestamp(seconds: Int64(spec.tv_sec), nanoseconds: Int64(spec.tv_nsec))
    }
}
