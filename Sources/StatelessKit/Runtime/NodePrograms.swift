/// Holds a node value that `process` may mutate, one per worker.
@usableFromInline
final class NodeCell<N> {
    @exclusivity(unchecked) @usableFromInline var node: N
    @usableFromInline init(_ node: N) { self.node = node }
}

/// Holds a stateful node and, per slot, the scratch of its waiting packets
/// (in plain memory: no copy-on-write check per packet).
@usableFromInline
final class StatefulNodeCell<N: StatefulNode> {
    @usableFromInline let node: N
    @usableFromInline let scratch: UnsafeMutablePointer<N.Scratch>
    @usableFromInline let capacity: Int
    /// Keeps each flow's packets in order, for nodes that ask: 64 slots per
    /// packet that can be in flight, so that two flows rarely share one
    /// (which costs a wait).
    @usableFromInline let sequencer: FlowSequencer
    let count: Int

    @usableFromInline init(_ node: N, slots: Int, capacity: Int) {
        self.node = node
        self.capacity = capacity
        sequencer = FlowSequencer(bits: max(10, Int.bitWidth - (slots * capacity * 64 - 1).leadingZeroBitCount))
        count = slots * capacity
        scratch = .allocate(capacity: count)
        scratch.initialize(repeating: N.emptyScratch, count: count)
    }

    deinit {
        scratch.deinitialize(count: count)
        scratch.deallocate()
    }
}

extension NodeProgram {
    /// The program of a plain node.
    @inlinable
    static func plain<N: Node>(_ node: N) -> NodeProgram {
        let cell = NodeCell(node)
        return NodeProgram(
            run: { runner, slot, index in
                let list = slot.list(index)
                let count = slot.counts[index]
                slot.counts[index] = 0
                var context = NodeContext(now: slot.now, counters: runner.counters)
                let routes = runner.routes[index]
                let packets = slot.packets
                let leases = slot.leases
                for k in 0..<count {
                    let packet = list[k]
                    // A node that may treat a flow's packets differently ends their candidacy for the flow cache.
                    if !N.isFlowDeterministic { leases[Int(packet)] = .min }
                    let output = cell.node.process(&packets[Int(packet)], &context)
                    runner.deliver(packet, routes[Int(output.rawValue)], slot)
                }
                return false
            },
            resume: { _, _, _ in preconditionFailure("a plain node never waits") })
    }

    /// The program of a stateful node.
    @inlinable
    static func stateful<N: StatefulNode>(_ node: N, slots: Int, capacity: Int) -> NodeProgram {
        let cell = StatefulNodeCell(node, slots: slots, capacity: capacity)
        // Runs `step` for each packet of the node's list; keeps those that
        // wait, with their scratch, and sends their operations.
        @inline(__always)
        func pass(_ runner: GraphRunner, _ slot: BatchSlot, _ index: Int, first: Bool) -> Bool {
            let list = slot.list(index)
            let count = slot.counts[index]
            var context = NodeContext(now: slot.now, counters: runner.counters)
            cell.sequencer.beginPass()
            var access = StateAccess(outgoing: slot.outgoing, answered: first ? nil : slot.answered, now: slot.now,
                                     sequencer: cell.sequencer)
            let routes = runner.routes[index]
            let scratches = cell.scratch + slot.id * cell.capacity
            let packets = slot.packets
            let vouches = slot.vouches
            var waiting = 0
            for k in 0..<count {
                let packet = list[k]
                // The scratch is worked on in place, and moved down only to
                // close the gap a finished packet left.
                let scratch = scratches + k
                if first {
                    scratch.pointee = N.emptyScratch
                    vouches[Int(packet)] = .min
                }
                context.vouch = vouches + Int(packet)
                let step = first ? cell.node.start(&packets[Int(packet)], &scratch.pointee, &access, &context)
                                 : cell.node.resume(&packets[Int(packet)], &scratch.pointee, &access, &context)
                switch step {
                case .done(let output):
                    // The flow cache may keep the packet's treatment only as long as this node allowed.
                    slot.leases[Int(packet)] = min(slot.leases[Int(packet)], vouches[Int(packet)])
                    runner.deliver(packet, routes[Int(output.rawValue)], slot)
                case .wait:
                    list[waiting] = packet
                    if waiting != k { scratches[waiting] = scratch.pointee }
                    waiting += 1
                }
            }
            slot.counts[index] = waiting
            // Operations issued for packets already done (a refresh, say)
            // are sent too, and the batch waits for them before going on.
            guard waiting > 0 || !slot.outgoing.isEmpty else { return false }
            precondition(!slot.outgoing.isEmpty, "\(cell.node.name) waited without issuing a state operation")
            runner.submit(slot)
            return true
        }
        return NodeProgram(
            run: { runner, slot, index in
                slot.outgoing.reset()
                return pass(runner, slot, index, first: true)
            },
            resume: { runner, slot, index in
                slot.swapRequests()
                if let failure = slot.answered.failure {
                    // The waiting packets are dropped: each lets go of what it holds first.
                    var access = StateAccess(outgoing: slot.outgoing, answered: nil, now: slot.now, sequencer: cell.sequencer)
                    let scratches = cell.scratch + slot.id * cell.capacity
                    for k in 0..<slot.counts[index] { cell.node.abandon(&scratches[k], &access) }
                    runner.dropAll(index, slot, reason: runner.storeFailureDrop, failure: failure)
                    return false
                }
                return pass(runner, slot, index, first: false)
            })
    }
}
