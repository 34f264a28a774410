import StatelessKit

/// A NAPT44 (RFC 4787, 5382, 5508 behaviour): endpoint-independent mapping
/// and filtering of mapped endpoints, paired address pooling, ICMP query
/// identifiers translated like ports, ICMP errors translated back,
/// hairpinning, fragments following their first, and per-protocol,
/// per-TCP-state timeouts. Every mapping lives in the store, under both its
/// inside and its outside key, so any instance translates any packet.
///
/// ```
/// parse → direction ─ outbound → nat-outbound ─ translated → outside port
///                   │                         └ hairpin ─┐
///                   └ inbound ──────────────→ nat-inbound ┴ translated → inside port
/// ```
public struct NAT: Sendable {
    /// The checked configuration.
    public let config: ResolvedNATConfig
    /// The declared state.
    public let state: NATState

    /// A NAT for `config`.
    public init(_ config: ResolvedNATConfig) {
        self.config = config
        state = NATState(config)
    }

    /// The port packets from the inside arrive on and translated inbound
    /// packets leave by (the outside port when the NAT has one port).
    public var insidePort: UInt16 { config.insidePort ?? config.outsidePort }
    /// The port facing the outside.
    public var outsidePort: UInt16 { config.outsidePort }

    /// The processing graph.
    public func graph() throws -> Graph {
        let rules = NATRules(state: state, timeouts: config.timeouts,
                             externalAddresses: config.externalAddresses)
        return try Graph("nat") { g in
            let parse = g.add(ParseNode())
            let direction = g.add(NATDirection(config))
            let outbound = g.add(NATOutbound(rules: rules))
            let inbound = g.add(NATInbound(rules: rules))
            g.entry(parse)
            g.routeParsed(parse, ip: direction)
            g.route(direction) { switch $0 {
                case .outbound: outbound
                case .inbound: inbound
                case .ipv6: g.drop("ipv6")
                case .notForNAT: g.drop("notForNAT")
            } }
            g.route(outbound) { switch $0 {
                case .translated: g.port(outsidePort)
                case .hairpin: inbound
                case .exhausted: g.drop("portsExhausted")
                case .tableFull: g.drop("tableFull")
                case .noMapping: g.drop("icmpErrorWithoutMapping")
                case .fragmentWithoutFirst: g.drop("fragmentWithoutFirst")
                case .untranslatable: g.drop("untranslatable")
            } }
            g.route(inbound) { switch $0 {
                case .translated: g.port(insidePort)
                case .unsolicited: g.drop("unsolicited")
                case .noMapping: g.drop("icmpErrorWithoutMapping")
                case .fragmentWithoutFirst: g.drop("fragmentWithoutFirst")
                case .untranslatable: g.drop("untranslatable")
            } }
        }
    }
}

/// Decides which way a packet crosses the NAT: by the port it arrived on
/// when the NAT has two, by its addresses when it has one.
struct NATDirection: Node {
    enum Output: UInt8, NodeOutput { case outbound, inbound, ipv6, notForNAT }
    var name: String { "direction" }
    let internalPrefixes: [IPPrefix]
    let external: [IPv4Address]
    let insidePort: UInt16?
    let outsidePort: UInt16
    static var isFlowDeterministic: Bool { true }

    init(_ config: ResolvedNATConfig) {
        internalPrefixes = config.internalPrefixes
        external = config.externalAddresses
        insidePort = config.insidePort
        outsidePort = config.outsidePort
    }

    func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        guard packet.layout.network == .ipv4 else { return .ipv6 }
        if let insidePort {
            if packet.port == insidePort { return .outbound }
            return packet.port == outsidePort ? .inbound : .notForNAT
        }
        let source = packet.ipv4Address(.source)!
        for prefix in internalPrefixes where prefix.contains(source) { return .outbound }
        let destination = packet.ipv4Address(.destination)!
        for address in external where address == destination { return .inbound }
        return .notForNAT
    }
}
