import ArgumentParser
import Atomics
import CoreMetrics
import Dispatch
import Foundation
import StatelessKit
import StatelessKitDPDK
import StatelessKitStore

/// `statelessnf run` on DPDK ports: the EAL started with the defaults and
/// `--eal`, one mbuf pool, every port with a receive and a transmit queue
/// per worker (RSS spreading flows where the device hashes), and one worker
/// thread per queue pair, each registered as an EAL thread with its own
/// runner and store session. It runs until SIGINT or SIGTERM, `--count`
/// packets, or the end of the captures net_pcap inputs read.
struct DPDKRun {
    /// Where packets come from or go.
    enum Endpoint { case pcap(String), dpdk(UInt16) }

    /// `pcap:PATH` or `dpdk:PORT`, checked; `option` names the flag in errors.
    static func endpoint(_ text: String, _ option: String) throws -> Endpoint {
        if text.hasPrefix("pcap:"), text.count > 5 { return .pcap(String(text.dropFirst(5))) }
        if text.hasPrefix("dpdk:"), let port = UInt16(text.dropFirst(5)) { return .dpdk(port) }
        throw ValidationError("\(option) \(text): give pcap:PATH or dpdk:PORT (a port number)")
    }

    /// Which DPDK port feeds each graph input and takes each graph output.
    struct Wiring {
        /// (DPDK port, graph port) for each input.
        var inputs: [(UInt16, UInt16)]
        /// The DPDK port of each graph output port.
        var outputs: [UInt16: UInt16]
        var ports: [UInt16] { Array(Set(inputs.map(\.0) + outputs.values)).sorted() }
    }

    let function: SelectedNF
    let store: any StateStore
    let runtime: RuntimeOptions
    let eal: String?
    let wiring: Wiring
    let workers: Int
    /// The CPU each worker is pinned to (`nil`: any of the process's).
    let workerCPUs: WorkerCPUs?
    let networks: [UInt16: PortNetwork]
    let count: Int?
    /// Whether to run on after net_pcap captures end.
    let untilSignal: Bool

    /// The instance's place in its deployment: where it reports itself.
    struct Membership {
        let registry: InstanceRegistry
        let name: String
        let nf: String
        let interval: Double
    }
    let membership: Membership?
    /// Seconds a quiet worker sleeps between polls (0: none).
    let idleSleep: Double
    /// How long to wait for the ports' links to come up before running anyway.
    let linkWait: Double = 5

