/// One end of a flow or packet.
public enum Endpoint: Sendable {
    /// The sender.
    case source
    /// The receiver.
    case destination
}

/// Typed reads of the fields of a parsed packet. Each is valid only when
/// ``Packet/layout`` says the header is there.
extension Packet {
    /// The IPv4 address at `endpoint`, or `nil` when the packet is not IPv4.
    @inlinable
    public func ipv4Address(_ endpoint: Endpoint) -> IPv4Address? {
        guard layout.network == .ipv4 else { return nil }
        return IPv4Address(data.loadBigEndian(Int(layout.l3Offset) + (endpoint == .source ? 12 : 16),
                                              as: UInt32.self))
    }

    /// The IP address at `endpoint`, or ``IPAddress/zero`` when the packet is not IP.
    @inlinable @inline(__always)
    public func address(_ endpoint: Endpoint) -> IPAddress {
        Self.address(data, ipHeader: Int(layout.l3Offset), network: layout.network, endpoint)
    }

    /// The TCP or UDP port at `endpoint`; 0 for other transports.
    @inlinable @inline(__always)
    public func port(_ endpoint: Endpoint) -> UInt16 {
        guard layout.hasPorts else { return 0 }
        return data.loadBigEndian(Int(layout.l4Offset) + (endpoint == .source ? 0 : 2), as: UInt16.self)
    }

    /// The ICMP type, or `nil` for other transports.
    @inlinable
    public var icmpType: UInt8? {
        guard layout.transport == .icmpv4 || layout.transport == .icmpv6 else { return nil }
        return data.loadByte(Int(layout.l4Offset))
    }

    /// The ICMP code, or `nil` for other transports.
    @inlinable
    public var icmpCode: UInt8? {
        guard layout.transport == .icmpv4 || layout.transport == .icmpv6 else { return nil }
        return data.loadByte(Int(layout.l4Offset) + 1)
    }

    /// The identifier of an ICMP query, or `nil` for any other packet.
    @inlinable
    public var icmpIdentifier: UInt16? {
        guard layout.icmp == .query else { return nil }
        return data.loadBigEndian(Int(layout.l4Offset) + 4, as: UInt16.self)
    }

    /// The TCP flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10,
    /// URG 0x20, ECE 0x40, CWR 0x80), or `nil` when the packet is not TCP.
    @inlinable
    public var tcpFlags: UInt8? {
        guard layout.transport == .tcp else { return nil }
        return data.loadByte(Int(layout.l4Offset) + 13)
    }

    /// The TCP sequence number, or `nil` when the packet is not TCP.
    @inlinable
    public var tcpSequenceNumber: UInt32? {
        guard layout.transport == .tcp else { return nil }
        return data.loadBigEndian(Int(layout.l4Offset) + 4, as: UInt32.self)
    }

    /// The TCP acknowledgement number, or `nil` when the packet is not TCP.
    @inlinable
    public var tcpAcknowledgementNumber: UInt32? {
        guard layout.transport == .tcp else { return nil }
        return data.loadBigEndian(Int(layout.l4Offset) + 8, as: UInt32.self)
    }

    /// The TCP window field (unscaled), or `nil` when the packet is not TCP.
    @inlinable
    public var tcpWindow: UInt16? {
        guard layout.transport == .tcp else { return nil }
        return data.loadBigEndian(Int(layout.l4Offset) + 14, as: UInt16.self)
    }

    /// The number of TCP payload bytes, or `nil` when the packet is not TCP.
    @inlinable
    public var tcpPayloadLength: Int? {
        guard layout.transport == .tcp else { return nil }
        let headerLength = Int(data.loadByte(Int(layout.l4Offset) + 12) >> 4) * 4
        return max(0, Int(layout.l3End) - Int(layout.l4Offset) - headerLength)
    }

    /// The IP address at `endpoint` of the packet an ICMP error quotes.
    @inlinable
    public func quotedAddress(_ endpoint: Endpoint) -> IPAddress? {
        guard let quote = layout.quote else { return nil }
        return Self.address(data, ipHeader: Int(quote.l3Offset), network: quote.network, endpoint)
    }

    /// The TCP or UDP port at `endpoint` of the packet an ICMP error quotes.
    @inlinable
    public func quotedPort(_ endpoint: Endpoint) -> UInt16? {
        guard let quote = layout.quote, quote.transport == .tcp || quote.transport == .udp else { return nil }
        return data.loadBigEndian(Int(quote.l4Offset) + (endpoint == .source ? 0 : 2), as: UInt16.self)
    }

    /// The type of the ICMP message an ICMP error quotes.
    @inlinable
    public var quotedICMPType: UInt8? {
        guard let quote = layout.quote, quote.transport == .icmpv4 || quote.transport == .icmpv6 else {
            return nil
        }
        return data.loadByte(Int(quote.l4Offset))
    }

    /// The identifier of the ICMP query an ICMP error quotes.
    @inlinable
    public var quotedICMPIdentifier: UInt16? {
        guard let quote = layout.quote, quote.icmp == .query else { return nil }
        return data.loadBigEndian(Int(quote.l4Offset) + 4, as: UInt16.self)
    }

    @inlinable
    static func address(_ data: UnsafeMutableRawPointer, ipHeader: Int, network: NetworkLayer,
                        _ endpoint: Endpoint) -> IPAddress {
        switch network {
        case .ipv4:
            return IPAddress(IPv4Address(data.loadBigEndian(ipHeader + (endpoint == .source ? 12 : 16),
                                                            as: UInt32.self)))
        case .ipv6:
            let offset = ipHeader + (endpoint == .source ? 8 : 24)
            return IPAddress(IPv6Address(high: data.loadBigEndian(offset, as: UInt64.self),
                                         low: data.loadBigEndian(offset + 8, as: UInt64.self)))
        default:
            return .zero
        }
    }
}
