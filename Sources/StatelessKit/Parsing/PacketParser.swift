/// Parses Ethernet (with up to two VLAN tags), ARP, IPv4, IPv6 with its
/// extension headers, TCP, UDP, ICMP and ICMPv6, and the packet an ICMP
/// error quotes, into a ``PacketLayout``.
///
/// The parser reads only bytes it has proved to lie inside the packet, and
/// never writes. A packet it refuses gets a ``ParseError`` naming why.
public enum PacketParser {
    /// Parses `length` bytes at `data`, which begin as `linkType` says.
    @inlinable
    public static func parse(_ data: UnsafeMutableRawPointer, length: Int,
                             linkType: LinkType) throws(ParseError) -> PacketLayout {
        var layout = PacketLayout()
        var offset = 0
        switch linkType {
        case .ethernet:
            guard length >= 14 else { throw .truncatedEthernet }
            var type = data.loadBigEndian(12, as: UInt16.self)
            offset = 14
            while type == EtherType.vlan || type == EtherType.serviceVLAN || type == EtherType.legacyQinQ {
                guard layout.vlanCount < 2 else { throw .tooManyVLANTags }
                guard length >= offset + 4 else { throw .truncatedVLANTag }
                let tag = data.loadBigEndian(offset, as: UInt16.self)
                if layout.vlanCount == 0 { layout.outerVLANTag = tag } else { layout.innerVLANTag = tag }
                layout.vlanCount += 1
                type = data.loadBigEndian(offset + 2, as: UInt16.self)
                offset += 4
            }
            layout.etherType = type
        case .rawIP:
            guard length >= 1 else { throw .truncatedIPv4Header }
            switch data.loadByte(0) >> 4 {
            case 4: layout.etherType = EtherType.ipv4
            case 6: layout.etherType = EtherType.ipv6
            default: throw .badIPVersion
            }
        }
        layout.l3Offset = UInt16(offset)
        switch layout.etherType {
        case EtherType.ipv4:
            try parseIPv4(data, at: offset, length: length, into: &layout)
        case EtherType.ipv6:
            try parseIPv6(data, at: offset, length: length, into: &layout)
        case EtherType.arp:
            try parseARP(data, at: offset, length: length, into: &layout)
        default:
            throw .unsupportedEtherType
        }
        return layout
    }

    @inlinable
    static func parseARP(_ data: UnsafeMutableRawPointer, at offset: Int, length: Int,
                         into layout: inout PacketLayout) throws(ParseError) {
        guard length >= offset + 8 else { throw .truncatedARP }
        let hardwareLength = Int(data.loadByte(offset + 4))
        let protocolLength = Int(data.loadByte(offset + 5))
        let end = offset + 8 + 2 * (hardwareLength + protocolLength)
        guard length >= end else { throw .truncatedARP }
        layout.network = .arp
        layout.l4Offset = UInt16(end)
        layout.l3End = UInt32(end)
    }

    @inlinable
    static func parseIPv4(_ data: UnsafeMutableRawPointer, at offset: Int, length: Int,
                          into layout: inout PacketLayout) throws(ParseError) {
        guard length >= offset + 20 else { throw .truncatedIPv4Header }
        let first = data.loadByte(offset)
        guard first >> 4 == 4 else { throw .badIPVersion }
        let headerLength = Int(first & 0x0F) * 4
        guard headerLength >= 20 else { throw .badIPv4HeaderLength }
        guard length >= offset + headerLength else { throw .truncatedIPv4Header }
        let totalLength = Int(data.loadBigEndian(offset + 2, as: UInt16.self))
        guard totalLength >= headerLength else { throw .badIPv4TotalLength }
        guard length >= offset + totalLength else { throw .ipv4TotalLengthExceedsPacket }
        let flags = data.loadBigEndian(offset + 6, as: UInt16.self)
        let fragmentOffset = Int(flags & 0x1FFF) * 8
        guard fragmentOffset + totalLength - headerLength <= 65535 else { throw .badFragmentOffset }
        layout.network = .ipv4
        layout.fragment.offset = UInt16(fragmentOffset)
        layout.fragment.moreFragments = flags & 0x2000 != 0
        layout.fragment.dontFragment = flags & 0x4000 != 0
        layout.fragment.isFragment = layout.fragment.moreFragments || fragmentOffset != 0
        layout.fragment.identification = UInt32(data.loadBigEndian(offset + 4, as: UInt16.self))
        layout.ipProtocol = data.loadByte(offset + 9)
        layout.l4Offset = UInt16(offset + headerLength)
        layout.l3End = UInt32(offset + totalLength)
        if fragmentOffset != 0 {
            layout.transport = .fragment
            return
        }
        try parseTransport(data, at: offset + headerLength, end: offset + totalLength,
                           isIPv6: false, into: &layout)
    }

