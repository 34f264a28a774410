/// The outputs of a node: an enum whose cases have `UInt8` raw values.
///
/// ```swift
/// enum Output: UInt8, NodeOutput { case inside, outside, other }
/// ```
///
/// The runtime splits a batch by these cases; the graph routes each case to
/// the next node with an exhaustive `switch`, so a case left unrouted is a
/// compile error.
public protocol NodeOutput: RawRepresentable, CaseIterable, Hashable, Sendable where RawValue == UInt8 {}

/// A processing step, written once, per packet. The runtime runs it a batch
/// at a time and sends each packet on by the output it returns.
///
/// A node holds configuration, never per-flow state: state lives in
/// declared tables (see ``StatefulNode``), so that any instance can handle
/// any packet.
public protocol Node {
    /// The node's outputs.
    associatedtype Output: NodeOutput
    /// The name the graph prints.
    var name: String { get }
    /// Processes one packet and says where it goes next.
    mutating func process(_ packet: inout Packet, _ context: inout NodeContext) -> Output
    /// Whether the node's output and rewrite are the same for every packet
    /// of a flow: the same arrival port, addresses, protocol and ports, with
    /// no TCP SYN, FIN or RST (such packets always cross the graph), and no
    /// per-packet counting. Only then may the runtime's flow cache send a
    /// flow's later packets past the node (see ``NodeContext/cacheFlow(until:)``
    /// for stateful nodes). `false` by default.
    static var isFlowDeterministic: Bool { get }
}

extension Node {
    public var name: String { String(describing: Self.self) }
    public static var isFlowDeterministic: Bool { false }
}

/// What a node sees besides the packet: the time and the counters.
public struct NodeContext {
    /// The runtime's clock reading for this batch: the wall clock live, the
    /// capture's time in a replay, a manual clock in tests.
    public var now: Timestamp
    /// Counters by name, for what nodes want counted besides drops.
    @usableFromInline var counters: Counters
    /// Where a stateful node's permission to cache the current packet's
    /// flow goes; `nil` in plain nodes.
    @usableFromInline var vouch: UnsafeMutablePointer<Int64>? = nil

    /// Adds `amount` to the counter `name`.
    @inlinable
    public mutating func count(_ name: StaticString, _ amount: Int = 1) {
        counters.add(name, amount)
    }

    /// Lets the runtime's flow cache send the rest of the current packet's
    /// flow past this stateful node until `deadline`, with the decision and
    /// rewrite this packet got, and without reading the store.
    ///
    /// Call it only when that is exactly what the node would do for every
    /// such packet until `deadline` (see ``Node/isFlowDeterministic``), even
    /// if other instances change the state meanwhile: for a NAT, an
    /// established mapping whose translation cannot change, until its next
    /// refresh is due and never longer than the shortest time in which
    /// another instance could make it expire. A packet whose step changes
    /// state (a refresh, a new entry) must not call it. The flow is cached
    /// only if every node on the packet's path allows it; the earliest
    /// deadline holds. Plain nodes declare ``Node/isFlowDeterministic``
    /// instead; calling this from them does nothing.
    @inlinable
    public mutating func cacheFlow(until deadline: Timestamp) {
        vouch?.pointee = deadline.nanoseconds
    }

    @usableFromInline
    init(now: Timestamp, counters: Counters) {
        self.now = now
        self.counters = counters
    }
}
