import StatelessKit

/// What the two translation nodes share: the state, the timeouts, and the
/// upkeep of a mapping's flags and deadline.
struct NATRules: Sendable {
    let state: NATState
    let timeouts: NATTimeouts
    /// A few addresses: a linear scan beats hashing.
    let externalAddresses: [IPv4Address]
    /// The timeouts in nanoseconds.
    let policy: NATTimeoutPolicy
    /// The longest a flow's translation is cached without reading its
    /// mapping again: half the shortest timeout a mapping can get, so that no
    /// write by another instance (which sets a deadline at least that far
    /// ahead) can let the mapping expire, and its port go to another flow,
    /// while the cache still uses it, with instances' clocks apart by up to
    /// that much again.
    let cacheHorizon: Int64
    init(state: NATState, timeouts: NATTimeouts, externalAddresses: [IPv4Address]) {
        self.state = state
        self.timeouts = timeouts
        self.externalAddresses = externalAddresses
        policy = NATTimeoutPolicy(timeouts)
        cacheHorizon = min(policy.tcpEstablished, policy.tcpTransitory, policy.udp, policy.icmp) / 2
    }

    /// Whether the NAT translates `ipProtocol` (TCP, UDP, ICMP).
    static func isTranslated(_ ipProtocol: UInt8) -> Bool {
        ipProtocol == IPProtocol.tcp || ipProtocol == IPProtocol.udp || ipProtocol == IPProtocol.icmp
    }

    /// Where the key of a packet's mapping comes from: TCP/UDP ports, or an
    /// ICMP query's identifier.
    static func port(_ packet: Packet, _ end: Endpoint) -> UInt16? {
        if packet.layout.hasPorts { return packet.port(end) }
        return packet.icmpIdentifier
    }

    /// Updates a mapping for a packet that used it: TCP flags, and the
    /// deadline (TCP both ways; UDP and ICMP by outbound packets only).
    /// Returns whether it issued a write.
    @discardableResult
    func maintain(_ entry: Entry<NATBinding>, key: NATKey, packet: Packet, outbound: Bool,
                  _ state: inout StateAccess) -> Bool {
        var flags = entry.value.flags
        if let tcp = packet.tcpFlags {
            let syn = tcp & 0x02 != 0, ack = tcp & 0x10 != 0
            if outbound && syn && !ack && (flags.contains(.reset) || flags.isSuperset(of: [.finInside, .finOutside])) {
                flags = []  // a new connection on an old mapping
            }
            if tcp & 0x04 != 0 { flags.insert(.reset) }
            if tcp & 0x01 != 0 { flags.insert(outbound ? .finInside : .finOutside) }
            if !outbound { flags.insert(.answered) }
        }
        // The table's idle timeout follows the flags; UDP and ICMP mappings
        // are kept alive by outbound packets only.
        if flags != entry.value.flags {
            var updated = entry.value
            updated.flags = flags
            return state.refresh(self.state.mappings, key, entry, updated: updated)
        } else if outbound || entry.value.ipProtocol == IPProtocol.tcp {
            return state.refresh(self.state.mappings, key, entry)
        }
        return false
    }

    /// Lets the flow cache keep a translation that changed nothing in the
    /// store: until the mapping's next refresh is due (when the next packet
    /// must cross the graph to write it), and no longer than
    /// ``cacheHorizon``.
    func allowCaching(_ entry: Entry<NATBinding>, _ state: StateAccess, _ context: inout NodeContext) {
        context.cacheFlow(until: state.cacheLease(entry, timeout: policy.timeout(entry.value.ipProtocol, entry.value.flags),
                                                  horizon: cacheHorizon))
    }

    /// Lets the rest of a fragmented datagram follow its first fragment.
    func rememberFragments(_ packet: Packet, side: NATKey.Side, binding: NATBinding, key: NATFragmentKey?,
                           _ state: inout StateAccess) {
        guard let key, packet.layout.fragment.moreFragments else { return }
        state.insertIfAbsent(self.state.fragments, key, binding,
                             deadline: Timestamp(nanoseconds: state.now.nanoseconds + Int64(timeouts.fragment * 1e9)))
    }

    /// Starts the lookup of a non-first fragment's entry, as it arrived from
    /// `side`; `false` when it has none to look up.
    func startFragment(_ packet: Packet, side: NATKey.Side, _ scratch: inout NATScratch,
                       _ state: inout StateAccess) -> Bool {
        guard let key = Self.fragmentKey(packet, side: side) else { return false }
        scratch.stage = .fragment
        scratch.read = state.read(self.state.fragments, key)
        return true
    }

    /// Starts the lookup of the mapping an ICMP error is about: the quote's
    /// end at `quoted` is the mapping's `side`. `false` when the quote has no
    /// port or identifier to look up.
    func startError(_ packet: Packet, side: NATKey.Side, quoted end: Endpoint, _ scratch: inout NATScratch,
                    _ state: inout StateAccess) -> Bool {
        guard let address = packet.quotedAddress(end)?.ipv4, let quote = packet.layout.quote,
              let port = quote.transport == .tcp || quote.transport == .udp
                  ? packet.quotedPort(end) : packet.quotedICMPIdentifier
        else { return false }
        scratch.stage = .error
        scratch.key = NATKey(side, quote.ipProtocol, NATEndpoint(address, port))
        scratch.read = state.read(self.state.mappings, scratch.key)
        return true
    }

    /// The fragment key of a packet as it arrived from `side`.
    static func fragmentKey(_ packet: Packet, side: NATKey.Side) -> NATFragmentKey? {
        guard packet.layout.fragment.isFragment, let source = packet.ipv4Address(.source),
              let destination = packet.ipv4Address(.destination) else { return nil }
        return NATFragmentKey(side: side, source: source, destination: destination, ipProtocol: packet.layout.ipProtocol,
                              identification: UInt16(truncatingIfNeeded: packet.layout.fragment.identification))
    }
}

/// Where a packet is in a translation node.
enum NATStage: UInt8 {
    case lookup, take, insert, fragment, error
}

/// What a packet carries between a translation node's steps.
struct NATScratch {
    var stage = NATStage.lookup
    var key = NATKey(.inside, 0, NATEndpoint(IPv4Address(0), 0))
    var fragmentKey: NATFragmentKey? = nil
    var read: Ticket<Entry<NATBinding>?>? = nil
    var take: Ticket<NATEndpoint?>? = nil
    var insert: Ticket<Insertion<NATBinding>>? = nil
    var attempts: UInt8 = 0
}
