import StatelessKit

/// One side's end of a mapping: an address and a port (or ICMP identifier).
public struct NATEndpoint: StateCodable, Hashable, CustomStringConvertible {
    /// The address.
    public var address: IPv4Address
    /// The port, or ICMP identifier.
    public var port: UInt16

    /// An endpoint.
    public init(_ address: IPv4Address, _ port: UInt16) {
        self.address = address
        self.port = port
    }

    public static var encodedSize: Int { 6 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        address.encode(to: pointer)
        port.encode(to: pointer + 4)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        address = IPv4Address(decoding: pointer)
        port = UInt16(decoding: pointer + 4)
    }

    public var description: String { "\(address):\(port)" }
}

/// A mapping's key: which side's endpoint, of which protocol. Inside keys
/// are what endpoint-independent mapping looks up for outbound packets;
/// outside keys, for inbound ones.
public struct NATKey: StateCodable, Hashable {
    /// Which side of the NAT a key names.
    public enum Side: UInt8, Sendable { case inside, outside }
    /// The side.
    public var side: Side
    /// The protocol.
    public var ipProtocol: UInt8
    /// The endpoint on that side.
    public var endpoint: NATEndpoint

    /// A key.
    public init(_ side: Side, _ ipProtocol: UInt8, _ endpoint: NATEndpoint) {
        self.side = side
        self.ipProtocol = ipProtocol
        self.endpoint = endpoint
    }

    public static var encodedSize: Int { 8 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: side.rawValue, as: UInt8.self)
        pointer.storeBytes(of: ipProtocol, toByteOffset: 1, as: UInt8.self)
        endpoint.encode(to: pointer + 2)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        side = Side(rawValue: pointer.load(as: UInt8.self)) ?? .inside
        ipProtocol = pointer.load(fromByteOffset: 1, as: UInt8.self)
        endpoint = NATEndpoint(decoding: pointer + 2)
    }
}

/// A mapping: the protocol, both endpoints, and what has been seen of a TCP
/// connection on it (for its timeout). Stored under both its keys.
public struct NATBinding: StateCodable, Hashable {
    /// The protocol.
    public var ipProtocol: UInt8
    /// The inside host's endpoint.
    public var inside: NATEndpoint
    /// The external endpoint.
    public var outside: NATEndpoint
    /// What has been seen of a TCP connection.
    public var flags: Flags

    /// TCP events seen on the mapping.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// A FIN from the inside.
        public static let finInside = Flags(rawValue: 1)
        /// A FIN from the outside.
        public static let finOutside = Flags(rawValue: 2)
        /// A RST either way.
        public static let reset = Flags(rawValue: 4)
        /// A packet from the outside: the connection is established.
        public static let answered = Flags(rawValue: 8)
    }

    /// A binding.
    public init(ipProtocol: UInt8, inside: NATEndpoint, outside: NATEndpoint, flags: Flags = []) {
        self.ipProtocol = ipProtocol
        self.inside = inside
        self.outside = outside
        self.flags = flags
    }

    public static var encodedSize: Int { 14 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: ipProtocol, as: UInt8.self)
        inside.encode(to: pointer + 1)
        outside.encode(to: pointer + 7)
        pointer.storeBytes(of: flags.rawValue, toByteOffset: 13, as: UInt8.self)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        ipProtocol = pointer.load(as: UInt8.self)
        inside = NATEndpoint(decoding: pointer + 1)
        outside = NATEndpoint(decoding: pointer + 7)
        flags = Flags(rawValue: pointer.load(fromByteOffset: 13, as: UInt8.self))
    }
}

extension NATBinding: CustomStringConvertible {
    /// `tcp 10.0.0.1:40000 <-> 203.0.113.1:20001 [answered]`: the protocol,
    /// both endpoints, and the TCP events seen.
    public var description: String {
        let name = IPProtocol.name(ipProtocol)
        let events = [(Flags.answered, "answered"), (.finInside, "fin inside"), (.finOutside, "fin outside"), (.reset, "reset")]
            .filter { flags.contains($0.0) }.map(\.1)
        return "\(name) \(inside) <-> \(outside)" + (events.isEmpty ? "" : " [\(events.joined(separator: ", "))]")
    }
}

/// What lets a datagram's later fragments follow its first: the addresses,
/// protocol and IP identification, on the side the fragment arrives from.
public struct NATFragmentKey: StateCodable, Hashable {
    /// The side the fragment arrived from.
    public var side: NATKey.Side
    /// The source address.
    public var source: IPv4Address
    /// The destination address.
    public var destination: IPv4Address
    /// The protocol.
    public var ipProtocol: UInt8
    /// The IP identification.
    public var identification: UInt16

