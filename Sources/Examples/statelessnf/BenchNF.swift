import ArgumentParser
import CAllocationCounterShim
import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StatelessKitDPDK

/// The virtual devices `bench --dpdk` measures on, in order.
enum BenchDevice: CaseIterable {
    /// net_null: receiving allocates mbufs, sending frees them.
    case null
    /// net_ring: what the port sends comes back to it, through an rte_ring.
    case ring

    var device: String { self == .null ? "net_null0" : "net_ring0" }
}

/// A pool whose buffers come in from a DPDK port's receive queue and go out
/// of its transmit queue, as a forwarding NF's do: the benchmark's packets
/// cross a real port both ways (the benchmark writes each flow's template
/// into the mbuf it receives, as a NIC would fill it).
final class PortPool: BenchPool {
    let port: DPDKQueue
    let received = PacketBatch(capacity: 1)
    let sending = PacketBatch(capacity: 32)
    var dataRoom: Int { port.port.pool.dataRoom }
    var headroom: Int { port.port.pool.headroom }

    /// A pool over queue 0 of `port`; with `seed`, that many fresh mbufs are
    /// sent on the port first (a ring port gives them back to receive).
    init(port: DPDKPort, seed: Int = 0) throws {
        self.port = DPDKQueue(port: port, queue: 0)
        let seeds = PacketBatch(capacity: 32)
        for _ in 0..<seed {
            guard var packet = port.pool.allocate(), packet.setLength(60) else {
                throw ValidationError("bench: no mbuf to seed port \(port.id) with")
            }
            packet.data.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
            seeds.append(packet)
            if seeds.isFull { self.port.send(seeds) }
        }
        self.port.send(seeds)
    }

    func refill(_ batch: PacketBatch) {
        var dropped = 0
        _ = port.receive(into: batch, as: 0, at: .zero, dropped: &dropped)
    }

    func recycle(_ batch: PacketBatch) {
        port.send(batch)
    }

    /// One packet from the port (the runner never asks; refills come a
    /// burst at a time).
    func allocate() -> Packet? {
        received.removeAll()
        var dropped = 0
        _ = port.receive(into: received, as: 0, at: .zero, limit: 1, dropped: &dropped)
        return received.isEmpty ? nil : received[0]
    }

    func release(_ packet: Packet) {
        _ = sending.append(packet)
        if sending.isFull { port.send(sending) }
    }
}

/// How the benchmark takes packets in and gives them back: from a pool, or
/// a burst at a time from a port's receive queue and to its transmit queue,
/// as `run` does.
protocol BenchPool: PacketPool {
    /// Fills `batch`'s free room with fresh packets.
    func refill(_ batch: PacketBatch)
    /// Gives `batch`'s packets back (on a port: sends them) and empties it.
    func recycle(_ batch: PacketBatch)
}

extension BufferPool: BenchPool {
    func refill(_ batch: PacketBatch) {
        while !batch.isFull, let packet = allocate() { batch.append(packet) }
    }

    func recycle(_ batch: PacketBatch) {
        release(batch)
    }
}

/// The options every NF benchmark takes.
struct NFBenchOptions: ParsableArguments {
    @Option(help: "Established flows per run (spread over the workers).")
    var flows: Int = 10_000

    @Option(help: "Packet size in bytes (60-1500).")
    var packetSize: Int = 64

    @Option(help: "The share of packets that start a new flow (0-1).")
    var newFlowRatio: Double = 0

    @Option(help: "Worker threads, each with its own batches, pool and store session.")
    var workers: Int = 1

    @Option(help: "Seconds to measure (after a warm-up pass that creates the flows).")
    var seconds: Double = 3

    @Option(help: "Measure exactly this many packets per worker instead of timing (for callgrind): the clock then advances 60 ns a packet instead of following the wall, so that counts repeat.")
    var packets: Int?

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @Flag(help: "Take each packet's buffer from a DPDK port's receive queue and send it out of its transmit queue (no hugepages): a net_null port, then a net_ring port, each beside dpdk-testpmd's io forwarding on the same device in the same run, and on net_null the I/O floor (the same loop with no graph).")
    var dpdk = false

    @Option(name: .customLong("worker-cpus"), help: ArgumentHelp("--dpdk: the CPU the worker is pinned to (default: the first the process may run on that is not the EAL main lcore's, as testpmd's forwarding lcore is placed; with no such CPU, any).",
                               discussion: "Written as DPDK's -l lists are: \"1\"."),
            transform: { try WorkerCPUs(parsing: $0) })
    var workerCPUs: WorkerCPUs?