    func run() throws -> RunSummary {
        // A parent may have started this process with signals blocked (a test
        // runner's thread does): SIGINT and SIGTERM must reach it, before the
        // EAL starts threads of its own.
        SignalWatch.unblock([SIGINT, SIGTERM])
        let arguments = EAL.defaultArguments() + (eal?.split(whereSeparator: \.isWhitespace).map(String.init) ?? [])
        do {
            try EAL.start(arguments: arguments)
        } catch {
            throw ValidationError("--eal: the EAL did not start with \(arguments.joined(separator: " ")): \(error)")
        }
        for port in wiring.ports + networks.keys where Int(port) >= EAL.portCount {
            throw ValidationError("dpdk:\(port): DPDK has \(EAL.portCount) port(s) (add one with --eal --vdev=...)")
        }
        let cpus = try WorkerCPUs.resolve(workerCPUs, workers: workers, pinByDefault: false)
        let inFlight = runtime.inFlight(for: store)
        let pool = try MbufPool(name: "statelessnf",
                                count: max(8191, workers * runtime.batch * (inFlight + 2) * 4 * wiring.ports.count - 1))
        var ports: [UInt16: DPDKPort] = [:]
        for id in wiring.ports {
            do {
                ports[id] = try DPDKPort(id: id, rxQueues: workers, txQueues: workers, pool: pool)
            } catch {
                throw ValidationError("dpdk:\(id): \(error)")
            }
        }
        defer { for port in ports.values { try? port.stop() } }
        for port in ports.values.sorted(by: { $0.id < $1.id }) {
            log.info("dpdk port up", metadata: [
                "port": "\(port.id)", "mac": "\(port.macAddress)", "queues": "\(workers)",
                "rss": "\(workers > 1 ? (port.rss ? "by addresses and ports" : "the device's own spreading") : "one queue")",
                "network": "\(networks[port.id].map { "\($0)" } ?? "none: frames pass with their Ethernet addresses")"])
        }
        try waitForLinks(ports.values)
        let captures = untilSignal ? [:] : try Dictionary(uniqueKeysWithValues: wiring.inputs.map { ($0.0, try Self.netPcapRecords(arguments, port: Int($0.0))) })
        let neighbors = NeighborTable()
        let budget = count.map { ManagedAtomic<Int>($0) }
        let sources = (0..<workers).map { worker in
            DPDKSource(inputs: wiring.inputs.map { dpdkPort, graphPort in
                let files = captures[dpdkPort] ?? nil
                return DPDKSource.Input(queue: DPDKQueue(port: ports[dpdkPort]!, queue: worker), graphPort: graphPort,
                                        expected: files.map { worker < $0.count ? $0[worker] : 0 })
            }, link: networks.isEmpty ? nil : LinkLayer(networks: networks, neighbors: neighbors), budget: budget)
        }
        let sinks = sources.enumerated().map { worker, source in
            var queues: [UInt16: DPDKQueue] = [:]
            for (dpdkPort, queue) in zip(source.inputs.map(\.queue.port.id), source.inputs.map(\.queue)) { queues[dpdkPort] = queue }
            var outputs: [UInt16: DPDKQueue] = [:]
            for (graphPort, dpdkPort) in wiring.outputs {
                outputs[graphPort] = queues[dpdkPort] ?? DPDKQueue(port: ports[dpdkPort]!, queue: worker)
                queues[dpdkPort] = outputs[graphPort]
            }
            return DPDKSink(outputs: outputs, link: source.link)
        }
        let signals = SignalWatch.watch([SIGINT, SIGTERM]) { sources.forEach { $0.stop() } }
        defer { signals.forEach { $0.cancel() } }
        let heartbeats = membership.map { membership in
            HeartbeatSender(registry: membership.registry, name: membership.name, nf: membership.nf, workers: workers,
                            interval: membership.interval, activity: { sources.map(\.activity) },
                            packets: { sources.map(\.received).reduce(0, +) })
        }
        heartbeats?.start()
        let results = WorkerResults()
        let done = DispatchGroup()
        let (graph, schema, batch, store, idleSleep) = (function.graph, function.schema, runtime.batch, store, idleSleep)
        let flowCache = runtime.flowCache
        for worker in 0..<workers {
            done.enter()
            // Each worker's source and sink are its own from here on.
            let parts = WorkerParts(source: sources[worker], sink: sinks[worker], pool: pool, all: sources)
            let thread = Thread {
                defer { done.leave() }
                let (source, sink, pool) = (parts.source, parts.sink, parts.pool)
                do {
                    try EAL.registerThread(cpu: cpus?[worker])
                    defer { EAL.unregisterThread() }
                    let runner = GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                                             batchCapacity: batch, inFlight: inFlight, flowCacheEntries: flowCache)
                    var summary = try Driver(runner: runner, pool: pool, clock: .wall, idleSleep: idleSleep).run(source, into: sink)
                    // Where a pinned worker ran: its CPU, as the kernel reports it.
                    if cpus != nil { summary.counters["dpdk.worker\(worker).cpu"] = EAL.currentCPU ?? -1 }
                    try sink.close()
                    results.add(summary)
                } catch {
                    results.fail("worker \(worker): \(error)")
                    parts.all.forEach { $0.stop() }
                }
            }
            thread.name = "statelessnf-worker-\(worker)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        // The ports' statistics to swift-metrics each second while the workers run.
        let gauges = PortGauges()
        while done.wait(timeout: .now() + 1) == .timedOut {
            for port in ports.values { gauges.record(port) }
        }
        for port in ports.values { gauges.record(port) }
        heartbeats?.stop(.stopped)
        if let failure = results.failure { throw ValidationError(failure) }
        var summary = results.merged
        // DPDK's own counts, per port and queue, before the ports close.
        for port in ports.values {
            for (name, value) in port.statistics { summary.counters["dpdk.port\(port.id).\(name)"] = value }
        }
        summary.counters["dpdk.received"] = sources.map(\.received).reduce(0, +)
        summary.counters["dpdk.droppedOnReceipt"] = sources.map(\.dropped).reduce(0, +)
        summary.counters["dpdk.sent"] = sinks.map { $0.sent.values.reduce(0, +) }.reduce(0, +)
        summary.counters["dpdk.unsent"] = sinks.map { $0.unsent.values.reduce(0, +) }.reduce(0, +)
        var latency = LatencyHistogram()
        for sink in sinks { latency.merge(sink.latency) }
        if latency.count > 0 {
            summary.counters["dpdk.latency.p50Microseconds"] = Int(latency.percentile(0.5))
            summary.counters["dpdk.latency.p99Microseconds"] = Int(latency.percentile(0.99))
            summary.counters["dpdk.latency.p999Microseconds"] = Int(latency.percentile(0.999))
            summary.counters["dpdk.latency.maxMicroseconds"] = Int(latency.maximum / 1000)
        }
        for link in sources.compactMap(\.link) {
            for (name, value) in link.counters { summary.counters["dpdk.link.\(name)", default: 0] += value }
        }
        if !networks.isEmpty { summary.counters["dpdk.link.neighbors"] = neighbors.count }
        return summary
    }

