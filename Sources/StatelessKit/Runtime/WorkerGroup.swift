import Foundation

/// Runs a graph on several worker threads over one capture: a dispatcher
/// reads the capture and hands each packet to the worker its flow's
/// symmetric hash picks (both directions of a flow to the same worker), and
/// collects what the workers send out. Each worker owns its queues, its
/// buffer pool, its runner and its store session.
///
/// Packets cross from the dispatcher to a worker as copies of their bytes:
/// fine for captures, whose I/O costs far more; DPDK workers read their own
/// queues instead.
public final class WorkerGroup: @unchecked Sendable {
    /// A packet between threads.
    struct Record {
        var bytes: [UInt8]
        var timestamp: Timestamp
        var port: UInt16
        var linkType: LinkType
        var originalLength: Int32
    }

    /// A queue of records with a bound, under a lock.
    final class Queue: @unchecked Sendable {
        let condition = NSCondition()
        var records: [Record] = []
        var closed = false
        let bound: Int

        init(bound: Int) { self.bound = bound }

        func push(_ record: Record) {
            condition.lock()
            while records.count >= bound && !closed { condition.wait() }
            records.append(record)
            condition.signal()
            condition.unlock()
        }

        /// Up to `limit` records; waits while empty unless closed (then `nil`).
        func pop(_ limit: Int) -> [Record]? {
            condition.lock()
            defer { condition.unlock() }
            while records.isEmpty && !closed { condition.wait() }
            if records.isEmpty { return nil }
            let taken = Array(records.prefix(limit))
            records.removeFirst(taken.count)
            condition.broadcast()
            return taken
        }

        func close() {
            condition.lock()
            closed = true
            condition.broadcast()
            condition.unlock()
        }
    }

    let count: Int
    let makeRunner: @Sendable (Int, BufferPool) throws -> GraphRunner
    let clock: RuntimeClock
    let batch: Int

    /// A group of `workers` threads; `makeRunner` builds each worker's runner
    /// (with a session of its own) over the pool it is given.
    public init(workers: Int, batch: Int, clock: RuntimeClock,
                makeRunner: @escaping @Sendable (Int, BufferPool) throws -> GraphRunner) {
        precondition(workers > 0)
        count = workers
        self.batch = batch
        self.clock = clock
        self.makeRunner = makeRunner
    }

    /// Reads `reader` to the end, every packet arriving on `port`, and
    /// writes what leaves to `sink`.
    public func run(_ reader: CaptureReader, port: UInt16, into sink: any PacketSink) throws -> RunSummary {
        let started = Timestamp.wallClock()
        let inputs = (0..<count).map { _ in Queue(bound: 4096) }
        let output = Queue(bound: .max)
        let summaries = Summaries()
        let group = DispatchGroup()
        for worker in 0..<count {
            group.enter()
            let input = inputs[worker]
            let thread = Thread { [self] in
                defer { group.leave() }
                do {
                    summaries.add(try self.work(worker, input: input, output: output))
                } catch {
                    summaries.fail("\(error)")
                    while input.pop(.max) != nil {}
                }
            }
            thread.start()
        }
        // Dispatch by the symmetric flow hash.
        let scratchPool = BufferPool(count: 1, dataRoom: reader.suggestedDataRoom)
        var scratch = scratchPool.allocate()!
        defer { scratchPool.release(scratch) }
        var dispatchError: (any Error)? = nil
        do {
            while let record = try reader.next() {
                _ = scratch.setBytes(record.bytes)
                scratch.linkType = record.linkType.packetLinkType
                let worker = (try? scratch.parse()).flatMap { scratch.flowKey }
                    .map { Int($0.symmetricHash() % UInt64(count)) } ?? 0
                inputs[worker].push(Record(bytes: Array(record.bytes), timestamp: record.timestamp, port: port,
                                           linkType: record.linkType.packetLinkType,
                                           originalLength: Int32(clamping: record.originalLength)))
                try drain(output, into: sink, scratch: &scratch)
            }
        } catch {
            dispatchError = error
        }
        inputs.forEach { $0.close() }
        group.wait()
        output.close()
        try drain(output, into: sink, scratch: &scratch, all: true)
        if let dispatchError { throw dispatchError }
        if let failure = summaries.failure { throw WorkerError(failure) }
        var summary = summaries.merged
        summary.elapsed = Double(Timestamp.wallClock().nanoseconds - started.nanoseconds) / 1e9
        return summary
    }

    /// Writes the workers' output so far (all of it with `all`).
    func drain(_ output: Queue, into sink: any PacketSink, scratch: inout Packet, all: Bool = false) throws {
        output.condition.lock()
        let records = output.records
        output.records.removeAll()
        output.condition.unlock()
        let single = PacketBatch(capacity: 1)
        for record in records {
            _ = record.bytes.withUnsafeBytes { scratch.setBytes($0) }
            scratch.timestamp = record.timestamp
            scratch.originalLength = max(record.originalLength, scratch.length)
            single.append(scratch)
            try sink.write(single, port: record.port)
            single.removeAll()
        }
    }

    /// One worker's loop.
    func work(_ worker: Int, input: Queue, output: Queue) throws -> RunSummary {
        let pool = BufferPool(count: batch * 8, dataRoom: 65_536 + 256)
        let runner = try makeRunner(worker, pool)
        let packets = PacketBatch(capacity: batch)
        var now = Timestamp.zero
        var ended = false
        var out: [UInt16: Int] = [:]
        var expired = 0
        while !ended || runner.inFlight > 0 {
            if !ended && runner.canAdmit {
                if let records = input.pop(batch) {
                    for record in records {
                        guard var packet = pool.allocate() else { break }
                        _ = record.bytes.withUnsafeBytes { packet.setBytes($0) }
                        packet.timestamp = record.timestamp
                        packet.port = record.port
                        packet.linkType = record.linkType
                        packet.originalLength = record.originalLength
                        packets.append(packet)
                        now = clock == .wall ? Timestamp.wallClock() : max(now, record.timestamp)
                    }
                    runner.admit(packets, now: now)
                } else {
                    ended = true
                }
            }
            runner.advance(wait: !runner.canAdmit || ended)
            runner.drain { port, batch in
                out[port, default: 0] += batch.count
                for i in 0..<batch.count {
                    output.push(Record(bytes: Array(batch[i].bytes), timestamp: batch[i].timestamp, port: port,
                                       linkType: batch[i].linkType, originalLength: batch[i].originalLength))
                }
                pool.release(batch)
            }
            if let session = runner.session { expired += session.expire(now: now, budget: 1024) }
        }
        return RunSummary(runner, packetsOut: out, expired: expired)
    }

    /// The workers' summaries, gathered under a lock.
    final class Summaries: @unchecked Sendable {
        let lock = NSLock()
        var merged = RunSummary()
        var failure: String? = nil
        func add(_ summary: RunSummary) { lock.lock(); merged.merge(summary); lock.unlock() }
        func fail(_ message: String) { lock.lock(); failure = message; lock.unlock() }
    }
}

/// A worker failed.
struct WorkerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