    func validate() throws {
        if dpdk && workers != 1 { throw ValidationError("--dpdk: one worker") }
        if let workerCPUs {
            guard dpdk else { throw ValidationError("--worker-cpus is for --dpdk") }
            try workerCPUs.check(workers: workers)
        }
        guard flows >= 1 else { throw ValidationError("--flows must be at least 1") }
        guard (60...1500).contains(packetSize) else { throw ValidationError("--packet-size must be 60 to 1500") }
        guard (0...1).contains(newFlowRatio) else { throw ValidationError("--new-flow-ratio must be 0 to 1") }
        guard workers >= 1 else { throw ValidationError("--workers must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        if let packets, packets < 1 { throw ValidationError("--packets must be at least 1") }
    }
}

/// `statelessnf bench nat`: the NAT over traffic generated in memory.
struct BenchNAT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nat",
        abstract: "Measure the NAT over generated traffic: Mpps, ns and allocations per packet, state operations per packet, store round trips per batch.",
        discussion: """
            Each worker builds its flows' packets once, runs them through the real graph \
            once to create the mappings, then loops: each packet is a pooled buffer filled \
            from its flow's template (as a NIC would fill it), sent through the graph, and \
            released. A share of packets (--new-flow-ratio) comes from endpoints never seen, \
            whose mappings expire after 2 s so that ports come back.
            """)

