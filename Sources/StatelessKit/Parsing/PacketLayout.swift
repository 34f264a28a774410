/// The network-layer protocol of a packet.
public enum NetworkLayer: UInt8, Sendable {
    /// None that the parser knows.
    case none
    /// ARP: recognised and passed through, never translated.
    case arp
    /// IPv4.
    case ipv4
    /// IPv6.
    case ipv6
}

/// The transport-layer header that follows the IP header(s).
public enum TransportLayer: UInt8, Sendable {
    /// No transport header: ARP, or IPv6 "no next header".
    case none
    /// TCP; the whole header, options included, is present, except in a
    /// first fragment, whose options may continue in the next fragment.
    case tcp
    /// UDP.
    case udp
    /// ICMP for IPv4.
    case icmpv4
    /// ICMP for IPv6.
    case icmpv6
    /// A non-first fragment: the transport header is in another packet.
    case fragment
    /// A protocol the parser does not look into (ESP, GRE, SCTP, ...);
    /// ``PacketLayout/ipProtocol`` names it.
    case other
}

/// What an ICMP or ICMPv6 message is, as far as a network function cares.
public enum ICMPKind: UInt8, Sendable {
    /// Not ICMP.
    case none
    /// A query or reply with an identifier (echo, timestamp, information,
    /// address mask), which a NAT translates like a port.
    case query
    /// An error that quotes the packet that caused it
    /// (``PacketLayout/quote`` describes the quoted packet).
    case error
    /// Any other message (router and neighbour discovery, MLD, ...).
    case other
}

/// IP fragmentation, from the IPv4 header or the IPv6 fragment header.
public struct FragmentInfo: Hashable, Sendable {
    /// The identification: 16 bits for IPv4, 32 for IPv6.
    public var identification: UInt32 = 0
    /// The fragment's offset in bytes.
    public var offset: UInt16 = 0
    /// Whether the packet is a fragment (an offset other than zero, or more
    /// fragments to come). An IPv6 atomic fragment (offset zero, no more
    /// fragments) is not.
    public var isFragment: Bool = false
    /// The more-fragments flag.
    public var moreFragments: Bool = false
    /// IPv4's don't-fragment flag (always false for IPv6).
    public var dontFragment: Bool = false
    /// Whether an IPv6 fragment header is present, atomic fragments included.
    public var hasIPv6FragmentHeader: Bool = false

    /// Whether this is a fragment whose transport header is elsewhere.
    @inlinable
    public var isNonFirst: Bool { offset != 0 }

    /// No fragmentation.
    @inlinable
    public init() {}
}

/// The packet an ICMP error quotes: its IP header and the first bytes of its
/// transport header. Offsets are from the start of the outer packet.
public struct QuotedPacket: Hashable, Sendable {
    /// Where the quote ends (the end of the outer IP datagram).
    public var end: UInt32 = 0
    /// Where the quoted IP header starts.
    public var l3Offset: UInt16 = 0
    /// Where the quoted transport header starts.
    public var l4Offset: UInt16 = 0
    /// IPv4 or IPv6.
    public var network: NetworkLayer = .none
    /// The quoted transport header, when the quote reaches it; TCP and UDP
    /// quotes hold at least the ports, ICMP quotes the identifier.
    public var transport: TransportLayer = .none
    /// The quoted packet's protocol.
    public var ipProtocol: UInt8 = 0
    /// Whether the quoted ICMP message is a query with an identifier.
    public var icmp: ICMPKind = .none

    /// An empty quote, filled in by the parser.
    @inlinable
    public init() {}

    /// The number of quoted transport bytes.
    @inlinable
    public var transportBytes: Int { Int(end) - Int(l4Offset) }
}

/// Where a parsed packet's headers are. Offsets are from the packet's first
/// byte; every header the layout names lies wholly inside the packet.
public struct PacketLayout: Hashable, Sendable {
    // Stored properties largest first, here and in the structs it holds, so
    // that the layout has no padding: a receive writes one per packet.

    /// Where the IP datagram ends; link-layer padding lies beyond.
    public var l3End: UInt32 = 0
    /// IP fragmentation.
    public var fragment = FragmentInfo()
    /// The packet an ICMP error quotes, when ``icmp`` is ``ICMPKind/error``.
    public var quote: QuotedPacket? = nil
    /// The outer VLAN tag's TCI (priority, DEI and 12-bit VLAN id).
    public var outerVLANTag: UInt16 = 0
    /// The inner VLAN tag's TCI, when there are two.
    public var innerVLANTag: UInt16 = 0
    /// The EtherType after any VLAN tags (for raw IP, the one the version implies).
    public var etherType: UInt16 = 0
    /// Where the network header starts.
    public var l3Offset: UInt16 = 0
    /// Where the transport header starts (after IPv4 options or IPv6
    /// extension headers).
    public var l4Offset: UInt16 = 0
    /// The number of VLAN tags: 0, 1, or 2 (QinQ).
    public var vlanCount: UInt8 = 0
    /// The network layer.
    public var network: NetworkLayer = .none
    /// The transport layer.
    public var transport: TransportLayer = .none
    /// The upper-layer protocol number: IPv4's protocol, or the last IPv6
    /// next-header value after the extension headers.
    public var ipProtocol: UInt8 = 0
    /// What the ICMP message is, for ICMP and ICMPv6.
    public var icmp: ICMPKind = .none

    /// An empty layout, filled in by the parser.
    @inlinable
    public init() {}

    /// The VLAN ids (the low 12 bits of each tag), outer first.
    public var vlanIDs: [UInt16] {
        switch vlanCount {
        case 0: return []
        case 1: return [outerVLANTag & 0x0FFF]
        default: return [outerVLANTag & 0x0FFF, innerVLANTag & 0x0FFF]
        }
    }

    /// Whether the transport header carries ports (TCP or UDP).
    @inlinable
    public var hasPorts: Bool { transport == .tcp || transport == .udp }
}
