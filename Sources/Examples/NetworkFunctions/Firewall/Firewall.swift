import StatelessKit

/// A stateful firewall: connection tracking in the spirit of Linux's
/// conntrack (TCP states and sequence windows, UDP, ICMP echo, related ICMP
/// errors, IPv4 and IPv6) and an ordered rule list that sees each packet's
/// connection state, as nftables' `ct state` does. Every connection lives
/// in the store under both directions' keys, so any instance filters any
/// packet, including a flow whose two directions take different paths.
///
/// ```
/// parse → filter ─ outbound → outside port
///                └ inbound ─→ inside port
/// ```
///
/// One node tracks both directions, so that the packets of a batch reach
/// the store in their order whichever way they go.
public struct Firewall: Sendable {
    /// The checked configuration.
    public let config: ResolvedFirewallConfig
    /// The declared state.
    public let state: FirewallState
    /// The rules it decides by, which may change while it runs
    /// (``reload(_:)``).
    public let rules: LiveRules

    /// A firewall for `config`.
    public init(_ config: ResolvedFirewallConfig) {
        self.config = config
        state = FirewallState(config)
        rules = LiveRules(CompiledRules(config.rules))
    }

    /// Decides every packet from now on by `rules` (a reread rule file);
    /// tracked connections are kept.
    public func reload(_ rules: FirewallRuleSet) {
        self.rules.replace(CompiledRules(rules))
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
            let filter = g.add(FirewallFilter(config: config, state: state, rules: rules))
            g.entry(parse)
            g.routeParsed(parse, ip: filter)
            g.route(filter) { switch $0 {
                case .outbound: g.port(outsidePort)
                case .inbound: g.port(insidePort)
                case .droppedByRule: g.drop("rule")
                case .droppedByPolicy: g.drop("policy")
                case .invalid: g.drop("invalid")
                case .tableFull: g.drop("tableFull")
                case .fragmentWithoutFirst: g.drop("fragmentWithoutFirst")
                case .otherPort: g.drop("notForFirewall")
            } }
        }
    }
}

/// Which way a packet crosses the firewall: by the port it arrived on when
/// the firewall has two, by its source address when it has one.
struct FirewallSides: Sendable {
    let internalPrefixes: PrefixSet
    let insidePort: UInt16?
    let outsidePort: UInt16

    init(_ config: ResolvedFirewallConfig) {
        internalPrefixes = PrefixSet(config.internalPrefixes)
        insidePort = config.insidePort
        outsidePort = config.outsidePort
    }

    /// The packet's direction, or `nil` when it arrived on a port that is neither side.
    @inline(__always)
    func direction(_ packet: borrowing Packet) -> FirewallDirection? {
        if let insidePort {
            if packet.port == insidePort { return .outbound }
            return packet.port == outsidePort ? .inbound : nil
        }
        return internalPrefixes.contains(packet, .source) ? .outbound : .inbound
    }
}

/// What the filter remembers of a packet between steps.
struct FirewallScratch {
    enum Stage: UInt8 { case lookup, recheck, insert, update, related, fragment }
    var stage = Stage.lookup
    var direction = FirewallDirection.outbound
    var attempts: UInt8 = 0
    var key = ConnectionKey(0, .zero, .zero, 0, 0)
    var read: Ticket<Entry<TrackedConnection>?>? = nil
    var insert: Ticket<Insertion<TrackedConnection>>? = nil
    var swap: Ticket<Swap<TrackedConnection>>? = nil
    var fragment: Ticket<Entry<UInt16>?>? = nil
    /// The packet's place among its connection's packets in flight.
    var ticket: FlowSequencer.Ticket? = nil
    /// A fragment's place among its datagram's fragments in flight.
    var datagramTicket: FlowSequencer.Ticket? = nil
    /// Passes spent waiting for its turn.
    var waits: UInt16 = 0
}

/// Tracks each packet's connection and decides it by the rules: a packet
/// of a known connection moves it on (a compare-and-set, retried against
/// what another instance wrote meanwhile); an accepted first packet opens
/// one (an insert under both keys); a dropped packet changes nothing.
struct FirewallFilter: StatefulNode {
    enum Output: UInt8, NodeOutput {
        /// Accepted from the inside (or accepted, from the outside).
        case outbound, inbound
        case droppedByRule, droppedByPolicy, invalid, tableFull, fragmentWithoutFirst, otherPort
    }
    typealias Scratch = FirewallScratch
    static var emptyScratch: FirewallScratch { FirewallScratch() }
    var name: String { "filter" }
    let sides: FirewallSides
    let rules: LiveRules
    let loose: Bool
    let state: FirewallState

    /// How many times a packet tracks again after a conflicting write (by
    /// another instance or worker) or reads again after a collision.
    static let attempts: UInt8 = 8
    /// How many passes a packet waits for its turn at most: far more than
    /// the packets of one connection in flight ever need.
    static let patience: UInt16 = 4096

