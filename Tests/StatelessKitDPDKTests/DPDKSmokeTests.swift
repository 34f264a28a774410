import CDPDKShim
import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitDPDK
import StatelessKitStore
import StoreTestSupport
import Synchronization
import Testing

/// The EAL of this test process: started once (DPDK cannot start it twice
/// in a process), with the virtual devices every DPDK test here uses:
/// port 0 a net_null, port 1 a net_pcap reading a shared capture and
/// writing what is sent to a file of its own.
enum TestEAL {
    static let capture = SharedTraces.path("nDPI/iphone.pcap")
    static let output = FileManager.default.temporaryDirectory
        .appendingPathComponent("statelesskit-dpdk-\(getpid())-out.pcap").path
    static let started: Result<Void, DPDKError> = Result { () throws(DPDKError) in
        try EAL.start(arguments: EAL.defaultArguments(prefix: "statelesskit-test-\(getpid())")
                      + ["--vdev=net_null0", "--vdev=net_pcap0,rx_pcap=\(capture),tx_pcap=\(output)"])
    }
}

/// DPDK from Swift: the EAL without hugepages, mbuf-backed packets, ports
/// on virtual devices. (One EAL per process: the tests run one at a time
/// on the devices it started with.)
@Suite("DPDK", .serialized, .enabled(if: SharedTraces.available, SharedTraces.skipNote))
struct DPDKSmokeTests {
    @Test("EAL starts with --no-huge; a net_null port receives and sends through an mbuf pool")
    func ealOnNetNull() throws {
        try TestEAL.started.get()
        #expect(EAL.portCount == 2)
        let pool = try MbufPool(name: "smoke", count: 1023)
        let port = try DPDKPort(id: 0, pool: pool)
        let queue = DPDKQueue(port: port, queue: 0)
        let batch = PacketBatch(capacity: 32)
        var dropped = 0
        let received = queue.receive(into: batch, as: 7, at: Timestamp(seconds: 1, nanoseconds: 0), dropped: &dropped)
        #expect(received > 0 && batch.count == received && dropped == 0, "net_null always has packets to receive")
        for i in 0..<batch.count {
            #expect(batch[i].port == 7 && batch[i].length > 0)
            #expect(batch[i].headroom >= 64, "DPDK's headroom is the packet's")
        }
        #expect(queue.send(batch) == received, "net_null takes every packet")
        #expect(batch.isEmpty)
        // A packet from the pool, written and sent.
        var packet = try #require(pool.allocate())
        let resized = packet.setLength(60)
        #expect(resized)
        let one = PacketBatch(capacity: 1)
        _ = one.append(packet)
        #expect(queue.send(one) == 1)
        try port.stop()
    }

    @Test("the NAT over net_pcap gives, packet for packet, what it gives over the pure-Swift capture reader")
    func natThroughNetPcap() throws {
        try TestEAL.started.get()
        func nat() throws -> NAT {
            var config = NATConfig()
            config.external = ["203.0.113.7"]
            config.namespace = "dpdk-\(UUID())"
            return NAT(try config.resolved())
        }
        let time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        // The reference: the capture read in Swift, in batches of 32.
        let reference = try nat()
        let expected: [[UInt8]] = try {
            let pool = BufferPool(count: 256, dataRoom: 2048)
            let runner = GraphRunner(graph: try reference.graph(), pool: pool,
                                     session: try EmbeddedStore().makeSession(for: reference.state.schema), inFlight: 1)
            let reader = try CaptureReader(path: TestEAL.capture)
            var out: [[UInt8]] = []
            let batch = PacketBatch(capacity: 32)
            var done = false
            while !done {
                while !batch.isFull, var packet = pool.allocate() {
                    guard try reader.next(into: &packet) else { pool.release(packet); done = true; break }
                    packet.port = 0
                    packet.timestamp = time
                    _ = batch.append(packet)
                }
                runner.admit(batch, now: time)
                while runner.inFlight > 0 {
                    runner.advance(wait: true)
                    runner.drain { _, packets in
                        for i in 0..<packets.count { out.append(Array(packets[i].bytes)) }
                        pool.release(packets)
                    }
                }
            }
            return out
        }()
        // Through DPDK: net_pcap port 1 in and out, mbufs all the way.
        var total = 0
        let records = try { () throws -> Int in
            let reader = try CaptureReader(path: TestEAL.capture)
            var count = 0
            while try reader.next() != nil { count += 1 }
            return count
        }()
        let function = try nat()
        let pool = try MbufPool(name: "nat", count: 4095)
        let port = try DPDKPort(id: 1, pool: pool)
        let queue = DPDKQueue(port: port, queue: 0)
        let runner = GraphRunner(graph: try function.graph(), pool: pool,
                                 session: try EmbeddedStore().makeSession(for: function.state.schema), inFlight: 1)
        let batch = PacketBatch(capacity: 32)
        let out = PacketBatch(capacity: 32)
        var dropped = 0
        var idle = 0
        while total < records && idle < 1_000_000 {
            let count = queue.receive(into: batch, as: 0, at: time, dropped: &dropped)
            total += count
            idle = count == 0 ? idle + 1 : 0
            guard !batch.isEmpty else { continue }
            runner.admit(batch, now: time)
            while runner.inFlight > 0 {
                runner.advance(wait: true)
                runner.drain { _, packets in
                    for i in 0..<packets.count { _ = out.append(packets[i]) }
                    packets.removeAll()
                    queue.send(out)
                }
            }
        }
        #expect(total == records && dropped == 0)
        try port.stop()
        let reader = try CaptureReader(path: TestEAL.output)
        var written: [[UInt8]] = []
        while let record = try reader.next() { written.append(Array(record.bytes)) }
        #expect(written.count == expected.count && expected.count > 250, "\(written.count) written, \(expected.count) expected")
        #expect(written == expected, "the same packets, byte for byte, in the same order")
    }

