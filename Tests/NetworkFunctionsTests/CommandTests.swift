import Foundation
import StatelessKit
import StoreTestSupport
import Testing

/// `statelessnf` as a user runs it: the built command, its output and its
/// exit status.
@Suite("The statelessnf command")
struct CommandTests {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/statelessnf").path

    static var built: Bool { FileManager.default.isExecutableFile(atPath: binary) }

    /// Runs the command (or `executable`, with `environment` added to the
    /// test's); returns its exit status, standard output and error.
    static func run(_ arguments: [String], executable: String = binary,
                    environment: [String: String] = [:]) throws -> (Int32, String, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let error = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: error, as: UTF8.self))
    }

    /// A fresh folder for a test's files (the test removes it).
    static func folder(_ name: String) throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("statelessnf-\(name)-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// A rule file in `folder` with `text`; its path.
    static func rules(in folder: URL, _ text: String) throws -> String {
        let path = folder.appendingPathComponent("edge.rules").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    /// `statelessnf run` reading a named pipe that the test writes captured
    /// frames into, one at a time, in a folder removed afterwards.
    final class PipedRun {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("statelessnf-piped-\(UUID())")
        var out: String { folder.appendingPathComponent("out.pcap").path }
        let process = Process()
        var writer: PcapWriter? = nil

        init() throws {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(at: folder) }

        /// A file in the folder.
        func file(_ name: String) -> URL { folder.appendingPathComponent(name) }

        /// Starts `run ARGUMENTS --input pcap:PIPE --output pcap:OUT`, one packet a batch.
        func start(_ arguments: [String]) throws {
            let fifo = file("in.pcap").path
            #expect(mkfifo(fifo, 0o600) == 0)
            process.executableURL = URL(fileURLWithPath: CommandTests.binary)
            process.arguments = ["run"] + arguments + ["--input", "pcap:\(fifo)", "--output", "pcap:\(out)",
                                                       "--batch", "1", "--in-flight", "1"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            // Opening the pipe waits for the NF to open it.
            writer = try PcapWriter(path: fifo, header: PcapFileHeader(linkType: .ethernet))
        }

        func send(_ frames: [[UInt8]]) throws {
            for frame in frames {
                try frame.withUnsafeBytes { try writer!.write(timestamp: Timestamp(seconds: 1_700_000_000, nanoseconds: 0),
                                                             originalLength: frame.count, bytes: $0) }
            }
            try writer!.flush()
        }

        /// Sends SIGHUP and gives the NF time to reload.
        func hangUp() {
            kill(process.processIdentifier, SIGHUP)
            usleep(500_000)
        }

        /// Closes the pipe and waits for the NF; returns what it wrote.
        func finish() throws -> [[UInt8]] {
            try writer!.close()
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            let reader = try CaptureReader(path: out)
            var frames: [[UInt8]] = []
            while let record = try reader.next() { frames.append(Array(record.bytes)) }
            return frames
        }
    }

    @Test("graph prints DOT", .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func graph() throws {
        let (status, output, _) = try Self.run(["graph", "nat", "--format", "dot"])
        #expect(status == 0)
        #expect(output.hasPrefix("digraph \"nat\" {") && output.contains("nat-outbound"))
    }

    @Test("demo: with a shared store every flow keeps its mapping",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func demo() throws {
        let (status, output, _) = try Self.run(["demo", "--flows", "300", "--rounds", "4", "--json"])
        #expect(status == 0)
        let result = try Self.json(output)
        let shared = try #require(result["sharedStore"] as? [String: Any])
        let separate = try #require(result["statePerInstance"] as? [String: Any])
        #expect(shared["keptMapping"] as? Int == 300 && shared["lostForLackOfState"] as? Int == 0)
        #expect((separate["lostForLackOfState"] as? Int ?? 0) > 0)
    }

    @Test("run and replay over a capture", .enabled(if: built && SharedTraces.available,
                                                     "skipped: the command is not built or ../shared/traces is absent"))
    func runAndReplay() throws {
        let trace = SharedTraces.path("nDPI/iphone.pcap")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("statelessnf-run-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let (status, output, _) = try Self.run(["run", "nat", "--input", "pcap:\(trace)", "--output", "pcap:\(out)",
                                                "--external", "203.0.113.7", "--json"])
        #expect(status == 0)
        let summary = try Self.json(output)
        #expect(summary["packetsIn"] as? Int == 500)
        #expect((summary["flowsCreated"] as? Int ?? 0) > 10)
        #expect(FileManager.default.fileExists(atPath: out))
        let (replayStatus, replayOutput, _) = try Self.run(["replay", "nat", "--trace", trace, "--json"])
        #expect(replayStatus == 0)
        let report = try Self.json(replayOutput)
        #expect(report["mismatches"] as? Int == 0 && (report["matches"] as? Int ?? 0) > 100)
    }

    @Test("the load balancer runs over a capture, prints its graph, and benches",
          .enabled(if: built && SharedTraces.available, "skipped: the command is not built or ../shared/traces is absent"))
    func loadBalancer() throws {
        let trace = SharedTraces.path("PcapPlusPlus/example.pcap")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("statelessnf-lb-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        // The capture's busiest web server becomes a VIP with two backends.
        let (status, output, error) = try Self.run(["run", "lb", "--input", "pcap:\(trace)", "--output", "pcap:\(out)",
                                                    "--vip", "212.199.202.9:80/tcp", "--backend", "192.168.1.1:8080@2",
                                                    "--backend", "192.168.1.2:8080", "--json"])
        #expect(status == 0, "\(error)")
        let summary = try Self.json(output)
        #expect(summary["flowsCreated"] as? Int == 15, "the capture's 15 connections to the VIP")
        let drops = try #require(summary["drops"] as? [String: Int])
        #expect(Set(drops.keys) == ["noFlow"], "only traffic that is not the VIP's is dropped: \(drops)")
        let (graphStatus, dot, _) = try Self.run(["graph", "lb", "--format", "dot"])
        #expect(graphStatus == 0 && dot.contains("lb-forward") && dot.contains("lb-return"))
        let (benchStatus, bench, benchError) = try Self.run(["bench", "lb", "--flows", "500", "--seconds", "0.2", "--json"])
        #expect(benchStatus == 0, "\(benchError)")
        let result = try Self.json(bench)
        #expect((result["mpps"] as? Double ?? 0) > 0 && result["stateOperationsPerPacket"] as? Double != nil)
        let (bad, _, badError) = try Self.run(["run", "lb", "--input", "pcap:\(trace)", "--output", "pcap:\(out)",
                                               "--vip", "212.199.202.9:80/sctp", "--backend", "192.168.1.1:8080"])
        #expect(bad != 0 && badError.contains("the protocol must be tcp or udp"), "\(badError)")
    }

    @Test("the firewall runs, replays and benches; batches of 32 decide each packet as batches of 1 do; a bad rule names its line",
          .enabled(if: built && SharedTraces.available, "skipped: the command is not built or ../shared/traces is absent"))
    func firewall() throws {
        let folder = try Self.folder("fw")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = try Self.rules(in: folder, "accept state established,related\naccept out state new\npolicy in drop\npolicy out drop\n")
        let trace = SharedTraces.path("PcapPlusPlus/example.pcap")
        var drops: [[String: Int]] = []
        for batch in ["1", "32"] {
            let (status, output, error) = try Self.run(["run", "firewall", "--input", "pcap:\(trace)",
                                                        "--output", "pcap:\(folder.path)/out-\(batch).pcap", "--rules", rules,
                                                        "--batch", batch, "--json"])
            #expect(status == 0, "\(error)")
            let summary = try Self.json(output)
            drops.append(try #require(summary["drops"] as? [String: Int]))
            #expect((summary["packetsOut"] as? [String: Int])?["0"] == 4629, "\(summary)")
        }
        #expect(drops[0] == drops[1] && drops[0] == ["invalid": 2], "the same verdicts whatever the batch: \(drops)")

        let out = folder.appendingPathComponent("outside.pcap").path, inside = folder.appendingPathComponent("inside.pcap").path
        let (status, output, error) = try Self.run(["replay", "firewall", "--trace", SharedTraces.path("suricata-verify/tcp-out-of-window.pcap"),
                                                    "--rules", rules, "--internal", "192.0.2.0/24", "--outside-out", out,
                                                    "--inside-out", inside, "--verdicts"])
        #expect(status == 0, "\(error)")
        #expect(output.contains("1 out pass\n2 in pass\n3 out drop invalid/beyondWindow\n"), "\(output)")
        #expect(output.contains("invalid/beyondWindow 1"))
        let outside = try CaptureReader(path: out), insideReader = try CaptureReader(path: inside)
        var outCount = 0, inCount = 0
        while try outside.next() != nil { outCount += 1 }
        while try insideReader.next() != nil { inCount += 1 }
        #expect(outCount == 1 && inCount == 1, "the SYN went out, the SYN-ACK in, the out-of-window segment nowhere")

        let (graphStatus, dot, _) = try Self.run(["graph", "firewall", "--format", "dot"])
        #expect(graphStatus == 0 && dot.contains("filter"))
        let (benchStatus, bench, benchError) = try Self.run(["bench", "firewall", "--flows", "500", "--seconds", "0.2", "--json"])
        #expect(benchStatus == 0, "\(benchError)")
        let result = try Self.json(bench)
        #expect((result["mpps"] as? Double ?? 0) > 0 && result["stateOperationsPerPacket"] as? Double != nil)

        let bad = folder.appendingPathComponent("bad.rules").path
        try "accept state established\naccept out proto tcp dport 80,443 state new\ndrop in sport 1-2\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let (badStatus, _, badError) = try Self.run(["run", "firewall", "--input", "pcap:\(trace)", "--output", "pcap:\(out)",
                                                     "--rules", bad])
        #expect(badStatus != 0 && badError.contains("bad.rules:3: ports need 'proto tcp' or 'proto udp' in the same rule"), "\(badError)")
        let (noRules, _, noRulesError) = try Self.run(["run", "firewall", "--input", "pcap:\(trace)", "--output", "pcap:\(out)"])
        #expect(noRules != 0 && noRulesError.contains("rules: give a rule file"), "\(noRulesError)")
    }

    @Test("run lb rereads its config on SIGHUP: new flows follow the new backends, assigned flows stay",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func reloadOnHangUp() throws {
        let run = try PipedRun()
        let config = run.file("lb.yaml")
        func backends(_ list: String) throws {
            try "vips:\n  - vip: 10.0.0.10:80/tcp\n    backends: [\(list)]\n".write(to: config, atomically: true, encoding: .utf8)
        }
        try backends("192.168.1.1:8080")
        try run.start(["lb", "--config", config.path])
        try run.send((0..<100).map { LBBench.toVIP($0, flags: .syn) })
        usleep(1_000_000)
        try backends("192.168.1.1:8080@0, 192.168.1.2:8080")
        run.hangUp()
        try run.send((0..<100).map { LBBench.toVIP($0) } + (100..<200).map { LBBench.toVIP($0, flags: .syn) })
        var seen: [UInt16: Set<IPv4Address>] = [:]
        for bytes in try run.finish() {
            let frame = TestFrame(bytes)
            seen[frame.port(.source), default: []].insert(frame.ipv4Address(.destination)!)
        }
        #expect(seen.count == 200)
        for i in 0..<200 {
            let expected = i < 100 ? IPv4Address(192, 168, 1, 1) : IPv4Address(192, 168, 1, 2)
            #expect(seen[LBBench.client(i).port] == [expected], "client \(i)")
        }
    }

    @Test("run firewall rereads its rule file on SIGHUP: later packets follow the new rules, tracked connections stay",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func firewallReloadOnHangUp() throws {
        let run = try PipedRun()
        let rules = run.file("edge.rules")
        try "accept state established,related\naccept out state new\n".write(to: rules, atomically: true, encoding: .utf8)
        try run.start(["firewall", "--rules", rules.path])
        func datagram(_ client: UInt16, to port: UInt16) -> [UInt8] {
            PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(198, 51, 100, 1))
                .udp(source: client, destination: port, payload: [1])
        }
        // Flows 1-50 open to port 53 under the first rules.
        try run.send((1...50).map { datagram($0, to: 53) })
        usleep(1_000_000)
        try "drop out proto udp dport 53 state new\naccept state established,related\naccept out state new\n"
            .write(to: rules, atomically: true, encoding: .utf8)
        run.hangUp()
        // The open flows carry on; new flows to port 53 are refused; to 123 they open.
        try run.send((1...50).map { datagram($0, to: 53) } + (51...100).map { datagram($0, to: 53) }
                     + (101...150).map { datagram($0, to: 123) })
        var passed: [UInt16: Int] = [:]
        for bytes in try run.finish() { passed[TestFrame(bytes).port(.source), default: 0] += 1 }
        #expect((1...50).allSatisfy { passed[$0] == 2 }, "tracked flows pass before and after")
        #expect((51...100).allSatisfy { passed[$0] == nil }, "new flows to 53 refused by the new rule")
        #expect((101...150).allSatisfy { passed[$0] == 1 })
    }

    /// Frames by flow (an IPv4 frame's protocol, addresses and ports; every
    /// other frame in one group), each group in its order.
    static func byFlow(_ frames: [[UInt8]]) -> [[UInt8]: [[UInt8]]] {
        Dictionary(grouping: frames) { frame in
            frame.count >= 38 && frame[12] == 0x08 && frame[13] == 0x00 ? [frame[23]] + Array(frame[26..<38]) : []
        }
    }

    @Test("run over DPDK (net_pcap in and out) gives each NF's output through the pure-Swift capture I/O, each flow in its order",
          .enabled(if: built && SharedTraces.available, "skipped: the command is not built or ../shared/traces is absent"))
    func dpdkNetPcap() throws {
        let folder = try Self.folder("dpdk")
        defer { try? FileManager.default.removeItem(at: folder) }
        let rules = try Self.rules(in: folder, "accept state established,related\naccept out state new\n")
        let cases: [(String, String, [String])] = [
            ("nat", "nDPI/iphone.pcap", ["--external", "203.0.113.7"]),
            ("lb", "PcapPlusPlus/example.pcap", ["--vip", "212.199.202.9:80/tcp", "--backend", "192.168.1.1:8080@2",
                                                 "--backend", "192.168.1.2:8080"]),
            ("firewall", "PcapPlusPlus/example.pcap", ["--rules", rules]),
        ]
        func packets(_ path: String) throws -> [[UInt8]] {
            let reader = try CaptureReader(path: path)
            var frames: [[UInt8]] = []
            while let record = try reader.next() { frames.append(Array(record.bytes)) }
            return frames
        }
        for (nf, trace, options) in cases {
            let capture = SharedTraces.path(trace)
            let swift = folder.appendingPathComponent("\(nf)-swift.pcap").path
            let dpdk = folder.appendingPathComponent("\(nf)-dpdk.pcap").path
            let (status, _, error) = try Self.run(["run", nf, "--input", "pcap:\(capture)", "--output", "pcap:\(swift)"] + options)
            #expect(status == 0, "\(nf): \(error)")
            let (dpdkStatus, output, dpdkError) = try Self.run(
                ["run", nf, "--input", "dpdk:0", "--output", "dpdk:0", "--eal", "--vdev=net_pcap0,rx_pcap=\(capture),tx_pcap=\(dpdk)",
                 "--json"] + options)
            #expect(dpdkStatus == 0, "\(nf): \(dpdkError)")
            let summary = try Self.json(output)
            let counters = try #require(summary["counters"] as? [String: Int])
            let expected = try packets(swift)
            #expect(counters["dpdk.received"] == (try packets(capture)).count, "\(nf): the whole capture, and then the end noticed")
            #expect(counters["dpdk.sent"] == expected.count && counters["dpdk.unsent"] == 0, "\(nf): \(counters)")
            #expect(counters["dpdk.port0.received"] == counters["dpdk.received"] && counters["dpdk.port0.sent"] == expected.count
                    && counters["dpdk.port0.missed"] == 0, "\(nf): DPDK's own counts agree: \(counters)")
            // The same packets, each flow's in the same order. Across flows
            // the order may differ: frames the flow cache serves where they
            // lie on DPDK leave as soon as nothing is in flight, a batch's
            // cached packets when their batch does.
            let throughDPDK = try packets(dpdk)
            #expect(throughDPDK.sorted { $0.lexicographicallyPrecedes($1) } == expected.sorted { $0.lexicographicallyPrecedes($1) },
                    "\(nf): the same packets")
            #expect(Self.byFlow(throughDPDK) == Self.byFlow(expected), "\(nf): each flow's packets in their order")
            #expect(expected.count > 100, "\(nf): \(expected.count) packets out")
        }
        let (bad, _, badError) = try Self.run(["run", "nat", "--input", "dpdk:3", "--output", "dpdk:3", "--external", "203.0.113.7",
                                               "--eal", "--vdev=net_null0"])
        #expect(bad != 0 && badError.contains("dpdk:3: DPDK has 1 port(s)"), "\(badError)")
        let (mixed, _, mixedError) = try Self.run(["run", "nat", "--input", "dpdk:0", "--output", "pcap:/tmp/x.pcap"])
        #expect(mixed != 0 && mixedError.contains("both pcap: or both dpdk:"), "\(mixedError)")
    }

    @Test("run on a live DPDK port (net_null) ends cleanly on SIGTERM, with its summary",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func dpdkStopsOnSignal() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "nat", "--input", "dpdk:0", "--output", "dpdk:0", "--external", "203.0.113.7",
                             "--eal", "--vdev=net_null0", "--json"]
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        usleep(2_000_000)
        #expect(process.isRunning, "a live port has no end of its own")
        kill(process.processIdentifier, SIGTERM)
        let output = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        let summary = try Self.json(String(decoding: output, as: UTF8.self))
        let counters = try #require(summary["counters"] as? [String: Int])
        #expect((counters["dpdk.received"] ?? 0) > 1000 && counters["dpdk.received"] == summary["packetsIn"] as? Int,
                "\(counters)")
    }

    @Test("bench --dpdk runs the NF on net_null's and then net_ring's mbufs, beside dpdk-testpmd on the same devices",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func benchOnDPDK() throws {
        let (status, output, error) = try Self.run(["bench", "nat", "--dpdk", "--flows", "500", "--seconds", "0.3", "--json"])
        #expect(status == 0, "\(error)")
        let result = try Self.json(output)
        #expect((result["mpps"] as? Double ?? 0) > 0 && result["allocationsPerPacket"] as? Double != nil)
        #expect((result["testpmdMpps"] as? Double ?? 0) > 0, "testpmd measured in the same run: \(result)")
        #expect((result["ringMpps"] as? Double ?? 0) > 0 && (result["ringTestpmdMpps"] as? Double ?? 0) > 0,
                "net_ring too, the NF and testpmd: \(result)")
        #expect((result["testpmdMacswapMpps"] as? Double ?? 0) > 0, "\(result)")
        #expect((result["testpmdPackedMpps"] as? Double ?? 0) > 0 && (result["shareOfTestpmdPacked"] as? Double ?? 0) > 0,
                "testpmd io with packed mbuf headers too: \(result)")
        let cpus = (0..<ProcessInfo.processInfo.activeProcessorCount).filter { $0 != 0 }
        #expect(result["workerCPUs"] as? [Int] == (cpus.isEmpty ? [] : [cpus[0]]),
                "the worker on the first CPU off the EAL main lcore's (0), as testpmd's forwarding lcore: \(result)")
    }

    @Test("bench reports rates, allocations and state operations",
          .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func bench() throws {
        let (status, output, _) = try Self.run(["bench", "nat", "--flows", "500", "--seconds", "0.2", "--json"])
        #expect(status == 0)
        let result = try Self.json(output)
        #expect((result["mpps"] as? Double ?? 0) > 0)
        #expect(result["stateOperationsPerPacket"] as? Double != nil && result["allocationsPerPacket"] as? Double != nil)
    }

    @Test("bad arguments and configs say what is wrong", .enabled(if: built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func badInput() throws {
        let (status, _, error) = try Self.run(["run", "nat", "--input", "pcap:/nonexistent.pcap", "--output", "pcap:/tmp/x.pcap",
                                               "--external", "203.0.113.1", "--ports", "9-3"])
        #expect(status != 0)
        #expect(error.contains("ports: \"9-3\" is not a range"))
        let (missingStatus, _, missingError) = try Self.run(["run", "nat", "--input", "pcap:/nonexistent.pcap",
                                                             "--output", "pcap:/tmp/x.pcap", "--external", "203.0.113.1"])
        #expect(missingStatus != 0 && missingError.contains("/nonexistent.pcap: cannot open"))
        let (storeStatus, _, storeError) = try Self.run(["bench", "nat", "--store", "carrier-pigeon", "--seconds", "0.1"])
        #expect(storeStatus != 0 && storeError.contains("--store carrier-pigeon"))
        let (cpuStatus, _, cpuError) = try Self.run(["bench", "nat", "--worker-cpus", "1", "--seconds", "0.1"])
        #expect(cpuStatus != 0 && cpuError.contains("--worker-cpus is for --dpdk"), "\(cpuError)")
    }
}
