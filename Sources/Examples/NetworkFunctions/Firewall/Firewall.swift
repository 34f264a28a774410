import StatelessKit

/// A stateful firewall: connection tracking in the spirit of Linux's
/// conntrack (TCP states and sequence windows, UDP, ICMP echo, related ICMP
/// errors, IPv4 and IPv6) and an ordered rule list that sees each packet's
/// connection state, as nftables' `ct state` does. Every connection lives
/// in the store under both directions' keys, so any instance filters any
/// packet, including a flow whose two directions take different paths.
///
/// ```
/// parse → direction ─ outbound → filter-out ─ accepted → outside port
///                   └ inbound ─→ filter-in ── accepted → inside port
/// ```
public struct Firewall: Sendable {
    /// The checked configuration.
    public let config: ResolvedFirewallConfig
    /// The declared state.
    public let state: FirewallState

    /// A firewall for `config`.
    public init(_ config: ResolvedFirewallConfig) {
        self.config = config
        state = FirewallState(config)
    }

    /// The port packets from the inside arrive on and inbound packets leave
    /// by (the outside port when the firewall has one port).
    public var insidePort: UInt16 { config.insidePort ?? config.outsidePort }
    /// The port facing the outside.
    public var outsidePort: UInt16 { config.outsidePort }

    /// The processing graph.
    public func graph() throws -> Graph {
        try Graph("firewall") { g in
            let parse = g.add(ParseNode())
            let direction = g.add(FirewallDirectionNode(config))
            let outbound = g.add(FirewallFilter(.outbound, config: config, state: state))
            let inbound = g.add(FirewallFilter(.inbound, config: config, state: state))
            g.entry(parse)
            g.routeParsed(parse, ip: direction)
            g.route(direction) { switch $0 {
                case .outbound: outbound
                case .inbound: inbound
                case .otherPort: g.drop("notForFirewall")
            } }
            for (filter, exit) in [(outbound, outsidePort), (inbound, insidePort)] {
                g.route(filter) { switch $0 {
                    case .accepted: g.port(exit)
                    case .droppedByRule: g.drop("rule")
                    case .droppedByPolicy: g.drop("policy")
                    case .invalid: g.drop("invalid")
                    case .tableFull: g.drop("tableFull")
                    case .fragmentWithoutFirst: g.drop("fragmentWithoutFirst")
                } }
            }
        }
    }
}

/// Decides which way a packet crosses the firewall: by the port it arrived
/// on when the firewall has two, by its source address when it has one.
struct FirewallDirectionNode: Node {
    enum Output: UInt8, NodeOutput { case outbound, inbound, otherPort }
    var name: String { "direction" }
    let internalPrefixes: PrefixSet
    let insidePort: UInt16?
    let outsidePort: UInt16

    init(_ config: ResolvedFirewallConfig) {
        internalPrefixes = PrefixSet(config.internalPrefixes)
        insidePort = config.insidePort
        outsidePort = config.outsidePort
    }

    func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        if let insidePort {
            if packet.port == insidePort { return .outbound }
            return packet.port == outsidePort ? .inbound : .otherPort
        }
        return internalPrefixes.contains(packet, .source) ? .outbound : .inbound
    }
}

/// What the filter remembers of a packet between steps.
struct FirewallScratch {
    enum Stage: UInt8 { case lookup, recheck, insert, update, related, fragment }
    var stage = Stage.lookup
    var attempts: UInt8 = 0
    var key = ConnectionKey(0, .zero, .zero, 0, 0)
    var read: Ticket<Entry<TrackedConnection>?>? = nil
    var insert: Ticket<Insertion<TrackedConnection>>? = nil
    var swap: Ticket<Swap<TrackedConnection>>? = nil
    var fragment: Ticket<Entry<UInt16>?>? = nil
}

