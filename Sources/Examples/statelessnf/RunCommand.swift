import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit
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
    var input: String

    @Option(help: "Where packets go: pcap:PATH, or dpdk:PORT.")
    var output: String

    @Option(parsing: .unconditional, help: ArgumentHelp("DPDK: EAL arguments added to the defaults (for example \"--vdev=net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap\").",
                               discussion: "The defaults need no hugepages and no NICs: --no-huge -m 256 --no-pci --no-shconf --file-prefix=statelessnf-PID -l 0 (Documentation/DPDK.md)."))
    var eal: String?

    @Option(help: "Worker threads (each with its own batches and store session).")
    var workers: Int = 1

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @OptionGroup var nat: NATOptions
    @OptionGroup(title: "Load balancer options") var lb: LBOptions
    @OptionGroup(title: "Firewall options") var firewall: FirewallOptions
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1 to 64, not \(workers)") }
        switch (try DPDKRun.endpoint(input, "--input"), try DPDKRun.endpoint(output, "--output")) {
        case (.pcap, .pcap):
            guard eal == nil else { throw ValidationError("--eal is for dpdk: inputs and outputs") }
        case (.dpdk, .dpdk):
            guard workers == 1 else { throw ValidationError("--workers: a DPDK run has one worker for now") }
        default:
            throw ValidationError("--input and --output: both pcap: or both dpdk:")
        }
    }

    func run() throws {
        let function = try SelectedNF(nf, nat: nat, lb: lb, firewall: firewall)
        let reloading = function.reload.map(Self.reloadOnHangUp)
        defer { reloading?.cancel() }
        let store = try storeOptions.makeStore()
        if case .dpdk(let inputPort) = try DPDKRun.endpoint(input, "--input"),
           case .dpdk(let outputPort) = try DPDKRun.endpoint(output, "--output") {
            let summary = try DPDKRun(function: function, store: store, runtime: runtime, eal: eal,
                                      input: inputPort, output: outputPort).run()
            print(json ? try SummaryPrinter.json(summary)
                       : SummaryPrinter.render(summary, title: "\(nf.rawValue): \(input) -> \(output)", ports: function.portNames))
            return
        }
        let graph = function.graph
        let outputPath = String(output.dropFirst(5))
        let sink = try CaptureSink(paths: Dictionary(function.portNames.keys.map { ($0, outputPath) },
                                                     uniquingKeysWith: { a, _ in a }))
        let inputPath = String(input.dropFirst(5))
        let summary: RunSummary
        let inFlight = runtime.inFlight(for: store)
        let schema = function.schema
        if workers == 1 {
            let pool = BufferPool(count: runtime.batch * (inFlight + 2), dataRoom: 9216)
            let runner = GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                                     batchCapacity: runtime.batch, inFlight: inFlight)
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
            let batch = runtime.batch
            let group = WorkerGroup(workers: workers, batch: batch, clock: .replay) { _, pool in
                GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema),
                            batchCapacity: batch, inFlight: inFlight)
            }
            log.info("running \(workers) workers over \(inputPath)")
            summary = try group.run(try CaptureReader(path: inputPath), port: function.inputPort, into: sink)
        }
        try sink.close()
        print(json ? try SummaryPrinter.json(summary)
                   : SummaryPrinter.render(summary, title: "\(nf.rawValue): \(input) -> \(output)", ports: function.portNames))
    }

    /// Calls `reload` on every SIGHUP, logging what it applied.
    static func reloadOnHangUp(_ reload: @escaping @Sendable () throws -> String) -> any DispatchSourceSignal {
        // A parent may have started this process with signals blocked (a
        // test runner's thread does): SIGHUP must reach this thread.
        var hangUp = sigset_t()
        sigemptyset(&hangUp)
        sigaddset(&hangUp, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &hangUp, nil)
        signal(SIGHUP, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler {
            do {
                let applied = try reload()
                log.notice("reloaded the configuration", metadata: ["applied": "\(applied)"])
            } catch {
                log.error("reloading the configuration failed; keeping the running one", metadata: ["error": "\(error)"])
            }
        }
        source.resume()
        return source
    }
}
