import StatelessKit

/// Translates packets from the inside: the source becomes the host's
/// external address and port, found in (or, for a flow's first packet,
/// added to) the mappings. A packet to one of the NAT's own external
/// addresses goes on to be translated back in (hairpinning).
struct NATOutbound: StatefulNode {
    enum Output: UInt8, NodeOutput {
        case translated, hairpin, exhausted, tableFull, noMapping, fragmentWithoutFirst, untranslatable
    }
    typealias Scratch = NATScratch
    static var emptyScratch: NATScratch { NATScratch() }
    var name: String { "nat-outbound" }
    let rules: NATRules

    func start(_ packet: inout Packet, _ scratch: inout NATScratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        if packet.layout.transport == .fragment {
            return rules.startFragment(packet, side: .inside, &scratch, &state) ? .wait : .done(.untranslatable)
        }
        if packet.layout.icmp == .error {
            // An inside host's error about a packet that came in: the quote's
            // destination is the host's side of the mapping.
            return rules.startError(packet, side: .inside, quoted: .destination, &scratch, &state)
                ? .wait : .done(.untranslatable)
        }
        guard let source = packet.ipv4Address(.source), let port = NATRules.port(packet, .source),
              NATRules.isTranslated(packet.layout.ipProtocol),
              packet.layout.icmp != .query || ICMPTypes.isRequest(packet.icmpType!, isIPv6: false)
        else { return .done(.untranslatable) }
        scratch.key = NATKey(.inside, packet.layout.ipProtocol, NATEndpoint(source, port))
        scratch.fragmentKey = NATRules.fragmentKey(packet, side: .inside)
        scratch.read = state.read(rules.state.mappings, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout NATScratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .fragment:
            guard let entry = state[scratch.read!] else { return .done(.fragmentWithoutFirst) }
            packet.setIPv4Address(entry.value.outside.address, at: .source)
            return .done(.translated)
        case .error:
            guard let entry = state[scratch.read!] else { return .done(.noMapping) }
            translateError(packet, to: entry.value.outside, outer: .source, quoted: .destination)
            return .done(.translated)
        case .lookup:
            if let entry = state[scratch.read!] {
                if !rules.maintain(entry, key: scratch.key, packet: packet, outbound: true, &state) {
                    rules.allowCaching(entry, state, &context)
                }
                return translate(&packet, entry.value, scratch, &state)
            }
            return takePort(packet, &scratch, &state)
        case .take:
            guard let outside = state[scratch.take!] else {
                context.count("nat.portsExhausted")
                return .done(.exhausted)
            }
            var flags = NATBinding.Flags()
            if let tcp = packet.tcpFlags, tcp & 0x01 != 0 { flags.insert(.finInside) }
            let binding = NATBinding(ipProtocol: scratch.key.ipProtocol, inside: scratch.key.endpoint, outside: outside,
                                     flags: flags)
            scratch.stage = .insert
            scratch.insert = state.insertIfAbsent(rules.state.mappings, scratch.key, binding, releaseOnConflict: true)
            return .wait
        case .insert:
            switch state[scratch.insert!] {
            case .inserted(let entry):
                context.count("nat.mappingsCreated")
                return translate(&packet, entry.value, scratch, &state)
            case .present(let entry):
                // Another instance or worker mapped this endpoint first: use its mapping.
                return translate(&packet, entry.value, scratch, &state)
            case .collision:
                // The port is held by a live mapping (a pool out of step): try another.
                guard scratch.attempts < 3 else { return .done(.exhausted) }
                scratch.attempts += 1
                return takePort(packet, &scratch, &state)
            case .full:
                return .done(.tableFull)
            }
        }
    }

    func takePort(_ packet: Packet, _ scratch: inout NATScratch, _ state: inout StateAccess) -> Step<Output> {
        scratch.stage = .take
        scratch.take = state.take(rules.state.pool(for: scratch.key.endpoint.address, ipProtocol: scratch.key.ipProtocol))
        return .wait
    }

    func translate(_ packet: inout Packet, _ binding: NATBinding, _ scratch: NATScratch,
                   _ state: inout StateAccess) -> Step<Output> {
        packet.setIPv4Address(binding.outside.address, at: .source)
        if packet.layout.hasPorts {
            packet.setPort(binding.outside.port, at: .source)
        } else {
            packet.setICMPIdentifier(binding.outside.port)
        }
        rules.rememberFragments(packet, side: .inside, binding: binding, key: scratch.fragmentKey, &state)
        let destination = packet.ipv4Address(.destination)!
        return .done(rules.externalAddresses.contains(destination) ? .hairpin : .translated)
    }
}
