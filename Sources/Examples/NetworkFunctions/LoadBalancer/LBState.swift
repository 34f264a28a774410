import Foundation
import StatelessKit

/// A flow's key: which way (from the client, or back from the backend), the
/// protocol, and the packet's source and destination.
public struct LBKey: StateCodable, Hashable {
    /// From the client to a VIP, or from a backend back.
    public enum Side: UInt8, Sendable { case client = 0, backend = 1 }
    public var side: Side
    public var ipProtocol: UInt8
    public var source: NATEndpoint
    public var destination: NATEndpoint

    public init(_ side: Side, _ ipProtocol: UInt8, _ source: NATEndpoint, _ destination: NATEndpoint) {
        self.side = side
        self.ipProtocol = ipProtocol
        self.source = source
        self.destination = destination
    }

    public static var encodedSize: Int { 14 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: side.rawValue, as: UInt8.self)
        pointer.storeBytes(of: ipProtocol, toByteOffset: 1, as: UInt8.self)
        source.encode(to: pointer + 2)
        destination.encode(to: pointer + 8)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        side = Side(rawValue: pointer.load(as: UInt8.self)) ?? .client
        ipProtocol = pointer.load(fromByteOffset: 1, as: UInt8.self)
        source = NATEndpoint(decoding: pointer + 2)
        destination = NATEndpoint(decoding: pointer + 8)
    }
}

/// A flow's assignment: the client, the VIP, the backend, the address the
/// backend sees the client as (the client itself, or the balancer's own
/// endpoint with full-NAT), and what has been seen of a TCP connection.
public struct LBAssignment: StateCodable, Hashable, CustomStringConvertible {
    public var ipProtocol: UInt8
    public var flags: Flags
    public var client: NATEndpoint
    public var vip: NATEndpoint
    public var backend: NATEndpoint
    public var source: NATEndpoint

    /// TCP events seen on the flow.
    public struct Flags: OptionSet, Hashable, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// A FIN from the client.
        public static let finClient = Flags(rawValue: 1)
        /// A FIN from the backend.
        public static let finBackend = Flags(rawValue: 2)
        /// A RST either way.
        public static let reset = Flags(rawValue: 4)
        /// The backend answered.
        public static let answered = Flags(rawValue: 8)
    }

    public init(ipProtocol: UInt8, flags: Flags = [], client: NATEndpoint, vip: NATEndpoint, backend: NATEndpoint,
                source: NATEndpoint) {
        self.ipProtocol = ipProtocol
        self.flags = flags
        self.client = client
        self.vip = vip
        self.backend = backend
        self.source = source
    }

    public static var encodedSize: Int { 26 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: ipProtocol, as: UInt8.self)
        pointer.storeBytes(of: flags.rawValue, toByteOffset: 1, as: UInt8.self)
        client.encode(to: pointer + 2)
        vip.encode(to: pointer + 8)
        backend.encode(to: pointer + 14)
        source.encode(to: pointer + 20)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        ipProtocol = pointer.load(as: UInt8.self)
        flags = Flags(rawValue: pointer.load(fromByteOffset: 1, as: UInt8.self))
        client = NATEndpoint(decoding: pointer + 2)
        vip = NATEndpoint(decoding: pointer + 8)
        backend = NATEndpoint(decoding: pointer + 14)
        source = NATEndpoint(decoding: pointer + 20)
    }

    /// `tcp 198.51.100.7:40000 -> 10.0.0.10:80 => 192.168.1.2:8080`.
    public var description: String {
        let name = ipProtocol == IPProtocol.tcp ? "tcp" : ipProtocol == IPProtocol.udp ? "udp" : "proto \(ipProtocol)"
        let via = source == client ? "" : " (from \(source))"
        return "\(name) \(client) -> \(vip) => \(backend)\(via)"
    }
}

/// How long a flow lives idle: by protocol and what has been seen of a TCP
/// connection.
struct LBTimeoutPolicy: Sendable {
    let tcpEstablished: Int64, tcpTransitory: Int64, udp: Int64

    init(_ timeouts: LBTimeouts) {
        tcpEstablished = Int64(timeouts.tcpEstablished * 1e9)
        tcpTransitory = Int64(timeouts.tcpTransitory * 1e9)
        udp = Int64(timeouts.udp * 1e9)
    }

    func timeout(_ assignment: LBAssignment) -> Int64 {
        guard assignment.ipProtocol == IPProtocol.tcp else { return udp }
        let flags = assignment.flags
        let closed = flags.contains(.reset) || flags.isSuperset(of: [.finClient, .finBackend])
        return closed || !flags.contains(.answered) ? tcpTransitory : tcpEstablished
    }
}

/// The balancer's declared state: the flows (found from the client's side
/// and the backend's), new connections counted per backend, and, with
/// full-NAT, a pool of source ports per source address and protocol.
public struct LBState: Sendable {
    /// The deployment's schema.
    public let schema: StateSchema
    /// The flows, under their client-side and backend-side keys.
    public let flows: StateTable<LBKey, LBAssignment>
    /// New flows assigned, per backend (atomic increments).
    public let connections: StateTable<NATEndpoint, UInt64>
    /// Full-NAT source ports, by source address then protocol (TCP, UDP).
    public let pools: [[StatePool<NATEndpoint>]]
    /// The flows' idle timeouts in nanoseconds.
    let timeouts: LBTimeoutPolicy
    /// The longest a flow's assignment is cached without reading it again:
    /// half the shortest timeout a flow can get (see ``NATRules``' own).
    let cacheHorizon: Int64

