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
}

extension Node {
    public var name: String { String(describing: Self.self) }
}

/// What a node sees besides the packet: the time and the counters.
public struct NodeContext {
    /// The runtime's clock reading for this batch: the wall clock live, the
    /// capture's time in a replay, a manual clock in tests.
    public var now: Timestamp
    /// Counters by name, for what nodes want counted besides drops.
    @usableFromInline var counters: Counters

    /// Adds `amount` to the counter `name`.
    @inlinable
    public mutating func count(_ name: StaticString, _ amount: Int = 1) {
        counters.add(name, amount)
    }

    @usableFromInline
    init(now: Timestamp, counters: Counters) {
        self.now = now
        self.counters = counters
    }
}
