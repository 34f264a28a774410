/// Parses each packet (``Packet/parse()``). Malformed packets are counted
/// under `malformed.<reason>` and leave by ``Output/malformed``; packets of
/// an EtherType the parser does not know leave by ``Output/unsupported``.
public struct ParseNode: Node {
    /// Where a packet goes after parsing.
    public enum Output: UInt8, NodeOutput {
        /// IPv4 or IPv6.
        case ip
        /// ARP.
        case arp
        /// Not IP or ARP.
        case unsupported
        /// Malformed.
        case malformed
    }

    public var name: String { "parse" }

    /// A parse node.
    public init() {}

    /// Decides by the headers a flow's packets share: the flow cache may skip it.
    public static var isFlowDeterministic: Bool { true }

    @inlinable
    public mutating func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        do {
            try packet.parse()
        } catch {
            if error.isMalformed {
                context.counters.add(at: context.counters.index(of: "malformed.\(error.name)"))
                return .malformed
            }
            return .unsupported
        }
        return packet.layout.network == .arp ? .arp : .ip
    }
}

