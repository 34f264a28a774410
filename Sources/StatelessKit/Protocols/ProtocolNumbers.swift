/// EtherType values the parser recognises.
public enum EtherType {
    /// IPv4.
    public static let ipv4: UInt16 = 0x0800
    /// ARP.
    public static let arp: UInt16 = 0x0806
    /// IPv6.
    public static let ipv6: UInt16 = 0x86DD
    /// An IEEE 802.1Q VLAN tag (C-tag).
    public static let vlan: UInt16 = 0x8100
    /// An IEEE 802.1ad service tag (S-tag, the outer tag of QinQ).
    public static let serviceVLAN: UInt16 = 0x88A8
    /// The pre-standard QinQ outer tag some switches still send.
    public static let legacyQinQ: UInt16 = 0x9100
}

/// IP protocol numbers (IANA) the parser recognises.
public enum IPProtocol {
    /// IPv6 hop-by-hop options.
    public static let hopByHop: UInt8 = 0
    /// ICMP for IPv4.
    public static let icmp: UInt8 = 1
    /// TCP.
    public static let tcp: UInt8 = 6
    /// UDP.
    public static let udp: UInt8 = 17
    /// IPv6 routing header.
    public static let routing: UInt8 = 43
    /// IPv6 fragment header.
    public static let fragment: UInt8 = 44
    /// IPsec ESP: its payload is encrypted, so parsing stops there.
    public static let esp: UInt8 = 50
    /// IPsec authentication header.
    public static let authentication: UInt8 = 51
    /// ICMP for IPv6.
    public static let icmpv6: UInt8 = 58
    /// IPv6 "no next header".
    public static let noNextHeader: UInt8 = 59
    /// IPv6 destination options.
    public static let destinationOptions: UInt8 = 60
    /// Mobility header.
    public static let mobility: UInt8 = 135
    /// Host Identity Protocol.
    public static let hip: UInt8 = 139
    /// Shim6.
    public static let shim6: UInt8 = 140

    /// Whether `value` is an IPv6 extension header that the parser walks over.
    @inlinable
    public static func isIPv6ExtensionHeader(_ value: UInt8) -> Bool {
        switch value {
        case hopByHop, routing, fragment, authentication, destinationOptions, mobility, hip, shim6, 253, 254:
            return true
        default:
            return false
        }
    }

    /// The protocol's name as tools print it: `tcp`, `udp`, `icmp`,
    /// `icmpv6`, or `proto N`.
    public static func name(_ value: UInt8) -> String {
        switch value {
        case tcp: "tcp"
        case udp: "udp"
        case icmp: "icmp"
        case icmpv6: "icmpv6"
        default: "proto \(value)"
        }
    }
}
