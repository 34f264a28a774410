import ArgumentParser
import Dispatch
import Foundation
import StatelessKit
import StatelessKitDPDK

/// `statelessnf run` on DPDK ports: the EAL started with the defaults and
/// `--eal`, one mbuf pool, the input and output ports, and the NF's graph
/// between them on one worker, until SIGINT or SIGTERM or, for a net_pcap
/// input, the capture's last packet.
struct DPDKRun {
    /// Where packets come from or go.
    enum Endpoint { case pcap(String), dpdk(UInt16) }

    /// `pcap:PATH` or `dpdk:PORT`, checked; `option` names the flag in errors.
    static func endpoint(_ text: String, _ option: String) throws -> Endpoint {
        if text.hasPrefix("pcap:"), text.count > 5 { return .pcap(String(text.dropFirst(5))) }
        if text.hasPrefix("dpdk:"), let port = UInt16(text.dropFirst(5)) { return .dpdk(port) }
        throw ValidationError("\(option) \(text): give pcap:PATH or dpdk:PORT (a port number)")
    }

    let function: SelectedNF
    let store: any StateStore
    let runtime: RuntimeOptions
    let eal: String?
    let input: UInt16
    let output: UInt16

    func run() throws -> RunSummary {
        // A parent may have started this process with signals blocked (a test
        // runner's thread does): SIGINT and SIGTERM must reach it, before the
        // EAL starts threads of its own.
        var stopping = sigset_t()
        sigemptyset(&stopping)
        sigaddset(&stopping, SIGINT)
        sigaddset(&stopping, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &stopping, nil)
        let arguments = EAL.defaultArguments() + (eal?.split(whereSeparator: \.isWhitespace).map(String.init) ?? [])
        do {
            try EAL.start(arguments: arguments)
        } catch {
            throw ValidationError("--eal: the EAL did not start with \(arguments.joined(separator: " ")): \(error)")
        }
        guard Int(max(input, output)) < EAL.portCount else {
            throw ValidationError("dpdk:\(max(input, output)): DPDK has \(EAL.portCount) port(s) (add one with --eal --vdev=...)")
        }
        let inFlight = runtime.inFlight(for: store)
        let pool = try MbufPool(name: "statelessnf", count: max(8191, runtime.batch * (inFlight + 2) * 4 - 1))
        let inPort = try DPDKPort(id: input, pool: pool)
        let outPort = output == input ? inPort : try DPDKPort(id: output, pool: pool)
        let source = DPDKSource(port: inPort, graphPort: function.inputPort,
                                expected: try Self.netPcapRecords(arguments, port: Int(input)))
        let sink = DPDKSink(ports: Dictionary(uniqueKeysWithValues: function.portNames.keys.map { ($0, outPort) }))
        let signals = [SIGINT, SIGTERM].map { number in
            signal(number, SIG_IGN)
            let watch = DispatchSource.makeSignalSource(signal: number, queue: .global())
            watch.setEventHandler { source.stop() }
            watch.resume()
            return watch
        }
        defer { signals.forEach { $0.cancel() } }
        let runner = GraphRunner(graph: function.graph, pool: pool, session: try store.makeSession(for: function.schema),
                                 batchCapacity: runtime.batch, inFlight: inFlight)
        var summary = try Driver(runner: runner, pool: pool, clock: .wall).run(source, into: sink)
        // DPDK's own counts, per port, before the ports close.
        for port in Set([input, output]) {
            let stats = (port == input ? inPort : outPort).statistics
            for (name, value) in stats { summary.counters["dpdk.port\(port).\(name)"] = value }
        }
        try sink.close()
        summary.counters["dpdk.received"] = source.received
        summary.counters["dpdk.droppedOnReceipt"] = source.dropped
        summary.counters["dpdk.sent"] = sink.sent.values.reduce(0, +)
        summary.counters["dpdk.unsent"] = sink.unsent.values.reduce(0, +)
        return summary
    }

    /// The number of packets in the capture a net_pcap port reads
    /// (`rx_pcap=PATH` of the port's `--vdev`, ports numbered in the order
    /// of the `--vdev` arguments), or `nil` when the port reads no file.
    static func netPcapRecords(_ arguments: [String], port: Int) throws -> Int? {
        var devices: [String] = []
        var next = false
        for argument in arguments {
            if next { devices.append(argument); next = false }
            else if argument == "--vdev" { next = true }
            else if argument.hasPrefix("--vdev=") { devices.append(String(argument.dropFirst(7))) }
        }
        guard port < devices.count, devices[port].hasPrefix("net_pcap"),
              let file = devices[port].split(separator: ",").first(where: { $0.hasPrefix("rx_pcap=") })?.dropFirst(8)
        else { return nil }
        let reader = try CaptureReader(path: String(file))
        var count = 0
        while try reader.next() != nil { count += 1 }
        return count
    }
}
