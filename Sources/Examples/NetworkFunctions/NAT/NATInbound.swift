import StatelessKit

/// Translates packets from the outside back to the inside host their
/// mapping names; there must be one (unsolicited traffic is dropped). ICMP
/// errors about a translated flow are translated back, outer and quoted
/// headers; they never refresh or remove a mapping.
struct NATInbound: StatefulNode {
    enum Output: UInt8, NodeOutput {
        case translated, unsolicited, noMapping, fragmentWithoutFirst, untranslatable
    }
    typealias Scratch = NATScratch
    static var emptyScratch: NATScratch { NATScratch() }
    var name: String { "nat-inbound" }
    let rules: NATRules

    func start(_ packet: inout Packet, _ scratch: inout NATScratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        if packet.layout.transport == .fragment {
            return rules.startFragment(packet, side: .outside, &scratch, &state) ? .wait : .done(.untranslatable)
        }
        if packet.layout.icmp == .error {
            // An error about a packet that went out: the quote's source is
            // the outside side of the mapping.
            return rules.startError(packet, side: .outside, quoted: .source, &scratch, &state)
                ? .wait : .done(.untranslatable)
        }
        guard let destination = packet.ipv4Address(.destination),
              NATRules.isTranslated(packet.layout.ipProtocol)
        else { return .done(.untranslatable) }
        if packet.layout.icmp != .none {
            // Only replies come back in; a request from outside is unsolicited.
            guard packet.layout.icmp == .query, !ICMPTypes.isRequest(packet.icmpType!, isIPv6: false) else {
                return .done(.unsolicited)
            }
        }
        guard let port = NATRules.port(packet, .destination) else { return .done(.untranslatable) }
        scratch.key = NATKey(.outside, packet.layout.ipProtocol, NATEndpoint(destination, port))
        scratch.fragmentKey = NATRules.fragmentKey(packet, side: .outside)
        scratch.read = state.read(rules.state.mappings, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout NATScratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .fragment:
            guard let entry = state[scratch.read!] else { return .done(.fragmentWithoutFirst) }
            packet.setIPv4Address(entry.value.inside.address, at: .destination)
            return .done(.translated)
        case .error:
            guard let entry = state[scratch.read!] else { return .done(.noMapping) }
            translateError(packet, to: entry.value.inside, outer: .destination, quoted: .source)
            return .done(.translated)
        default:
            guard let entry = state[scratch.read!] else { return .done(.unsolicited) }
            if !rules.maintain(entry, key: scratch.key, packet: packet, outbound: false, &state) {
                rules.allowCaching(entry, state, &context)
            }
            packet.setIPv4Address(entry.value.inside.address, at: .destination)
            if packet.layout.hasPorts {
                packet.setPort(entry.value.inside.port, at: .destination)
            } else {
                packet.setICMPIdentifier(entry.value.inside.port)
            }
            rules.rememberFragments(packet, side: .outside, binding: entry.value, key: scratch.fragmentKey, &state)
            return .done(.translated)
        }
    }
}
