import StatelessKit

/// How long load-balanced flows live without traffic, in seconds.
public struct LBTimeouts: Codable, Sendable, Equatable {
    /// A TCP connection both sides have spoken on.
    public var tcpEstablished: Double = 7440
    /// A TCP connection being opened or closed (after RST, or FIN both ways).
    public var tcpTransitory: Double = 240
    /// UDP.
    public var udp: Double = 300

    public init() {}
}

/// A virtual service: an address, port and protocol, and its backends.
public struct LBVIPConfig: Codable, Sendable, Equatable {
    /// `ADDR:PORT[/tcp|udp]` (TCP when the protocol is left out).
    public var vip: String
    /// `ADDR:PORT[@WEIGHT]` each; weight 1 when left out, 0 to drain (the
    /// backend keeps its flows and gets no new ones).
    public var backends: [String]

    public init(vip: String, backends: [String]) {
        self.vip = vip
        self.backends = backends
    }
}

/// A load balancer's configuration, from flags or a YAML or JSON file.
///
/// ```yaml
/// vips:
///   - vip: 10.0.0.10:80/tcp
///     backends: [192.168.1.1:8080@2, 192.168.1.2:8080, 192.168.1.3:8080@0]
/// mode: fullnat                 # or dnat (the default)
/// sourceAddresses: [10.0.0.2]   # full-NAT: the balancer's own addresses
/// ```
public struct LBConfig: Codable, Sendable, Equatable {
    /// The virtual services.
    public var vips: [LBVIPConfig] = []
    /// `dnat`: only the destination is rewritten (return traffic must come
    /// back through the balancer); `fullnat`: the source too, to one of
    /// `sourceAddresses`.
    public var mode: String = "dnat"
    /// Full-NAT: the addresses the balancer sends to backends from.
    public var sourceAddresses: [String] = []
    /// Full-NAT: the source ports handed out, `LO-HI`.
    public var ports: String = "1024-65535"
    /// Idle timeouts.
    public var timeouts = LBTimeouts()
    /// The most flows at once.
    public var capacity: Int = 1 << 20
    /// The Maglev table's size per VIP (a prime).
    public var tableSize: Int = 65_537
    /// The port clients' packets arrive on with two ports; `nil` with one.
    public var clientPort: UInt16? = nil
    /// The port facing the backends (or the only port).
    public var backendPort: UInt16 = 0
    /// The deployment's name in the store.
    public var namespace: String = "lb"

    public init() {}

    enum CodingKeys: String, CodingKey {
        case vips, mode, sourceAddresses, ports, timeouts, capacity, tableSize, clientPort, backendPort, namespace
    }

