import Foundation
import StatelessKit
import StoreTestSupport
import Testing

/// `statelessnf run` on DPDK virtual devices: two ports, several workers,
/// two processes over net_memif, and real kernel TCP through network
/// namespaces on net_af_packet.
@Suite("statelessnf run on DPDK")
struct DPDKRunTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Every frame of a capture.
    static func frames(_ path: String) throws -> [[UInt8]] {
        let reader = try CaptureReader(path: path)
        var frames: [[UInt8]] = []
        while let record = try reader.next() { frames.append(Array(record.bytes)) }
        return frames
    }

    static func counters(_ output: String) throws -> [String: Int] {
        try #require(try CommandTests.json(output)["counters"] as? [String: Int])
    }

    @Test("the two-port form: what comes in on the inside port leaves the outside port translated",
          .enabled(if: CommandTests.built && SharedTraces.available, "skipped: the command is not built or ../shared/traces is absent"))
    func twoPorts() throws {
        let folder = try CommandTests.folder("two-ports")
        defer { try? FileManager.default.removeItem(at: folder) }
        let capture = SharedTraces.path("nDPI/iphone.pcap")
        let (inside, outside) = (folder.appendingPathComponent("inside.pcap").path, folder.appendingPathComponent("outside.pcap").path)
        let (status, output, error) = try CommandTests.run(
            ["run", "nat", "--inside", "dpdk:0", "--outside", "dpdk:1", "--external", "203.0.113.7", "--json",
             "--eal", "--vdev=net_pcap0,rx_pcap=\(capture),tx_pcap=\(inside) --vdev=net_pcap1,tx_pcap=\(outside)"])
        #expect(status == 0, "\(error)")
        let counters = try Self.counters(output)
        let out = try Self.frames(outside)
        #expect(try Self.frames(inside).isEmpty, "nothing goes back inside: nothing came from outside")
        #expect(counters["dpdk.received"] == (try Self.frames(capture)).count, "the capture's end is noticed (the outside port reads nothing)")
        #expect(counters["dpdk.port1.sent"] == out.count && out.count > 400, "\(counters)")
        let p50 = try #require(counters["dpdk.latency.p50Microseconds"], "packets sent are timed (those served in place, a burst in 16)")
        #expect(counters["dpdk.latency.p99Microseconds"].map { $0 >= p50 } == true, "\(counters)")
        // Every IPv4 frame leaving outside carries the external address as its source.
        for frame in out where frame.count > 34 && frame[12] == 0x08 && frame[13] == 0x00 {
            #expect(Array(frame[26..<30]) == [203, 0, 113, 7])
        }
    }

    @Test("several workers: each owns a queue pair, the device spreads packets over the queues, --count stops them all exactly",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func workers() throws {
        let (status, output, error) = try CommandTests.run(
            ["run", "nat", "--input", "dpdk:0", "--output", "dpdk:0", "--external", "203.0.113.7", "--workers", "2",
             "--count", "100000", "--json", "--eal", "--vdev=net_null0"])
        #expect(status == 0, "\(error)")
        let counters = try Self.counters(output)
        #expect(counters["dpdk.received"] == 100_000, "\(counters)")
        #expect((counters["dpdk.port0.queue0.received"] ?? 0) > 0 && (counters["dpdk.port0.queue1.received"] ?? 0) > 0,
                "both queues carried packets: \(counters)")
        #expect(counters["dpdk.port0.queue0.received"]! + counters["dpdk.port0.queue1.received"]! == counters["dpdk.port0.received"])
    }

    @Test("--worker-cpus pins each worker to its CPU, in worker order",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func pinnedWorkers() throws {
        let cpus = (0..<ProcessInfo.processInfo.activeProcessorCount).map(String.init)
        let list = cpus.count >= 2 ? "\(cpus[1]),\(cpus[0])" : "\(cpus[0]),\(cpus[0])"
        let (status, output, error) = try CommandTests.run(
            ["run", "nat", "--input", "dpdk:0", "--output", "dpdk:0", "--external", "203.0.113.7", "--workers", "2",
             "--worker-cpus", list, "--count", "100000", "--json", "--eal", "--vdev=net_null0"])
        if cpus.count < 2 {
            #expect(status != 0 && error.contains("is given twice"), "\(error)")
            return
        }
        #expect(status == 0, "\(error)")
        let counters = try Self.counters(output)
        #expect(counters["dpdk.received"] == 100_000, "\(counters)")
        #expect(counters["dpdk.worker0.cpu"] == Int(cpus[1]) && counters["dpdk.worker1.cpu"] == Int(cpus[0]),
                "each worker ran where it was pinned: \(counters)")
    }

    @Test("bad DPDK options say what is wrong",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func badOptions() throws {
        let cases: [([String], String)] = [
            (["--inside", "dpdk:0", "--outside", "dpdk:0"], "--inside and --outside must be different ports"),
            (["--inside", "dpdk:0", "--outside", "pcap:/tmp/x.pcap"], "--inside and --outside are DPDK ports"),
            (["--inside", "dpdk:0"], "give --input and --output, or (DPDK, two ports) --inside and --outside"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--address", "dpdk:0=10.0.0.1"], "an IPv4 address and a prefix length"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--address", "dpdk:0=10.0.0.1/24,gateway=10.9.0.1"],
             "gateway 10.9.0.1 is not another address of 10.0.0.1/24"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--address", "0=10.0.0.1/24"], "give dpdk:PORT=ADDRESS/LENGTH"),
            (["--input", "pcap:/tmp/a.pcap", "--output", "pcap:/tmp/b.pcap", "--count", "5"], "are for dpdk: inputs and outputs"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--workers", "2", "--eal", "--vdev=net_pcap0,tx_pcap=/dev/null"],
             "dpdk:0: starting port 0 with 2 receive and 2 transmit queue(s) failed"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--workers", "2", "--worker-cpus", "1"],
             "--worker-cpus 1: 1 CPU(s) for 2 workers (one each)"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--worker-cpus", "0,0"], "--worker-cpus 0,0: CPU 0 is given twice"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--worker-cpus", "3-1"],
             "--worker-cpus 3-1: \"3-1\" is not a CPU number (0-1023) or a range LOW-HIGH"),
            (["--input", "dpdk:0", "--output", "dpdk:0", "--worker-cpus", "1023", "--eal", "--vdev=net_null0"],
             "--worker-cpus: this process may not run on CPU 1023"),
            (["--input", "pcap:/tmp/a.pcap", "--output", "pcap:/tmp/b.pcap", "--worker-cpus", "0"], "are for dpdk: inputs and outputs"),
        ]
        for (arguments, message) in cases {
            let (status, _, error) = try CommandTests.run(["run", "nat", "--external", "203.0.113.7"] + arguments)
            #expect(status != 0 && error.contains(message), "\(arguments): \(error)")
        }
    }

    @Test("two processes over net_memif: the NAT's output is the firewall's input, and the chain passes what the pure-Swift chain passes",
          .enabled(if: CommandTests.built && SharedTraces.available, "skipped: the command is not built or ../shared/traces is absent"))
    func memifPipeline() throws {
        let folder = try CommandTests.folder("memif")
        defer { try? FileManager.default.removeItem(at: folder) }
        let capture = SharedTraces.path("nDPI/iphone.pcap")
        let rules = try CommandTests.rules(in: folder, "accept state established,related\naccept out state new\n")
        let firewall = ["--rules", rules, "--internal", "192.168.0.0/16,203.0.113.0/24", "--loose-pickup"]
        func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
        // The pure-Swift chain.
        var (status, _, error) = try CommandTests.run(["run", "nat", "--input", "pcap:\(capture)", "--output", "pcap:\(path("nat.pcap"))",
                                                       "--external", "203.0.113.7"])
        #expect(status == 0, "\(error)")
        (status, _, error) = try CommandTests.run(["run", "firewall", "--input", "pcap:\(path("nat.pcap"))",
                                                   "--output", "pcap:\(path("chain.pcap"))"] + firewall)
        #expect(status == 0, "\(error)")
        let translated = try Self.frames(path("nat.pcap")).count
        // The firewall (memif server) first, to stop once it has had every translated packet.
        let socket = path("memif.sock")
        let receiver = Process()
        receiver.executableURL = URL(fileURLWithPath: CommandTests.binary)
        receiver.arguments = ["run", "firewall", "--input", "dpdk:0", "--output", "dpdk:1", "--count", "\(translated)", "--json",
                              "--eal", "--vdev=net_memif0,role=server,socket=\(socket) --vdev=net_pcap0,tx_pcap=\(path("memif.pcap"))"]
            + firewall
        let receiverOut = Pipe()
        receiver.standardOutput = receiverOut
        receiver.standardError = FileHandle.nullDevice
        try receiver.run()
        for _ in 0..<100 where !FileManager.default.fileExists(atPath: socket) { usleep(50_000) }
        // The NAT (memif client) reads the capture and stays up until the firewall has drained the ring.
        let sender = Process()
        sender.executableURL = URL(fileURLWithPath: CommandTests.binary)
        sender.arguments = ["run", "nat", "--input", "dpdk:0", "--output", "dpdk:1", "--external", "203.0.113.7", "--until-signal",
                            "--json", "--eal", "--vdev=net_pcap0,rx_pcap=\(capture) --vdev=net_memif0,role=client,socket=\(socket)"]
        let senderOut = Pipe()
        sender.standardOutput = senderOut
        sender.standardError = FileHandle.nullDevice
        try sender.run()
        let received = receiverOut.fileHandleForReading.readDataToEndOfFile()
        receiver.waitUntilExit()
        kill(sender.processIdentifier, SIGTERM)
        let sent = senderOut.fileHandleForReading.readDataToEndOfFile()
        sender.waitUntilExit()
        #expect(receiver.terminationStatus == 0 && sender.terminationStatus == 0)
        let senderCounters = try Self.counters(String(decoding: sent, as: UTF8.self))
        let receiverCounters = try Self.counters(String(decoding: received, as: UTF8.self))
        // (memif's own counters reset when its peer leaves: the NAT's count is the one to read.)
        #expect(senderCounters["dpdk.sent"] == translated, "\(senderCounters)")
        #expect(receiverCounters["dpdk.port0.received"] == translated, "\(receiverCounters)")
        let chain = try Self.frames(path("chain.pcap"))
        let throughMemif = try Self.frames(path("memif.pcap"))
        #expect(throughMemif.count == chain.count && chain.count > 50, "\(throughMemif.count) frames through memif, \(chain.count) in the pure-Swift chain")
        // A batch leaves port by port, and memif brings bursts of its own
        // size, so frames of different flows may interleave differently
        // from the 32-packet batches of the pure-Swift chain: the same
        // frames, each translated and decided the same.
        #expect(throughMemif.sorted { $0.lexicographicallyPrecedes($1) } == chain.sorted { $0.lexicographicallyPrecedes($1) },
                "the same frames")
    }

    /// Root, iproute2, ethtool and python3: what the namespace transfer needs.
    static let namespacesNote: String? = {
        guard getuid() == 0 else { return "skipped: network namespaces need root (CI runs as root)" }
        for tool in ["/usr/sbin/ip", "/usr/sbin/ethtool", "/usr/bin/python3"] where !FileManager.default.isExecutableFile(atPath: tool) {
            return "skipped: \(tool) is missing (make deps installs it)"
        }
        return nil
    }()

    @Test("real kernel TCP between two namespaces through each NF on net_af_packet (and the NAT on net_tap) in a third: every connection's bytes arrive intact",
          .enabled(if: CommandTests.built && namespacesNote == nil, Comment(rawValue: namespacesNote ?? "skipped: the command is not built")),
          arguments: [("nat", "af_packet", 32, 8, 2), ("firewall", "af_packet", 16, 4, 1), ("lb", "af_packet", 16, 4, 1),
                      ("nat", "tap", 16, 4, 1)])
    func tcpThroughNamespaces(nf: String, pmd: String, megabytes: Int, connections: Int, workers: Int) throws {
        let (status, output, error) = try CommandTests.run(
            [CommandTests.binary, nf, pmd, "\(megabytes)", "\(connections)"],
            executable: Self.repository.appendingPathComponent("Scripts/netns-transfer.sh").path,
            environment: ["WORKERS": "\(workers)"])
        #expect(status == 0, "\(nf) on \(pmd): \(output)\n\(error)")
        #expect(output.contains("transfer: \(connections) connections, \(megabytes * 1024 * 1024) bytes, all intact"), "\(output)")
        #expect(output.contains("neighbors 2"), "both next hops learned by ARP: \(output)")
    }
}
