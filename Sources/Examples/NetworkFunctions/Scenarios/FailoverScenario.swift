import StatelessKit
import StatelessKitStore

/// Two NAT instances carry TCP and UDP flows steered by a symmetric flow
/// hash, as an ECMP router would; halfway, instance B stops and its flows
/// go to A. With a shared store every flow keeps its mapping; with state per
/// instance, B's flows break. What `statelessnf demo` shows.
public enum FailoverScenario {
    /// What the scenario saw.
    public struct Outcome: Codable, Sendable {
        public init() {}
        /// Flows in the run.
        public var flows = 0
        /// Flows that were on instance B when it stopped.
        public var movedFlows = 0
        /// Flows whose external endpoint never changed.
        public var keptMapping = 0
        /// Flows whose external endpoint changed.
        public var changedMapping = 0
        /// Packets sent, both ways.
        public var packetsSent = 0
        /// Packets that arrived where they should.
        public var packetsDelivered = 0
        /// Packets dropped because an instance had no state for them.
        public var lostForLackOfState = 0
        /// Replies that reached another inside host.
        public var deliveredToWrongHost = 0
        /// Other drops, by reason.
        public var otherDrops: [String: Int] = [:]
    }

    /// Runs the scenario; `shareStore` decides whether the two instances use
    /// one store (`store`, or a new embedded store) or an embedded store
    /// each. The deployment is named `namespace`.
    public static func run(flows: Int, rounds: Int, shareStore: Bool, store: (any StateStore)? = nil,
                           namespace: String = "demo") throws -> Outcome {
        // Shared: both instances serve both external addresses from one
        // store. Traditional: each has its own address and its own state.
        func nat(_ external: [String]) throws -> NAT {
            var config = NATConfig()
            config.external = external
            config.ports = "10000-60000"
            config.capacity = flows * 2 + 1024
            config.namespace = namespace
            return NAT(try config.resolved())
        }
        let addresses = ["203.0.113.1", "203.0.113.2"]
        let nats = shareStore ? [try nat(addresses), try nat(addresses)] : [try nat([addresses[0]]), try nat([addresses[1]])]
        let storeA = shareStore ? store ?? EmbeddedStore() : EmbeddedStore()
        let storeB = shareStore ? storeA : EmbeddedStore()
        let instances = [
            GraphHarness(graph: try nats[0].graph(), session: try storeA.makeSession(for: nats[0].state.schema)),
            GraphHarness(graph: try nats[1].graph(), session: try storeB.makeSession(for: nats[1].state.schema)),
        ]
        let servers = (1...8).map { IPv4Address(198, 51, 100, UInt8($0)) }
        struct Flow {
            let tcp: Bool
            let host: IPv4Address
            let port: UInt16
            let server: IPv4Address
            var external: NATEndpoint? = nil
            var changed = false
            var home: Int
        }
        var table = (0..<flows).map { i -> Flow in
            let host = IPv4Address(0x0A01_0000 + UInt32(i) + 1)
            let key = FlowKey(source: IPAddress(host), destination: IPAddress(servers[i % servers.count]),
                              sourcePort: UInt16(20000 + i % 30000), destinationPort: i % 2 == 0 ? 443 : 53,
                              ipProtocol: i % 2 == 0 ? IPProtocol.tcp : IPProtocol.udp)
            // Steering by a symmetric flow hash, as an ECMP router would.
            return Flow(tcp: i % 2 == 0, host: host, port: key.sourcePort, server: servers[i % servers.count],
                        home: Int(key.symmetricHash() % 2))
        }
        var outcome = Outcome()
        outcome.flows = flows
        let start = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
        for round in 0..<rounds {
            let now = Timestamp(nanoseconds: start.nanoseconds + Int64(round) * 1_000_000_000)
            instances.forEach { $0.now = now }
            if round == rounds / 2 {
                for i in table.indices where table[i].home == 1 {
                    table[i].home = 0
                    outcome.movedFlows += 1
                }
            }
            // Outbound: each flow's packet through its instance.
            for instance in 0..<2 {
                let members = table.indices.filter { table[$0].home == instance }
                for chunk in stride(from: 0, to: members.count, by: 32) {
                    let ids = Array(members[chunk..<min(chunk + 32, members.count)])
                    let frames = ids.map { i -> [UInt8] in
                        let f = table[i]
                        let b = PacketBuilder().ipv4(source: f.host, destination: f.server)
                        // The payload names the flow, so the translated packet can be matched to it.
                        let payload = Self.tag(i)
                        if f.tcp {
                            return b.tcp(source: f.port, destination: 443, sequence: UInt32(1000 + round),
                                         flags: round == 0 ? .syn : [.ack, .psh], payload: payload)
                        }
                        return b.udp(source: f.port, destination: 53, payload: payload)
                    }
                    outcome.packetsSent += frames.count
                    let out = instances[instance].send(frames, port: 0)
                    outcome.lostForLackOfState += out.drops["unsolicited"] ?? 0
                    for (reason, count) in out.drops where reason != "unsolicited" { outcome.otherDrops[reason, default: 0] += count }
                    for frame in out.packets(on: 0) {
                        outcome.packetsDelivered += 1
                        let (i, external) = try Self.translated(frame)
                        if let known = table[i].external, known != external { table[i].changed = true }
                        if table[i].external == nil { table[i].external = external }
                    }
                }
            }
            // Replies: from each server to the flow's first external endpoint.
            for instance in 0..<2 {
                let members = table.indices.filter { table[$0].home == instance && table[$0].external != nil }
                for chunk in stride(from: 0, to: members.count, by: 32) {
                    let frames = members[chunk..<min(chunk + 32, members.count)].map { i -> [UInt8] in
                        let f = table[i]
                        let b = PacketBuilder().ipv4(source: f.server, destination: f.external!.address)
                        if f.tcp {
                            return b.tcp(source: 443, destination: f.external!.port, acknowledgement: UInt32(1001 + round),
                                         flags: round == 0 ? [.syn, .ack] : .ack, payload: Self.tag(i))
                        }
                        return b.udp(source: 53, destination: f.external!.port, payload: Self.tag(i))
                    }
                    outcome.packetsSent += frames.count
                    let out = instances[instance].send(frames, port: 0)
                    // After the failure, B's addresses are routed to A: a reply there is lost for lack of state.
                    outcome.lostForLackOfState += out.drops["notForNAT"] ?? 0
                    for frame in out.packets(on: 0) {
                        let (i, destination) = try Self.translated(frame, endpoint: .destination)
                        if destination == NATEndpoint(table[i].host, table[i].port) {
                            outcome.packetsDelivered += 1
                        } else {
                            outcome.deliveredToWrongHost += 1
                        }
                    }
                    outcome.lostForLackOfState += out.drops["unsolicited"] ?? 0
                    for (reason, count) in out.drops where reason != "unsolicited" && reason != "notForNAT" {
                        outcome.otherDrops[reason, default: 0] += count
                    }
                }
            }
        }
        outcome.changedMapping = table.filter(\.changed).count
        outcome.keptMapping = flows - outcome.changedMapping
        return outcome
    }

    /// Four bytes naming flow `index`.
    static func tag(_ index: Int) -> [UInt8] {
        [UInt8(index >> 24 & 0xFF), UInt8(index >> 16 & 0xFF), UInt8(index >> 8 & 0xFF), UInt8(index & 0xFF)]
    }

    /// The flow a translated packet belongs to (from its payload) and its
    /// external source.
    static func translated(_ frame: [UInt8], endpoint: Endpoint = .source) throws -> (Int, NATEndpoint) {
        let pool = BufferPool(count: 1, dataRoom: 2048)
        var packet = pool.allocate()!
        defer { pool.release(packet) }
        _ = frame.withUnsafeBytes { packet.setBytes($0) }
        try packet.parse()
        let l4 = Int(packet.layout.l4Offset)
        let header = packet.layout.transport == .tcp ? Int(frame[l4 + 12] >> 4) * 4 : 8
        let index = frame[(l4 + header)..<(l4 + header + 4)].reduce(0) { $0 << 8 | Int($1) }
        return (index, NATEndpoint(packet.ipv4Address(endpoint)!, packet.port(endpoint)))
    }
}
