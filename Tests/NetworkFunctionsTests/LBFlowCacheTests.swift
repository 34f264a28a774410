import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import Testing

/// The load balancer with its flow cache against without: two instances
/// sharing a store, clients to the VIPs and backends back, flows expiring
/// and full-NAT source ports going to other flows.
@Suite("The load balancer's flow cache")
struct LBFlowCacheTests {
    @Test("two full-NAT instances on one store, random traffic both ways, flows expiring and ports reused: as without the cache")
    func twoInstances() throws {
        func balancer() throws -> LoadBalancer {
            var config = LBConfig()
            config.vips = [LBVIPConfig(vip: "10.0.0.10:80/tcp", backends: ["192.168.1.1:8080", "192.168.1.2:8080"]),
                           LBVIPConfig(vip: "10.0.0.10:53/udp", backends: ["192.168.1.1:5353", "192.168.1.2:5353"])]
            config.mode = "fullnat"
            config.sourceAddresses = ["10.0.0.20"]
            config.ports = "20000-20007"
            config.timeouts.udp = 2
            config.timeouts.tcpTransitory = 2
            config.timeouts.tcpEstablished = 6
            config.clientPort = 1
            config.backendPort = 2
            config.namespace = "lb-cache-\(UUID())"
            return LoadBalancer(try config.resolved())
        }
        var generator = SplitMix(seed: 7)
        var events: [(instance: Int, time: Int64, port: UInt16, frame: [UInt8])] = []
        var time: Int64 = 0
        for n in 0..<4000 {
            time += Int64(generator.next() % 40_000_000)
            if generator.next() % 500 == 0 { time += 3_000_000_000 }
            let client = IPv4Address(198, 51, 100, UInt8(1 + generator.next() % 6))
            let tcp = generator.next() % 2 == 0
            let flags: PacketBuilder.TCPFlags = [[.ack], [.ack, .psh], [.syn], [.fin, .ack], [.rst], [.ack]][Int(generator.next() % 6)]
            let payload = [UInt8(n & 0xFF), UInt8(n >> 8)]
            let frame: [UInt8], port: UInt16
            if generator.next() % 3 != 0 {
                let b = PacketBuilder().ipv4(source: client, destination: IPv4Address(10, 0, 0, 10), identification: UInt16(truncatingIfNeeded: n))
                frame = tcp ? b.tcp(source: 40000, destination: 80, sequence: UInt32(n), flags: flags, payload: payload)
                            : b.udp(source: 40000, destination: 53, payload: payload)
                port = 1
            } else {
                let backend = IPv4Address(192, 168, 1, UInt8(1 + generator.next() % 2))
                let b = PacketBuilder().ipv4(source: backend, destination: IPv4Address(10, 0, 0, 20), identification: UInt16(truncatingIfNeeded: n))
                let source = UInt16(20000 + generator.next() % 8)
                frame = tcp ? b.tcp(source: 8080, destination: source, sequence: UInt32(n), flags: flags, payload: payload)
                            : b.udp(source: 5353, destination: source, payload: payload)
                port = 2
            }
            events.append((Int(generator.next() % 2), time, port, frame))
        }
        let run = { (cache: Int) throws -> InstancesRun in
            let lb = try balancer()
            return try FlowCacheRig.runInstances(graph: lb.graph, schema: lb.state.schema, events: events, cache: cache)
        }
        let cached = try run(256)
        let plain = try run(0)
        FlowCacheRig.expectSame(cached, plain)
        #expect(plain.frames.filter(\.isEmpty).count > 100, "backend traffic to expired or unused flows: \(plain.drops)")
    }
}
