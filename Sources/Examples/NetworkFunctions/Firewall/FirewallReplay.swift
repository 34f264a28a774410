import StatelessKit

/// Plays a capture through a firewall as if it sat on that path: a packet
/// from an internal address enters the inside port, any other enters the
/// outside port, and each comes out on the other side or is dropped.
/// Time is the capture's, so timeouts and expiry are those the capture
/// shows.
public final class FirewallReplay {
    /// What happened to one packet.
    public struct Verdict: Sendable, Codable, Equatable, CustomStringConvertible {
        /// The frame's number in the capture, from 1.
        public var frame: Int
        /// The way it crossed, `in` or `out`; `nil` when it was not IP.
        public var direction: String?
        /// Whether it came out on the other side.
        public var passed: Bool
        /// Why it was dropped (the graph's drop reason, and for invalid
        /// packets what tracking found), or `nil`.
        public var reason: String?

        /// `3 in pass`, `4 out drop invalid/beyondWindow`, `1 - drop notIP`.
        public var description: String {
            "\(frame) \(direction ?? "-") \(passed ? "pass" : "drop \(reason ?? "?")")"
        }
    }

    /// What a replay saw.
    public struct Report: Sendable, Codable, Equatable {
        /// Packets read.
        public var packets = 0
        /// Packets from the inside, and those that came out on the outside.
        public var outbound = 0
        /// Packets from the inside that came out on the outside.
        public var outboundPassed = 0
        /// Packets from the outside, and those that came out on the inside.
        public var inbound = 0
        /// Packets from the outside that came out on the inside.
        public var inboundPassed = 0
        /// Frames that carry no IP packet (ARP, STP, ...): not played.
        public var notIP = 0
        /// Drops by reason (the graph's, and `invalid/<what tracking found>`).
        public var drops: [String: Int] = [:]
        /// Connections opened, and entries the store expired.
        public var connectionsOpened = 0
        /// Entries the store expired during the replay.
        public var entriesExpired = 0
        /// State operations and store round trips.
        public var stateOperations = 0
        /// Store round trips (requests).
        public var storeRoundTrips = 0

        /// An empty report.
        public init() {}
    }

    let firewall: Firewall
    let harness: GraphHarness
    let internalPrefixes: PrefixSet
    let scratch = BufferPool(count: 1, dataRoom: 65_536)
    /// Every packet's verdict, in order.
    public private(set) var verdicts: [Verdict] = []
    private var tally = Report()
    private var lastExpiry = Timestamp(nanoseconds: 0)

    /// What the replay saw so far.
    public var report: Report {
        var report = tally
        report.connectionsOpened = harness.runner.counters["firewall.connectionsOpened"]
        report.stateOperations = harness.runner.stateOperations
        report.storeRoundTrips = harness.runner.roundTrips
        return report
    }

    /// A replay through `firewall` (which must have two ports), whose state
    /// lives in `session`'s store.
    public init(firewall: Firewall, session: any StateSession) throws {
        precondition(firewall.config.insidePort != nil, "a replay needs a firewall with two ports")
        self.firewall = firewall
        internalPrefixes = PrefixSet(firewall.config.internalPrefixes)
        harness = GraphHarness(graph: try firewall.graph(), session: session, batchCapacity: 1)
    }

    /// Plays one captured packet; returns what left by each side.
    public func play(_ frame: [UInt8], at time: Timestamp, linkType: LinkType = .ethernet) -> GraphHarness.Output {
        tally.packets += 1
        if time > harness.now { harness.now = time }
        // Expiry runs as in a live firewall: every 64 packets, and whenever
        // a second of capture time has passed.
        if tally.packets % 64 == 0 || harness.now.nanoseconds - lastExpiry.nanoseconds >= 1_000_000_000,
           let session = harness.session {
            tally.entriesExpired += session.expire(now: harness.now, budget: 1 << 16)
            lastExpiry = harness.now
        }
        var packet = scratch.allocate()!
        _ = frame.withUnsafeBytes { packet.setBytes($0) }
        packet.linkType = linkType
        var parsed = true, notIP = false
        do throws(ParseError) {
            try packet.parse()
            notIP = packet.layout.network != .ipv4 && packet.layout.network != .ipv6
        } catch {
            parsed = false
            notIP = error == .unsupportedEtherType
        }
        let outbound = parsed && internalPrefixes.contains(packet, .source)
        scratch.release(packet)
        // A malformed frame still enters (and is dropped and counted as
        // such); one that is not IP is not played.
        guard !notIP else {
            tally.notIP += 1
            verdicts.append(Verdict(frame: tally.packets, direction: nil, passed: false, reason: "notIP"))
            return GraphHarness.Output()
        }
        let invalidBefore = invalidCounts()
        let port = outbound ? firewall.insidePort : firewall.outsidePort
        let output = harness.send([frame], port: port, linkType: linkType)
        let passed = !output.packets(on: outbound ? firewall.outsidePort : firewall.insidePort).isEmpty
        if outbound {
            tally.outbound += 1
            if passed { tally.outboundPassed += 1 }
        } else {
            tally.inbound += 1
            if passed { tally.inboundPassed += 1 }
        }
        var reason = output.drops.keys.sorted().first
        if reason == "invalid" {
            let after = invalidCounts()
            if let index = after.indices.first(where: { after[$0] != invalidBefore[$0] }) {
                reason = "invalid/" + InvalidPacket.counterNames[index].dropFirst("firewall.invalid.".count)
            }
        }
        if let reason { tally.drops[reason, default: 0] += 1 }
        verdicts.append(Verdict(frame: tally.packets, direction: outbound ? "out" : "in", passed: passed,
                                reason: passed ? nil : reason))
        return output
    }

    func invalidCounts() -> [Int] {
        InvalidPacket.counterNames.map { harness.runner.counters[$0] }
    }
}