/// Tracks each packet's connection and decides it by the rules: a packet
/// of a known connection moves it on (a compare-and-set, retried against
/// what another instance wrote meanwhile); an accepted first packet opens
/// one (an insert under both keys); a dropped packet changes nothing.
struct FirewallFilter: StatefulNode {
    enum Output: UInt8, NodeOutput { case accepted, droppedByRule, droppedByPolicy, invalid, tableFull, fragmentWithoutFirst }
    typealias Scratch = FirewallScratch
    static var emptyScratch: FirewallScratch { FirewallScratch() }
    let name: String
    let direction: FirewallDirection
    let rules: CompiledRules
    let loose: Bool
    let state: FirewallState

    init(_ direction: FirewallDirection, config: ResolvedFirewallConfig, state: FirewallState) {
        self.direction = direction
        name = direction == .inbound ? "filter-in" : "filter-out"
        rules = CompiledRules(config.rules)
        loose = config.loosePickup
        self.state = state
    }

    func start(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        if packet.layout.transport == .fragment {
            // A later fragment follows its datagram's first.
            scratch.stage = .fragment
            scratch.fragment = access.read(state.fragments, FragmentKey(packet))
            return .wait
        }
        if packet.layout.icmp == .error {
            guard let quoted = ConnectionTracking.quotedKey(of: packet) else {
                return invalid(packet, .unrelatedError, &context)
            }
            scratch.stage = .related
            scratch.read = access.read(state.connections, quoted)
            return .wait
        }
        guard let key = ConnectionTracking.key(of: packet) else {
            // Neighbour discovery, router advertisements and the like belong
            // to no connection: each is new, and nothing is tracked.
            return decide(packet, .new)
        }
        scratch.key = key
        scratch.read = access.read(state.connections, key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .fragment:
            return access[scratch.fragment!] != nil ? .done(.accepted) : .done(.fragmentWithoutFirst)
        case .related:
            if access[scratch.read!] != nil { return decide(packet, .related) }
            return invalid(packet, .unrelatedError, &context)
        case .lookup, .recheck:
            if let entry = access[scratch.read!] { return established(&packet, entry, &scratch, &access, &context) }
            return open(&packet, &scratch, &access, &context)
        case .insert:
            switch access[scratch.insert!] {
            case .inserted:
                context.count("firewall.connectionsOpened")
                rememberFragments(packet, &access)
                return .done(.accepted)
            case .present(let entry):
                // Another instance or worker opened it first: this packet is one of its.
                return established(&packet, entry, &scratch, &access, &context)
            case .collision:
                // The other direction's key belongs to a live connection this
                // packet's read missed: read again.
                guard scratch.attempts < 3 else { return invalid(packet, .noConnection, &context) }
                scratch.attempts += 1
                scratch.stage = .recheck
                scratch.read = access.read(state.connections, scratch.key)
                return .wait
            case .full:
                context.count("firewall.tableFull")
                return .done(.tableFull)
            }
        case .update:
            switch access[scratch.swap!] {
            case .swapped, .missing:
                return .done(.accepted)
            case .conflict(let entry):
                // Another packet of the connection moved it meanwhile: track
                // this one again from there.
                guard scratch.attempts < 3 else { return .done(.accepted) }
                scratch.attempts += 1
                return established(&packet, entry, &scratch, &access, &context)
            }
        }
    }

    /// A packet of a known connection.
    func established(_ packet: inout Packet, _ entry: Entry<TrackedConnection>, _ scratch: inout FirewallScratch,
                     _ access: inout StateAccess, _ context: inout NodeContext) -> Step<Output> {
        var connection = entry.value
        let tracked = ConnectionTracking.track(packet, key: scratch.key, &connection)
        if case .invalid(let reason) = tracked { return invalid(packet, reason, &context) }
        let decision = decide(packet, scratch.key, tracked == .reopened ? .new : .established)
        guard case .done(.accepted) = decision else { return decision }
        rememberFragments(packet, &access)
        if connection == entry.value {
            access.refresh(state.connections, scratch.key, entry)
            return .done(.accepted)
        }
        scratch.stage = .update
        scratch.swap = access.compareAndSet(state.connections, scratch.key, expected: entry.value, new: connection,
                                            deadline: access.deadline(state.connections, scratch.key, connection))
        return .wait
    }

