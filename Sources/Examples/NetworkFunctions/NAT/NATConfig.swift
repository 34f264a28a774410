import StatelessKit

/// How long NAT mappings live without traffic, in seconds (RFC 5382,
/// RFC 4787, RFC 5508 defaults).
public struct NATTimeouts: Codable, Sendable, Equatable {
    /// A TCP connection both sides have spoken on: 2 h 4 min.
    public var tcpEstablished: Double = 7440
    /// A TCP connection being opened or closed (after RST, or FIN both
    /// ways): 4 min.
    public var tcpTransitory: Double = 240
    /// UDP, refreshed by outbound packets: 5 min.
    public var udp: Double = 300
    /// ICMP queries: 60 s.
    public var icmp: Double = 60
    /// The entry that lets a datagram's later fragments follow its first: 2 s.
    public var fragment: Double = 2

    public init() {}
}

/// A NAPT44's configuration, from flags or a YAML or JSON file.
///
/// ```yaml
/// internal: [10.0.0.0/8, 192.168.0.0/16]
/// external: [203.0.113.1, 203.0.113.2]
/// ports: 1024-65535
/// timeouts: { udp: 300, tcpEstablished: 7440 }
/// ```
public struct NATConfig: Codable, Sendable, Equatable {
    /// Prefixes whose hosts are inside (by default the RFC 1918 ranges).
    /// With one port, a packet from one of them goes out; with two, the port
    /// a packet arrives on decides.
    public var `internal`: [String] = IPPrefix.privateIPv4.map(\.description)
    /// The NAT's external IPv4 addresses; each inside host keeps one of them.
    public var external: [String] = []
    /// The external ports handed out, `LO-HI`.
    public var ports: String = "1024-65535"
    /// Idle timeouts.
    public var timeouts = NATTimeouts()
    /// The most mappings at once.
    public var capacity: Int = 1 << 20
    /// The port facing the inside when the NAT has two; `nil` with one port.
    public var insidePort: UInt16? = nil
    /// The port facing the outside when the NAT has two (or the only port).
    public var outsidePort: UInt16 = 0
    /// The deployment's name in the store: keys are prefixed with it.
    public var namespace: String = "nat"

    public init() {}

    enum CodingKeys: String, CodingKey {
        case `internal`, external, ports, timeouts, capacity, insidePort, outsidePort, namespace
    }

    /// Decodes a configuration; absent fields keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = NATConfig()
        `internal` = try c.decodeIfPresent([String].self, forKey: .internal) ?? defaults.internal
        external = try c.decodeIfPresent([String].self, forKey: .external) ?? []
        ports = try c.decodeIfPresent(String.self, forKey: .ports) ?? defaults.ports
        timeouts = try c.decodeIfPresent(NATTimeouts.self, forKey: .timeouts) ?? defaults.timeouts
        capacity = try c.decodeIfPresent(Int.self, forKey: .capacity) ?? defaults.capacity
        insidePort = try c.decodeIfPresent(UInt16.self, forKey: .insidePort)
        outsidePort = try c.decodeIfPresent(UInt16.self, forKey: .outsidePort) ?? 0
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace) ?? defaults.namespace
    }

    /// The configuration checked and parsed, or the first problem found.
    public func resolved() throws(ConfigError) -> ResolvedNATConfig {
        var prefixes: [IPPrefix] = []
        for text in `internal` {
            guard let prefix = IPPrefix(text), prefix.address.isIPv4 else {
                throw ConfigError(field: "internal", "\"\(text)\" is not an IPv4 prefix such as 10.0.0.0/8")
            }
            prefixes.append(prefix)
        }
        guard !external.isEmpty else {
            throw ConfigError(field: "external", "give at least one external IPv4 address (--external 203.0.113.1)")
        }
        var addresses: [IPv4Address] = []
        for text in external {
            guard let address = IPv4Address(text) else {
                throw ConfigError(field: "external", "\"\(text)\" is not an IPv4 address")
            }
            guard !prefixes.contains(where: { $0.contains(IPAddress(address)) }) else {
                throw ConfigError(field: "external", "\(text) lies inside an internal prefix")
            }
            guard !addresses.contains(address) else { throw ConfigError(field: "external", "\(text) is listed twice") }
            addresses.append(address)
        }
        let range = try ConfigChecks.portRange(ports)
        try ConfigChecks.timeouts([("tcpEstablished", timeouts.tcpEstablished), ("tcpTransitory", timeouts.tcpTransitory),
                                   ("udp", timeouts.udp), ("icmp", timeouts.icmp), ("fragment", timeouts.fragment)])
        guard capacity > 0 else { throw ConfigError(field: "capacity", "must be above zero") }
        if let insidePort, insidePort == outsidePort {
            throw ConfigError(field: "insidePort", "the inside and outside ports must differ")
        }
        try ConfigChecks.namespace(namespace)
        return ResolvedNATConfig(internalPrefixes: prefixes, externalAddresses: addresses, ports: range,
                                 timeouts: timeouts, capacity: capacity, insidePort: insidePort,
                                 outsidePort: outsidePort, namespace: namespace)
    }
}

/// A checked NAT configuration.
public struct ResolvedNATConfig: Sendable {
    /// The inside prefixes.
    public let internalPrefixes: [IPPrefix]
    /// The external addresses.
    public let externalAddresses: [IPv4Address]
    /// The external ports handed out.
    public let ports: ClosedRange<UInt16>
    /// Idle timeouts.
    public let timeouts: NATTimeouts
    /// The most mappings at once.
    public let capacity: Int
    /// The inside port with two ports; `nil` with one.
    public let insidePort: UInt16?
    /// The outside (or only) port.
    public let outsidePort: UInt16
    /// The deployment's name in the store.
    public let namespace: String
}
