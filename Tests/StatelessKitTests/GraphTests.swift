import StatelessKit
import Testing

@Suite("Graph DSL and runner")
struct GraphTests {
    static let inside = IPv4Address(10, 0, 0, 1)
    static let web = IPv4Address(192, 0, 2, 80)

    /// parse → protocol → (tcp: port 80/443 → port 1, else drop) ...
    static func filter() throws -> Graph {
        try Graph("web-filter") { g in
            let parse = g.add(ParseNode())
            let proto = g.add(ProtocolClassifier())
            let webPorts = g.add(PortClassifier([80, 443]))
            let local = g.add(PrefixClassifier(IPPrefix.privateIPv4, endpoint: .destination))
            g.entry(parse)
            g.route(parse) { switch $0 {
                case .ip: proto
                case .arp: g.port(2)
                case .unsupported: g.drop("unsupported")
                case .malformed: g.drop("malformed")
            } }
            g.route(proto) { switch $0 {
                case .tcp: webPorts
                case .udp, .icmp: local
                case .fragment, .other: g.drop("other protocol")
            } }
            g.route(webPorts) { switch $0 {
                case .match: g.port(1)
                case .other: g.drop("not web")
            } }
            g.route(local) { switch $0 {
                case .match: g.port(2)
                case .other: g.drop("external udp")
            } }
        }
    }

    @Test("each packet leaves by its port or is dropped once, counted by reason")
    func routing() throws {
        let graph = try Self.filter()
        let pool = BufferPool(count: 64)
        let runner = GraphRunner(graph: graph, pool: pool, session: nil, batchCapacity: 16)
        let b = PacketBuilder().ipv4(source: Self.inside, destination: Self.web)
        let frames: [[UInt8]] = [
            b.tcp(source: 1000, destination: 80), b.tcp(source: 1001, destination: 22),
            b.udp(source: 5, destination: 53), PacketBuilder().ipv4(source: Self.web, destination: Self.inside).udp(source: 5, destination: 6),
            Array(b.tcp(source: 1, destination: 443).prefix(20)), b.tcp(source: 1002, destination: 443),
        ]
        let batch = PacketBatch(capacity: 16)
        for frame in frames {
            var packet = pool.allocate()!
            _ = frame.withUnsafeBytes { packet.setBytes($0) }
            batch.append(packet)
        }
        #expect(runner.canAdmit)
        runner.admit(batch, now: .zero)
        var out: [UInt16: [UInt16]] = [:]
        runner.drain { port, packets in
            for i in 0..<packets.count {
                out[port, default: []].append(packets[i].port(.source))
                pool.release(packets[i])
            }
            packets.removeAll()
        }
        #expect(out[1] == [1000, 1002])
        #expect(out[2] == [5])
        #expect(runner.drops == ["not web": 1, "external udp": 1, "malformed": 1])
        #expect(runner.counters["malformed.truncatedIPv4Header"] == 1)
        #expect(pool.available == 64, "every buffer is back")
        #expect(runner.canAdmit)
    }

    @Test("batches move whole without losing order: exchanged in and out when they can be, copied when not")
    func batchesMoveWhole() throws {
        let graph = try Self.filter()
        let pool = BufferPool(count: 256)
        let runner = GraphRunner(graph: graph, pool: pool, session: nil, batchCapacity: 16, inFlight: 2)
        let b = PacketBuilder().ipv4(source: Self.inside, destination: Self.web)
        // A batch of the runner's capacity is exchanged with a slot; one of
        // another capacity is copied. Every packet is web traffic, so each
        // batch leaves whole by port 1 and is handed over in order; every
        // third packet of the last round is dropped, so that its batch
        // leaves in pieces and is copied out.
        var sourcePort: UInt16 = 1
        for (round, capacity) in [16, 8, 16, 16].enumerated() {
            let batch = PacketBatch(capacity: capacity)
            var sent: [UInt16] = []
            for i in 0..<capacity {
                let dropped = round == 3 && i % 3 == 0
                var packet = pool.allocate()!
                _ = b.tcp(source: sourcePort, destination: dropped ? 22 : 80).withUnsafeBytes { packet.setBytes($0) }
                if !dropped { sent.append(sourcePort) }
                sourcePort += 1
                batch.append(packet)
            }
            runner.admit(batch, now: .zero)
            #expect(batch.isEmpty && batch.capacity == capacity, "the caller's batch is empty and reusable")
            var out: [UInt16] = []
            runner.drain { port, packets in
                #expect(port == 1)
                for i in 0..<packets.count {
                    out.append(packets[i].port(.source))
                    pool.release(packets[i])
                }
                packets.removeAll()
            }
            #expect(out == sent, "round \(round)")
        }
        #expect(runner.drops == ["not web": 6])
        #expect(pool.available == 256, "every buffer is back")
    }