    /// A packet that belongs to no known connection: it opens one if it can
    /// and the rules accept it as new.
    func open(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
              _ context: inout NodeContext) -> Step<Output> {
        switch ConnectionTracking.open(packet, key: scratch.key, loose: loose) {
        case .success(let connection):
            let decision = decide(packet, scratch.key, .new)
            guard case .done(.accepted) = decision else { return decision }
            scratch.stage = .insert
            scratch.insert = access.insertIfAbsent(state.connections, scratch.key, connection)
            return .wait
        case .failure(let reason):
            if scratch.stage == .lookup {
                // The connection may be opening in this very batch (its first
                // packet's insert goes out in the same request as this read).
                scratch.stage = .recheck
                scratch.read = access.read(state.connections, scratch.key)
                return .wait
            }
            return invalid(packet, reason, &context)
        }
    }

    /// An invalid packet: counted by reason, and dropped unless a rule
    /// accepts `state invalid` (a policy never does).
    func invalid(_ packet: Packet, _ reason: InvalidPacket, _ context: inout NodeContext) -> Step<Output> {
        context.count(reason.counter)
        let (action, line) = rules.decide(facts(packet, .invalid))
        return action == .accept && line != 0 ? .done(.accepted) : .done(.invalid)
    }

    /// The rules' verdict on a packet in connection state `connectionState`.
    func decide(_ packet: Packet, _ connectionState: ConnectionState) -> Step<Output> {
        decide(facts(packet, connectionState))
    }

    /// What the rules look at in `packet`.
    func facts(_ packet: Packet, _ connectionState: ConnectionState) -> PacketFacts {
        let layout = packet.layout
        let isICMP = layout.transport == .icmpv4 || layout.transport == .icmpv6
        return PacketFacts(direction: direction, inputPort: packet.port, source: packet.address(.source),
                           destination: packet.address(.destination), ipProtocol: layout.ipProtocol,
                           sourcePort: layout.hasPorts ? packet.port(.source) : nil,
                           destinationPort: layout.hasPorts ? packet.port(.destination) : nil,
                           icmpType: isICMP ? packet.icmpType : nil, state: connectionState)
    }

    /// The rules' verdict on a TCP or UDP packet with `key` (its addresses
    /// and ports, already read).
    @inline(__always)
    func decide(_ packet: Packet, _ key: ConnectionKey, _ connectionState: ConnectionState) -> Step<Output> {
        if let (action, line) = rules.constantVerdict(connectionState) { return verdict(action, line) }
        guard packet.layout.hasPorts else { return decide(packet, connectionState) }
        return decide(PacketFacts(direction: direction, inputPort: packet.port, source: key.source,
                                  destination: key.destination, ipProtocol: key.ipProtocol,
                                  sourcePort: key.sourcePort, destinationPort: key.destinationPort,
                                  state: connectionState))
    }

    @inline(__always)
    func decide(_ facts: PacketFacts) -> Step<Output> {
        let (action, line) = rules.decide(facts)
        return verdict(action, line)
    }

    @inline(__always)
    func verdict(_ action: FirewallAction, _ line: Int) -> Step<Output> {
        if action == .accept { return .done(.accepted) }
        return .done(line == 0 ? .droppedByPolicy : .droppedByRule)
    }

    /// A first fragment that passes lets its datagram's later fragments
    /// through.
    @inline(__always)
    func rememberFragments(_ packet: Packet, _ access: inout StateAccess) {
        guard packet.layout.fragment.moreFragments else { return }
        let key = FragmentKey(packet)
        _ = access.insertIfAbsent(state.fragments, key, 1)
    }
}
