import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// A capture of many new flows from inside hosts, each to a server port of
/// its own (so a translated packet names its flow): round by round, every
/// flow's next packet, so that the first packets of all flows come first.
enum FlowCapture {
    static let server = IPv4Address(198, 51, 100, 1)

    static func inside(_ flow: Int) -> NATEndpoint {
        NATEndpoint(IPv4Address(10, 1, UInt8(flow / 250), UInt8(flow % 250 + 1)), UInt16(10_000 + flow % 7))
    }

    static func serverPort(_ flow: Int) -> UInt16 { UInt16(1_000 + flow) }

    static func write(_ path: String, flows: Int, rounds: Int) throws {
        let writer = try PcapWriter(path: path, header: PcapFileHeader(linkType: .ethernet))
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        for round in 0..<rounds {
            for flow in 0..<flows {
                let from = inside(flow)
                let builder = PacketBuilder().ipv4(source: from.address, destination: server, identification: UInt16(round))
                let frame = flow % 2 == 0
                    ? builder.udp(source: from.port, destination: serverPort(flow), payload: [UInt8(round)])
                    : builder.tcp(source: from.port, destination: serverPort(flow), sequence: UInt32(1000 + round),
                                  flags: round == 0 ? .syn : .ack)
                time = Timestamp(nanoseconds: time.nanoseconds + 10_000)
                try frame.withUnsafeBytes { try writer.write(timestamp: time, originalLength: frame.count, bytes: $0) }
            }
        }
        try writer.close()
    }

    /// The translated source of each flow in a capture the NAT wrote, by
    /// flow; fails if a flow shows two.
    static func translations(_ path: String) throws -> [Int: NATEndpoint] {
        let reader = try CaptureReader(path: path)
        var found: [Int: NATEndpoint] = [:]
        while let record = try reader.next() {
            let frame = TestFrame(Array(record.bytes))
            guard frame.ipv4Address(.destination) == server else { continue }
            let flow = Int(frame.port(.destination)) - 1_000
            let source = NATEndpoint(frame.ipv4Address(.source)!, frame.port(.source))
            if let known = found[flow] {
                #expect(known == source, "flow \(flow) left as \(known) and as \(source)")
            }
            found[flow] = source
        }
        return found
    }
}

/// Collects the translated source of each flow as the NAT sends it.
final class FlowSink: PacketSink {
    var translations: [Int: NATEndpoint] = [:]
    var changed = 0
    var packets = 0

    func write(_ batch: PacketBatch, port: UInt16) throws {
        for i in 0..<batch.count {
            var packet = batch[i]
            try packet.parse()
            guard packet.ipv4Address(.destination) == FlowCapture.server else { continue }
            packets += 1
            let flow = Int(packet.port(.destination)) - 1_000
            let source = NATEndpoint(packet.ipv4Address(.source)!, packet.port(.source))
            if let known = translations[flow], known != source { changed += 1 }
            translations[flow] = source
        }
    }

    func close() throws {}
}

/// A capture source that does something (stop Redis, say) before a given
/// batch, and from then on gives a batch every 10 ms, as live traffic would
/// come, so that the run spans what follows.
final class InterruptedSource: PacketSource {
    let inner: CaptureSource
    let at: Int
    let action: () -> Void
    var batches = 0

    init(_ inner: CaptureSource, at: Int, _ action: @escaping () -> Void) {
        self.inner = inner
        self.at = at
        self.action = action
    }

    func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int {
        batches += 1
        if batches == at { action() }
        if batches > at { usleep(10_000) }
        return try inner.read(into: batch, from: pool)
    }
}

@Suite("NAT instances sharing Redis", .enabled(if: RedisServer.executable != nil, RedisServer.skipNote))
struct RedisNATTests {
    static let folder = FileManager.default.temporaryDirectory