    /// The CPUs the calling thread may run on, as the kernel lists them.
    static func allowedCPUs() throws -> String {
        let status = try String(contentsOfFile: "/proc/thread-self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") })
        return line.split(separator: "\t").last.map(String.init) ?? ""
    }

    @Test("a worker thread registers as an lcore pinned to its CPU, or free on every CPU the process had; a CPU it may not use is refused")
    func pinnedThread() throws {
        try TestEAL.started.get()
        let process = EAL.processCPUs
        #expect(!process.isEmpty && process == process.sorted())
        #expect(EAL.mainLcoreCPUs == [process[0]], "the defaults' -l 0: the main lcore on the first CPU")
        let cpu = try #require(process.last)
        func onThread(_ body: @escaping @Sendable () throws -> Void) throws {
            let done = DispatchSemaphore(value: 0)
            let failure = Mutex<(any Error)?>(nil)
            let thread = Thread {
                do { try body() } catch { failure.withLock { $0 = error } }
                done.signal()
            }
            thread.start()
            done.wait()
            if let error = failure.withLock({ $0 }) { throw error }
        }
        try onThread {
            try EAL.registerThread(cpu: cpu)
            defer { EAL.unregisterThread() }
            #expect(try Self.allowedCPUs() == "\(cpu)")
            #expect(EAL.currentCPU == cpu)
        }
        try onThread {
            try EAL.registerThread()
            defer { EAL.unregisterThread() }
            let expected = process.count == 1 ? "\(process[0])" : process == Array(process[0]...process.last!)
                ? "\(process[0])-\(process.last!)" : process.map(String.init).joined(separator: ",")
            #expect(try Self.allowedCPUs() == expected)
        }
        try onThread {
            #expect {
                try EAL.registerThread(cpu: 1023)
            } throws: { error in
                "\(error)".contains("rte_thread_register on CPU 1023") && (error as? DPDKError)?.code == EINVAL
            }
        }
    }

    @Test("without hugepages the pool packs its mbufs: their headers spread over the L1 cache's sets, not one 4 KB page each")
    func packedPool() throws {
        try TestEAL.started.get()
        let pool = try MbufPool(name: "packed", count: 255, cacheSize: 0)
        var packets: [Packet] = []
        for _ in 0..<64 { packets.append(try #require(pool.allocate())) }
        defer { packets.forEach(pool.release) }
        let headers = packets.map { UInt($0.handle) }
        // A 32 KB, 8-way L1 has 64 sets of 64-byte lines: addresses 4 KB apart share one.
        let sets = Set(headers.map { ($0 >> 6) & 63 })
        #expect(sets.count >= 32, "64 mbuf headers in \(sets.count) L1 sets")
        #expect(Set(headers.map { $0 & 4095 }).count > 1, "not each at the start of a page of its own")
    }

    @Test("workers go one a CPU off the main lcore's when there are enough, else anywhere")
    func defaultWorkerCPUs() {
        #expect(EAL.workerCPUs(workers: 1, process: [0, 1], main: [0]) == [1])
        #expect(EAL.workerCPUs(workers: 2, process: [0, 1], main: [0]) == nil)
        #expect(EAL.workerCPUs(workers: 2, process: [0, 2, 3, 5], main: [2]) == [0, 3])
        #expect(EAL.workerCPUs(workers: 1, process: [4], main: [4]) == nil)
    }
}
