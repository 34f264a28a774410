import StatelessKit

/// A connection's key as one direction's packets carry it: protocol,
/// addresses, and ports (an ICMP echo's identifier as both ports, so that
/// the request's and the reply's keys mirror each other). IPv4 addresses
/// are held IPv4-mapped.
public struct ConnectionKey: StateCodable, Hashable, CustomStringConvertible {
    /// The IP protocol.
    public var ipProtocol: UInt8
    /// The source address (IPv4 mapped for IPv4).
    public var source: IPAddress
    /// The destination address.
    public var destination: IPAddress
    /// The source port (an echo's identifier).
    public var sourcePort: UInt16
    /// The destination port (an echo's identifier).
    public var destinationPort: UInt16

    /// A key.
    public init(_ ipProtocol: UInt8, _ source: IPAddress, _ destination: IPAddress, _ sourcePort: UInt16,
                _ destinationPort: UInt16) {
        self.ipProtocol = ipProtocol
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
    }

    /// Whether the source endpoint (address, then port) is the lower of the
    /// two: the same answer for a connection's every packet one way, the
    /// other answer for the other way.
    @inline(__always)
    public var sourceIsLower: Bool {
        if source.high != destination.high { return source.high < destination.high }
        if source.low != destination.low { return source.low < destination.low }
        return sourcePort < destinationPort
    }

    /// A hash of the connection, the same from either direction's key.
    @inline(__always)
    public var flowHash: UInt64 {
        @inline(__always) func end(_ address: IPAddress, _ port: UInt16) -> UInt64 {
            (address.high &* 0x9E37_79B9_7F4A_7C15) ^ (address.low &* 0xC2B2_AE3D_27D4_EB4F) ^ (UInt64(port) &* 0x1656_67B1_9E37_79F9)
        }
        var h = end(source, sourcePort) &+ end(destination, destinationPort) &+ UInt64(ipProtocol)
        h = (h ^ (h >> 31)) &* 0xBF58_476D_1CE4_E5B9
        return h ^ (h >> 29)
    }

    /// The general form of an IPv4 key (addresses IPv4 mapped).
    public init(_ key: ConnectionKey4) {
        self.init(key.ipProtocol, IPAddress(key.source), IPAddress(key.destination), key.sourcePort, key.destinationPort)
    }

    /// The key of the other direction's packets.
    public var reversed: ConnectionKey { ConnectionKey(ipProtocol, destination, source, destinationPort, sourcePort) }

    public static var encodedSize: Int { 37 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: ipProtocol, as: UInt8.self)
        source.encode(to: pointer + 1)
        destination.encode(to: pointer + 17)
        sourcePort.encode(to: pointer + 33)
        destinationPort.encode(to: pointer + 35)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        ipProtocol = pointer.load(as: UInt8.self)
        source = IPAddress(decoding: pointer + 1)
        destination = IPAddress(decoding: pointer + 17)
        sourcePort = UInt16(decoding: pointer + 33)
        destinationPort = UInt16(decoding: pointer + 35)
    }

    public var description: String {
        func end(_ address: IPAddress, _ port: UInt16) -> String {
            address.isIPv4 ? "\(address):\(port)" : "[\(address)]:\(port)"
        }
        return "\(IPProtocol.name(ipProtocol)) \(end(source, sourcePort)) -> \(end(destination, destinationPort))"
    }
}

/// An IPv4 connection's key as the store holds it: 13 bytes instead of
/// 37, so that an IPv4 connection's two records stay small.
public struct ConnectionKey4: StateCodable, Hashable {
    /// The IP protocol.
    public var ipProtocol: UInt8
    /// The source address.
    public var source: IPv4Address
    /// The destination address.
    public var destination: IPv4Address
    /// The source port.
    public var sourcePort: UInt16
    /// The destination port.
    public var destinationPort: UInt16

    /// The IPv4 form of `key` (whose addresses are IPv4).
    @inline(__always)
    public init(_ key: ConnectionKey) {
        ipProtocol = key.ipProtocol
        source = IPv4Address(UInt32(truncatingIfNeeded: key.source.low))
        destination = IPv4Address(UInt32(truncatingIfNeeded: key.destination.low))
        sourcePort = key.sourcePort
        destinationPort = key.destinationPort
    }

    /// The key of the other direction's packets.
    var reversed: ConnectionKey4 {
        var key = self
        swap(&key.source, &key.destination)
        swap(&key.sourcePort, &key.destinationPort)
        return key
    }

    public static var encodedSize: Int { 13 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: ipProtocol, as: UInt8.self)
        source.encode(to: pointer + 1)
        destination.encode(to: pointer + 5)
        sourcePort.encode(to: pointer + 9)
        destinationPort.encode(to: pointer + 11)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        ipProtocol = pointer.load(as: UInt8.self)
        source = IPv4Address(decoding: pointer + 1)
        destination = IPv4Address(decoding: pointer + 5)
        sourcePort = UInt16(decoding: pointer + 9)
        destinationPort = UInt16(decoding: pointer + 11)
    }
}