    @Test("four statelessnf processes racing on the same new flows: one mapping per flow, no port held twice, nothing leaked",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func fourProcesses() throws {
        let server = try RedisServer()
        let flows = 2_000
        let capture = Self.folder.appendingPathComponent("race-\(UUID()).pcap").path
        try FlowCapture.write(capture, flows: flows, rounds: 3)
        let outputs = (0..<4).map { Self.folder.appendingPathComponent("race-\(UUID())-\($0).pcap").path }
        defer { ([capture] + outputs).forEach { try? FileManager.default.removeItem(atPath: $0) } }
        let results = LockedResults()
        DispatchQueue.concurrentPerform(iterations: 4) { i in
            let outcome = Result {
                try CommandTests.run(["run", "nat", "--input", "pcap:\(capture)", "--output", "pcap:\(outputs[i])",
                                      "--external", "203.0.113.1,203.0.113.2", "--ports", "20000-24999",
                                      "--store", server.url(), "--batch", "16", "--json"])
            }
            results.set(i, outcome)
        }
        var created = 0
        for i in 0..<4 {
            let (status, output, error) = try results.get(i).get()
            #expect(status == 0, "\(error)")
            let summary = try CommandTests.json(output)
            #expect(summary["packetsIn"] as? Int == flows * 3)
            created += summary["flowsCreated"] as? Int ?? 0
        }
        #expect(created == flows, "each flow's mapping was created by exactly one process")
        // Every process translated every flow the same way.
        let seen = try outputs.map(FlowCapture.translations)
        for other in seen.dropFirst() { #expect(other == seen[0]) }
        #expect(seen[0].count == flows)
        // And Redis holds exactly those mappings, each port once.
        let store = try RedisStore(url: server.url())
        let deployment = try #require(try store.deployment(namespace: "nat"))
        let table = try #require(deployment.tables.first { $0.name == "mappings" })
        let entries = try store.entries(namespace: "nat", table: table, count: flows * 2)
        #expect(entries.count == flows)
        struct Outside: Hashable { var ipProtocol: UInt8; var endpoint: NATEndpoint }
        let flowOf = Dictionary(uniqueKeysWithValues: seen[0].map {
            (Outside(ipProtocol: $0.key % 2 == 0 ? IPProtocol.udp : IPProtocol.tcp, endpoint: $0.value), $0.key)
        })
        var outside: Set<Outside> = []
        for entry in entries {
            let binding = entry.value.withUnsafeBytes { NATBinding(decoding: $0.baseAddress!) }
            let key = Outside(ipProtocol: binding.ipProtocol, endpoint: binding.outside)
            outside.insert(key)
            #expect(flowOf[key].map(FlowCapture.inside) == binding.inside, "Redis maps \(binding)")
        }
        #expect(outside.count == flows, "no external port is held by two mappings")
        let statistics = try #require(try store.statistics(namespace: "nat"))
        let free = statistics.freeItems.values.reduce(0, +), leased = statistics.leasedItems.values.reduce(0, +)
        #expect(leased == 0 && free + flows == deployment.pools.map(\.items).reduce(0, +),
                "every port a loser took went back: \(free) free, \(leased) leased")
    }

    @Test("bench measures the store's own limit beside the NAT; inspect shows tables, pools and readable entries; a dead URL is a clear error",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func benchAndInspect() throws {
        let server = try RedisServer()
        let (status, output, error) = try CommandTests.run(["bench", "nat", "--store", server.url(), "--flows", "500",
                                                            "--seconds", "0.3", "--json"])
        #expect(status == 0, "\(error)")
        let bench = try CommandTests.json(output)
        #expect((bench["mpps"] as? Double ?? 0) > 0 && (bench["storeLimitKeysPerSecond"] as? Double ?? 0) > 0)
        #expect((bench["shareOfStoreLimit"] as? Double ?? 0) > 0 && bench["store"] as? String == "redis")
        #expect(bench["roundTripsPerBatch"] as? Double == 1 && bench["stateOperationsPerPacket"] as? Double == 1)
        #expect(try server.command(["DBSIZE"]) == .integer(0), "the bench removed its deployment")

        let capture = Self.folder.appendingPathComponent("inspect-\(UUID()).pcap").path
        let out = capture + ".out.pcap"
        defer { [capture, out].forEach { try? FileManager.default.removeItem(atPath: $0) } }
        try FlowCapture.write(capture, flows: 40, rounds: 1)
        let (ran, _, ranError) = try CommandTests.run(["run", "nat", "--input", "pcap:\(capture)", "--output", "pcap:\(out)",
                                                       "--external", "203.0.113.9", "--store", server.unixURL])
        #expect(ran == 0, "\(ranError)")
        let (inspected, text, inspectError) = try CommandTests.run(["inspect", "--store", server.url(), "--nf", "nat",
                                                                    "--sample", "3"])
        #expect(inspected == 0, "\(inspectError)")
        #expect(text.contains("deployment nat") && text.contains("mappings") && text.contains("<-> 203.0.113.9:"), "\(text)")
        let (jsonStatus, json, _) = try CommandTests.run(["inspect", "--store", server.url(), "--json"])
        #expect(jsonStatus == 0)
        let reports = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [[String: Any]])
        let tables = try #require(reports.first?["tables"] as? [[String: Any]])
        #expect(tables.first { $0["name"] as? String == "mappings" }?["entries"] as? Int == 40)
        // The load balancer's flows read as flows.
        let (balanced, _, balancedError) = try CommandTests.run([
            "run", "lb", "--input", "pcap:\(capture)", "--output", "pcap:\(out)", "--vip", "198.51.100.1:1004/udp",
            "--backend", "192.168.1.1:53", "--store", server.url()])
        #expect(balanced == 0, "\(balancedError)")
        let (_, lbText, _) = try CommandTests.run(["inspect", "--store", server.url(), "--nf", "lb"])
        #expect(lbText.contains("deployment lb") && lbText.contains("udp 10.1.0.5:10004 -> 198.51.100.1:1004 => 192.168.1.1:53"),
                "\(lbText)")
        // And the firewall's connections as connections, the way they were opened.
        let rules = capture + ".rules"
        defer { try? FileManager.default.removeItem(atPath: rules) }
        try "accept state established,related\naccept out state new\n".write(toFile: rules, atomically: true, encoding: .utf8)
        let (filtered, _, filteredError) = try CommandTests.run([
            "run", "firewall", "--input", "pcap:\(capture)", "--output", "pcap:\(out)", "--rules", rules, "--store", server.url()])
        #expect(filtered == 0, "\(filteredError)")
        let (_, fwText, _) = try CommandTests.run(["inspect", "--store", server.url(), "--nf", "fw", "--sample", "40"])
        #expect(fwText.contains("deployment fw") && fwText.contains("connections4")
                && fwText.contains("udp 10.1.0.5:10004 -> 198.51.100.1:1004 [unreplied]"), "\(fwText)")
        let (missing, _, missingError) = try CommandTests.run(["inspect", "--store", server.url(), "--nf", "firewall"])
        #expect(missing != 0 && missingError.contains("--nf firewall: no such deployment") && missingError.contains("nat"))

