import StatelessKit

/// Plays a capture recorded on the inside of a NAT as if the NAT sat on
/// that path. Packets from the inside (by the internal prefixes) go in the
/// NAT's inside port. Packets to the inside are first re-addressed as the
/// outside world would send them, to the external address and port the
/// NAT's own output chose for their flow, and go in the outside port; what
/// comes back out on the inside must be the capture's own packet, byte for
/// byte. Time is the capture's.
public final class NATReplay {
    /// What a replay saw.
    public struct Report: Sendable, Codable, Equatable {
        /// Packets read.
        public var packets = 0
        /// Packets from the inside.
        public var outbound = 0
        /// Packets from the inside that left translated.
        public var outboundTranslated = 0
        /// Packets to the inside re-addressed and sent in.
        public var inbound = 0
        /// Re-addressed packets that came back out on the inside.
        public var inboundTranslated = 0
        /// Packets that came back equal to the capture's.
        public var matches = 0
        /// Packets that came back different from the capture's.
        public var mismatches = 0
        /// Packets to the inside for which the NAT's output never gave a
        /// mapping (traffic the capture shows arriving unsolicited).
        public var inboundWithoutMapping = 0
        /// Packets that are not IPv4 or cross no NAT side (ARP, IPv6, local).
        public var notTranslatable = 0
        /// The NAT's drops, by reason.
        public var drops: [String: Int] = [:]
        /// The frame numbers (from 1) of the first mismatches.
        public var firstMismatches: [Int] = []
        /// Mappings the NAT created, and entries its store expired.
        public var flowsCreated = 0
        public var flowsExpired = 0
        /// State operations and store round trips.
        public var stateOperations = 0
        public var storeRoundTrips = 0

        /// An empty report.
        public init() {}
    }

    let nat: NAT
    let harness: GraphHarness
    /// External endpoint by (protocol, inside address, inside port or identifier).
    var mappings: [MappingKey: NATEndpoint] = [:]
    /// External address by the fragment key of a re-addressed first fragment.
    var fragments: [NATFragmentKey: IPv4Address] = [:]
    let scratch = BufferPool(count: 2, dataRoom: 65_536)
    /// What the replay saw so far.
    public var report: Report {
        var report = tally
        report.flowsCreated = harness.runner.counters["nat.mappingsCreated"]
        report.stateOperations = harness.runner.stateOperations
        report.storeRoundTrips = harness.runner.roundTrips
        return report
    }
    private var tally = Report()

    struct MappingKey: Hashable {
        var ipProtocol: UInt8
        var endpoint: NATEndpoint
    }

    /// A replay through `nat`, whose state lives in `session`'s store.
    public init(nat: NAT, session: any StateSession) throws {
        self.nat = nat
        harness = GraphHarness(graph: try nat.graph(), session: session, batchCapacity: 1)
    }

    /// Plays one captured packet; returns what left by each side.
    public func play(_ frame: [UInt8], at time: Timestamp, linkType: LinkType = .ethernet) -> GraphHarness.Output {
        tally.packets += 1
        if time > harness.now { harness.now = time }
        // The capture's time drives expiry, as in a live NAT.
        if tally.packets % 64 == 0, let session = harness.session {
            tally.flowsExpired += session.expire(now: harness.now, budget: 1024)
        }
        var packet = scratch.allocate()!
        defer { scratch.release(packet) }
        _ = frame.withUnsafeBytes { packet.setBytes($0) }
        packet.linkType = linkType
        guard (try? packet.parse()) != nil, packet.layout.network == .ipv4,
              let source = packet.ipv4Address(.source), let destination = packet.ipv4Address(.destination) else {
            tally.notTranslatable += 1
            return GraphHarness.Output()
        }
        let fromInside = isInternal(source)
        let toInside = isInternal(destination)
        if fromInside {
            tally.outbound += 1
            let output = send([UInt8](UnsafeRawBufferPointer(packet.bytes)), port: nat.insidePort, linkType: linkType)
            if let out = output.packets(on: nat.outsidePort).first {
                tally.outboundTranslated += 1
                learn(from: packet, translated: out, linkType: linkType)
            }
            return output
        }
        guard toInside else {
            tally.notTranslatable += 1
            return GraphHarness.Output()
        }
        guard readdress(&packet) else {
            tally.inboundWithoutMapping += 1
            return GraphHarness.Output()
        }
        tally.inbound += 1
        let output = send([UInt8](UnsafeRawBufferPointer(packet.bytes)), port: nat.outsidePort, linkType: linkType)
        if let back = output.packets(on: nat.insidePort).first {
            tally.inboundTranslated += 1
            if back == frame {
                tally.matches += 1
            } else {
                tally.mismatches += 1
                if tally.firstMismatches.count < 10 { tally.firstMismatches.append(tally.packets) }
            }
        }
        return output
    }