    /// Waits up to `linkWait` seconds for every port's link (a memif port's
    /// peer may connect later); runs anyway after that, with a warning.
    func waitForLinks(_ ports: some Collection<DPDKPort>) throws {
        let deadline = Date().addingTimeInterval(linkWait)
        while let down = ports.first(where: { !$0.isLinkUp }) {
            guard Date() < deadline else {
                log.warning("dpdk port link still down; running anyway", metadata: ["port": "\(down.id)"])
                return
            }
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// The number of packets in each capture a net_pcap port reads, by
    /// queue (the `rx_pcap=PATH` arguments of the port's `--vdev`, in order;
    /// ports numbered in the order of the `--vdev` arguments; none for a
    /// port that only writes), or `nil` when the port is not a net_pcap
    /// reading files.
    static func netPcapRecords(_ arguments: [String], port: Int) throws -> [Int]? {
        var devices: [String] = []
        var next = false
        for argument in arguments {
            if next { devices.append(argument); next = false }
            else if argument == "--vdev" { next = true }
            else if argument.hasPrefix("--vdev=") { devices.append(String(argument.dropFirst(7))) }
        }
        guard port < devices.count, devices[port].hasPrefix("net_pcap") else { return nil }
        let options = devices[port].split(separator: ",")
        // An interface is live; a port with neither a file nor an interface
        // to read brings nothing.
        guard !options.contains(where: { $0.hasPrefix("rx_iface") || $0.hasPrefix("iface=") }) else { return nil }
        let files = options.filter { $0.hasPrefix("rx_pcap=") }.map { String($0.dropFirst(8)) }
        return try files.map { file in
            let reader = try CaptureReader(path: file)
            var count = 0
            while try reader.next() != nil { count += 1 }
            return count
        }
    }
}

/// What a worker thread takes with it: its source and sink (no other
/// thread uses them), the shared pool (DPDK's mempool is thread-safe) and
/// every source, to stop them all when it fails.
struct WorkerParts: @unchecked Sendable {
    let source: DPDKSource
    let sink: DPDKSink
    let pool: MbufPool
    let all: [DPDKSource]
}

/// The workers' summaries, gathered under a lock.
final class WorkerResults: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var merged = RunSummary()
    private(set) var failure: String?
    func add(_ summary: RunSummary) { lock.withLock { merged.merge(summary) } }
    func fail(_ message: String) { lock.withLock { failure = failure ?? message } }
}

/// A port's DPDK statistics as swift-metrics gauges
/// (`statelessnf_dpdk_received{port="0"}` and so on, queues as a dimension).
final class PortGauges {
    private var gauges: [String: Gauge] = [:]

    func record(_ port: DPDKPort) {
        for (name, value) in port.statistics {
            var dimensions = [("port", "\(port.id)")]
            var metric = name
            if name.hasPrefix("queue"), let dot = name.firstIndex(of: ".") {
                dimensions.append(("queue", String(name[name.index(name.startIndex, offsetBy: 5)..<dot])))
                metric = String(name[name.index(after: dot)...])
            }
            let key = "\(port.id).\(name)"
            let gauge = gauges[key] ?? Gauge(label: "statelessnf_dpdk_\(metric)", dimensions: dimensions)
            gauges[key] = gauge
            gauge.record(value)
        }
    }
}
