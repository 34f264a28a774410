/// Keeps the packets of one flow in order through a stateful node whose
/// state changes with every packet (a firewall's TCP windows), although
/// several batches, and several packets of a batch, wait on the store at
/// once: a packet takes a ticket when it enters; it may act on what it read
/// only once every earlier packet of its flow has left and its read was
/// issued after they did, so that it sees their writes.
///
/// One per stateful node per runner (``StateAccess/sequencer``), with 64
/// slots per packet the runner can have in flight; flows are told apart by a
/// hash of their key that is the same both ways, folded into the table: two
/// flows that share a slot are kept in order together, which costs a wait
/// (a store round trip), never a wrong answer.
///
/// ```swift
/// // start: take a ticket and read
/// scratch.ticket = access.sequencer.enter(flowHash)
/// scratch.read = access.read(table, key)
/// access.sequencer.issuedRead(&scratch.ticket!)
/// // resume: read again until it is this packet's turn
/// guard access.sequencer.isTurn(scratch.ticket!) else { ...read again...; return .wait }
/// // every way out: access.sequencer.leave(scratch.ticket!)
/// ```
public final class FlowSequencer {
    /// A packet's place in its flow's queue.
    public struct Ticket: Sendable {
        @usableFromInline let slot: UInt32
        @usableFromInline let number: UInt32
        /// The pass in which the packet last issued a read.
        @usableFromInline var readPass: UInt32

        @usableFromInline init(slot: UInt32, number: UInt32, readPass: UInt32) {
            self.slot = slot
            self.number = number
            self.readPass = readPass
        }
    }

    @usableFromInline struct Slot {
        @usableFromInline var next: UInt32 = 0
        @usableFromInline var served: UInt32 = 0
        /// The pass in which the last packet left.
        @usableFromInline var left: UInt32 = 0
        @usableFromInline init() {}
    }

    @usableFromInline let slots: UnsafeMutablePointer<Slot>
    @usableFromInline let mask: Int
    /// Counts the node's passes over a batch (the runtime moves it on;
    /// compared modulo 2^32, as no packet waits 2^31 passes).
    @usableFromInline var pass: UInt32 = 1

    /// A sequencer of `2^bits` slots (16 bytes each).
    public init(bits: Int = 12) {
        slots = .allocate(capacity: 1 << bits)
        slots.initialize(repeating: Slot(), count: 1 << bits)
        mask = (1 << bits) - 1
    }

    deinit { slots.deallocate() }

    /// Marks the start of a pass of the node over a batch.
    @inlinable @inline(__always)
    func beginPass() { pass &+= 1 }

    /// A ticket for a packet of the flow whose key hashes to `hash`.
    @inlinable @inline(__always)
    public func enter(_ hash: UInt64) -> Ticket {
        let slot = Int(truncatingIfNeeded: hash) & mask
        let number = slots[slot].next
        slots[slot].next &+= 1
        return Ticket(slot: UInt32(slot), number: number, readPass: pass)
    }

    /// Records that the packet issued a read in this pass.
    @inlinable @inline(__always)
    public func issuedRead(_ ticket: inout Ticket) { ticket.readPass = pass }

    /// Whether every earlier packet of the flow has left, before the
    /// packet's last read was issued: what it read is then current.
    @inlinable @inline(__always)
    public func isTurn(_ ticket: Ticket) -> Bool {
        let slot = slots[Int(ticket.slot)]
        return Int32(bitPattern: slot.served &- ticket.number) >= 0 && Int32(bitPattern: ticket.readPass &- slot.left) >= 0
    }

    /// The packet is done with its flow: the next one may go. A packet
    /// dropped before its turn (its batch failed in the store) lets every
    /// earlier one go too: they lose their order, never their way out.
    @inlinable @inline(__always)
    public func leave(_ ticket: Ticket) {
        let after = ticket.number &+ 1
        if Int32(bitPattern: after &- slots[Int(ticket.slot)].served) > 0 { slots[Int(ticket.slot)].served = after }
        slots[Int(ticket.slot)].left = pass
    }
}
