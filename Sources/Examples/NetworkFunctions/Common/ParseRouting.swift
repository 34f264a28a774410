import StatelessKit

extension GraphBuilder {
    /// Routes a parse node as every example NF does: IP packets on to `ip`;
    /// ARP, other EtherTypes and malformed frames dropped, each counted
    /// under its own reason.
    func routeParsed(_ parse: NodeHandle<ParseNode>, ip: any Destination) {
        route(parse) { switch $0 {
            case .ip: ip
            case .arp: drop("arp")
            case .unsupported: drop("unsupportedEtherType")
            case .malformed: drop("malformed")
        } }
    }
}
