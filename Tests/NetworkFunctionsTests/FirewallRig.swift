import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport

/// A firewall with two ports (inside 1, outside 2) under a manual clock, on
/// the embedded store or Redis; packets go in one at a time and come back
/// as a verdict: `pass`, or `drop REASON` (`drop invalid/WHY` for invalid ones).
final class FirewallRig {
    static let edgeRules = """
        accept state established,related
        accept out state new
        policy in drop
        policy out drop
        """
    let firewall: Firewall
    let harness: GraphHarness
    let store: any InspectableStore
    let namespace: String

    /// A firewall on a store of `kind`, or, with `sharing`, a second
    /// instance on the same store and deployment as another.
    init(_ kind: StoreKind, rules: String = FirewallRig.edgeRules, loose: Bool = false, capacity: Int = 1 << 16,
         timeouts: FirewallTimeouts = FirewallTimeouts(), internal: [String]? = nil, sharing other: FirewallRig? = nil) throws {
        namespace = other?.namespace ?? "fw-test-\(UUID())"
        var config = FirewallConfig()
        config.loosePickup = loose
        config.capacity = capacity
        config.timeouts = timeouts
        config.insidePort = 1
        config.outsidePort = 2
        config.namespace = namespace
        if let `internal` { config.internal = `internal` }
        firewall = Firewall(try config.resolved(ruleSet: try FirewallRuleSet.parse(rules)))
        store = try other?.store ?? kind.make()
        harness = GraphHarness(graph: try firewall.graph(), session: try store.makeSession(for: firewall.state.schema),
                               batchCapacity: 32)
    }

    /// Sends `frame` in from the inside (`outbound`) or the outside; returns its verdict.
    func send(_ frame: [UInt8], outbound: Bool) -> String {
        send([frame], outbound: outbound)[0]
    }

    /// Sends frames in one batch from one side; returns each one's verdict
    /// (the batch's drops are matched to frames in order of reasons when
    /// several are dropped, so use it for batches whose frames all pass or
    /// whose drops share one reason).
    func send(_ frames: [[UInt8]], outbound: Bool) -> [String] {
        let before = invalidCounts()
        let output = harness.send(frames, port: outbound ? 1 : 2)
        let passed = output.packets(on: outbound ? 2 : 1)
        var verdicts: [String] = []
        var remaining = passed
        for frame in frames {
            if let index = remaining.firstIndex(of: frame) {
                remaining.remove(at: index)
                verdicts.append("pass")
            } else {
                var reason = output.drops.keys.sorted().first ?? "?"
                if reason == "invalid" {
                    let after = invalidCounts()
                    if let i = after.indices.first(where: { after[$0] != before[$0] }) {
                        reason += "/" + Self.invalidNames[i].dropFirst("firewall.invalid.".count)
                    }
                }
                verdicts.append("drop \(reason)")
            }
        }
        return verdicts
    }

    static let invalidNames = ["noConnection", "unrelatedError", "wrongEchoDirection"]
        .map { "firewall.invalid.\($0)" } + TCPTracker.InvalidReason.allCases.map { "firewall.invalid.\($0.rawValue)" }

    func invalidCounts() -> [Int] { Self.invalidNames.map { harness.runner.counters[$0] } }

    /// Moves the clock on and runs expiry; returns the entries expired.
    @discardableResult
    func advance(_ seconds: Double) -> Int {
        harness.advance(seconds: seconds)
        return harness.expire()
    }

    /// The connections tables' live entries.
    var connectionEntries: Int {
        let tables = ((try? store.statistics(namespace: namespace)) ?? nil)?.tables
        return (tables?["connections4"]?.entries ?? 0) + (tables?["connections6"]?.entries ?? 0)
    }
}

/// Two hosts' TCP segments, with sequence numbers kept for them.
struct TCPPeers {
    var client = (address: IPv4Address(10, 0, 0, 1), port: UInt16(40000))
    var server = (address: IPv4Address(198, 51, 100, 7), port: UInt16(80))

    /// A segment from the client (`fromClient`) or the server.
    func segment(fromClient: Bool, seq: UInt32, ack: UInt32 = 0, flags: PacketBuilder.TCPFlags,
                 payload: Int = 0, window: UInt16 = 65535, options: [UInt8] = []) -> [UInt8] {
        let (from, to) = fromClient ? (client, server) : (server, client)
        return PacketBuilder().ipv4(source: from.address, destination: to.address)
            .tcp(source: from.port, destination: to.port, sequence: seq, acknowledgement: ack, flags: flags,
                 window: window, options: options, payload: [UInt8](repeating: 0x61, count: payload))
    }
}