    @OptionGroup var bench: NFBenchOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try Self.measure(.nat, bench: bench, storeOptions: storeOptions, runtime: runtime)
    }

    /// The NF under test: how to build its graph, its schema, and the table
    /// an established flow reads.
    struct Subject: Sendable {
        let graph: @Sendable () throws -> Graph
        let schema: StateSchema
        let readTable: Int
        let namespace: String
    }

    /// The NAT or the load balancer, sized for the run: every flow's UDP
    /// packets go to 198.51.100.1:53 (the LB's VIP, with four backends).
    static func subject(_ kind: NFKind, bench: NFBenchOptions, namespace: String) throws -> Subject {
        // New flows live 2 s: room for two seconds of them at up to 8 Mpps.
        let newFlows = bench.newFlowRatio > 0 ? Int(16_000_000 * bench.newFlowRatio) : 0
        switch kind {
        case .nat:
            var config = NATConfig()
            // Enough external ports for every flow, with room for uneven pairing.
            let addresses = 4 + (bench.flows + newFlows) / 30_000
            config.external = (0..<addresses).map { "100.\(64 + $0 / 65536).\($0 / 256 % 256).\($0 % 256 + 1)" }
            config.ports = "1024-65535"
            config.capacity = bench.flows + newFlows + 1024
            config.timeouts.udp = bench.newFlowRatio > 0 ? 2 : 300
            config.namespace = namespace
            let nat = NAT(try config.resolved())
            return Subject(graph: { try nat.graph() }, schema: nat.state.schema, readTable: nat.state.mappings.id,
                           namespace: namespace)
        case .lb:
            var config = LBConfig()
            config.vips = [LBVIPConfig(vip: "198.51.100.1:53/udp", backends: (1...4).map { "192.168.1.\($0):53" })]
            config.capacity = bench.flows + newFlows + 1024
            config.timeouts.udp = bench.newFlowRatio > 0 ? 2 : 300
            config.namespace = namespace
            let lb = LoadBalancer(try config.resolved())
            return Subject(graph: { try lb.graph() }, schema: lb.state.schema, readTable: lb.state.flows.id,
                           namespace: namespace)
        case .firewall:
            var config = FirewallConfig()
            config.capacity = bench.flows + newFlows + 1024
            config.timeouts.udpUnreplied = bench.newFlowRatio > 0 ? 2 : 300
            config.namespace = namespace
            let rules = try FirewallRuleSet.parse(BenchFirewall.rules, file: "bench.rules")
            let firewall = Firewall(try config.resolved(ruleSet: rules))
            return Subject(graph: { try firewall.graph() }, schema: firewall.state.schema,
                           readTable: firewall.state.connections4.id, namespace: namespace)
        }
    }

    /// Measures `kind` and prints the result.
    static func measure(_ kind: NFKind, bench: NFBenchOptions, storeOptions: StoreOptions, runtime: RuntimeOptions) throws {
        let store = try storeOptions.makeStore()
        let redis = store as? RedisStore
        // On a shared Redis, a deployment of its own, removed at the end.
        let namespace = redis == nil ? "bench-\(kind.rawValue)" : "bench-\(kind.rawValue)-\(getpid())"
        let nat = try subject(kind, bench: bench, namespace: namespace)
        try store.prepare(nat.schema)
        defer { try? redis?.removeDeployment(namespace: namespace) }
        let workers = bench.workers
        let flowsPerWorker = max(1, bench.flows / workers)
        let options = bench
        let batch = runtime.batch
        let inFlight = runtime.inFlight(for: store)
        // The path through the store unless the flow cache is asked for.
        let flowCache = runtime.requestedFlowCache ?? 0
        // On DPDK: testpmd's io forwarding on net_null and on net_ring first
        // (a process of its own each), then the EAL here with a port of each.
        let peers = bench.dpdk ? BenchDevice.allCases.map { TestPMD.forwarding(device: $0, seconds: bench.seconds) } : []
        // And on net_null with its mbuf headers packed, as the NF's mbufs are:
        // the same memory layout on both sides.
        let packed = bench.dpdk ? TestPMD.forwarding(device: .null, seconds: bench.seconds, packed: true) : nil
        let packedRate = try? packed?.get()
        // And testpmd's macswap on net_null, which touches every packet as the
        // NF does, its mbufs packed (with a page an mbuf, their data lines
        // share one L1 set as their headers do).
        let macswap = bench.dpdk ? TestPMD.forwarding("macswap", device: .null, seconds: bench.seconds, packed: true) : nil
        let ports: [DPDKPort] = try bench.dpdk ? {
            try EAL.start(arguments: EAL.defaultArguments() + BenchDevice.allCases.map { "--vdev=\($0.device)" })
            let pool = try MbufPool(name: "bench", count: 8191)
            return try BenchDevice.allCases.indices.map { try DPDKPort(id: UInt16($0), pool: pool) }
        }() : []
        // On DPDK the worker keeps one core, as testpmd's forwarding lcore does.
        let workerCPUs = bench.dpdk
            ? try WorkerCPUs.resolve(bench.workerCPUs, workers: workers, pinByDefault: true)
            : nil
        /// Runs the workers (on `port` when given) and gathers what they measured.
        func runWorkers(port: DPDKPort?, device: BenchDevice?) -> Results {
            let results = Results()
            let done = DispatchGroup()
            for worker in 0..<workers {
                done.enter()
                let thread = Thread {
                    defer { done.leave() }
                    do {
                        // On DPDK, an EAL thread, as `run`'s workers are: the
                        // mempool's per-lcore cache then serves its mbufs.
                        if port != nil { try EAL.registerThread(cpu: workerCPUs?[worker]) }
                        defer { if port != nil { EAL.unregisterThread() } }
                        results.add(try Self.work(worker: worker, flows: flowsPerWorker, nat: nat, store: store,
                                                  options: options, batch: batch, inFlight: inFlight, flowCache: flowCache,
                                                  namespace: namespace, port: port, device: device))
                    } catch {
                        results.fail("\(error)")
                    }
                }
                thread.stackSize = 8 << 20
                thread.start()
            }
            done.wait()
            return results
        }
        let results = runWorkers(port: ports.first, device: ports.isEmpty ? nil : .null)
        // On DPDK, net_ring after net_null.
        let ring = ports.count > 1 ? runWorkers(port: ports[1], device: .ring) : nil
        if let failure = ring?.failure { throw ValidationError(failure) }
        if let failure = results.failure { throw ValidationError(failure) }
        let summary = results.merged
        let measuredAllocations = results.measuredAllocations
        let packets = Double(summary.packetsIn)
        let mpps = packets / summary.elapsed / 1e6
        let nsPerPacket = summary.elapsed * 1e9 * Double(workers) / packets
        let allocationsPerPacket = Double(measuredAllocations) / packets
        let stats = (store as? EmbeddedStore)?.statistics(namespace: namespace)
        let tableName = nat.schema.tables[nat.readTable].name
        let tableBytes = stats?.tables[tableName]?.bytes ?? 0
        let capacity = nat.schema.tables[nat.readTable].capacity
        let limit = results.limitSeconds > 0 ? Double(results.limitKeys) / results.limitSeconds * Double(workers) : nil
        let readsPerPacket = Double(summary.stateOperations) / packets
        // testpmd's rate is the median of its seconds: the NF's median slice
        // is the same statistic (a shared machine's neighbours pull means down).
        let medianSlice = results.sliceRates.isEmpty ? nil : results.sliceRates.sorted()[results.sliceRates.count / 2]
        if bench.json {
            print(try SummaryPrinter.json(summary, extra: [
                "mpps": mpps, "nsPerPacket": nsPerPacket, "allocationsPerPacket": allocationsPerPacket,
                "bestSliceMpps": results.sliceRates.max() ?? 0,
                "medianSliceMpps": medianSlice ?? 0,
                "stateOperationsPerPacket": Double(summary.stateOperations) / packets,
                "roundTripsPerBatch": Double(summary.roundTrips) / Double(max(summary.batches, 1)),
                "flowCacheEntries": flowCache,
                "flowCacheHitsPerPacket": Double(summary.counters["flowCache.hits"] ?? 0) / packets,
                "flows": bench.flows, "workers": workers, "workerCPUs": workerCPUs ?? [], "batch": batch, "packetSize": bench.packetSize,
                "newFlowRatio": bench.newFlowRatio, "mappingsTableBytes": tableBytes,
                "mappingsTableBytesPerFlow": Double(tableBytes) / Double(capacity),
                "store": redis == nil ? "memory" : "redis",
                "testpmdMpps": (try? peers.first?.get()) ?? 0,
                "shareOfTestpmd": (try? peers.first?.get()).map { mpps / $0 } ?? 0,
                "medianShareOfTestpmd": (try? peers.first?.get()).flatMap { rate in medianSlice.map { $0 / rate } } ?? 0,
                "testpmdPackedMpps": packedRate ?? 0,
                "shareOfTestpmdPacked": packedRate.map { mpps / $0 } ?? 0,
                "medianShareOfTestpmdPacked": packedRate.flatMap { rate in medianSlice.map { $0 / rate } } ?? 0,
                "testpmdMacswapMpps": (try? macswap?.get()) ?? 0,
                "shareOfTestpmdMacswap": (try? macswap?.get()).map { mpps / $0 } ?? 0,
                "ringMpps": ring?.mpps ?? 0,
                "ringTestpmdMpps": (try? peers.last?.get()) ?? 0,
                "shareOfRingTestpmd": (try? peers.last?.get()).flatMap { rate in ring.map { $0.mpps / rate } } ?? 0,
                "ioFloorMpps": results.ioFloorMpps ?? 0,
                "ioFloorShareOfTestpmd": results.ioFloorMpps.flatMap { floor in (try? peers.first?.get()).map { floor / $0 } } ?? 0,
                "ioFloorShareOfTestpmdPacked": results.ioFloorMpps.flatMap { floor in packedRate.map { floor / $0 } } ?? 0,
                "storeLimitKeysPerSecond": limit ?? 0,
                "shareOfStoreLimit": limit.map { mpps * 1e6 * readsPerPacket / $0 } ?? 0,
            ]))
            return
        }
        let slices = results.sliceRates.sorted()
        var rows = [
            ("rate", String(format: "%.2f Mpps, %.1f ns per packet per worker", mpps, nsPerPacket)),
            ("slices", slices.isEmpty ? "-" : String(format: "best %.2f Mpps, median %.2f Mpps (%d slices: a shared machine's neighbours come and go)",
                                                     slices.last!, slices[slices.count / 2], slices.count)),
            ("allocations", String(format: "%.4f per packet (%d in the measured loops)", allocationsPerPacket, measuredAllocations)),
            ("worker CPU", !bench.dpdk ? "-" : workerCPUs.map { "\($0.map(String.init).joined(separator: ",")) (the EAL main lcore's: \(EAL.mainLcoreCPUs.map(String.init).joined(separator: ",")))" }
                ?? "any of the process's"),
            ("flow cache size", flowCache == 0 ? "none: every packet crosses the graph and the store"
                : "\(flowCache) entries per worker"),
        ]
        for (device, peer) in zip(BenchDevice.allCases, peers) {
            let rate = device == .null ? mpps : ring?.mpps ?? 0
            var row = device == .null ? "" : String(format: "the NF %.2f Mpps; ", rate)
            switch peer {
            case .success(let peerRate) where device == .null:
                row += String(format: "testpmd io %.2f Mpps with its default pool, same run: the NF at %.1f%% of it", peerRate, rate / peerRate * 100)
                switch packed {
                case .success(let packedRate)?:
                    row += String(format: "; with mbuf headers packed (--mp-alloc=xbuf), as the NF's are, %.2f Mpps: the NF at %.1f%% of it", packedRate, rate / packedRate * 100)
                    if let medianSlice {
                        row += String(format: " (its median second against the NF's median slice: %.1f%%)", medianSlice / packedRate * 100)
                    }
                case .failure(let error)?: row += "; with mbuf headers packed not measured: \(error)"
                case nil: break
                }
            case .success(let peerRate):
                row += String(format: "testpmd io %.2f Mpps, same run: the NF at %.1f%% of it", peerRate, rate / peerRate * 100)
            case .failure(let error):
                row += "testpmd io not measured: \(error)"
            }
            rows.append((device.device, row))
        }
        if let floor = results.ioFloorMpps, case .success(let io)? = peers.first {
            rows.append(("I/O floor", String(format: "%.2f Mpps on net_null with no graph (burst in, frames written, burst out): %.1f%% of testpmd io with its default pool%@; the NF runs at %.1f%% of it",
                                             floor, floor / io * 100, packedRate.map { String(format: ", %.1f%% with mbuf headers packed", floor / $0 * 100) } ?? "",
                                             mpps / floor * 100)))
        }
        if let macswap {
            rows.append(("macswap", (try? macswap.get()).map { String(format: "testpmd macswap on net_null, mbufs packed (--mp-alloc=xbuf), %.2f Mpps, same run: the NF at %.1f%% of it", $0, mpps / $0 * 100) }
                         ?? "testpmd macswap not measured"))
        }
        if let limit {
            rows.append(("store limit", String(format: "%.2f M keys/s: pipelined MGET of %d keys, %d in flight, %d connection(s), same server, same run",
                                               limit / 1e6, batch, inFlight, workers)))
            rows.append(("of the limit", String(format: "%.0f%% (%.2f M store operations/s)",
                                                mpps * 1e6 * readsPerPacket / limit * 100, mpps * readsPerPacket)))
        } else {
            rows.append(("\(tableName) table", "\(tableBytes) bytes for \(capacity) entries (\(String(format: "%.1f", Double(tableBytes) / Double(capacity))) bytes per flow, both directions)"))
        }
        print(SummaryPrinter.render(summary, title: "bench \(kind.rawValue): \(bench.flows) flows, \(bench.packetSize)-byte packets, new-flow ratio \(bench.newFlowRatio), \(workers) worker(s), batch \(batch), store \(storeOptions.store)", ports: [0: "out"], extra: rows))
    }

    /// One worker: build, warm up, measure. On Redis, the measurement
    /// alternates with the store's own limit (a pipelined read loop of the
    /// NAT's keys on a connection of its own, as many keys per MGET and as
    /// many in flight), slice by slice, so that both see the same machine.
    static func work(worker: Int, flows: Int, nat: Subject, store: any StateStore, options: NFBenchOptions, batch: Int,
                     inFlight: Int, flowCache: Int, namespace: String, port: DPDKPort? = nil,
                     device: BenchDevice? = nil) throws -> Measured {
        // The pool's own type, not an existential: the loop calls it per packet.
        if let port {
            // A ring port gives back what it is sent: packets to circulate.
            return try work(pool: PortPool(port: port, seed: device == .ring ? 1024 : 0), worker: worker, flows: flows, nat: nat, store: store,
                            options: options, batch: batch, inFlight: inFlight, flowCache: flowCache, namespace: namespace,
                            ioFloor: device == .null)
        }
        return try work(pool: BufferPool(count: batch * (inFlight + 2), dataRoom: max(2048, options.packetSize)),
                        worker: worker, flows: flows, nat: nat, store: store, options: options, batch: batch,
                        inFlight: inFlight, flowCache: flowCache, namespace: namespace)
    }

    /// Writes the 64-byte frame at `source` into `packet`, as one constant
    /// copy (the general `setBytes` calls `memmove` for any length).
    @inline(__always)
    static func writeLine(_ packet: inout Packet, from source: UnsafeRawPointer) {
        precondition(packet.setLength(64), "a pool buffer too small for a 64-byte frame")
        packet.data.copyMemory(from: source, byteCount: 64)
        packet.originalLength = 64
    }

    static func work<Pool: BenchPool>(pool: Pool, worker: Int, flows: Int, nat: Subject, store: any StateStore,
                                       options: NFBenchOptions, batch: Int, inFlight: Int, flowCache: Int,
                                       namespace: String, ioFloor: Bool = false) throws -> Measured {
        let runner = GraphRunner(graph: try nat.graph(), pool: pool, session: try store.makeSession(for: nat.schema),
                                 batchCapacity: batch, inFlight: inFlight, flowCacheEntries: flowCache)
        // On DPDK with a flow cache, bursts go to the cache where they lie first, as `run`'s do.
        let portPool = pool as? PortPool
        let inPlace = portPool.flatMap { portPool in
            flowCache > 0 ? InPlacePath(runner: runner, outputs: Dictionary(uniqueKeysWithValues: runner.ports.map { ($0, portPool.port) })) : nil
        }
        let payload = [UInt8](repeating: 0x5A, count: options.packetSize - 42)
        // Flow f of worker w: host 10.0.0.0 + w * 2^22 + f / 4 + 1, port 10000 + f % 4.
        func frame(_ flow: Int, port: UInt16? = nil) -> [UInt8] {
            let host = IPv4Address(0x0A00_0000 | UInt32(worker) << 22 | UInt32(flow / 4 + 1))
            return PacketBuilder().ipv4(source: host, destination: IPv4Address(198, 51, 100, 1))
                .udp(source: port ?? UInt16(10000 + flow % 4), destination: 53, payload: payload,
                     zeroChecksum: port != nil)
        }
        // The flows' packets, back to back in one buffer.
        let frameSize = frame(0).count
        let templates = UnsafeMutableRawBufferPointer.allocate(byteCount: flows * frameSize, alignment: 64)
        defer { templates.deallocate() }
        for flow in 0..<flows {
            frame(flow).withUnsafeBytes { (templates.baseAddress! + flow * frameSize).copyMemory(from: $0.baseAddress!, byteCount: frameSize) }
        }
        // Plain values: reading an option's property wrapper per packet costs a metadata lookup.
        let newFlowRatio = options.newFlowRatio
        let seconds = options.seconds
        let packetLimit = options.packets
        // New flows: templates from 256 hosts of their own (so that paired
        // pooling spreads them over the external addresses), whose source port
        // is patched per packet (their UDP checksum is zero: none).
        let newFlowHosts = 256
        var newFlows = (0..<newFlowHosts).map { host in
            PacketBuilder().ipv4(source: IPv4Address(0x0A00_0000 | UInt32(worker) << 22 | 0x3F_0000 | UInt32(host)),
                                 destination: IPv4Address(198, 51, 100, 1))
                .udp(source: 1, destination: 53, payload: payload, zeroChecksum: true)
        }
        var nextNewPort: UInt16 = 1
        var nextNewHost = 0
        let batchBuffer = PacketBatch(capacity: batch)
        var now = Timestamp.wallClock()
        let clockStart = now.nanoseconds
        var cursor = 0
        var newFlowCredit = 0.0
        var lastSweep = 0

        // A 64-byte frame is written as a NIC writes it: one whole line.
        let wholeLine = frameSize == 64
        /// The next frame to write: an established flow's, or a new flow's.
        func nextFrame(_ write: (UnsafeRawPointer, Int) -> Void) {
            newFlowCredit += newFlowRatio
            if newFlowCredit >= 1 {
                newFlowCredit -= 1
                nextNewHost += 1
                if nextNewHost == newFlowHosts {
                    nextNewHost = 0
                    nextNewPort = nextNewPort == 65535 ? 1 : nextNewPort + 1
                }
                newFlows[nextNewHost][34] = UInt8(nextNewPort >> 8)
                newFlows[nextNewHost][35] = UInt8(nextNewPort & 0xFF)
                newFlows[nextNewHost].withUnsafeBytes { write($0.baseAddress!, $0.count) }
            } else {
                write(templates.baseAddress! + cursor * frameSize, frameSize)
                cursor = cursor + 1 == flows ? 0 : cursor + 1
            }
        }
        func fill() {
            // As `run` does: the pool (a port's receive queue on DPDK) fills
            // the batch's room, and each packet is written where it lies.
            let start = batchBuffer.count
            pool.refill(batchBuffer)
            if newFlowRatio == 0 && wholeLine {
                for i in start..<batchBuffer.count {
                    writeLine(&batchBuffer[i], from: templates.baseAddress! + cursor &* 64)
                    cursor = cursor + 1 == flows ? 0 : cursor + 1
                }
                return
            }
            for i in start..<batchBuffer.count {
                nextFrame { _ = batchBuffer[i].setBytes(UnsafeRawBufferPointer(start: $0, count: $1)) }
            }
        }
        /// Receives a burst from the port and writes its frames where they lie.
        func receiveFrames(_ queue: DPDKQueue) -> Int {
            let count = queue.receiveBurst(limit: batch)
            if newFlowRatio == 0 && wholeLine {
                // In locals, so that the loop keeps them in registers.
                let base = templates.baseAddress!, last = flows - 1
                var next = cursor
                for i in 0..<count {
                    queue.write(i, from: base + next &* 64, length: 64)
                    next = next == last ? 0 : next &+ 1
                }
                cursor = next
            } else {
                for i in 0..<count { nextFrame { queue.write(i, from: $0, length: $1) } }
            }
            return count
        }
        func clock() -> Timestamp {
            // Counting instructions (--packets), the clock advances 60 ns a
            // packet (16.7 Mpps), so that leases, refreshes and sweeps come
            // at the same packets however slowly an instrumented run goes.
            packetLimit == nil ? Timestamp.wallClock() : Timestamp(nanoseconds: clockStart &+ Int64(runner.packetsIn) &* 60)
        }
        func step() {
            if let inPlace, let queue = portPool?.port {
                // As `run` does on DPDK: a burst at a time, served in place
                // where the cache can, the rest admitted as packets.
                if runner.canAdmit {
                    let count = receiveFrames(queue)
                    now = clock()
                    let left = inPlace.serve(queue, count: count, as: 0, at: now)
                    var dropped = 0
                    queue.makePackets(left, into: batchBuffer, as: 0, at: now, dropped: &dropped)
                    if !batchBuffer.isEmpty { runner.admit(batchBuffer, now: now) }
                }
            } else {
                while runner.canAdmit {
                    fill()
                    now = clock()
                    runner.admit(batchBuffer, now: now)
                }
            }
            runner.advance(wait: !runner.canAdmit)
            runner.drain { _, packets in pool.recycle(packets) }
            // As a live run's driver sweeps 1,024 index slots a millisecond:
            // here every 16,384 packets (a millisecond at 16 Mpps), so that
            // instruction counts do not depend on how fast the run went.
            if runner.packetsIn - lastSweep >= 16_384 {
                lastSweep = runner.packetsIn
                _ = runner.session!.expire(now: now, budget: 1024)
            }
        }
        // Warm-up: every flow once.
        for _ in 0..<((flows + batch - 1) / batch + inFlight) { step() }
        while runner.inFlight > 0 { runner.advance(wait: true); runner.drain { _, p in pool.recycle(p) } }
        let redis = store as? RedisStore
        let limitKeys = try redis?.recordKeys(namespace: namespace, table: nat.readTable, limit: 100_000).shuffled()
        var measured = Measured()
        measured.sliceRates.reserveCapacity(16)
        let startPackets = runner.packetsIn, startTrips = runner.roundTrips, startOps = runner.stateOperations
        let startBatches = runner.batchesIn
        let startHits = runner.counters["flowCache.hits"]
        let startDrops = runner.drops
        let startAllocations = sk_allocation_count()
        var elapsedNanoseconds: Int64 = 0
        if let packetLimit {
            let start = Timestamp.wallClock()
            while runner.packetsIn - startPackets < packetLimit { step() }
            while runner.inFlight > 0 { runner.advance(wait: true); runner.drain { _, p in pool.recycle(p) } }
            elapsedNanoseconds = Timestamp.wallClock().nanoseconds - start.nanoseconds
        } else {
            // Slices: on Redis to alternate with the store's limit; on the
            // embedded store to report the best and the median slice too, as a
            // shared machine's neighbours come and go within a run.
            let slices = limitKeys == nil ? 10 : 6
            for _ in 0..<slices {
                let slicePackets = runner.packetsIn
                let start = Timestamp.wallClock()
                let deadline = start.nanoseconds + Int64(seconds * 1e9) / Int64(slices)
                var iterations = 0
                repeat {
                    step()
                    iterations += 1
                } while iterations & 63 != 0 || Timestamp.wallClock().nanoseconds < deadline
                while runner.inFlight > 0 { runner.advance(wait: true); runner.drain { _, p in pool.recycle(p) } }
                let took = Timestamp.wallClock().nanoseconds - start.nanoseconds
                elapsedNanoseconds += took
                measured.sliceRates.append(Double(runner.packetsIn - slicePackets) / (Double(took) / 1e9) / 1e6)
                if let redis, let limitKeys, !limitKeys.isEmpty {
                    let allocationsBefore = sk_allocation_count()
                    let (keys, took) = try RedisReadLimit.measure(redis.endpoint, keys: limitKeys, batch: batch,
                                                                 inFlight: inFlight, seconds: seconds / Double(slices))
                    measured.limitKeys += keys
                    measured.limitSeconds += took
                    measured.excludedAllocations += sk_allocation_count() - allocationsBefore
                }
            }
        }
        let elapsed = Double(elapsedNanoseconds) / 1e9
        let allocations = sk_allocation_count() - startAllocations - measured.excludedAllocations
        var summary = RunSummary()
        summary.packetsIn = runner.packetsIn - startPackets
        summary.roundTrips = runner.roundTrips - startTrips
        summary.stateOperations = runner.stateOperations - startOps
        summary.batches = runner.batchesIn - startBatches
        summary.drops = runner.drops.reduce(into: [:]) { result, item in
            let delta = item.value - (startDrops[item.key] ?? 0)
            if delta > 0 { result[item.key] = delta }
        }
        summary.packetsOut = [0: summary.packetsIn - summary.drops.values.reduce(0, +)]
        summary.counters = runner.counters.all
        summary.counters["flowCache.hits"] = runner.counters["flowCache.hits"] - startHits
        summary.elapsed = elapsed
        measured.summary = summary
        measured.allocations = allocations
        if ioFloor && packetLimit == nil {
            // The I/O floor: the same loop without the graph (the pool's
            // burst, each frame written, the burst sent), which no NF on this
            // runtime and device can pass.
            var floorPackets = 0
            let floorStart = Timestamp.wallClock().nanoseconds
            let floorDeadline = floorStart + Int64(seconds * 1e9 / 2)
            repeat {
                for _ in 0..<64 {
                    if inPlace != nil, let queue = portPool?.port {
                        let count = receiveFrames(queue)
                        floorPackets += queue.sendReceived(count)
                    } else {
                        fill()
                        floorPackets += batchBuffer.count
                        pool.recycle(batchBuffer)
                    }
                }
            } while Timestamp.wallClock().nanoseconds < floorDeadline
            let took = Double(Timestamp.wallClock().nanoseconds - floorStart) / 1e9
            measured.ioFloorMpps = Double(floorPackets) / took / 1e6
        }
        return measured
    }

    /// What one worker measured.
    struct Measured {
        var summary = RunSummary()
        /// Each slice's rate, in Mpps.
        var sliceRates: [Double] = []
        var allocations: UInt64 = 0
        /// The store's read limit: keys read, in seconds.
        var limitKeys = 0
        var limitSeconds = 0.0
        var excludedAllocations: UInt64 = 0
        /// The I/O floor's rate (the loop without the graph), if measured.
        var ioFloorMpps: Double? = nil
    }

    /// Workers' results, gathered under a lock.
    final class Results: @unchecked Sendable {
        let lock = NSLock()
        var merged = RunSummary()
        var measuredAllocations: UInt64 = 0
        var limitKeys = 0
        var limitSeconds = 0.0
        var failure: String? = nil
        /// The workers' rates slice by slice, added up.
        var sliceRates: [Double] = []
        /// The I/O floor's rate, if measured.
        var ioFloorMpps: Double? = nil

        func add(_ result: Measured) {
            lock.lock()
            merged.merge(result.summary)
            for (i, rate) in result.sliceRates.enumerated() {
                if i < sliceRates.count { sliceRates[i] += rate } else { sliceRates.append(rate) }
            }
            measuredAllocations += result.allocations
            limitKeys += result.limitKeys
            limitSeconds += result.limitSeconds
            if let floor = result.ioFloorMpps { ioFloorMpps = (ioFloorMpps ?? 0) + floor }
            lock.unlock()
        }

        func fail(_ message: String) {
            lock.lock()
            failure = message
            lock.unlock()
        }

        /// The workers' rate together.
        var mpps: Double { Double(merged.packetsIn) / max(merged.elapsed, 1e-9) / 1e6 }
    }
}