/// A tracked connection: which side opened it, whether the other side
/// answered, and for TCP the state machine and windows. Stored under the
/// key of each direction.
public struct TrackedConnection: StateCodable, CustomStringConvertible {
    /// The protocol.
    public var ipProtocol: UInt8
    /// Whether the side that opened it has the lower endpoint (address,
    /// then port) of the two: what tells its packets from the replies.
    public var openedByLower: Bool
    /// Whether a packet came back from the other side.
    public var replied: Bool
    /// TCP's state and windows (a zero value for other protocols).
    public var tcp: TCPTracker

    /// A connection opened by a packet with `key`.
    public init(key: ConnectionKey, tcp: TCPTracker = TCPTracker(), replied: Bool = false) {
        ipProtocol = key.ipProtocol
        openedByLower = key.sourceIsLower
        self.replied = replied
        self.tcp = tcp
    }

    /// The connection's key in the direction it was opened.
    public func originalKey(from key: ConnectionKey) -> ConnectionKey {
        isReply(key) ? key.reversed : key
    }

    /// Whether a packet with `key` comes from the side that answered.
    @inline(__always)
    public func isReply(_ key: ConnectionKey) -> Bool {
        key.sourceIsLower != openedByLower
    }

    public static var encodedSize: Int { 2 + TCPTracker.encodedSize }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: ipProtocol, as: UInt8.self)
        pointer.storeBytes(of: (replied ? 1 : 0) | (openedByLower ? 2 : 0) as UInt8, toByteOffset: 1, as: UInt8.self)
        tcp.encode(to: pointer + 2)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        ipProtocol = pointer.load(as: UInt8.self)
        let flags = pointer.load(fromByteOffset: 1, as: UInt8.self)
        replied = flags & 1 != 0
        openedByLower = flags & 2 != 0
        // Only TCP uses the tracker (the others keep it zero).
        tcp = ipProtocol == IPProtocol.tcp ? TCPTracker(decoding: pointer + 2) : TCPTracker.none
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.ipProtocol == b.ipProtocol && a.openedByLower == b.openedByLower && a.replied == b.replied
            && (a.ipProtocol != IPProtocol.tcp || a.tcp == b.tcp)
    }

    public var description: String {
        "\(IPProtocol.name(ipProtocol)) [\(ipProtocol == IPProtocol.tcp ? "\(tcp.state)" : (replied ? "replied" : "unreplied"))]"
    }
}

/// What lets a datagram's later fragments follow its first: addresses,
/// protocol and identification.
public struct FragmentKey: StateCodable, Hashable {
    /// The datagram's source address.
    public var source: IPAddress
    /// Its destination address.
    public var destination: IPAddress
    /// Its protocol.
    public var ipProtocol: UInt8
    /// Its IP identification (IPv6: the fragment header's).
    public var identification: UInt32

    /// The key of `packet`'s datagram.
    public init(_ packet: borrowing Packet) {
        source = packet.address(.source)
        destination = packet.address(.destination)
        ipProtocol = packet.layout.ipProtocol
        identification = packet.layout.fragment.identification
    }

    /// A hash of the datagram.
    var hash: UInt64 {
        var h = (source.high ^ destination.low) &* 0x9E37_79B9_7F4A_7C15
        h ^= (source.low ^ destination.high) &* 0xC2B2_AE3D_27D4_EB4F
        h ^= (UInt64(identification) << 8 | UInt64(ipProtocol)) &* 0x1656_67B1_9E37_79F9
        return h ^ (h >> 29)
    }

    public static var encodedSize: Int { 37 }
    public func encode(to pointer: UnsafeMutableRawPointer) {
        source.encode(to: pointer)
        destination.encode(to: pointer + 16)
        pointer.storeBytes(of: ipProtocol, toByteOffset: 32, as: UInt8.self)
        identification.encode(to: pointer + 33)
    }
    public init(decoding pointer: UnsafeRawPointer) {
        source = IPAddress(decoding: pointer)
        destination = IPAddress(decoding: pointer + 16)
        ipProtocol = pointer.load(fromByteOffset: 32, as: UInt8.self)
        identification = UInt32(decoding: pointer + 33)
    }
}