    @Test("the graph prints as text and as DOT")
    func printing() throws {
        let graph = try Self.filter()
        let text = graph.description
        #expect(text.contains("graph web-filter: entry -> parse#0"))
        #expect(text.contains("    .tcp -> port(dst 80,443)#2"))
        #expect(text.contains("    .other -> drop(not web)"))
        let dot = graph.dot
        #expect(dot.hasPrefix("digraph \"web-filter\" {"))
        #expect(dot.contains("n0 -> n1 [label=\"ip\"];"))
        #expect(dot.contains("\"drop malformed\" [label=\"drop: malformed\", shape=octagon];"))
        #expect(dot.hasSuffix("}"))
        #expect(Set(graph.dropReasons) == ["unsupported", "malformed", "other protocol", "not web", "external udp"])
    }

    @Test("wiring mistakes the compiler cannot see are clear errors")
    func wiringErrors() {
        let unrouted = #expect(throws: GraphError.self) {
            try Graph("g") { g in
                let parse = g.add(ParseNode())
                g.add(ProtocolClassifier())
                g.entry(parse)
                g.route(parse) { _ in g.port(1) }
            }
        }
        #expect(unrouted?.description.contains("node 1 (protocol) are not routed") == true)
        let noEntry = #expect(throws: GraphError.self) { try Graph("g") { g in g.route(g.add(ParseNode())) { _ in g.port(1) } } }
        #expect(noEntry?.description.contains("no entry") == true)
        let cycle = #expect(throws: GraphError.self) {
            try Graph("g") { g in
                let a = g.add(ProtocolClassifier())
                let b = g.add(PortClassifier([1]))
                g.entry(a)
                g.route(a) { _ in b }
                g.route(b) { _ in a }
            }
        }
        #expect(cycle?.description.contains("cycle") == true)
    }

    @Test("a subgraph is a function that adds nodes and returns its entry")
    func subgraphs() throws {
        func webOnly(_ g: GraphBuilder, out: UInt16) -> any Destination {
            let ports = g.add(PortClassifier([80, 443]))
            g.route(ports) { switch $0 { case .match: g.port(out); case .other: g.drop("not web") } }
            return ports
        }
        let graph = try Graph("two") { g in
            let parse = g.add(ParseNode())
            let side = g.add(PrefixClassifier(IPPrefix.privateIPv4, endpoint: .source))
            g.entry(parse)
            g.route(parse) { $0 == .ip ? side as any Destination : g.drop("not ip") }
            let inbound = webOnly(g, out: 1)
            let outbound = webOnly(g, out: 2)
            g.route(side) { switch $0 { case .match: outbound; case .other: inbound } }
        }
        #expect(graph.nodeNames == ["parse", "prefix(src 10.0.0.0/8,172.16.0.0/12,192.168.0.0/16)", "port(dst 80,443)", "port(dst 80,443)"])
    }
}

@Suite("Action nodes")
struct ActionNodeTests {
    @Test("count and rewrite compose with the classifiers")
    func countAndRewrite() throws {
        let graph = try Graph("redirect") { g in
            let parse = g.add(ParseNode())
            let web = g.add(PortClassifier([80]))
            let counted = g.add(CountNode("web"))
            let redirect = g.add(RewriteNode(.destination, to: IPv4Address(10, 9, 9, 9), port: 8080))
            g.entry(parse)
            g.route(parse) { $0 == .ip ? web as any Destination : g.drop("not ip") }
            g.route(web) { $0 == .match ? counted as any Destination : g.port(2) }
            g.route(counted) { _ in redirect }
            g.route(redirect) { $0 == .rewritten ? g.port(1) : g.drop("skipped") }
        }
        let harness = GraphHarness(graph: graph, session: nil)
        let b = PacketBuilder().ipv4(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2))
        let out = harness.send([b.tcp(source: 5, destination: 80), b.tcp(source: 6, destination: 443)], port: 0)
        #expect(out.packets(on: 1) == [PacketBuilder().ipv4(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(10, 9, 9, 9))
            .tcp(source: 5, destination: 8080)])
        #expect(out.packets(on: 2).count == 1)
        #expect(harness.runner.counters["web"] == 1)
    }
}

import MetricsTestKit
import CoreMetrics

@Suite("Metrics")
struct MetricsTests {
    @Test("a runner's counters reach swift-metrics, growth only")
    func publish() throws {
        let metrics = TestMetrics()
        let graph = try GraphTests.filter()
        let pool = BufferPool(count: 16)
        let runner = GraphRunner(graph: graph, pool: pool, session: nil)
        let publisher = MetricsPublisher(runner: runner, prefix: "test", dimensions: [("nf", "filter")], factory: metrics)
        let harnessBatch = PacketBatch(capacity: 16)
        for port: UInt16 in [80, 22, 22] {
            var packet = pool.allocate()!
            let frame = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(192, 0, 2, 1))
                .tcp(source: 1, destination: port)
            _ = frame.withUnsafeBytes { packet.setBytes($0) }
            harnessBatch.append(packet)
        }
        runner.admit(harnessBatch, now: .zero)
        runner.drain { _, packets in pool.release(packets) }
        publisher.publish()
        publisher.publish()  // nothing grew: nothing more is counted
        let drops = try metrics.expectCounter("test_drop_not web", [("nf", "filter")])
        #expect(drops.totalValue == 2)
        let packets = try metrics.expectCounter("test_packets_in", [("nf", "filter")])
        #expect(packets.totalValue == 3)
    }
}
