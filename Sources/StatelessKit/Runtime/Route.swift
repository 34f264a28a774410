/// A resolved destination in a running graph: an index into the runner's
/// nodes, ports or drop counters.
@usableFromInline
struct Route: Sendable {
    @usableFromInline enum Kind: UInt8, Sendable { case node, port, drop }
    @usableFromInline let kind: Kind
    @usableFromInline let index: Int32

    @usableFromInline init(kind: Kind, index: Int32) {
        self.kind = kind
        self.index = index
    }
}

/// One batch in flight through a graph: the input batch of every node, the
/// output batch of every port, the node it waits at, and its two requests
/// (one being answered, one being filled).
@usableFromInline
final class BatchSlot {
    @usableFromInline let id: Int
    @usableFromInline let inputs: [PacketBatch]
    @usableFromInline let outputs: [PacketBatch]
    /// The position in the graph's order of the next node to run.
    @exclusivity(unchecked) @usableFromInline var position = 0
    @exclusivity(unchecked) @usableFromInline var now = Timestamp.zero
    @exclusivity(unchecked) @usableFromInline var outgoing: StateRequest
    @exclusivity(unchecked) @usableFromInline var answered: StateRequest
    @exclusivity(unchecked) @usableFromInline var isBusy = false

    init(id: Int, nodes: Int, ports: Int, capacity: Int) {
        self.id = id
        inputs = (0..<nodes).map { _ in PacketBatch(capacity: capacity) }
        outputs = (0..<ports).map { _ in PacketBatch(capacity: capacity) }
        outgoing = StateRequest(capacity: capacity * 2)
        answered = StateRequest(capacity: capacity * 2)
    }

    /// Swaps the requests: the one just answered becomes readable, the other
    /// is emptied for the next step.
    @usableFromInline func swapRequests() {
        swap(&outgoing, &answered)
        outgoing.reset()
    }
}

/// A node compiled for one worker: closures specialised for the node's
/// type, so that the per-packet loop calls the node directly.
@usableFromInline
struct NodeProgram {
    /// Runs the node over a slot's input for it; returns whether the slot
    /// now waits for the store.
    @usableFromInline let run: (GraphRunner, BatchSlot, Int) -> Bool
    /// Continues the node once the slot's request is answered; returns
    /// whether the slot waits again.
    @usableFromInline let resume: (GraphRunner, BatchSlot, Int) -> Bool

    @usableFromInline
    init(run: @escaping (GraphRunner, BatchSlot, Int) -> Bool, resume: @escaping (GraphRunner, BatchSlot, Int) -> Bool) {
        self.run = run
        self.resume = resume
    }
}