/// The firewall's declared state: the connections, found by either
/// direction's key and living as long as their protocol and state allow
/// (IPv4 and IPv6 in tables of their own, so that IPv4 keys take 13 bytes),
/// and the entries that let fragments follow their datagram's first.
public struct FirewallState: Sendable {
    /// The deployment's schema.
    public let schema: StateSchema
    /// The tracked IPv4 connections, under both directions' keys.
    public let connections4: StateTable<ConnectionKey4, TrackedConnection>
    /// The tracked IPv6 connections, under both directions' keys.
    public let connections6: StateTable<ConnectionKey, TrackedConnection>
    /// Accepted first fragments, by datagram.
    public let fragments: StateTable<FragmentKey, UInt16>
    /// How long each connection lives idle.
    let timeouts: ConnectionTimeouts

    /// The state of a firewall with `config`: each connections table may
    /// hold `capacity` connections.
    public init(_ config: ResolvedFirewallConfig) {
        let schema = StateSchema(namespace: config.namespace)
        let timeouts = ConnectionTimeouts(config.timeouts)
        self.timeouts = timeouts
        connections4 = schema.table(
            "connections4", key: ConnectionKey4.self, value: TrackedConnection.self, capacity: config.capacity,
            reverseKey: { key, _ in key.reversed },
            idleTimeout: { _, connection in timeouts.nanoseconds(connection) })
        connections6 = schema.table(
            "connections6", key: ConnectionKey.self, value: TrackedConnection.self, capacity: config.capacity,
            reverseKey: { key, _ in key.reversed },
            idleTimeout: { _, connection in timeouts.nanoseconds(connection) })
        let fragment = Int64(config.timeouts.fragment * 1e9)
        fragments = schema.table("fragments", key: FragmentKey.self, value: UInt16.self,
                                 capacity: max(1024, config.capacity / 16), idleTimeout: { _, _ in fragment })
        self.schema = schema
    }

    // The connection operations, in the table of the key's IP version.

    @inline(__always)
    func read(_ key: ConnectionKey, _ access: inout StateAccess) -> Ticket<Entry<TrackedConnection>?> {
        key.source.isIPv4 ? access.read(connections4, ConnectionKey4(key)) : access.read(connections6, key)
    }

    @inline(__always)
    func insert(_ key: ConnectionKey, _ connection: TrackedConnection, _ access: inout StateAccess)
        -> Ticket<Insertion<TrackedConnection>> {
        let deadline = access.deadline(timeout: timeouts.nanoseconds(connection))
        return key.source.isIPv4 ? access.insertIfAbsent(connections4, ConnectionKey4(key), connection, deadline: deadline)
                                 : access.insertIfAbsent(connections6, key, connection, deadline: deadline)
    }

    @inline(__always)
    func compareAndSet(_ key: ConnectionKey, expected: TrackedConnection, new: TrackedConnection,
                       _ access: inout StateAccess) -> Ticket<Swap<TrackedConnection>> {
        let deadline = access.deadline(timeout: timeouts.nanoseconds(new))
        return key.source.isIPv4
            ? access.compareAndSet(connections4, ConnectionKey4(key), expected: expected, new: new, deadline: deadline)
            : access.compareAndSet(connections6, key, expected: expected, new: new, deadline: deadline)
    }

    @inline(__always)
    func refresh(_ key: ConnectionKey, _ entry: Entry<TrackedConnection>, _ access: inout StateAccess) {
        let timeout = timeouts.nanoseconds(entry.value)
        if key.source.isIPv4 {
            access.refresh(connections4, ConnectionKey4(key), entry, timeout: timeout)
        } else {
            access.refresh(connections6, key, entry, timeout: timeout)
        }
    }
}

/// The timeouts in nanoseconds, by protocol and TCP state: what the
/// connections table's idle timeout gives a connection.
struct ConnectionTimeouts: Sendable {
    let tcp: [Int64]
    let udpUnreplied: Int64, udpReplied: Int64, icmp: Int64, other: Int64

    init(_ timeouts: FirewallTimeouts) {
        func nanoseconds(_ seconds: Double) -> Int64 { Int64(seconds * 1e9) }
        var tcp = [Int64](repeating: 0, count: 16)
        for raw in 0..<16 {
            if let state = TCPTracker.State(rawValue: UInt8(raw)) { tcp[raw] = nanoseconds(timeouts.tcp(state)) }
        }
        self.tcp = tcp
        udpUnreplied = nanoseconds(timeouts.udpUnreplied)
        udpReplied = nanoseconds(timeouts.udpReplied)
        icmp = nanoseconds(timeouts.icmp)
        other = nanoseconds(timeouts.other)
    }

    @inline(__always)
    func nanoseconds(_ connection: TrackedConnection) -> Int64 {
        switch connection.ipProtocol {
        case IPProtocol.tcp: tcp[Int(connection.tcp.state.rawValue & 15)]
        case IPProtocol.udp: connection.replied ? udpReplied : udpUnreplied
        case IPProtocol.icmp, IPProtocol.icmpv6: icmp
        default: other
        }
    }
}
