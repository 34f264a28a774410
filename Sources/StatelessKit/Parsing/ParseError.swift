/// Why the parser refused a packet. The runtime counts a dropped packet
/// under its reason's ``name``.
///
/// Every case but ``unsupportedEtherType`` means the packet is malformed:
/// truncated, or with lengths that contradict each other or the packet.
public enum ParseError: UInt8, Error, CaseIterable, Sendable, CustomStringConvertible {
    /// Shorter than an Ethernet header.
    case truncatedEthernet
    /// A VLAN tag cut short.
    case truncatedVLANTag
    /// More than two VLAN tags.
    case tooManyVLANTags
    /// An EtherType the parser does not know (or an IEEE 802.3 length field).
    case unsupportedEtherType
    /// An ARP packet shorter than its addresses.
    case truncatedARP
    /// The IP version field contradicts the EtherType (or raw IP is neither 4 nor 6).
    case badIPVersion
    /// Shorter than an IPv4 header (or its options).
    case truncatedIPv4Header
    /// An IPv4 header length below 20 bytes.
    case badIPv4HeaderLength
    /// An IPv4 total length below the header length.
    case badIPv4TotalLength
    /// An IPv4 total length beyond the packet's bytes.
    case ipv4TotalLengthExceedsPacket
    /// A fragment that would end past 65,535 bytes.
    case badFragmentOffset
    /// Shorter than an IPv6 header.
    case truncatedIPv6Header
    /// An IPv6 payload length beyond the packet's bytes, or zero (a jumbogram).
    case badIPv6PayloadLength
    /// An IPv6 extension header cut short.
    case truncatedIPv6ExtensionHeader
    /// More than eight IPv6 extension headers.
    case tooManyIPv6ExtensionHeaders
    /// Shorter than a TCP header.
    case truncatedTCPHeader
    /// A TCP data offset below 5 words or beyond the segment.
    case badTCPDataOffset
    /// Shorter than a UDP header.
    case truncatedUDPHeader
    /// A UDP length below 8 or beyond the datagram.
    case badUDPLength
    /// Shorter than an ICMP header.
    case truncatedICMPHeader
    /// An ICMP error whose quote stops before the quoted ports or identifier.
    case truncatedICMPQuote
    /// An ICMP error whose quote is not an IP header of the right version.
    case badICMPQuote

    /// Whether the packet is malformed (rather than of a kind not supported).
    public var isMalformed: Bool { self != .unsupportedEtherType }

    /// The reason's name, as counters and logs show it.
    public var name: String {
        switch self {
        case .truncatedEthernet: "truncatedEthernet"
        case .truncatedVLANTag: "truncatedVLANTag"
        case .tooManyVLANTags: "tooManyVLANTags"
        case .unsupportedEtherType: "unsupportedEtherType"
        case .truncatedARP: "truncatedARP"
        case .badIPVersion: "badIPVersion"
        case .truncatedIPv4Header: "truncatedIPv4Header"
        case .badIPv4HeaderLength: "badIPv4HeaderLength"
        case .badIPv4TotalLength: "badIPv4TotalLength"
        case .ipv4TotalLengthExceedsPacket: "ipv4TotalLengthExceedsPacket"
        case .badFragmentOffset: "badFragmentOffset"
        case .truncatedIPv6Header: "truncatedIPv6Header"
        case .badIPv6PayloadLength: "badIPv6PayloadLength"
        case .truncatedIPv6ExtensionHeader: "truncatedIPv6ExtensionHeader"
        case .tooManyIPv6ExtensionHeaders: "tooManyIPv6ExtensionHeaders"
        case .truncatedTCPHeader: "truncatedTCPHeader"
        case .badTCPDataOffset: "badTCPDataOffset"
        case .truncatedUDPHeader: "truncatedUDPHeader"
        case .badUDPLength: "badUDPLength"
        case .truncatedICMPHeader: "truncatedICMPHeader"
        case .truncatedICMPQuote: "truncatedICMPQuote"
        case .badICMPQuote: "badICMPQuote"
        }
    }

    public var description: String { name }
}