    /// Decodes a configuration; absent fields keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = LBConfig()
        vips = try c.decodeIfPresent([LBVIPConfig].self, forKey: .vips) ?? []
        mode = try c.decodeIfPresent(String.self, forKey: .mode) ?? defaults.mode
        sourceAddresses = try c.decodeIfPresent([String].self, forKey: .sourceAddresses) ?? []
        ports = try c.decodeIfPresent(String.self, forKey: .ports) ?? defaults.ports
        timeouts = try c.decodeIfPresent(LBTimeouts.self, forKey: .timeouts) ?? defaults.timeouts
        capacity = try c.decodeIfPresent(Int.self, forKey: .capacity) ?? defaults.capacity
        tableSize = try c.decodeIfPresent(Int.self, forKey: .tableSize) ?? defaults.tableSize
        clientPort = try c.decodeIfPresent(UInt16.self, forKey: .clientPort)
        backendPort = try c.decodeIfPresent(UInt16.self, forKey: .backendPort) ?? 0
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace) ?? defaults.namespace
    }

    /// The configuration checked and parsed, or the first problem found.
    public func resolved() throws(ConfigError) -> ResolvedLBConfig {
        guard !vips.isEmpty else {
            throw ConfigError(field: "vips", "give at least one VIP (--vip 10.0.0.10:80/tcp --backend 192.168.1.1:8080)")
        }
        var services: [LBService] = []
        for (i, vip) in vips.enumerated() {
            let field = "vips[\(i)]"
            var text = Substring(vip.vip)
            var ipProtocol = IPProtocol.tcp
            if let slash = text.lastIndex(of: "/") {
                switch text[text.index(after: slash)...].lowercased() {
                case "tcp": ipProtocol = IPProtocol.tcp
                case "udp": ipProtocol = IPProtocol.udp
                default: throw ConfigError(field: "\(field).vip", "\"\(vip.vip)\": the protocol must be tcp or udp")
                }
                text = text[..<slash]
            }
            guard let endpoint = Self.endpoint(text) else {
                throw ConfigError(field: "\(field).vip", "\"\(vip.vip)\" is not ADDR:PORT[/tcp|udp] with an IPv4 address")
            }
            guard !services.contains(where: { $0.vip == endpoint && $0.ipProtocol == ipProtocol }) else {
                throw ConfigError(field: "\(field).vip", "\(vip.vip) is listed twice")
            }
            services.append(LBService(vip: endpoint, ipProtocol: ipProtocol,
                                      backends: try Self.backends(vip.backends, field: "\(field).backends")))
        }
        let fullNAT: Bool
        switch mode {
        case "dnat": fullNAT = false
        case "fullnat": fullNAT = true
        default: throw ConfigError(field: "mode", "\"\(mode)\" must be dnat or fullnat")
        }
        var sources: [IPv4Address] = []
        for text in sourceAddresses {
            guard let address = IPv4Address(text) else {
                throw ConfigError(field: "sourceAddresses", "\"\(text)\" is not an IPv4 address")
            }
            sources.append(address)
        }
        if fullNAT && sources.isEmpty {
            throw ConfigError(field: "sourceAddresses", "full-NAT needs at least one address to send from (--source 10.0.0.2)")
        }
        let range = try ConfigChecks.portRange(ports)
        try ConfigChecks.timeouts([("tcpEstablished", timeouts.tcpEstablished), ("tcpTransitory", timeouts.tcpTransitory),
                                   ("udp", timeouts.udp)])
        guard capacity > 0 else { throw ConfigError(field: "capacity", "must be above zero") }
        guard tableSize > 2, tableSize < 1 << 24, (2..<Int(Double(tableSize).squareRoot()) + 1).allSatisfy({ tableSize % $0 != 0 }) else {
            throw ConfigError(field: "tableSize", "\(tableSize) is not a prime from 3 to 16777213 (65537 is a good one)")
        }
        if let clientPort, clientPort == backendPort {
            throw ConfigError(field: "clientPort", "the client and backend ports must differ")
        }
        try ConfigChecks.namespace(namespace)
        return ResolvedLBConfig(services: services, fullNAT: fullNAT, sourceAddresses: sources, ports: range,
                                timeouts: timeouts, capacity: capacity, tableSize: tableSize, clientPort: clientPort,
                                backendPort: backendPort, namespace: namespace)
    }

    static func endpoint(_ text: Substring) -> NATEndpoint? {
        guard let colon = text.lastIndex(of: ":"), let address = IPv4Address(text[..<colon]),
              let port = UInt16(text[text.index(after: colon)...]), port > 0 else { return nil }
        return NATEndpoint(address, port)
    }

    static func backends(_ texts: [String], field: String) throws(ConfigError) -> [LBBackend] {
        guard !texts.isEmpty else { throw ConfigError(field: field, "give at least one backend ADDR:PORT[@WEIGHT]") }
        var backends: [LBBackend] = []
        for text in texts {
            var endpointText = Substring(text)
            var weight = 1
            if let at = text.lastIndex(of: "@") {
                guard let parsed = Int(text[text.index(after: at)...]), (0...1000).contains(parsed) else {
                    throw ConfigError(field: field, "\"\(text)\": the weight must be a whole number from 0 to 1000")
                }
                weight = parsed
                endpointText = text[..<at]
            }
            guard let endpoint = endpoint(endpointText) else {
                throw ConfigError(field: field, "\"\(text)\" is not ADDR:PORT[@WEIGHT] with an IPv4 address")
            }
            guard !backends.contains(where: { $0.endpoint == endpoint }) else {
                throw ConfigError(field: field, "\(endpointText) is listed twice")
            }
            backends.append(LBBackend(endpoint: endpoint, weight: weight))
        }
        return backends
    }
}

/// A backend and its weight (0: draining).
public struct LBBackend: Sendable, Equatable {
    /// Where it listens.
    public var endpoint: NATEndpoint
    /// Its share of new flows, against the others'; 0 takes none.
    public var weight: Int

    public init(endpoint: NATEndpoint, weight: Int) {
        self.endpoint = endpoint
        self.weight = weight
    }
}

/// A VIP and its backends, checked.
public struct LBService: Sendable, Equatable {
    /// The virtual address and port.
    public let vip: NATEndpoint
    /// TCP or UDP.
    public let ipProtocol: UInt8
    /// The backends.
    public var backends: [LBBackend]
}

/// A checked load-balancer configuration.
public struct ResolvedLBConfig: Sendable {
    /// The virtual services.
    public var services: [LBService]
    /// Whether the source is rewritten too.
    public let fullNAT: Bool
    /// Full-NAT: the addresses sent from.
    public let sourceAddresses: [IPv4Address]
    /// Full-NAT: the source ports handed out.
    public let ports: ClosedRange<UInt16>
    /// Idle timeouts.
    public let timeouts: LBTimeouts
    /// The most flows at once.
    public let capacity: Int
    /// The Maglev table's size.
    public let tableSize: Int
    /// The client-facing port with two ports; `nil` with one.
    public let clientPort: UInt16?
    /// The backend-facing (or only) port.
    public let backendPort: UInt16
    /// The deployment's name in the store.
    public let namespace: String
}
