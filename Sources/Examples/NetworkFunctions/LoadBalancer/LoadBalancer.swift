import StatelessKit

/// An L4 load balancer: VIPs with weighted backends; a flow's first packet
/// picks a backend by Maglev consistent hashing and writes the assignment
/// (one read and one write), every later packet reads it; the destination
/// is rewritten to the backend and, on the way back, the source to the VIP.
/// With full-NAT the source is rewritten too, to one of the balancer's own
/// addresses, so that return traffic comes back through it on any network.
/// Every assignment lives in the store under both its keys, so any
/// instance balances any packet, and backend changes never move a flow.
///
/// ```
/// parse → direction ─ to a VIP ──→ lb-forward ─ forwarded → backend port
///                   └ otherwise ─→ lb-return ── returned ─→ client port
/// ```
public struct LoadBalancer: Sendable {
    /// The checked configuration.
    public let config: ResolvedLBConfig
    /// The declared state.
    public let state: LBState
    /// The backends, which may change while it runs.
    public let backends: LBBackends

    /// A balancer for `config`.
    public init(_ config: ResolvedLBConfig) {
        self.config = config
        state = LBState(config)
        backends = LBBackends(config)
    }

    /// The port clients' packets arrive on and return traffic leaves by.
    public var clientPort: UInt16 { config.clientPort ?? config.backendPort }
    /// The port facing the backends.
    public var backendPort: UInt16 { config.backendPort }

    /// The processing graph.
    public func graph() throws -> Graph {
        return try Graph("lb") { g in
            let parse = g.add(ParseNode())
            let direction = g.add(LBDirection(config))
            let forward = g.add(LBForward(state: state, backends: backends, fullNAT: config.fullNAT))
            let back = g.add(LBReturn(state: state))
            g.entry(parse)
            g.routeParsed(parse, ip: direction)
            g.route(direction) { switch $0 {
                case .toVIP: forward
                case .fromBackend: back
                case .notBalanced: g.drop("notBalanced")
            } }
            g.route(forward) { switch $0 {
                case .forwarded: g.port(backendPort)
                case .noBackend: g.drop("noBackend")
                case .exhausted: g.drop("portsExhausted")
                case .tableFull: g.drop("tableFull")
            } }
            g.route(back) { switch $0 {
                case .returned: g.port(clientPort)
                case .noFlow: g.drop("noFlow")
            } }
        }
    }

    /// New flows assigned to each backend so far, read from the store
    /// through `session`.
    public func connectionCounts(_ session: any StateSession, backends: [NATEndpoint]) -> [NATEndpoint: Int] {
        let request = StateRequest()
        for backend in backends {
            _ = request.append(StateOperation(kind: .read, table: Int32(state.connections.id), key: request.store(backend)))
        }
        session.submit(request)
        var answered: StateRequest? = nil
        while answered == nil { session.poll(wait: true) { answered = $0 } }
        var counts: [NATEndpoint: Int] = [:]
        for (i, backend) in backends.enumerated() {
            let result = answered!.results[i]
            counts[backend] = result.status == .ok ? Int(UInt64(decoding: answered!.resultBytes(at: result.value))) : 0
        }
        return counts
    }
}

/// Sends packets to a VIP forward and everything else to the return path:
/// by the port a packet arrived on when the balancer has two.
struct LBDirection: Node {
    enum Output: UInt8, NodeOutput { case toVIP, fromBackend, notBalanced }
    var name: String { "direction" }
    /// The VIPs as address, port and protocol packed in one number, sorted
    /// (a search per packet, no hashing).
    let vips: [UInt64]
    let clientPort: UInt16?
    static var isFlowDeterministic: Bool { true }

    init(_ config: ResolvedLBConfig) {
        vips = config.services.map { Self.pack($0.vip.address, $0.vip.port, $0.ipProtocol) }.sorted()
        clientPort = config.clientPort
    }