    @inlinable
    static func parseIPv6(_ data: UnsafeMutableRawPointer, at offset: Int, length: Int,
                          into layout: inout PacketLayout) throws(ParseError) {
        guard length >= offset + 40 else { throw .truncatedIPv6Header }
        guard data.loadByte(offset) >> 4 == 6 else { throw .badIPVersion }
        let payloadLength = Int(data.loadBigEndian(offset + 4, as: UInt16.self))
        let next = data.loadByte(offset + 6)
        guard payloadLength > 0 || next == IPProtocol.noNextHeader,
              length >= offset + 40 + payloadLength else { throw .badIPv6PayloadLength }
        let end = offset + 40 + payloadLength
        layout.network = .ipv6
        layout.l3End = UInt32(end)
        var headers = IPv6Headers(protocol: next, offset: offset + 40)
        guard headers.walk(data, end: end) else {
            throw headers.tooMany ? .tooManyIPv6ExtensionHeaders : .truncatedIPv6ExtensionHeader
        }
        layout.fragment = headers.fragment
        layout.ipProtocol = headers.protocol
        layout.l4Offset = UInt16(headers.offset)
        if headers.fragment.offset != 0 {
            layout.transport = .fragment
        } else if headers.protocol != IPProtocol.noNextHeader {
            try parseTransport(data, at: headers.offset, end: end, isIPv6: true, into: &layout)
        }
    }

    /// Parses the transport header at `offset`, which must end by `end`.
    @inlinable
    static func parseTransport(_ data: UnsafeMutableRawPointer, at offset: Int, end: Int, isIPv6: Bool,
                               into layout: inout PacketLayout) throws(ParseError) {
        let available = end - offset
        switch layout.ipProtocol {
        case IPProtocol.tcp:
            guard available >= 20 else { throw .truncatedTCPHeader }
            let headerLength = Int(data.loadByte(offset + 12) >> 4) * 4
            // A first fragment may end inside the options; the fixed header
            // (ports, flags, checksum) must be in it.
            guard headerLength >= 20, headerLength <= available || layout.fragment.moreFragments else {
                throw .badTCPDataOffset
            }
            layout.transport = .tcp
        case IPProtocol.udp:
            guard available >= 8 else { throw .truncatedUDPHeader }
            let udpLength = Int(data.loadBigEndian(offset + 4, as: UInt16.self))
            // A first fragment holds only part of the datagram the UDP length
            // counts; IPv6 jumbograms put zero here.
            if !layout.fragment.isFragment {
                guard udpLength >= 8, udpLength <= available else { throw .badUDPLength }
            }
            layout.transport = .udp
        case IPProtocol.icmp where !isIPv6, IPProtocol.icmpv6 where isIPv6:
            guard available >= 8 else { throw .truncatedICMPHeader }
            let type = data.loadByte(offset)
            layout.transport = isIPv6 ? .icmpv6 : .icmpv4
            layout.icmp = isIPv6 ? ICMPTypes.classifyV6(type) : ICMPTypes.classifyV4(type)
            if layout.icmp == .error {
                layout.quote = try parseQuote(data, at: offset + 8, end: end, isIPv6: isIPv6)
            }
        default:
            layout.transport = .other
        }
    }

    /// Parses the packet an ICMP error quotes, from `offset` to `end`. The
    /// quote may stop anywhere after the quoted ports or identifier.
    @inlinable
    static func parseQuote(_ data: UnsafeMutableRawPointer, at offset: Int, end: Int,
                           isIPv6: Bool) throws(ParseError) -> QuotedPacket {
        var quote = QuotedPacket()
        quote.l3Offset = UInt16(offset)
        quote.end = UInt32(end)
        var fragmentOffset = 0
        if isIPv6 {
            guard end - offset >= 40 else { throw .truncatedICMPQuote }
            guard data.loadByte(offset) >> 4 == 6 else { throw .badICMPQuote }
            var headers = IPv6Headers(protocol: data.loadByte(offset + 6), offset: offset + 40)
            guard headers.walk(data, end: end) else {
                throw headers.tooMany ? .badICMPQuote : .truncatedICMPQuote
            }
            quote.network = .ipv6
            quote.ipProtocol = headers.protocol
            quote.l4Offset = UInt16(headers.offset)
            fragmentOffset = Int(headers.fragment.offset)
        } else {
            guard end - offset >= 20 else { throw .truncatedICMPQuote }
            let first = data.loadByte(offset)
            let headerLength = Int(first & 0x0F) * 4
            guard first >> 4 == 4, headerLength >= 20 else { throw .badICMPQuote }
            guard end - offset >= headerLength else { throw .truncatedICMPQuote }
            guard Int(data.loadBigEndian(offset + 2, as: UInt16.self)) >= headerLength else {
                throw .badICMPQuote
            }
            quote.network = .ipv4
            quote.ipProtocol = data.loadByte(offset + 9)
            quote.l4Offset = UInt16(offset + headerLength)
            fragmentOffset = Int(data.loadBigEndian(offset + 6, as: UInt16.self) & 0x1FFF) * 8
        }
        let available = end - Int(quote.l4Offset)
        if fragmentOffset != 0 {
            quote.transport = .fragment
            return quote
        }
        switch quote.ipProtocol {
        case IPProtocol.tcp, IPProtocol.udp:
            guard available >= 4 else { throw .truncatedICMPQuote }
            quote.transport = quote.ipProtocol == IPProtocol.tcp ? .tcp : .udp
        case IPProtocol.icmp where !isIPv6, IPProtocol.icmpv6 where isIPv6:
            guard available >= 8 else { throw .truncatedICMPQuote }
            let type = data.loadByte(Int(quote.l4Offset))
            quote.transport = isIPv6 ? .icmpv6 : .icmpv4
            quote.icmp = isIPv6 ? ICMPTypes.classifyV6(type) : ICMPTypes.classifyV4(type)
        case IPProtocol.noNextHeader where isIPv6:
            quote.transport = .none
        default:
            quote.transport = .other
        }
        return quote
    }
}