    static let protocols: [UInt8] = [IPProtocol.tcp, IPProtocol.udp]

    public init(_ config: ResolvedLBConfig) {
        let schema = StateSchema(namespace: config.namespace)
        var pools: [[StatePool<NATEndpoint>]] = []
        if config.fullNAT {
            for address in config.sourceAddresses {
                pools.append(Self.protocols.map { number in
                    schema.pool("ports.\(address).\(number)", items: config.ports.map { NATEndpoint(address, $0) })
                })
            }
        }
        // A pool by source address and protocol.
        var poolOf: [UInt64: StatePool<NATEndpoint>] = [:]
        for (i, address) in (config.fullNAT ? config.sourceAddresses : []).enumerated() {
            for (j, number) in Self.protocols.enumerated() {
                poolOf[UInt64(address.value) << 8 | UInt64(number)] = pools[i][j]
            }
        }
        let pooled = poolOf
        var held: (@Sendable (LBKey, LBAssignment) -> PoolResource?)? = nil
        if config.fullNAT {
            held = { (_: LBKey, flow: LBAssignment) -> PoolResource? in
                guard let pool = pooled[UInt64(flow.source.address.value) << 8 | UInt64(flow.ipProtocol)] else { return nil }
                return PoolResource(pool, flow.source)
            }
        }
        let timeouts = LBTimeoutPolicy(config.timeouts)
        self.timeouts = timeouts
        cacheHorizon = min(timeouts.tcpEstablished, timeouts.tcpTransitory, timeouts.udp) / 2
        flows = schema.table(
            "flows", key: LBKey.self, value: LBAssignment.self, capacity: config.capacity,
            reverseKey: { _, flow in LBKey(.backend, flow.ipProtocol, flow.backend, flow.source) },
            heldResource: held,
            idleTimeout: { _, flow in timeouts.timeout(flow) })
        connections = schema.table("connections", key: NATEndpoint.self, value: UInt64.self, capacity: 1 << 16)
        self.schema = schema
        self.pools = pools
    }

    /// The pool a client's full-NAT source port comes from: each client
    /// keeps one source address.
    func pool(for client: IPv4Address, ipProtocol: UInt8) -> StatePool<NATEndpoint> {
        var hash = UInt64(client.value) &* 0x9E37_79B9_7F4A_7C15
        hash ^= hash >> 29
        return pools[Int(hash % UInt64(pools.count))][ipProtocol == IPProtocol.tcp ? 0 : 1]
    }
}

/// The backends of every VIP and their Maglev tables, which a running
/// balancer may change (a reloaded configuration, a command): new flows
/// follow the change; flows already assigned keep their backend until they
/// end, whatever happens to it.
public final class LBBackends: @unchecked Sendable {
    /// One VIP's backends and table.
    struct Service {
        let backends: [LBBackend]
        let table: MaglevTable
    }

    private let lock = NSLock()
    private var services: [LBServiceKey: Service] = [:]
    private let tableSize: Int

    struct LBServiceKey: Hashable {
        let vip: NATEndpoint
        let ipProtocol: UInt8
    }

    init(_ config: ResolvedLBConfig) {
        tableSize = config.tableSize
        for service in config.services { install(service) }
    }

    private func install(_ service: LBService) {
        let table = MaglevTable(backends: service.backends.map { ("\($0.endpoint)", $0.weight) }, size: tableSize)
        services[LBServiceKey(vip: service.vip, ipProtocol: service.ipProtocol)] = Service(backends: service.backends,
                                                                                          table: table)
    }

    /// Replaces a VIP's backends: drained (weight 0) and removed backends
    /// take no new flow, added ones take new flows only. Throws if the VIP
    /// is not configured.
    public func update(vip: NATEndpoint, ipProtocol: UInt8, backends: [LBBackend]) throws(ConfigError) {
        lock.lock()
        defer { lock.unlock() }
        guard services[LBServiceKey(vip: vip, ipProtocol: ipProtocol)] != nil else {
            throw ConfigError(field: "vips", "\(vip) is not a VIP of this balancer (VIPs are fixed at start)")
        }
        install(LBService(vip: vip, ipProtocol: ipProtocol, backends: backends))
    }

    /// Takes every VIP's backends from `config` (which must have the same VIPs).
    public func reload(_ config: ResolvedLBConfig) throws(ConfigError) {
        for service in config.services {
            try update(vip: service.vip, ipProtocol: service.ipProtocol, backends: service.backends)
        }
    }

    /// The backend a new flow with `hash` to `vip` goes to, or `nil` when
    /// the VIP has no backend taking new flows.
    func pick(vip: NATEndpoint, ipProtocol: UInt8, hash: UInt64) -> NATEndpoint? {
        lock.lock()
        defer { lock.unlock() }
        guard let service = services[LBServiceKey(vip: vip, ipProtocol: ipProtocol)],
              let index = service.table.backend(for: hash) else { return nil }
        return service.backends[index].endpoint
    }

    /// A VIP's backends now.
    public func backends(vip: NATEndpoint, ipProtocol: UInt8) -> [LBBackend] {
        lock.lock()
        defer { lock.unlock() }
        return services[LBServiceKey(vip: vip, ipProtocol: ipProtocol)]?.backends ?? []
    }
}