    @inline(__always)
    static func pack(_ address: IPv4Address, _ port: UInt16, _ ipProtocol: UInt8) -> UInt64 {
        UInt64(address.value) << 24 | UInt64(port) << 8 | UInt64(ipProtocol)
    }

    @inline(__always)
    func isVIP(_ packed: UInt64) -> Bool {
        var low = 0, high = vips.count
        while low < high {
            let middle = (low + high) / 2
            if vips[middle] < packed { low = middle + 1 } else { high = middle }
        }
        return low < vips.count && vips[low] == packed
    }

    func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output {
        if packet.layout.icmp == .error {
            // An error about a balanced flow: about what the balancer sent a
            // client (the quote comes from a VIP), or sent a backend.
            guard let quote = packet.layout.quote, quote.transport == .tcp || quote.transport == .udp,
                  let source = packet.quotedAddress(.source)?.ipv4, let port = packet.quotedPort(.source)
            else { return .notBalanced }
            let aboutVIP = isVIP(Self.pack(source, port, quote.ipProtocol))
            if let clientPort { return (packet.port == clientPort) == aboutVIP ? (aboutVIP ? .toVIP : .fromBackend) : .notBalanced }
            return aboutVIP ? .toVIP : .fromBackend
        }
        let ipProtocol = packet.layout.ipProtocol
        guard ipProtocol == IPProtocol.tcp || ipProtocol == IPProtocol.udp, packet.layout.hasPorts,
              let destination = packet.ipv4Address(.destination) else { return .notBalanced }
        let toVIP = isVIP(Self.pack(destination, packet.port(.destination), ipProtocol))
        if let clientPort {
            if packet.port == clientPort { return toVIP ? .toVIP : .notBalanced }
            return .fromBackend
        }
        return toVIP ? .toVIP : .fromBackend
    }
}

/// What a balancer's node remembers of a packet between steps.
struct LBScratch {
    enum Stage: UInt8 { case lookup, take, insert, error }
    var stage = Stage.lookup
    var key = LBKey(.client, 0, NATEndpoint(IPv4Address(0), 0), NATEndpoint(IPv4Address(0), 0))
    var backend = NATEndpoint(IPv4Address(0), 0)
    var attempts: UInt8 = 0
    var read: Ticket<Entry<LBAssignment>?>? = nil
    var take: Ticket<NATEndpoint?>? = nil
    var insert: Ticket<Insertion<LBAssignment>>? = nil

    /// Reads the flow an ICMP error is about: the quoted packet went to
    /// `side` (validated by the direction node), so its addresses, swapped,
    /// are the flow's key from that side.
    mutating func lookUpError(_ packet: Packet, _ side: LBKey.Side, _ flows: StateTable<LBKey, LBAssignment>,
                              _ access: inout StateAccess) {
        func quoted(_ end: Endpoint) -> NATEndpoint {
            NATEndpoint(packet.quotedAddress(end)?.ipv4 ?? IPv4Address(0), packet.quotedPort(end) ?? 0)
        }
        stage = .error
        key = LBKey(side, packet.layout.quote!.ipProtocol, quoted(.destination), quoted(.source))
        read = access.read(flows, key)
    }
}

/// Keeps a flow's TCP flags and deadline; returns whether it issued a write.
@discardableResult
func maintainFlow(_ entry: Entry<LBAssignment>, key: LBKey, packet: Packet, fromClient: Bool, table: StateTable<LBKey, LBAssignment>,
                  _ state: inout StateAccess) -> Bool {
    var flags = entry.value.flags
    if let tcp = packet.tcpFlags {
        let syn = tcp & 0x02 != 0, ack = tcp & 0x10 != 0
        if fromClient && syn && !ack && (flags.contains(.reset) || flags.isSuperset(of: [.finClient, .finBackend])) {
            flags = []  // a new connection on the same endpoints
        }
        if tcp & 0x04 != 0 { flags.insert(.reset) }
        if tcp & 0x01 != 0 { flags.insert(fromClient ? .finClient : .finBackend) }
        if !fromClient { flags.insert(.answered) }
    }
    if flags != entry.value.flags {
        var updated = entry.value
        updated.flags = flags
        return state.refresh(table, key, entry, updated: updated)
    }
    return state.refresh(table, key, entry)
}