    /// A fragment key.
    public init(side: NATKey.Side, source: IPv4Address, destination: IPv4Address, ipProtocol: UInt8,
                identification: UInt16) {
        self.side = side
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.identification = identification
    }

    public static var encodedSize: Int { 12 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: side.rawValue, as: UInt8.self)
        pointer.storeBytes(of: ipProtocol, toByteOffset: 1, as: UInt8.self)
        identification.encode(to: pointer + 2)
        source.encode(to: pointer + 4)
        destination.encode(to: pointer + 8)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        side = NATKey.Side(rawValue: pointer.load(as: UInt8.self)) ?? .inside
        ipProtocol = pointer.load(fromByteOffset: 1, as: UInt8.self)
        identification = UInt16(decoding: pointer + 2)
        source = IPv4Address(decoding: pointer + 4)
        destination = IPv4Address(decoding: pointer + 8)
    }
}

/// How long a mapping lives idle: by protocol and, for TCP, by what has been
/// seen of the connection (RFC 5382: established 2 h 4 min; transitory 4 min
/// before the answer, after RST, or after FIN both ways).
struct NATTimeoutPolicy: Sendable {
    let tcpEstablished: Int64, tcpTransitory: Int64, udp: Int64, icmp: Int64

    init(_ timeouts: NATTimeouts) {
        tcpEstablished = Int64(timeouts.tcpEstablished * 1e9)
        tcpTransitory = Int64(timeouts.tcpTransitory * 1e9)
        udp = Int64(timeouts.udp * 1e9)
        icmp = Int64(timeouts.icmp * 1e9)
    }

    func timeout(_ ipProtocol: UInt8, _ flags: NATBinding.Flags) -> Int64 {
        switch ipProtocol {
        case IPProtocol.tcp:
            let closed = flags.contains(.reset) || flags.isSuperset(of: [.finInside, .finOutside])
            return closed || !flags.contains(.answered) ? tcpTransitory : tcpEstablished
        case IPProtocol.udp: return udp
        default: return icmp
        }
    }
}

/// The NAT's declared state: the mappings (found from both sides, each
/// holding an external port that goes back to its pool when the mapping
/// ends), the fragment entries, and a pool of external ports per external
/// address and protocol.
public struct NATState: Sendable {
    /// The deployment's schema.
    public let schema: StateSchema
    /// The mappings, under their inside and outside keys.
    public let mappings: StateTable<NATKey, NATBinding>
    /// The entries that let fragments follow their first.
    public let fragments: StateTable<NATFragmentKey, NATBinding>
    /// Pools by external address index, then protocol class (TCP, UDP, ICMP).
    public let pools: [[StatePool<NATEndpoint>]]

    static let protocols: [UInt8] = [IPProtocol.tcp, IPProtocol.udp, IPProtocol.icmp]

    /// The state of a NAT with `config`.
    public init(_ config: ResolvedNATConfig) {
        let schema = StateSchema(namespace: config.namespace)
        var pools: [[StatePool<NATEndpoint>]] = []
        for address in config.externalAddresses {
            pools.append(Self.protocols.map { number in
                schema.pool("ports.\(address).\(number)", items: config.ports.map { NATEndpoint(address, $0) })
            })
        }
        let poolIDs = Dictionary(uniqueKeysWithValues: config.externalAddresses.enumerated().flatMap { i, address in
            Self.protocols.enumerated().map { j, number in (NATKey(.outside, number, NATEndpoint(address, 0)), pools[i][j]) }
        })
        let timeouts = NATTimeoutPolicy(config.timeouts)
        mappings = schema.table(
            "mappings", key: NATKey.self, value: NATBinding.self, capacity: config.capacity,
            reverseKey: { _, binding in NATKey(.outside, binding.ipProtocol, binding.outside) },
            heldResource: { _, binding in
                poolIDs[NATKey(.outside, binding.ipProtocol, NATEndpoint(binding.outside.address, 0))]
                    .map { PoolResource($0, binding.outside) }
            },
            idleTimeout: { _, binding in timeouts.timeout(binding.ipProtocol, binding.flags) })
        fragments = schema.table("fragments", key: NATFragmentKey.self, value: NATBinding.self,
                                 capacity: max(1024, config.capacity / 16))
        self.schema = schema
        self.pools = pools
    }

    /// The pool an inside host's new mappings of `ipProtocol` draw from: each
    /// host keeps one external address (paired pooling).
    public func pool(for host: IPv4Address, ipProtocol: UInt8) -> StatePool<NATEndpoint> {
        var hash = UInt64(host.value) &* 0x9E37_79B9_7F4A_7C15
        hash ^= hash >> 29
        let address = Int(hash % UInt64(pools.count))
        return pools[address][Self.protocols.firstIndex(of: ipProtocol) ?? 0]
    }
}
