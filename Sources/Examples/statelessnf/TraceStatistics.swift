import StatelessKit

/// What a pass over captures saw: packets, protocols, flows, checksums and
/// malformed packets by reason.
struct TraceStatistics: Encodable {
    var files = 0
    var packets = 0
    var bytes = 0
    var truncatedByCapture = 0
    var firstTimestamp: Timestamp? = nil
    var lastTimestamp: Timestamp? = nil
    var network: [String: Int] = [:]
    var transport: [String: Int] = [:]
    var vlanTagged = 0
    var qinq = 0
    var fragments = 0
    var icmpErrors = 0
    var checksums: [String: [String: Int]] = [:]
    var malformed: [String: Int] = [:]
    var unsupported: [String: Int] = [:]
    var flowsByProtocol: [String: Int] = [:]
    private var flowKeys: Set<FlowKey> = []

    enum CodingKeys: String, CodingKey {
        case files, packets, bytes, truncatedByCapture, durationSeconds, network, transport, vlanTagged, qinq,
             fragments, icmpErrors, checksums, malformed, unsupported, flows, flowsByProtocol
    }

    var flows: Int { flowKeys.count }

    var durationSeconds: Double {
        guard let first = firstTimestamp, let last = lastTimestamp else { return 0 }
        return Double(last.nanoseconds - first.nanoseconds) / 1e9
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(files, forKey: .files)
        try c.encode(packets, forKey: .packets)
        try c.encode(bytes, forKey: .bytes)
        try c.encode(truncatedByCapture, forKey: .truncatedByCapture)
        try c.encode(durationSeconds, forKey: .durationSeconds)
        try c.encode(network, forKey: .network)
        try c.encode(transport, forKey: .transport)
        try c.encode(vlanTagged, forKey: .vlanTagged)
        try c.encode(qinq, forKey: .qinq)
        try c.encode(fragments, forKey: .fragments)
        try c.encode(icmpErrors, forKey: .icmpErrors)
        try c.encode(checksums, forKey: .checksums)
        try c.encode(malformed, forKey: .malformed)
        try c.encode(unsupported, forKey: .unsupported)
        try c.encode(flows, forKey: .flows)
        try c.encode(flowsByProtocol, forKey: .flowsByProtocol)
    }

    mutating func add(_ packet: inout Packet) {
        packets += 1
        bytes += Int(packet.originalLength)
        if packet.originalLength > packet.length { truncatedByCapture += 1 }
        if firstTimestamp == nil { firstTimestamp = packet.timestamp }
        lastTimestamp = packet.timestamp
        do {
            try packet.parse()
        } catch {
            if error.isMalformed {
                malformed[error.name, default: 0] += 1
            } else {
                unsupported[error.name, default: 0] += 1
            }
            return
        }
        let layout = packet.layout
        network[Self.name(layout.network), default: 0] += 1
        if layout.network == .arp { return }
        transport[Self.name(layout.transport, layout.ipProtocol), default: 0] += 1
        if layout.vlanCount > 0 { vlanTagged += 1 }
        if layout.vlanCount > 1 { qinq += 1 }
        if layout.fragment.isFragment { fragments += 1 }
        if layout.icmp == .error { icmpErrors += 1 }
        let report = packet.verifyChecksums()
        if layout.network == .ipv4 { checksums["ipv4Header", default: [:]][report.ipv4Header.description, default: 0] += 1 }
        if report.transport != .unverifiable {
            checksums["transport", default: [:]][report.transport.description, default: 0] += 1
        }
        if let key = packet.flowKey, flowKeys.insert(key.canonical).inserted {
            flowsByProtocol[Self.name(layout.transport, layout.ipProtocol), default: 0] += 1
        }
    }

    mutating func merge(_ other: TraceStatistics) {
        files += other.files
        packets += other.packets
        bytes += other.bytes
        truncatedByCapture += other.truncatedByCapture
        vlanTagged += other.vlanTagged
        qinq += other.qinq
        fragments += other.fragments
        icmpErrors += other.icmpErrors
        network.merge(other.network, uniquingKeysWith: +)
        transport.merge(other.transport, uniquingKeysWith: +)
        malformed.merge(other.malformed, uniquingKeysWith: +)
        unsupported.merge(other.unsupported, uniquingKeysWith: +)
        flowsByProtocol.merge(other.flowsByProtocol, uniquingKeysWith: +)
        for (kind, verdicts) in other.checksums { checksums[kind, default: [:]].merge(verdicts, uniquingKeysWith: +) }
        flowKeys.formUnion(other.flowKeys)
    }

    static func name(_ network: NetworkLayer) -> String {
        switch network {
        case .none: "none"
        case .arp: "ARP"
        case .ipv4: "IPv4"
        case .ipv6: "IPv6"
        }
    }

    static func name(_ transport: TransportLayer, _ ipProtocol: UInt8) -> String {
        switch transport {
        case .none: "none"
        case .tcp: "TCP"
        case .udp: "UDP"
        case .icmpv4: "ICMP"
        case .icmpv6: "ICMPv6"
        case .fragment: "non-first fragment"
        case .other: "protocol \(ipProtocol)"
        }
    }
}
