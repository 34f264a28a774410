import StatelessKit
import StatelessKitStore
import Testing

/// A batch's packets as frames served where they lie (as a DPDK burst's mbufs are).
struct BatchFrames: FrameBurst {
    let batch: PacketBatch

    func frame(_ index: Int) -> (data: UnsafeMutableRawPointer, length: Int) {
        (batch[index].data, Int(batch[index].length))
    }
}

@Suite("Serving frames in place")
struct InPlaceServingTests {
    /// Runs `frames` at `times` through `runner` as an in-place source does:
    /// each burst offered to the flow cache where it lies, what it serves
    /// out at once, the rest admitted as a batch, finished batches drained
    /// before the next burst. Returns what came out, in order, and how many
    /// frames were served in place.
    static func runInPlace(_ runner: GraphRunner, _ pool: BufferPool, _ frames: [[UInt8]], times: [Int64])
        -> (out: [[UInt8]], served: Int) {
        var out: [[UInt8]] = []
        var served = 0
        let burst = PacketBatch(capacity: 8), rest = PacketBatch(capacity: 8)
        let outputs = UnsafeMutablePointer<Int16>.allocate(capacity: 8)
        defer { outputs.deallocate() }
        var next = 0
        while next < frames.count || runner.inFlight > 0 {
            if runner.canAdmit && next < frames.count {
                let now = FlowCacheTests.fill(burst, pool, frames, times: times, next: &next)
                let hits = runner.serveInPlace(BatchFrames(batch: burst), count: burst.count, arrivingOn: 0,
                                               linkType: .ethernet, now: Timestamp(nanoseconds: now), outputs: outputs)
                served += hits
                for i in 0..<burst.count {
                    if outputs[i] >= 0 {
                        #expect(runner.ports[Int(outputs[i])] == 1)
                        out.append(Array(burst[i].bytes))
                        pool.release(burst[i])
                    } else {
                        rest.append(burst[i])
                    }
                }
                burst.removeAll()
                if !rest.isEmpty { runner.admit(rest, now: Timestamp(nanoseconds: now)) }
            }
            runner.advance(wait: true)
            runner.drain { _, packets in
                for i in 0..<packets.count { out.append(Array(packets[i].bytes)) }
                pool.release(packets)
            }
        }
        return (out, served)
    }

    /// Each flow's frames (by TCP/UDP source port, which the graph leaves),
    /// in the order they came out.
    static func byFlow(_ frames: [[UInt8]]) -> [UInt16: [[UInt8]]] {
        Dictionary(grouping: frames) { UInt16($0[34]) << 8 | UInt16($0[35]) }
    }

    @Test("frames served in place get the graph's bytes, each flow in its order")
    func sameBytes() throws {
        let frames = FlowCacheTests.frames(flows: 6, rounds: 20)
        let times = FlowCacheTests.times(frames)
        let (cached, cachedPool) = try FlowCacheTests.runner(cache: 64)
        let (plain, plainPool) = try FlowCacheTests.runner(cache: 0)
        let (out, served) = Self.runInPlace(cached, cachedPool, frames, times: times)
        let expected = FlowCacheTests.run(plain, plainPool, frames, times: times)
        #expect(out.count == frames.count)
        #expect(Self.byFlow(out) == Self.byFlow(expected))
        #expect(served >= 6 * 15, "each flow: an insert, a read that installs it, then hits")
        #expect(cached.counters["flowCache.hits"] == served)
        #expect(cached.packetsIn == frames.count, "frames served in place count as admitted")
        #expect(cachedPool.available == 256)
    }

    @Test("a FIN keeps its flow's later frames in the same burst behind it")
    func finInBurst() throws {
        let (frames, times) = FlowCacheTests.finFlow()
        let (cached, cachedPool) = try FlowCacheTests.runner(cache: 64)
        let (plain, plainPool) = try FlowCacheTests.runner(cache: 0)
        let (out, served) = Self.runInPlace(cached, cachedPool, frames, times: times)
        #expect(out == FlowCacheTests.run(plain, plainPool, frames, times: times))
        #expect(served == 5, "four at 2-5 ms, and the ACK before the FIN")
    }

    @Test("nothing is served in place while a batch is in flight, finished or not")
    func waitsForDrain() throws {
        let frames = FlowCacheTests.frames(flows: 2, rounds: 4)
        let (runner, pool) = try FlowCacheTests.runner(cache: 64)
        // Establish both flows and cache them.
        _ = Self.runInPlace(runner, pool, Array(frames.prefix(6)), times: [0, 0, 1, 1, 2, 2].map { $0 * 1_000_000 })
        // A batch the cache serves whole finishes at once; until it is
        // drained, a frame served in place would overtake it.
        runner.admit(FlowCacheTests.batch([frames[6]], pool), now: Timestamp(nanoseconds: 3_000_000))
        let burst = FlowCacheTests.batch([frames[7]], pool)
        let outputs = UnsafeMutablePointer<Int16>.allocate(capacity: 8)
        defer { outputs.deallocate() }
        let now = Timestamp(nanoseconds: 3_000_000)
        #expect(runner.serveInPlace(BatchFrames(batch: burst), count: 1, arrivingOn: 0, linkType: .ethernet,
                                    now: now, outputs: outputs) == 0)
        #expect(outputs[0] == -1 && runner.inFlight == 1)
        runner.drain { _, packets in pool.release(packets) }
        #expect(runner.serveInPlace(BatchFrames(batch: burst), count: 1, arrivingOn: 0, linkType: .ethernet,
                                    now: now, outputs: outputs) == 1)
        #expect(outputs[0] >= 0)
        pool.release(burst)
        #expect(pool.available == 256)
    }

    @Test("a runner without a flow cache serves nothing in place")
    func noCache() throws {
        let frames = FlowCacheTests.frames(flows: 3, rounds: 5)
        let (runner, pool) = try FlowCacheTests.runner(cache: 0)
        let (out, served) = Self.runInPlace(runner, pool, frames, times: FlowCacheTests.times(frames))
        #expect(out.count == frames.count && served == 0)
    }
}