/// Keeps a flow whose packet changed nothing in the store, and maintains
/// it otherwise: the flow cache may keep its assignment until its next
/// refresh is due, and no longer than the state's horizon (as the NAT does).
func maintainOrCache(_ entry: Entry<LBAssignment>, key: LBKey, packet: Packet, fromClient: Bool, state: LBState,
                     _ access: inout StateAccess, _ context: inout NodeContext) {
    guard !maintainFlow(entry, key: key, packet: packet, fromClient: fromClient, table: state.flows, &access) else { return }
    context.cacheFlow(until: access.cacheLease(entry, timeout: state.timeouts.timeout(entry.value), horizon: state.cacheHorizon))
}

/// Balances packets to a VIP: the flow's assignment, or for its first
/// packet a backend by Maglev (and, with full-NAT, a source port), written
/// so that every instance agrees.
struct LBForward: StatefulNode {
    enum Output: UInt8, NodeOutput { case forwarded, noBackend, exhausted, tableFull }
    typealias Scratch = LBScratch
    static var emptyScratch: LBScratch { LBScratch() }
    var name: String { "lb-forward" }
    let state: LBState
    let backends: LBBackends
    let fullNAT: Bool

    func start(_ packet: inout Packet, _ scratch: inout LBScratch, _ access: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        if packet.layout.icmp == .error {
            // About a packet the balancer sent a client: from the VIP to the client.
            scratch.lookUpError(packet, .client, state.flows, &access)
            return .wait
        }
        let client = NATEndpoint(packet.ipv4Address(.source)!, packet.port(.source))
        let vip = NATEndpoint(packet.ipv4Address(.destination)!, packet.port(.destination))
        scratch.key = LBKey(.client, packet.layout.ipProtocol, client, vip)
        scratch.read = access.read(state.flows, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout LBScratch, _ access: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        switch scratch.stage {
        case .error:
            guard let flow = access[scratch.read!]?.value else { return .done(.noBackend) }
            // As the backend sent it: from the backend, to the address it knows the client by.
            translateError(packet, to: flow.backend, outer: .destination, quoted: .source)
            if flow.source != flow.client {
                packet.setIPv4Address(flow.source.address, at: .source)
                translateQuoted(packet, to: flow.source, at: .destination)
            }
            return .done(.forwarded)
        case .lookup:
            if let entry = access[scratch.read!] {
                maintainOrCache(entry, key: scratch.key, packet: packet, fromClient: true, state: state, &access, &context)
                return forward(&packet, entry.value)
            }
            let key = scratch.key
            guard let backend = backends.pick(vip: key.destination, ipProtocol: key.ipProtocol, hash: Self.hash(key)) else {
                return .done(.noBackend)
            }
            scratch.backend = backend
            return fullNAT ? takePort(&scratch, &access) : insert(packet, source: key.source, &scratch, &access)
        case .take:
            guard let source = access[scratch.take!] else {
                context.count("lb.portsExhausted")
                return .done(.exhausted)
            }
            return insert(packet, source: source, &scratch, &access)
        case .insert:
            switch access[scratch.insert!] {
            case .inserted(let entry):
                context.count("lb.flowsCreated")
                _ = access.add(state.connections, entry.value.backend, 1)
                return forward(&packet, entry.value)
            case .present(let entry):
                // Another instance or worker assigned this flow first: follow it.
                return forward(&packet, entry.value)
            case .collision:
                guard fullNAT, scratch.attempts < 3 else { return .done(.tableFull) }
                scratch.attempts += 1
                return takePort(&scratch, &access)
            case .full:
                return .done(.tableFull)
            }
        }
    }

    func takePort(_ scratch: inout LBScratch, _ access: inout StateAccess) -> Step<Output> {
        scratch.stage = .take
        scratch.take = access.take(state.pool(for: scratch.key.source.address, ipProtocol: scratch.key.ipProtocol))
        return .wait
    }

    func insert(_ packet: Packet, source: NATEndpoint, _ scratch: inout LBScratch,
                _ access: inout StateAccess) -> Step<Output> {
        var flags = LBAssignment.Flags()
        if let tcp = packet.tcpFlags, tcp & 0x01 != 0 { flags.insert(.finClient) }
        let assignment = LBAssignment(ipProtocol: scratch.key.ipProtocol, flags: flags, client: scratch.key.source,
                                      vip: scratch.key.destination, backend: scratch.backend, source: source)
        scratch.stage = .insert
        scratch.insert = access.insertIfAbsent(state.flows, scratch.key, assignment, releaseOnConflict: true)
        return .wait
    }

    func forward(_ packet: inout Packet, _ assignment: LBAssignment) -> Step<Output> {
        packet.setIPv4Address(assignment.backend.address, at: .destination)
        packet.setPort(assignment.backend.port, at: .destination)
        if assignment.source != assignment.client {
            packet.setIPv4Address(assignment.source.address, at: .source)
            packet.setPort(assignment.source.port, at: .source)
        }
        return .done(.forwarded)
    }

    /// A flow's hash for Maglev: the same on every instance.
    static func hash(_ key: LBKey) -> UInt64 {
        var h = UInt64(key.source.address.value) << 32 | UInt64(key.source.port) << 16 | UInt64(key.ipProtocol)
        h ^= UInt64(key.destination.address.value) &* 0x9E37_79B9_7F4A_7C15 ^ UInt64(key.destination.port)
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        return h ^ (h >> 31)
    }
}

/// Sends a backend's packets back to the client, from the VIP.
struct LBReturn: StatefulNode {
    enum Output: UInt8, NodeOutput { case returned, noFlow }
    typealias Scratch = LBScratch
    static var emptyScratch: LBScratch { LBScratch() }
    var name: String { "lb-return" }
    let state: LBState

