/// What identifies a flow: the protocol, both addresses and ports (or an ICMP
/// query's identifier), and the VLAN tags, so that the same addresses and
/// ports on two VLANs are two flows.
///
/// ICMP queries put their identifier in the port of the side that sent the
/// request: a request has `sourcePort` = identifier and `destinationPort` =
/// 0, and its reply the other way round, so that ``reversed`` of a request's
/// key is its reply's key.
public struct FlowKey: Hashable, Sendable, CustomStringConvertible {
    /// The sender's address.
    public var source: IPAddress
    /// The receiver's address.
    public var destination: IPAddress
    /// The sender's port (or an ICMP request's identifier).
    public var sourcePort: UInt16
    /// The receiver's port (or an ICMP reply's identifier).
    public var destinationPort: UInt16
    /// The IP protocol number.
    public var ipProtocol: UInt8
    /// The VLAN ids, as ``VLANStack``.
    public var vlans: VLANStack

    /// A key from its parts.
    @inlinable
    public init(source: IPAddress, destination: IPAddress, sourcePort: UInt16, destinationPort: UInt16,
                ipProtocol: UInt8, vlans: VLANStack = VLANStack()) {
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.ipProtocol = ipProtocol
        self.vlans = vlans
    }

    /// The key of the flow's other direction.
    @inlinable
    public var reversed: FlowKey {
        FlowKey(source: destination, destination: source, sourcePort: destinationPort,
                destinationPort: sourcePort, ipProtocol: ipProtocol, vlans: vlans)
    }

    /// The same key for both directions: the one whose (source, port) is the
    /// lower of the two ends.
    @inlinable
    public var canonical: FlowKey {
        (source, sourcePort) <= (destination, destinationPort) ? self : reversed
    }

    /// A fast 64-bit hash, different for the two directions of a flow.
    @inlinable
    public func hash(seed: UInt64 = 0) -> UInt64 {
        let a = Self.endpointHash(source, sourcePort, seed)
        let b = Self.endpointHash(destination, destinationPort, seed)
        return Self.mix(a ^ 0x9E37_79B9_7F4A_7C15, b ^ tail)
    }

    /// A fast 64-bit hash that is the same for both directions of a flow, so
    /// that both land on the same worker, queue or store shard.
    @inlinable
    public func symmetricHash(seed: UInt64 = 0) -> UInt64 {
        let a = Self.endpointHash(source, sourcePort, seed)
        let b = Self.endpointHash(destination, destinationPort, seed)
        return Self.mix((a &+ b) ^ 0x9E37_79B9_7F4A_7C15, tail ^ 0xD6E8_FEB8_6659_FD93)
    }

    @inlinable
    var tail: UInt64 { UInt64(ipProtocol) << 32 | UInt64(vlans.rawValue) }

    @inlinable
    static func endpointHash(_ address: IPAddress, _ port: UInt16, _ seed: UInt64) -> UInt64 {
        mix(mix(address.high ^ seed ^ 0xA076_1D64_78BD_642F, address.low ^ 0xE703_7ED1_A0B4_28DB),
            UInt64(port) ^ 0x8EBC_6AF0_9C88_C6E3)
    }

    /// A 64×64→128-bit multiply folded to 64 bits (as in wyhash).
    @inlinable
    static func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }

    public var description: String {
        let name: String
        switch ipProtocol {
        case IPProtocol.tcp: name = "tcp"
        case IPProtocol.udp: name = "udp"
        case IPProtocol.icmp: name = "icmp"
        case IPProtocol.icmpv6: name = "icmpv6"
        default: name = "proto \(ipProtocol)"
        }
        func end(_ address: IPAddress, _ port: UInt16) -> String {
            address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        }
        let vlan = vlans.count == 0 ? "" : " vlan \(vlans.ids.map(String.init).joined(separator: "."))"
        return "\(name) \(end(source, sourcePort)) -> \(end(destination, destinationPort))\(vlan)"
    }
}

/// Up to two VLAN ids in one 32-bit value: the count in bits 24–25, the
/// outer id in bits 12–23 and the inner one in bits 0–11.
public struct VLANStack: Hashable, Sendable {
    /// The packed value.
    public var rawValue: UInt32

    /// No VLAN tag.
    @inlinable
    public init() { rawValue = 0 }

    /// The VLAN ids of `layout`'s tags.
    @inlinable
    public init(_ layout: PacketLayout) {
        rawValue = UInt32(layout.vlanCount) << 24
            | UInt32(layout.outerVLANTag & 0x0FFF) << 12
            | (layout.vlanCount > 1 ? UInt32(layout.innerVLANTag & 0x0FFF) : 0)
    }

    /// The number of tags.
    @inlinable
    public var count: Int { Int(rawValue >> 24) }

    /// The ids, outer first.
    public var ids: [UInt16] {
        [UInt16(rawValue >> 12 & 0x0FFF), UInt16(rawValue & 0x0FFF)].prefix(count).map { $0 }
    }
}

extension Packet {
    /// The key of the flow this packet belongs to, or `nil` when it is not IP.
    /// A non-first fragment has no ports here: the key's ports are zero.
    @inlinable
    public var flowKey: FlowKey? {
        guard layout.network == .ipv4 || layout.network == .ipv6 else { return nil }
        return key(ipHeader: Int(layout.l3Offset), network: layout.network, ipProtocol: layout.ipProtocol,
                   transportHeader: Int(layout.l4Offset), hasPorts: layout.hasPorts, icmp: layout.icmp)
    }

    /// The key of the flow of the packet an ICMP error quotes (with the outer
    /// packet's VLAN tags), or `nil` when this is no ICMP error.
    @inlinable
    public var quotedFlowKey: FlowKey? {
        guard let quote = layout.quote else { return nil }
        return key(ipHeader: Int(quote.l3Offset), network: quote.network, ipProtocol: quote.ipProtocol,
                   transportHeader: Int(quote.l4Offset), hasPorts: quote.transport == .tcp || quote.transport == .udp,
                   icmp: quote.icmp)
    }

    /// The key of the IP header at `ipHeader`, whose transport header (when
    /// there is one) is at `transportHeader`.
    @inlinable
    func key(ipHeader: Int, network: NetworkLayer, ipProtocol: UInt8, transportHeader l4: Int, hasPorts: Bool,
             icmp: ICMPKind) -> FlowKey {
        var key = FlowKey(source: Self.address(data, ipHeader: ipHeader, network: network, .source),
                          destination: Self.address(data, ipHeader: ipHeader, network: network, .destination),
                          sourcePort: 0, destinationPort: 0, ipProtocol: ipProtocol, vlans: VLANStack(layout))
        if hasPorts {
            key.sourcePort = data.loadBigEndian(l4, as: UInt16.self)
            key.destinationPort = data.loadBigEndian(l4 + 2, as: UInt16.self)
        } else if icmp == .query {
            let identifier = data.loadBigEndian(l4 + 4, as: UInt16.self)
            if ICMPTypes.isRequest(data.loadByte(l4), isIPv6: network == .ipv6) {
                key.sourcePort = identifier
            } else {
                key.destinationPort = identifier
            }
        }
        return key
    }
}