    init(config: ResolvedFirewallConfig, state: FirewallState, rules live: LiveRules) {
        sides = FirewallSides(config)
        rules = live
        loose = config.loosePickup
        self.state = state
    }

    func start(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        let step = begin(&packet, &scratch, &access, &context)
        if case .done = step { abandon(&scratch, &access) }
        return step
    }

    func begin(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        guard let direction = sides.direction(packet) else { return .done(.otherPort) }
        scratch.direction = direction
        // Every packet that reads state acts in its turn among the packets
        // of its connection (and a fragment among its datagram's): each may
        // move the state on, or depend on what an earlier one wrote.
        if packet.layout.fragment.isFragment {
            let datagram = FragmentKey(packet)
            scratch.datagramTicket = access.sequencer.enter(datagram.hash)
            if packet.layout.transport == .fragment {
                // A later fragment follows its datagram's first.
                scratch.stage = .fragment
                scratch.fragment = access.read(state.fragments, datagram)
                return .wait
            }
        }
        if packet.layout.icmp == .error {
            guard let quoted = ConnectionTracking.quotedKey(of: packet) else {
                return invalid(packet, .unrelatedError, scratch.direction, &context)
            }
            scratch.stage = .related
            scratch.key = quoted
            scratch.ticket = access.sequencer.enter(quoted.flowHash)
            scratch.read = state.read(quoted, &access)
            return .wait
        }
        guard let key = ConnectionTracking.key(of: packet) else {
            // Neighbour discovery, router advertisements and the like belong
            // to no connection: each is new, and nothing is tracked.
            return decide(packet, .new, scratch.direction)
        }
        scratch.key = key
        // The connection's packets act in order (each may move it on): a
        // ticket now, the turn once every earlier one has left.
        scratch.ticket = access.sequencer.enter(key.flowHash)
        scratch.read = state.read(key, &access)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .lookup, .recheck, .related, .fragment:
            // (A packet that has waited 4,096 passes goes ahead, counted: a
            // stall would be worse than a packet out of order.)
            if scratch.waits == Self.patience { context.count("firewall.outOfTurn") }
            guard scratch.waits >= Self.patience || isTurn(scratch, access.sequencer) else {
                scratch.waits += 1
                // An earlier packet of the connection is still at work: read
                // again, to see what it leaves.
                if scratch.stage == .fragment {
                    scratch.fragment = access.read(state.fragments, FragmentKey(packet))
                } else {
                    scratch.read = state.read(scratch.key, &access)
                }
                if scratch.ticket != nil { access.sequencer.issuedRead(&scratch.ticket!) }
                if scratch.datagramTicket != nil { access.sequencer.issuedRead(&scratch.datagramTicket!) }
                return .wait
            }
        case .insert, .update:
            break
        }
        let step = advance(&packet, &scratch, &access, &context)
        if case .done = step { abandon(&scratch, &access) }
        return step
    }

    @inline(__always)
    func isTurn(_ scratch: FirewallScratch, _ sequencer: FlowSequencer) -> Bool {
        (scratch.ticket.map(sequencer.isTurn) ?? true) && (scratch.datagramTicket.map(sequencer.isTurn) ?? true)
    }

    /// Lets the packet's connection and datagram go on without it.
    func abandon(_ scratch: inout FirewallScratch, _ access: inout StateAccess) {
        if let ticket = scratch.ticket { access.sequencer.leave(ticket) }
        if let ticket = scratch.datagramTicket { access.sequencer.leave(ticket) }
    }

    func advance(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
                 _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .fragment:
            return access[scratch.fragment!] != nil ? accept(scratch.direction) : .done(.fragmentWithoutFirst)
        case .related:
            if access[scratch.read!] != nil { return decide(packet, .related, scratch.direction) }
            return invalid(packet, .unrelatedError, scratch.direction, &context)
        case .lookup, .recheck:
            if let entry = access[scratch.read!] { return established(&packet, entry, &scratch, &access, &context) }
            return open(&packet, &scratch, &access, &context)
        case .insert:
            switch access[scratch.insert!] {
            case .inserted:
                context.count("firewall.connectionsOpened")
                rememberFragments(packet, &access)
                return accept(scratch.direction)
            case .present(let entry):
                // Another instance or worker opened it first: this packet is one of its.
                return established(&packet, entry, &scratch, &access, &context)
            case .collision:
                // The other direction's key belongs to a live connection this
                // packet's read missed: read again.
                guard scratch.attempts < Self.attempts else { return invalid(packet, .noConnection, scratch.direction, &context) }
                scratch.attempts += 1
                scratch.stage = .recheck
                scratch.read = state.read(scratch.key, &access)
                access.sequencer.issuedRead(&scratch.ticket!)
                return .wait
            case .full:
                context.count("firewall.tableFull")
                return .done(.tableFull)
            }
        case .update:
            switch access[scratch.swap!] {
            case .swapped, .missing:
                return accept(scratch.direction)
            case .conflict(let entry):
                // Another packet of the connection moved it meanwhile: track
                // this one again from there.
                guard scratch.attempts < Self.attempts else { return accept(scratch.direction) }
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
        if case .invalid(let reason) = tracked { return invalid(packet, reason, scratch.direction, &context) }
        let decision = decide(packet, scratch.key, tracked == .reopened ? .new : .established, scratch.direction)
        guard decision.accepted else { return decision }
        rememberFragments(packet, &access)
        if connection == entry.value {
            state.refresh(scratch.key, entry, &access)
            return accept(scratch.direction)
        }
        scratch.stage = .update
        scratch.swap = state.compareAndSet(scratch.key, expected: entry.value, new: connection, &access)
        return .wait
    }

    /// A packet that belongs to no known connection: it opens one if it can
    /// and the rules accept it as new.
    func open(_ packet: inout Packet, _ scratch: inout FirewallScratch, _ access: inout StateAccess,
              _ context: inout NodeContext) -> Step<Output> {
        switch ConnectionTracking.open(packet, key: scratch.key, loose: loose) {
        case .success(let connection):
            let decision = decide(packet, scratch.key, .new, scratch.direction)
            guard decision.accepted else { return decision }
            scratch.stage = .insert
            scratch.insert = state.insert(scratch.key, connection, &access)
            return .wait
        case .failure(let reason):
            return invalid(packet, reason, scratch.direction, &context)
        }
    }

    /// An invalid packet: counted by reason, and dropped unless a rule
    /// accepts `state invalid` (a policy never does).
    func invalid(_ packet: borrowing Packet, _ reason: InvalidPacket, _ direction: FirewallDirection,
                 _ context: inout NodeContext) -> Step<Output> {
        context.count(reason.counter)
        let facts = facts(packet, .invalid, direction)
        let (action, line) = rules.withCurrent { $0.decide(facts) }
        return action == .accept && line != 0 ? accept(direction) : .done(.invalid)
    }

    /// The rules' verdict on a packet in connection state `connectionState`.
    func decide(_ packet: borrowing Packet, _ connectionState: ConnectionState, _ direction: FirewallDirection) -> Step<Output> {
        let facts = facts(packet, connectionState, direction)
        let (action, line) = rules.withCurrent { $0.decide(facts) }
        return verdict(action, line, direction)
    }

    /// What the rules look at in `packet`.
    func facts(_ packet: borrowing Packet, _ connectionState: ConnectionState, _ direction: FirewallDirection) -> PacketFacts {
        let layout = packet.layout
        let isICMP = layout.transport == .icmpv4 || layout.transport == .icmpv6
        return PacketFacts(direction: direction, inputPort: packet.port, source: packet.address(.source),
                           destination: packet.address(.destination), ipProtocol: layout.ipProtocol,
                           sourcePort: layout.hasPorts ? packet.port(.source) : nil,
                           destinationPort: layout.hasPorts ? packet.port(.destination) : nil,
                           icmpType: isICMP ? packet.icmpType : nil, state: connectionState)
    }

    /// The rules' verdict on a packet with `key` (its addresses and ports,
    /// already read).
    @inline(__always)
    func decide(_ packet: borrowing Packet, _ key: ConnectionKey, _ connectionState: ConnectionState,
                _ direction: FirewallDirection) -> Step<Output> {
        if let (action, line) = rules.withCurrent({ $0.constantVerdict(connectionState) }) {
            return verdict(action, line, direction)
        }
        guard packet.layout.hasPorts else { return decide(packet, connectionState, direction) }
        let facts = PacketFacts(
            direction: direction, inputPort: packet.port, source: key.source, destination: key.destination,
            ipProtocol: key.ipProtocol, sourcePort: key.sourcePort, destinationPort: key.destinationPort,
            state: connectionState)
        let (action, line) = rules.withCurrent { $0.decide(facts) }
        return verdict(action, line, direction)
    }

    @inline(__always)
    func verdict(_ action: FirewallAction, _ line: Int, _ direction: FirewallDirection) -> Step<Output> {
        if action == .accept { return accept(direction) }
        return .done(line == 0 ? .droppedByPolicy : .droppedByRule)
    }

    /// The packet passes, on to the other side.
    @inline(__always)
    func accept(_ direction: FirewallDirection) -> Step<Output> {
        .done(direction == .outbound ? .outbound : .inbound)
    }

    /// A first fragment that passes lets its datagram's later fragments
    /// through.
    @inline(__always)
    func rememberFragments(_ packet: borrowing Packet, _ access: inout StateAccess) {
        guard packet.layout.fragment.moreFragments else { return }
        let key = FragmentKey(packet)
        _ = access.insertIfAbsent(state.fragments, key, 1)
    }
}

extension Step where Output == FirewallFilter.Output {
    /// Whether the packet passes.
    var accepted: Bool {
        if case .done(let output) = self { return output == .outbound || output == .inbound }
        return false
    }
}