    func send(_ frame: [UInt8], port: UInt16, linkType: LinkType) -> GraphHarness.Output {
        let output = harness.send([frame], port: port, linkType: linkType)
        tally.drops.merge(output.drops, uniquingKeysWith: +)
        return output
    }

    func isInternal(_ address: IPv4Address) -> Bool {
        nat.config.internalPrefixes.contains { $0.contains(IPAddress(address)) }
    }

    /// Records the mapping an outbound packet got.
    func learn(from original: Packet, translated: [UInt8], linkType: LinkType) {
        guard var out = scratch.allocate() else { preconditionFailure("the replay's scratch pool holds two buffers") }
        defer { scratch.release(out) }
        _ = translated.withUnsafeBytes { out.setBytes($0) }
        out.linkType = linkType
        guard (try? out.parse()) != nil, let external = out.ipv4Address(.source) else { return }
        let protocolNumber = original.layout.ipProtocol
        if let insidePort = Self.port(original, .source), let externalPort = Self.port(out, .source),
           original.layout.icmp != .error {
            mappings[MappingKey(ipProtocol: protocolNumber, endpoint: NATEndpoint(original.ipv4Address(.source)!, insidePort))] =
                NATEndpoint(external, externalPort)
        }
    }

    /// Re-addresses a packet to the inside as the outside world would have
    /// sent it; `false` when no mapping is known.
    func readdress(_ packet: inout Packet) -> Bool {
        let destination = packet.ipv4Address(.destination)!
        if packet.layout.transport == .fragment {
            let key = NATFragmentKey(side: .outside, source: packet.ipv4Address(.source)!, destination: destination,
                                     ipProtocol: packet.layout.ipProtocol,
                                     identification: UInt16(truncatingIfNeeded: packet.layout.fragment.identification))
            guard let external = fragments[key] else { return false }
            return packet.setIPv4Address(external, at: .destination)
        }
        if packet.layout.icmp == .error {
            guard let quote = packet.layout.quote, let quoted = packet.quotedAddress(.source)?.ipv4,
                  let port = quote.transport == .tcp || quote.transport == .udp
                      ? packet.quotedPort(.source) : packet.quotedICMPIdentifier,
                  let external = mappings[MappingKey(ipProtocol: quote.ipProtocol, endpoint: NATEndpoint(quoted, port))]
            else { return false }
            packet.setIPv4Address(external.address, at: .destination)
            packet.setQuotedIPv4Address(external.address, at: .source)
            if quote.icmp == .query { packet.setQuotedICMPIdentifier(external.port) } else { packet.setQuotedPort(external.port, at: .source) }
            return true
        }
        guard let port = Self.port(packet, .destination),
              let external = mappings[MappingKey(ipProtocol: packet.layout.ipProtocol, endpoint: NATEndpoint(destination, port))]
        else { return false }
        if packet.layout.fragment.moreFragments {
            fragments[NATFragmentKey(side: .outside, source: packet.ipv4Address(.source)!, destination: external.address,
                                     ipProtocol: packet.layout.ipProtocol,
                                     identification: UInt16(truncatingIfNeeded: packet.layout.fragment.identification))] =
                external.address
        }
        packet.setIPv4Address(external.address, at: .destination)
        if packet.layout.hasPorts { packet.setPort(external.port, at: .destination) } else { packet.setICMPIdentifier(external.port) }
        return true
    }

    /// A packet's port, or an ICMP query's identifier, at `end`.
    static func port(_ packet: Packet, _ end: Endpoint) -> UInt16? {
        if packet.layout.hasPorts { return packet.port(end) }
        return packet.icmpIdentifier
    }
}
