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

/// One batch in flight through a graph. Its packets stay where admission
/// put them; each node's input and each port's output is a list of their
/// indices, so sending a packet on moves two bytes, not the packet (as VPP's
/// frames carry buffer indices). Also the node the batch waits at, and its
/// two requests (one being answered, one being filled).
@usableFromInline
final class BatchSlot {
    @usableFromInline let id: Int
    /// The batch's packets (a buffer of `capacity`, exchanged with the
    /// batches that bring and take them).
    @exclusivity(unchecked) @usableFromInline var packets: UnsafeMutablePointer<Packet>
    /// How many packets the batch came with.
    @exclusivity(unchecked) @usableFromInline var admitted = 0
    /// Whether the flow cache served every one of them (each port's list
    /// then holds its packets in the order they came).
    @exclusivity(unchecked) @usableFromInline var allServed = false
    /// Index lists: one per node, then one per port, `capacity` each.
    @usableFromInline let lists: UnsafeMutablePointer<UInt16>
    /// How many indices each list holds.
    @usableFromInline let counts: UnsafeMutablePointer<Int>
    @usableFromInline let capacity: Int
    @usableFromInline let nodeCount: Int
    /// Each port's packets, handed to the sink by `drain`.
    @usableFromInline let outputs: [PacketBatch]
    /// The position in the graph's order of the next node to run.
    @exclusivity(unchecked) @usableFromInline var position = 0
    @exclusivity(unchecked) @usableFromInline var now = Timestamp.zero
    @exclusivity(unchecked) @usableFromInline var outgoing: StateRequest
    @exclusivity(unchecked) @usableFromInline var answered: StateRequest
    /// Per packet: until when the flow cache may keep its flow's treatment,
    /// the least its path's nodes allowed (`Int64.min`: not at all).
    @usableFromInline let leases: UnsafeMutablePointer<Int64>
    /// Per packet: what the stateful node it is at allowed.
    @usableFromInline let vouches: UnsafeMutablePointer<Int64>
    /// Per packet: its flow cache key and how it came in.
    @usableFromInline let candidates: UnsafeMutablePointer<FlowCandidate>
    /// Per packet: its first ``BatchSlot/snapshotSize`` bytes as they came in
    /// (flow cache candidates only).
    @usableFromInline let snapshots: UnsafeMutableRawPointer
    /// How many of the batch's packets are flow cache candidates.
    @exclusivity(unchecked) @usableFromInline var candidateCount = 0
    /// The batch's number, in order of admission.
    @exclusivity(unchecked) @usableFromInline var serial: Int64 = 0
    /// Whether the batch is admitted and not yet finished.
    @exclusivity(unchecked) @usableFromInline var running = false
    let listCount: Int

    /// The bytes of a packet kept to check a flow cache entry against.
    @usableFromInline static let snapshotSize = 128

    init(id: Int, nodes: Int, ports: Int, capacity: Int) {
        self.id = id
        self.capacity = capacity
        nodeCount = nodes
        listCount = nodes + ports
        packets = .allocate(capacity: capacity)
        lists = .allocate(capacity: listCount * capacity)
        counts = .allocate(capacity: listCount)
        counts.initialize(repeating: 0, count: listCount)
        outputs = (0..<ports).map { _ in PacketBatch(capacity: capacity) }
        outgoing = StateRequest(capacity: capacity * 2)
        answered = StateRequest(capacity: capacity * 2)
        leases = .allocate(capacity: capacity)
        leases.initialize(repeating: .min, count: capacity)
        vouches = .allocate(capacity: capacity)
        vouches.initialize(repeating: .min, count: capacity)
        candidates = .allocate(capacity: capacity)
        candidates.initialize(repeating: FlowCandidate(), count: capacity)
        snapshots = .allocate(byteCount: capacity * Self.snapshotSize, alignment: 64)
    }

    deinit {
        packets.deallocate()
        lists.deallocate()
        counts.deallocate()
        leases.deallocate()
        vouches.deallocate()
        candidates.deallocate()
        snapshots.deallocate()
    }

    /// The index list of node `node` (or of port `nodeCount + port`).
    @inlinable @inline(__always)
    func list(_ number: Int) -> UnsafeMutablePointer<UInt16> { lists + number * capacity }

    /// Appends a packet's index to list `number`.
    @inlinable @inline(__always)
    func append(_ packet: UInt16, to number: Int) {
        lists[number &* capacity &+ counts[number]] = packet
        counts[number] &+= 1
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
