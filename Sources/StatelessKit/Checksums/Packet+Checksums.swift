/// The outcome of checking one checksum.
public enum ChecksumVerdict: UInt8, Sendable, CustomStringConvertible {
    /// The checksum is right.
    case good
    /// The checksum is wrong (as it often is in captures taken on a host
    /// that offloads checksums to its NIC).
    case bad
    /// The packet carries no checksum (UDP over IPv4 with a zero checksum).
    case absent
    /// It cannot be checked here: a fragment, or no such header.
    case unverifiable

    public var description: String {
        switch self {
        case .good: "good"
        case .bad: "bad"
        case .absent: "absent"
        case .unverifiable: "unverifiable"
        }
    }
}

/// The verdicts on a parsed packet's checksums.
public struct ChecksumReport: Hashable, Sendable {
    /// The IPv4 header checksum (``ChecksumVerdict/unverifiable`` for IPv6).
    public var ipv4Header: ChecksumVerdict
    /// The TCP, UDP, ICMP or ICMPv6 checksum over the whole datagram.
    public var transport: ChecksumVerdict
    /// The IPv4 header checksum of the packet an ICMP error quotes.
    public var quotedIPv4Header: ChecksumVerdict

    /// A report from its three verdicts.
    public init(ipv4Header: ChecksumVerdict, transport: ChecksumVerdict, quotedIPv4Header: ChecksumVerdict) {
        self.ipv4Header = ipv4Header
        self.transport = transport
        self.quotedIPv4Header = quotedIPv4Header
    }
}

extension Packet {
    /// Checks every checksum the packet carries.
    public func verifyChecksums() -> ChecksumReport {
        var report = ChecksumReport(ipv4Header: .unverifiable, transport: .unverifiable,
                                    quotedIPv4Header: .unverifiable)
        let l3 = Int(layout.l3Offset)
        if layout.network == .ipv4 {
            let headerLength = Int(data.loadByte(l3) & 0x0F) * 4
            report.ipv4Header = InternetChecksum.sum(data + l3, count: headerLength) == 0xFFFF ? .good : .bad
        }
        if let quote = layout.quote, quote.network == .ipv4 {
            let q = Int(quote.l3Offset)
            let headerLength = Int(data.loadByte(q) & 0x0F) * 4
            report.quotedIPv4Header = InternetChecksum.sum(data + q, count: headerLength) == 0xFFFF ? .good : .bad
        }
        guard !layout.fragment.isFragment else { return report }
        let l4 = Int(layout.l4Offset)
        var length = Int(layout.l3End) - l4
        var initial: UInt32 = 0
        switch layout.transport {
        case .tcp, .udp, .icmpv6:
            if layout.transport == .udp {
                if data.loadBigEndian(l4 + 6, as: UInt16.self) == 0 && layout.network == .ipv4 {
                    report.transport = .absent
                    return report
                }
                length = min(length, Int(data.loadBigEndian(l4 + 4, as: UInt16.self)))
            }
            initial = layout.network == .ipv4
                ? InternetChecksum.pseudoHeaderSum(ipv4: data + l3, protocol: layout.ipProtocol, length: length)
                : InternetChecksum.pseudoHeaderSum(ipv6: data + l3, protocol: layout.ipProtocol, length: length)
        case .icmpv4:
            break
        default:
            return report
        }
        report.transport = InternetChecksum.sum(data + l4, count: length, initial: initial) == 0xFFFF ? .good : .bad
        return report
    }
}
