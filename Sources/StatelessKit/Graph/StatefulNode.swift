/// What a stateful node's step decided.
public enum Step<Output: NodeOutput> {
    /// The packet is done here and goes on by this output.
    case done(Output)
    /// The packet waits for the state operations this step issued; the
    /// node's `resume` runs when their results are in.
    case wait
}

/// A node that reads or changes state tables. It never waits on the store
/// itself: each step issues operations and returns ``Step/wait``; the
/// runtime sends the operations of every packet of the batch as one request,
/// goes on with other batches, and calls ``resume(_:_:_:_:)`` with the
/// results. What a packet must remember between steps goes in its `Scratch`.
///
/// ```swift
/// struct Count: StatefulNode {
///     enum Output: UInt8, NodeOutput { case counted }
///     let table: StateTable<FlowKey, UInt64>
///     static var emptyScratch: Void { () }
///     func start(_ p: inout Packet, _ s: inout Void, _ state: inout StateAccess, _ c: inout NodeContext) -> Step<Output> {
///         state.add(table, p.flowKey!.canonical, 1)
///         return .wait
///     }
///     func resume(_ p: inout Packet, _ s: inout Void, _ state: inout StateAccess, _ c: inout NodeContext) -> Step<Output> {
///         .done(.counted)
///     }
/// }
/// ```
public protocol StatefulNode {
    /// The node's outputs.
    associatedtype Output: NodeOutput
    /// What a packet carries from one step to the next (tickets, keys).
    associatedtype Scratch
    /// A scratch value for a packet entering the node.
    static var emptyScratch: Scratch { get }
    /// The name the graph prints.
    var name: String { get }
    /// The first step, for each packet entering the node.
    func start(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output>
    /// A later step, once the operations of the previous one are answered.
    func resume(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output>
    /// Called for a packet waiting at the node when the store fails its
    /// batch's request (the packet is then dropped and counted): lets go of
    /// what the packet holds, such as its ``FlowSequencer`` ticket. Does
    /// nothing by default.
    func abandon(_ scratch: inout Scratch, _ state: inout StateAccess)
}

extension StatefulNode {
    public var name: String { String(describing: Self.self) }
    public func abandon(_ scratch: inout Scratch, _ state: inout StateAccess) {}
}
