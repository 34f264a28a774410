/// Counts the packets that pass under a counter of its own and sends them on.
public struct CountNode: Node {
    /// The one way on.
    public enum Output: UInt8, NodeOutput { case next }

    /// The counter's name.
    public let counter: String
    public var name: String { "count(\(counter))" }
    @usableFromInline var index: Int? = nil

    /// A node counting under `counter`.
    public init(_ counter: String) { self.counter = counter }

    @inlinable
    public mutating func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        if index == nil { index = context.counters.index(of: counter) }
        context.counters.add(at: index!)
        return .next
    }
}

/// Rewrites the destination (or source) address and port of IPv4 packets,
/// checksums kept right: a static NAT, a redirect, or a test fixture.
public struct RewriteNode: Node {
    /// Whether the packet was rewritten.
    public enum Output: UInt8, NodeOutput {
        /// Rewritten.
        case rewritten
        /// Not IPv4, or the port asked of a packet without ports.
        case skipped
    }

    /// Which end to rewrite.
    public let endpoint: Endpoint
    /// The new address.
    public let address: IPv4Address
    /// The new port, if any.
    public let port: UInt16?

    public var name: String { "rewrite(\(endpoint == .source ? "src" : "dst") \(address)\(port.map { ":\($0)" } ?? ""))" }

    /// A node setting the address (and port) at `endpoint`.
    public init(_ endpoint: Endpoint, to address: IPv4Address, port: UInt16? = nil) {
        self.endpoint = endpoint
        self.address = address
        self.port = port
    }

    /// Decides by the headers a flow's packets share: the flow cache may skip it.
    public static var isFlowDeterministic: Bool { true }

    @inlinable
    public func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        guard packet.layout.network == .ipv4, port == nil || packet.layout.hasPorts else { return .skipped }
        packet.setIPv4Address(address, at: endpoint)
        if let port { packet.setPort(port, at: endpoint) }
        return .rewritten
    }
}
