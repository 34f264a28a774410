/// Sends IP packets on by their transport protocol.
public struct ProtocolClassifier: Node {
    /// The transport protocol.
    public enum Output: UInt8, NodeOutput {
        /// TCP.
        case tcp
        /// UDP.
        case udp
        /// ICMP or ICMPv6.
        case icmp
        /// A non-first fragment.
        case fragment
        /// Anything else.
        case other
    }

    public var name: String { "protocol" }

    /// A protocol classifier.
    public init() {}

    /// Decides by the headers a flow's packets share: the flow cache may skip it.
    public static var isFlowDeterministic: Bool { true }

    @inlinable
    public func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        switch packet.layout.transport {
        case .tcp: .tcp
        case .udp: .udp
        case .icmpv4, .icmpv6: .icmp
        case .fragment: .fragment
        case .none, .other: .other
        }
    }
}

/// Sends packets on by whether an address (the source or the destination)
/// lies in one of a set of prefixes.
public struct PrefixClassifier: Node {
    /// Whether the address matched.
    public enum Output: UInt8, NodeOutput {
        /// In one of the prefixes.
        case match
        /// In none.
        case other
    }

    /// The prefixes.
    public let prefixes: [IPPrefix]
    /// Which address to test.
    public let endpoint: Endpoint

    public var name: String { "prefix(\(endpoint == .source ? "src" : "dst") \(prefixes.map(\.description).joined(separator: ",")))" }

    /// A classifier of the address at `endpoint` against `prefixes`.
    public init(_ prefixes: [IPPrefix], endpoint: Endpoint) {
        self.prefixes = prefixes
        self.endpoint = endpoint
    }

    /// Decides by the headers a flow's packets share: the flow cache may skip it.
    public static var isFlowDeterministic: Bool { true }

    @inlinable
    public func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        let address = packet.address(endpoint)
        for prefix in prefixes where prefix.contains(address) { return .match }
        return .other
    }
}

/// Sends TCP and UDP packets on by whether a port (source or destination)
/// is one of a set.
public struct PortClassifier: Node {
    /// Whether the port matched.
    public enum Output: UInt8, NodeOutput {
        /// One of the ports.
        case match
        /// Another port, or no ports.
        case other
    }

    /// The ports.
    public let ports: Set<UInt16>
    /// Which port to test.
    public let endpoint: Endpoint

    public var name: String { "port(\(endpoint == .source ? "src" : "dst") \(ports.sorted().map(String.init).joined(separator: ",")))" }

    /// A classifier of the port at `endpoint` against `ports`.
    public init(_ ports: Set<UInt16>, endpoint: Endpoint = .destination) {
        self.ports = ports
        self.endpoint = endpoint
    }

    /// Decides by the headers a flow's packets share: the flow cache may skip it.
    public static var isFlowDeterministic: Bool { true }

    @inlinable
    public func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        packet.layout.hasPorts && ports.contains(packet.port(endpoint)) ? .match : .other
    }
}
