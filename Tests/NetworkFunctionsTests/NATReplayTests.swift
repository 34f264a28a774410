import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// Every capture played through the NAT as if it sat on the capture's
/// path: every packet that comes back in equals the capture's own.
@Suite("NAT replay of the real captures", .enabled(if: SharedTraces.available, SharedTraces.skipNote))
struct NATReplayTests {
    static func replay(_ trace: String, internal prefixes: [String]? = nil, on kind: StoreKind = .embedded) throws
        -> NATReplay.Report {
        var config = NATConfig()
        config.namespace = "replay-\(UUID())"
        config.external = ["203.0.113.1", "203.0.113.2"]
        if let prefixes { config.internal = prefixes }
        config.insidePort = 1
        config.outsidePort = 2
        let nat = NAT(try config.resolved())
        let replay = try NATReplay(nat: nat, session: try kind.make().makeSession(for: nat.state.schema))
        let reader = try CaptureReader(path: SharedTraces.path(trace))
        while let record = try reader.next() {
            _ = replay.play(Array(record.bytes), at: record.timestamp, linkType: record.linkType.packetLinkType)
        }
        return replay.report
    }

    @Test("no packet that comes back in differs from the capture's", arguments: SharedTraces.all)
    func everyTrace(trace: String) throws {
        let report = try Self.replay(trace)
        #expect(report.mismatches == 0, "\(trace): mismatches at \(report.firstMismatches)")
        #expect(report.inbound == report.inboundTranslated, "\(trace): re-addressed packets the NAT dropped: \(report.drops)")
        #expect(report.outbound + report.inbound + report.inboundWithoutMapping + report.notTranslatable == report.packets)
    }

    @Test("Redis gives the same decisions as the embedded store", .enabled(if: RedisServer.executable != nil, RedisServer.skipNote),
          arguments: SharedTraces.all)
    func sameOnRedis(trace: String) throws {
        var embedded = try Self.replay(trace)
        var redis = try Self.replay(trace, on: .redis)
        // When a sweep comes differs between the stores; what expired does not change a decision.
        embedded.flowsExpired = 0
        redis.flowsExpired = 0
        #expect(redis == embedded, "\(trace)")
    }

    @Test("captures of private networks translate both ways, byte for byte")
    func privateNetworks() throws {
        for (trace, minimum) in [("PcapPlusPlus/example.pcap", 2700), ("nDPI/iphone.pcap", 160), ("tcpreplay/test.pcap", 50)] {
            let report = try Self.replay(trace)
            #expect(report.matches >= minimum, "\(trace): \(report.matches) inbound packets matched")
            #expect(report.outboundTranslated >= report.outbound * 9 / 10, "\(trace): \(report)")
        }
    }

    @Test("a capture of public hosts translates when they are declared internal")
    func publicHostsAsInternal() throws {
        let report = try Self.replay("zeek/wikipedia.pcap", internal: ["141.142.0.0/16"])
        #expect(report.outboundTranslated > 80 && report.matches > 25, "\(report)")
    }
}

@Suite("Worker threads", .enabled(if: SharedTraces.available, SharedTraces.skipNote))
struct WorkerGroupTests {
    /// Counts what a sink receives.
    final class CountingSink: PacketSink {
        var packets = 0
        var flows: Set<FlowKey> = []
        func write(_ batch: PacketBatch, port: UInt16) throws {
            for i in 0..<batch.count {
                var packet = batch[i]
                packets += 1
                if (try? packet.parse()) != nil, let key = packet.flowKey { flows.insert(key.canonical) }
            }
        }
        func close() throws {}
    }

    @Test("three workers sharing the store translate a capture as one does", arguments: StoreKind.available)
    func threeWorkersAsOne(_ kind: StoreKind) throws {
        func run(workers: Int) throws -> (RunSummary, CountingSink) {
            var config = NATConfig()
            config.external = ["203.0.113.1"]
            config.namespace = "workers-\(UUID())"
            let nat = NAT(try config.resolved())
            let store = try kind.make()
            let graph = try nat.graph()
            let schema = nat.state.schema
            let sink = CountingSink()
            let group = WorkerGroup(workers: workers, batch: 16, clock: .replay) { _, pool in
                GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: schema), batchCapacity: 16)
            }
            let summary = try group.run(try CaptureReader(path: SharedTraces.path("PcapPlusPlus/example.pcap")), port: 0, into: sink)
            return (summary, sink)
        }
        let (one, oneSink) = try run(workers: 1)
        let (three, threeSink) = try run(workers: 3)
        #expect(one.packetsIn == 4631 && three.packetsIn == 4631)
        #expect(one.packetsOut == three.packetsOut && one.drops == three.drops, "\(one.drops) \(three.drops)")
        #expect(oneSink.packets == threeSink.packets)
        #expect(oneSink.flows.count == threeSink.flows.count, "the same flows, each with one mapping")
        #expect(one.counters["nat.mappingsCreated"] == three.counters["nat.mappingsCreated"])
    }
}