/// Walks a chain of IPv6 extension headers.
@usableFromInline
struct IPv6Headers {
    /// The next-header value: at the end of the walk, the upper-layer protocol.
    @usableFromInline var `protocol`: UInt8
    /// The offset of the next header: at the end, of the transport header.
    @usableFromInline var offset: Int
    @usableFromInline var fragment = FragmentInfo()
    @usableFromInline var tooMany = false

    @usableFromInline static let limit = 8

    @inlinable
    init(protocol: UInt8, offset: Int) {
        self.protocol = `protocol`
        self.offset = offset
    }

    /// Walks to the transport header, or to a non-first fragment's payload.
    /// Returns `false` when a header runs past `end` or there are too many.
    @inlinable
    mutating func walk(_ data: UnsafeMutableRawPointer, end: Int) -> Bool {
        var count = 0
        while IPProtocol.isIPv6ExtensionHeader(self.protocol) {
            count += 1
            guard count <= Self.limit else {
                tooMany = true
                return false
            }
            guard end - offset >= 8 else { return false }
            let next = data.loadByte(offset)
            let headerLength: Int
            switch self.protocol {
            case IPProtocol.fragment:
                let field = data.loadBigEndian(offset + 2, as: UInt16.self)
                fragment.hasIPv6FragmentHeader = true
                fragment.offset = field & 0xFFF8
                fragment.moreFragments = field & 1 != 0
                fragment.isFragment = fragment.offset != 0 || fragment.moreFragments
                fragment.identification = data.loadBigEndian(offset + 4, as: UInt32.self)
                headerLength = 8
            case IPProtocol.authentication:
                headerLength = (Int(data.loadByte(offset + 1)) + 2) * 4
            default:
                headerLength = (Int(data.loadByte(offset + 1)) + 1) * 8
            }
            guard end - offset >= headerLength else { return false }
            self.protocol = next
            offset += headerLength
            if fragment.offset != 0 { return true }
        }
        return true
    }
}

/// ICMP and ICMPv6 message types as a network function sees them.
public enum ICMPTypes {
    /// ICMP echo reply.
    public static let echoReply: UInt8 = 0
    /// ICMP destination unreachable.
    public static let destinationUnreachable: UInt8 = 3
    /// ICMP echo request.
    public static let echoRequest: UInt8 = 8
    /// ICMP time exceeded.
    public static let timeExceeded: UInt8 = 11
    /// ICMPv6 destination unreachable.
    public static let v6DestinationUnreachable: UInt8 = 1
    /// ICMPv6 packet too big.
    public static let v6PacketTooBig: UInt8 = 2
    /// ICMPv6 echo request.
    public static let v6EchoRequest: UInt8 = 128
    /// ICMPv6 echo reply.
    public static let v6EchoReply: UInt8 = 129

    /// What an ICMP (IPv4) message of `type` is.
    @inlinable
    public static func classifyV4(_ type: UInt8) -> ICMPKind {
        switch type {
        case 0, 8, 13, 14, 15, 16, 17, 18: .query
        case 3, 4, 5, 11, 12: .error
        default: .other
        }
    }

    /// What an ICMPv6 message of `type` is.
    @inlinable
    public static func classifyV6(_ type: UInt8) -> ICMPKind {
        switch type {
        case 1, 2, 3, 4: .error
        case 128, 129: .query
        default: .other
        }
    }

    /// Whether an ICMP query of `type` is a request (the other side answers
    /// with the matching reply).
    @inlinable
    public static func isRequest(_ type: UInt8, isIPv6: Bool) -> Bool {
        isIPv6 ? type == 128 : (type == 8 || type == 13 || type == 15 || type == 17)
    }
}

extension Packet {
    /// Parses the packet and stores the result in ``layout``.
    @inlinable
    public mutating func parse() throws(ParseError) {
        layout = try PacketParser.parse(data, length: Int(length), linkType: linkType)
    }
}
