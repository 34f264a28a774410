import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// The NAT with its flow cache against the NAT without: the same bytes out,
/// the same drops, the same state in the store, on the real captures and on
/// two instances sharing a store under traffic that expires mappings and
/// hands their ports to other hosts.
@Suite("The NAT's flow cache")
struct NATFlowCacheTests {
    /// Keeps every packet that leaves, in order, with its port.
    final class RecordingSink: PacketSink {
        var frames: [(UInt16, [UInt8])] = []
        func write(_ batch: PacketBatch, port: UInt16) throws {
            for i in 0..<batch.count { frames.append((port, Array(batch[i].bytes))) }
        }
        func close() throws {}

        /// The frames by port and flow (the flow of an unparsable frame is nil), each flow's in order.
        var byFlow: [String: [[UInt8]]] {
            frames.reduce(into: [:]) { flows, item in
                var bytes = item.1
                let key = bytes.withUnsafeMutableBytes { raw -> String in
                    var packet = Packet(buffer: raw.baseAddress!, bufferSize: raw.count, handle: 0, headroom: 0)
                    _ = packet.setLength(raw.count)
                    guard (try? packet.parse()) != nil, let flow = packet.flowKey else { return "\(item.0) -" }
                    return "\(item.0) \(flow)"
                }
                flows[key, default: []].append(item.1)
            }
        }
    }

    static func nat(_ namespace: String, configure: (inout NATConfig) -> Void = { _ in }) throws -> NAT {
        var config = NATConfig()
        config.external = ["203.0.113.1", "203.0.113.2"]
        config.namespace = namespace
        configure(&config)
        return NAT(try config.resolved())
    }

    @Test("every capture leaves the NAT byte for byte as without the cache", .enabled(if: SharedTraces.available, SharedTraces.skipNote),
          arguments: SharedTraces.all)
    func captures(trace: String) throws {
        func run(cache: Int) throws -> (RunSummary, RecordingSink) {
            let nat = try Self.nat("cache-\(UUID())")
            let store = EmbeddedStore()
            let graph = try nat.graph()
            let sink = RecordingSink()
            let group = WorkerGroup(workers: 1, batch: 16, clock: .replay) { _, pool in
                GraphRunner(graph: graph, pool: pool, session: try store.makeSession(for: nat.state.schema),
                            batchCapacity: 16, flowCacheEntries: cache)
            }
            return (try group.run(try CaptureReader(path: SharedTraces.path(trace)), port: 0, into: sink), sink)
        }
        let (cached, cachedSink) = try run(cache: 1024)
        let (plain, plainSink) = try run(cache: 0)
        // Packets of different flows may leave in another order (a batch the
        // cache served all of can leave before one waiting for the store);
        // each flow's packets leave in the same order, with the same bytes.
        #expect(cachedSink.frames.count == plainSink.frames.count, "\(trace)")
        let (cachedFlows, plainFlows) = (cachedSink.byFlow, plainSink.byFlow)
        let differing = Set(cachedFlows.keys).union(plainFlows.keys).filter { cachedFlows[$0] != plainFlows[$0] }.sorted()
        #expect(differing.isEmpty, "\(trace): flows \(differing.prefix(4).map { "\($0): \(cachedFlows[$0]?.count ?? 0) vs \(plainFlows[$0]?.count ?? 0) packets, first difference at \(zip(cachedFlows[$0] ?? [], plainFlows[$0] ?? []).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)" })")
        #expect(cached.drops == plain.drops && cached.packetsOut == plain.packetsOut, "\(trace)")
        #expect(cached.counters["nat.mappingsCreated"] == plain.counters["nat.mappingsCreated"])
        #expect(cached.counters["flowCache.rejected"] == 0, "\(trace)")
    }

    @Test("two instances on one store, random traffic both ways, mappings expiring and ports reused: as without the cache")
    func twoInstances() throws {
        // Short timeouts and 8 external ports, so mappings expire within the
        // run and their ports go to other hosts' flows.
        func configure(_ config: inout NATConfig) {
            config.external = ["203.0.113.1"]
            config.ports = "5000-5007"
            config.timeouts.udp = 2
            config.timeouts.icmp = 2
            config.timeouts.tcpTransitory = 2
            config.timeouts.tcpEstablished = 6
            config.insidePort = 1
            config.outsidePort = 2
        }
        // Inside hosts 10.0.0.1-6, each with a UDP and a TCP flow to 192.0.2.9;
        // inbound packets go to the external ports at random.
        var generator = SplitMix(seed: 42)
        var events: [(instance: Int, time: Int64, port: UInt16, frame: [UInt8])] = []
        var time: Int64 = 0
        for n in 0..<4000 {
            time += Int64(generator.next() % 40_000_000)            // up to 40 ms apart
            if generator.next() % 500 == 0 { time += 3_000_000_000 } // now and then a pause past the short timeouts
            let host = IPv4Address(10, 0, 0, UInt8(1 + generator.next() % 6))
            let remote = IPv4Address(192, 0, 2, 9)
            let tcp = generator.next() % 2 == 0
            let flags: PacketBuilder.TCPFlags = [[.ack], [.ack, .psh], [.syn], [.fin, .ack], [.rst], [.ack]][Int(generator.next() % 6)]
            let builder = PacketBuilder()
            let frame: [UInt8]
            let port: UInt16
            if generator.next() % 3 != 0 {
                let b = builder.ipv4(source: host, destination: remote, identification: UInt16(truncatingIfNeeded: n))
                frame = tcp ? b.tcp(source: 40000, destination: 80, sequence: UInt32(n), flags: flags, payload: [UInt8(n & 0xFF)])
                            : b.udp(source: 40000, destination: 53, payload: [UInt8(n & 0xFF), 1])
                port = 1
            } else {
                let b = builder.ipv4(source: remote, destination: IPv4Address(203, 0, 113, 1), identification: UInt16(truncatingIfNeeded: n))
                let external = UInt16(5000 + generator.next() % 8)
                frame = tcp ? b.tcp(source: 80, destination: external, sequence: UInt32(n), flags: flags, payload: [UInt8(n & 0xFF)])
                            : b.udp(source: 53, destination: external, payload: [UInt8(n & 0xFF), 2])
                port = 2
            }
            events.append((Int(generator.next() % 2), time, port, frame))
        }
        let run = { (cache: Int) throws -> InstancesRun in
            let nat = try Self.nat("instances-\(UUID())", configure: configure)
            return try FlowCacheRig.runInstances(graph: nat.graph, schema: nat.state.schema, events: events, cache: cache)
        }
        let cached = try run(256)
        let plain = try run(0)
        FlowCacheRig.expectSame(cached, plain)
        #expect(plain.drops["unsolicited", default: 0] > 100, "inbound traffic to expired or unused ports: \(plain.drops)")
    }
}