        let port = try RedisServer.freePort()
        let (refused, _, refusedError) = try CommandTests.run(["run", "nat", "--input", "pcap:\(capture)", "--output",
                                                               "pcap:\(out)", "--external", "203.0.113.9", "--store", "redis://127.0.0.1:\(port)"])
        #expect(refused != 0 && refusedError.contains("connecting to redis://127.0.0.1:\(port)"), "\(refusedError)")
        let (badURL, _, badError) = try CommandTests.run(["run", "nat", "--input", "pcap:\(capture)", "--output",
                                                          "pcap:\(out)", "--store", "redis://127.0.0.1:6379?timeout=never"])
        #expect(badURL != 0 && badError.contains("timeout=never is not a duration"), "\(badError)")
    }

    @Test("the failover demo on Redis: every flow keeps its mapping when its instance fails",
          .enabled(if: CommandTests.built, "skipped: .build/debug/statelessnf is not built (swift build)"))
    func demoOnRedis() throws {
        let server = try RedisServer()
        let (status, output, error) = try CommandTests.run(["demo", "--flows", "300", "--rounds", "4", "--json",
                                                            "--store", server.url()])
        #expect(status == 0, "\(error)")
        let shared = try #require(try CommandTests.json(output)["sharedStore"] as? [String: Any])
        #expect(shared["keptMapping"] as? Int == 300 && shared["lostForLackOfState"] as? Int == 0)
        #expect(try server.command(["DBSIZE"]) == .integer(0), "the demo removed its deployment")
    }

    /// Runs the NAT over a capture of `flows` flows on `url`, doing
    /// `interruption` before batch 40.
    static func run(url: String, flows: Int, _ interruption: @escaping () -> Void) throws -> (RunSummary, FlowSink) {
        let capture = folder.appendingPathComponent("restart-\(UUID()).pcap").path
        defer { try? FileManager.default.removeItem(atPath: capture) }
        try FlowCapture.write(capture, flows: flows, rounds: 4)
        var config = NATConfig()
        config.external = ["203.0.113.1"]
        config.namespace = "restart-\(UUID())"
        let nat = NAT(try config.resolved())
        let store = try RedisStore(url: url)
        let pool = BufferPool(count: 16 * 6, dataRoom: 2048)
        let runner = GraphRunner(graph: try nat.graph(), pool: pool, session: try store.makeSession(for: nat.state.schema),
                                 batchCapacity: 16, inFlight: 4)
        let sink = FlowSink()
        let source = InterruptedSource(try CaptureSource(path: capture, port: nat.insidePort), at: 40, interruption)
        let summary = try Driver(runner: runner, pool: pool, clock: .replay).run(source, into: sink)
        return (summary, sink)
    }

    @Test("Redis restarted mid-run within the hold time: no packet lost, no mapping changed")
    func restartWithinHold() throws {
        let server = try RedisServer(persistent: true)
        let flows = 500
        let (summary, sink) = try Self.run(url: server.url(options: "hold=10s"), flows: flows) {
            server.stop()
            Thread { usleep(300_000); try? server.start() }.start()
        }
        #expect(summary.packetsIn == flows * 4)
        #expect(summary.drops["stateUnavailable"] == nil, "\(summary.drops)")
        #expect(sink.packets == flows * 4 && sink.translations.count == flows && sink.changed == 0)
        #expect(summary.counters["store.disconnects"] == 1 && (summary.counters["store.reconnects"] ?? 0) >= 1)
        #expect((summary.counters["store.heldRequests"] ?? 0) > 0)
    }

    @Test("Redis down longer than the hold time: packets are dropped and counted, the run goes on, and flows keep their mappings")
    func outageBeyondHold() throws {
        let server = try RedisServer(persistent: true)
        let flows = 500
        let (summary, sink) = try Self.run(url: server.url(options: "hold=0&timeout=200ms"), flows: flows) {
            server.stop()
            Thread { usleep(500_000); try? server.start() }.start()
        }
        let lost = summary.drops["stateUnavailable"] ?? 0
        #expect(summary.packetsIn == flows * 4)
        #expect(lost > 0, "the outage dropped packets (counted): \(summary.drops)")
        #expect(sink.packets + lost + summary.drops.filter { $0.key != "stateUnavailable" }.values.reduce(0, +) == flows * 4)
        #expect(sink.changed == 0, "no flow changed its mapping across the restart")
        // 39 batches of 16 went through before the outage; at least 10 more after it.
        #expect(sink.packets >= 16 * (39 + 10), "after Redis came back, packets went through again: \(sink.packets)")
        #expect(summary.counters["store.disconnects"] == 1 && (summary.counters["store.reconnects"] ?? 0) >= 1)
        #expect((summary.counters["store.failedRequests"] ?? 0) > 0)
    }
}

final class LockedResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: Result<(Int32, String, String), any Error>] = [:]
    func set(_ i: Int, _ value: Result<(Int32, String, String), any Error>) { lock.lock(); values[i] = value; lock.unlock() }
    func get(_ i: Int) -> Result<(Int32, String, String), any Error> { lock.lock(); defer { lock.unlock() }; return values[i]! }
}