    func start(_ packet: inout Packet, _ scratch: inout LBScratch, _ access: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        if packet.layout.icmp == .error {
            // About a packet the balancer sent a backend.
            scratch.lookUpError(packet, .backend, state.flows, &access)
            return .wait
        }
        guard let source = packet.ipv4Address(.source), let destination = packet.ipv4Address(.destination),
              packet.layout.hasPorts else { return .done(.noFlow) }
        scratch.key = LBKey(.backend, packet.layout.ipProtocol, NATEndpoint(source, packet.port(.source)),
                            NATEndpoint(destination, packet.port(.destination)))
        scratch.read = access.read(state.flows, scratch.key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout LBScratch, _ access: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        guard let entry = access[scratch.read!] else { return .done(.noFlow) }
        if scratch.stage == .error {
            // As the client would have it: about a packet from the client to the VIP.
            let flow = entry.value
            translateError(packet, to: flow.vip, outer: .source, quoted: .destination)
            if flow.source != flow.client {
                packet.setIPv4Address(flow.client.address, at: .destination)
                translateQuoted(packet, to: flow.client, at: .source)
            }
            return .done(.returned)
        }
        maintainOrCache(entry, key: scratch.key, packet: packet, fromClient: false, state: state, &access, &context)
        let flow = entry.value
        packet.setIPv4Address(flow.vip.address, at: .source)
        packet.setPort(flow.vip.port, at: .source)
        if flow.source != flow.client {
            packet.setIPv4Address(flow.client.address, at: .destination)
            packet.setPort(flow.client.port, at: .destination)
        }
        return .done(.returned)
    }
}
