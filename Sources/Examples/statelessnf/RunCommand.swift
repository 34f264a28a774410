import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitDPDK
import StatelessKitStore

/// `statelessnf run`: runs an NF from an input to an output.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a network function over an input into an output.",
        discussion: """
            On SIGHUP the load balancer rereads its --config file (new flows follow the \
            backends it lists, flows already assigned keep theirs) and the firewall its rule \
            file (every packet from then on is decided by the new rules; tracked connections \
            stay). A file with a mistake is refused and the running configuration stays.

            Inputs and outputs are pcap:PATH today (a named pipe works as an input). With one input, the NAT takes the side \
            of each packet from its internal prefixes, and what leaves either side is \
            written to the output. Time is the capture's (expiry in a replay is the same \
            on every run).

            Examples:
              statelessnf run nat --input pcap:inside.pcap --output pcap:out.pcap \\
                  --external 203.0.113.1 --ports 20000-29999
              statelessnf run lb --input pcap:clients.pcap --output pcap:out.pcap \\
                  --vip 10.0.0.10:80/tcp --backend 192.168.1.1:8080@2 --backend 192.168.1.2:8080
              statelessnf run firewall --input pcap:mixed.pcap --output pcap:passed.pcap \\
                  --rules firewall.rules --internal 10.0.0.0/8,2001:db8:1::/48
            """)

    @Argument(help: "The network function: \(NFKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var nf: NFKind

    @Option(help: "Where packets come from: pcap:PATH, or dpdk:PORT (a DPDK port number).")
    var input: String?

    @Option(help: "Where packets go: pcap:PATH, or dpdk:PORT.")
    var output: String?

    @Option(help: "DPDK, two ports: the port on the inside (the NAT's and the firewall's internal hosts, the load balancer's backends), dpdk:PORT; with --outside, instead of --input and --output.")
    var inside: String?

    @Option(help: "DPDK, two ports: the port on the outside (the internet, the load balancer's clients), dpdk:PORT.")
    var outside: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("DPDK: EAL arguments added to the defaults (for example \"--vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\").",
                               discussion: "The defaults need no hugepages and no NICs: --no-huge -m 256 --no-pci --no-shconf --file-prefix=statelessnf-PID -l 0 (Documentation/DPDK.md)."))
    var eal: String?

    @Option(help: ArgumentHelp("DPDK: a port's IPv4 network, dpdk:PORT=ADDRESS/LENGTH[,gateway=ADDRESS] (repeat per port).",
                               discussion: "The port then answers ARP for its address and writes each leaving frame's Ethernet addresses (its own, and its next hop's, learned by ARP), as a router's interface does. Without it, frames leave with the Ethernet addresses they came with."))
    var address: [String] = []

    @Option(help: "DPDK: stop after this many packets have been received (all workers).")
    var count: Int?

    @Option(help: ArgumentHelp("DPDK: this instance's name in its deployment: it registers and sends heartbeats (with its load) to the registry, for a controller.",
                               discussion: "The registry is --registry, or the --store when that is Redis."))
    var instance: String?

    @Option(help: "The Redis URL of the instance registry (default: the --store, when that is Redis).")
    var registry: String?

    @Option(help: "Milliseconds between heartbeats.")
    var heartbeat: Double = 10

    @Option(help: "DPDK: microseconds a worker sleeps between polls once its ports have been quiet for 100 polls (0: poll without pause). Several instances sharing few cores want it.")
    var idleSleep: Double = 0

    @Flag(help: "DPDK: keep running after the captures net_pcap ports read have ended, until SIGINT or SIGTERM (a memif peer keeps its link while it drains).")
    var untilSignal = false

    @Option(help: "Worker threads, each with its own batches and store session; on DPDK, each owns one receive and one transmit queue of every port.")
    var workers: Int = 1

    @Option(name: .customLong("worker-cpus"), help: ArgumentHelp("DPDK: the CPU each worker is pinned to, as DPDK's -l lists are written (\"1\", \"1,3\", \"2-5\"): one each, in worker order.",
                               discussion: "Without it a worker may run on any CPU the process may, so that instances sharing a machine share its cores; pinned, a worker keeps its core and its caches, as a DPDK lcore does."),
            transform: { try WorkerCPUs(parsing: $0) })
    var workerCPUs: WorkerCPUs?

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @OptionGroup var nat: NATOptions
    @OptionGroup(title: "Load balancer options") var lb: LBOptions
    @OptionGroup(title: "Firewall options") var firewall: FirewallOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1 to 64, not \(workers)") }
        if let count, count < 1 { throw ValidationError("--count must be at least 1, not \(count)") }
        guard (0...100_000).contains(idleSleep) else { throw ValidationError("--idle-sleep must be 0 to 100000 microseconds") }
        try workerCPUs?.check(workers: workers)
        let onDPDK: Bool
        switch try endpoints() {
        case .pcap:
            guard eal == nil, address.isEmpty, count == nil, !untilSignal, idleSleep == 0, workerCPUs == nil else {
                throw ValidationError("--eal, --address, --count, --idle-sleep, --until-signal and --worker-cpus are for dpdk: inputs and outputs")
            }
            onDPDK = false
        case .dpdk:
            _ = try networks()
            onDPDK = true
        }
        if instance == nil && registry != nil { throw ValidationError("--registry needs an --instance name") }
        if let instance {
            guard onDPDK else { throw ValidationError("--instance is for dpdk: inputs and outputs") }
            guard !instance.isEmpty, instance.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
                throw ValidationError("--instance \(instance): letters, digits, '-', '_' and '.' only")
            }
            guard registry != nil || storeOptions.store != "memory" else {
                throw ValidationError("--instance: give --registry redis://... (the store is memory)")
            }
            guard heartbeat >= 1 && heartbeat <= 10_000 else { throw ValidationError("--heartbeat must be 1 to 10000 ms") }
        }
    }

    /// Where packets come from and go, checked.
    enum Endpoints {
        case pcap(input: String, output: String)
        case dpdk(DPDKRun.Wiring, twoPorts: Bool)
    }

    func endpoints() throws -> Endpoints {
        switch (input, output, inside, outside) {
        case (let input?, let output?, nil, nil):
            switch (try DPDKRun.endpoint(input, "--input"), try DPDKRun.endpoint(output, "--output")) {
            case (.pcap(let input), .pcap(let output)):
                return .pcap(input: input, output: output)
            case (.dpdk(let input), .dpdk(let output)):
                // The graph's own ports are filled in once the NF is built.
                return .dpdk(DPDKRun.Wiring(inputs: [(input, 0)], outputs: [0: output]), twoPorts: false)
            default:
                throw ValidationError("--input and --output: both pcap: or both dpdk:")
            }
        case (nil, nil, let inside?, let outside?):
            guard case .dpdk(let insidePort) = try DPDKRun.endpoint(inside, "--inside"),
                  case .dpdk(let outsidePort) = try DPDKRun.endpoint(outside, "--outside") else {
                throw ValidationError("--inside and --outside are DPDK ports: dpdk:PORT")
            }
            guard insidePort != outsidePort else { throw ValidationError("--inside and --outside must be different ports") }
            let (i, o) = (SelectedNF.insideGraphPort, SelectedNF.outsideGraphPort)
            return .dpdk(DPDKRun.Wiring(inputs: [(insidePort, i), (outsidePort, o)], outputs: [i: insidePort, o: outsidePort]),
                         twoPorts: true)
        default:
            throw ValidationError("give --input and --output, or (DPDK, two ports) --inside and --outside")
        }
    }

    /// The `--address` networks by DPDK port.
    func networks() throws -> [UInt16: PortNetwork] {
        var networks: [UInt16: PortNetwork] = [:]
        for text in address {
            let parts = text.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, parts[0].hasPrefix("dpdk:"), let port = UInt16(parts[0].dropFirst(5)) else {
                throw ValidationError("--address \(text): give dpdk:PORT=ADDRESS/LENGTH[,gateway=ADDRESS]")
            }
            guard networks[port] == nil else { throw ValidationError("--address: dpdk:\(port) is given twice") }
            do {
                networks[port] = try PortNetwork.parse(parts[1])
            } catch {
                throw ValidationError("--address \(text): \(error)")
            }
        }
        return networks
    }

    func run() throws {
        let endpoints = try endpoints()
        var twoPorts = false
        if case .dpdk(_, let two) = endpoints { twoPorts = two }
        let function = try SelectedNF(nf, nat: nat, lb: lb, firewall: firewall, twoPorts: twoPorts)
        let reloading = function.reload.map(Self.reloadOnHangUp)
        defer { reloading?.cancel() }
        let store = try storeOptions.makeStore()
        let title = "\(nf.rawValue): " + (twoPorts ? "inside \(inside!), outside \(outside!)" : "\(input!) -> \(output!)")
        guard case .pcap(let inputPath, let outputPath) = endpoints else {
            guard case .dpdk(var wiring, _) = endpoints else { return }
            if !twoPorts {
                // One port in: every output port of the graph leaves by the output.
                wiring.inputs = [(wiring.inputs[0].0, function.inputPort)]
                wiring.outputs = Dictionary(uniqueKeysWithValues: function.portNames.keys.map { ($0, wiring.outputs[0]!) })
            }
            var membership: DPDKRun.Membership? = nil
            if let instance {
                let url = registry ?? storeOptions.store
                do {
                    let endpoint = try RedisEndpoint(url: url)
                    membership = DPDKRun.Membership(registry: try InstanceRegistry(endpoint, namespace: function.schema.namespace),
                                                    name: instance, nf: nf.rawValue, interval: heartbeat / 1000)
                } catch {
                    throw ValidationError("--registry \(url): \(error)")
                }
            }
            let summary = try DPDKRun(function: function, store: store, runtime: runtime, eal: eal, wiring: wiring,
                                      workers: workers, workerCPUs: workerCPUs,
                                      networks: try networks(), count: count,
                                      untilSignal: untilSignal, membership: membership, idleSleep: idleSleep / 1e6).run()
            print(json ? try SummaryPrinter.json(summary) : SummaryPrinter.render(summary, title: title, ports: function.portNames))
            return
        }
        let graph = function.graph
        let sink = try CaptureSink(paths: Dictionary(function.portNames.keys.map { ($0, outputPath) },
                                                     uniquingKeysWith: { a, _ in a }))
        let summary: RunSummary
        let inFlight = runtime.inFlight(for: store)
        let schema = function.schema
        if workers == 1 {
            let pool = BufferPool(count: runtime.batch * (inFlight + 2), dataRoom: 9216)
            let runner = GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                                     batchCapacity: runtime.batch, inFlight: inFlight, flowCacheEntries: runtime.flowCache)
            let source = try CaptureSource(path: inputPath, port: function.inputPort)
            let driver = Driver(runner: runner, pool: pool, clock: .replay)
            var lastReport = Date()
            summary = try driver.run(source, into: sink) { packets in
                if Date().timeIntervalSince(lastReport) > 2 {
                    log.info("\(packets) packets so far")
                    lastReport = Date()
                }
                return true
            }
        } else {
            let (batch, flowCache) = (runtime.batch, runtime.flowCache)
            let group = WorkerGroup(workers: workers, batch: batch, clock: .replay) { _, pool in
                GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                            batchCapacity: batch, inFlight: inFlight, flowCacheEntries: flowCache)
            }
            log.info("running \(workers) workers over \(inputPath)")
            summary = try group.run(try CaptureReader(path: inputPath), port: function.inputPort, into: sink)
        }
        try sink.close()
        print(json ? try SummaryPrinter.json(summary) : SummaryPrinter.render(summary, title: title, ports: function.portNames))
    }

    /// Calls `reload` on every SIGHUP, logging what it applied.
    static func reloadOnHangUp(_ reload: @escaping @Sendable () throws -> String) -> any DispatchSourceSignal {
        SignalWatch.watch([SIGHUP]) {
            do {
                let applied = try reload()
                log.notice("reloaded the configuration", metadata: ["applied": "\(applied)"])
            } catch {
                log.error("reloading the configuration failed; keeping the running one", metadata: ["error": "\(error)"])
            }
        }[0]
    }
}