/// `statelessnf bench lb`: the load balancer over traffic generated in memory.
struct BenchLB: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lb",
        abstract: "Measure the load balancer over generated traffic, as bench nat does the NAT.",
        discussion: """
            Every flow is UDP to the VIP 198.51.100.1:53, balanced over four backends; the \
            established path reads the flow's assignment, rewrites the destination and sends.
            """)

    @OptionGroup var bench: NFBenchOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try BenchNAT.measure(.lb, bench: bench, storeOptions: storeOptions, runtime: runtime)
    }
}

/// `statelessnf bench firewall`: the stateful firewall over traffic generated in memory.
struct BenchFirewall: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "firewall",
        abstract: "Measure the stateful firewall over generated traffic, as bench nat does the NAT.",
        discussion: """
            Every flow is UDP from an inside host to 198.51.100.1:53; the rules are those \
            of a typical edge firewall (below). The established path reads the flow's \
            connection, tracks the packet, evaluates the rules and sends.

            \(rules)
            """)

    /// The rules the benchmark's firewall runs.
    static let rules = """
        accept state established,related
        drop state invalid
        accept out state new
        accept in proto tcp dport 22,80,443 state new
        policy in drop
        policy out accept
        """

    @OptionGroup var bench: NFBenchOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try BenchNAT.measure(.firewall, bench: bench, storeOptions: storeOptions, runtime: runtime)
    }
}
