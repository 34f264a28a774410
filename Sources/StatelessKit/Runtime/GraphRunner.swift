/// Runs a graph for one worker: batches go in, each node runs over the
/// packets that reached it, and packets come out per port, dropped (counted
/// by reason), or parked while the store answers the batch's state
/// operations. Several batches are in flight at once, so the worker does not
/// sit idle through a store round trip.
///
/// A runner belongs to one thread.
public final class GraphRunner {
    /// The graph run.
    public let graph: Graph
    /// The ports the graph sends to, in the order of ``drain(_:)``'s calls.
    public let ports: [UInt16]
    /// Packets per node output, drops by reason, and what nodes count.
    public let counters: Counters

    @usableFromInline let programs: [NodeProgram]
    @usableFromInline let routes: [[Route]]
    @usableFromInline let pool: any PacketPool
    /// The store session, if the graph has stateful nodes.
    public let session: (any StateSession)?
    @usableFromInline let slots: [BatchSlot]
    @exclusivity(unchecked) @usableFromInline var freeSlots: [Int]
    @exclusivity(unchecked) @usableFromInline var finished: [Int] = []
    @usableFromInline let entry: Route
    @usableFromInline let storeFailureDrop: Int
    @exclusivity(unchecked) @usableFromInline var waiting = 0
    let dropCounters: [String: Int]
    /// Requests sent to the store (one per batch step that had operations).
    @inlinable public var roundTrips: Int { tally.roundTrips }
    /// State operations sent to the store.
    @inlinable public var stateOperations: Int { tally.stateOperations }
    /// Packets admitted.
    @inlinable public var packetsIn: Int { tally.packetsIn }
    /// Batches admitted.
    @inlinable public var batchesIn: Int { tally.batchesIn }
    @exclusivity(unchecked) @usableFromInline var tally = Tally()

    @usableFromInline
    struct Tally {
        @usableFromInline var roundTrips = 0
        @usableFromInline var stateOperations = 0
        @usableFromInline var packetsIn = 0
        @usableFromInline var batchesIn = 0
        @usableFromInline init() {}
    }

    /// The most packets a batch holds.
    public let batchCapacity: Int

    /// The flow cache entries a runner has unless told otherwise.
    public static let defaultFlowCacheEntries = 65_536
    /// The flow cache (see ``FlowCache``), if the runner has one.
    @usableFromInline let flowCache: FlowCache?
    /// How many entries the flow cache holds (0: no cache).
    public var flowCacheEntries: Int { flowCache?.capacity ?? 0 }
    /// The number the next admitted batch gets.
    @exclusivity(unchecked) @usableFromInline var nextSerial: Int64 = 0
    @usableFromInline let cacheHits: Int
    let cacheInstalls: Int
    let cacheRejects: Int
    /// Where an entry is checked before it is installed.
    let probe: UnsafeMutableRawPointer
    /// What the flow cache made of a burst served in place
    /// (``serveInPlace(_:count:arrivingOn:linkType:now:outputs:)``).
    @usableFromInline let burstCandidates: UnsafeMutablePointer<FlowCandidate>

    /// A runner for `graph` whose packets come from `pool`, with up to
    /// `inFlight` batches of up to `batchCapacity` packets at once, talking to
    /// the store through `session` (which graphs without stateful nodes do not
    /// need). With `flowCacheEntries` above zero, established flows whose
    /// every node allows it skip the graph (see ``NodeContext/cacheFlow(until:)``);
    /// the counters `flowCache.hits`, `flowCache.installed` and
    /// `flowCache.rejected` (an entry whose rewrite did not reproduce the
    /// graph's bytes) tell how it does.
    public init(graph: Graph, pool: any PacketPool, session: (any StateSession)?, batchCapacity: Int = 32,
                inFlight: Int = 4, counters: Counters = Counters(),
                flowCacheEntries: Int = GraphRunner.defaultFlowCacheEntries) {
        precondition(flowCacheEntries >= 0, "a flow cache cannot have a negative number of entries")
        precondition(batchCapacity > 0 && inFlight > 0, "a runner needs room for at least one packet")
        self.graph = graph
        self.pool = pool
        self.session = session
        self.batchCapacity = batchCapacity
        self.counters = counters
        var ports: [UInt16] = []
        var drops: [String: Int] = [:]
        for table in graph.routes + [[graph.entry]] {
            for target in table {
                switch target {
                case .port(let port) where !ports.contains(port): ports.append(port)
                case .drop(let reason) where drops[reason] == nil: drops[reason] = counters.index(of: "drop.\(reason)")
                default: break
                }
            }
        }
        storeFailureDrop = counters.index(of: "drop.stateUnavailable")
        drops["stateUnavailable"] = storeFailureDrop
        self.ports = ports
        dropCounters = drops
        func resolve(_ target: GraphTarget) -> Route {
            switch target {
            case .node(let index): return Route(kind: .node, index: Int32(index))
            case .port(let port): return Route(kind: .port, index: Int32(ports.firstIndex(of: port)!))
            case .drop(let reason): return Route(kind: .drop, index: Int32(drops[reason]!))
            }
        }
        routes = graph.routes.map { $0.map(resolve) }
        entry = resolve(graph.entry)
        programs = graph.nodes.map { $0.make(inFlight, batchCapacity) }
        slots = (0..<inFlight).map { BatchSlot(id: $0, nodes: graph.nodes.count, ports: ports.count,
                                               capacity: batchCapacity) }
        freeSlots = Array((0..<inFlight).reversed())
        flowCache = flowCacheEntries > 0 ? FlowCache(capacity: flowCacheEntries) : nil
        cacheHits = counters.index(of: "flowCache.hits")
        cacheInstalls = counters.index(of: "flowCache.installed")
        cacheRejects = counters.index(of: "flowCache.rejected")
        probe = .allocate(byteCount: BatchSlot.snapshotSize, alignment: 64)
        burstCandidates = .allocate(capacity: batchCapacity)
        burstCandidates.initialize(repeating: FlowCandidate(), count: batchCapacity)
        if session == nil && graph.nodes.contains(where: \.isStateful) {
            preconditionFailure("graph \(graph.name) has stateful nodes: give the runner a store session")
        }
    }

    deinit {
        probe.deallocate()
        burstCandidates.deallocate()
    }

    /// Whether a new batch can go in now.
    @inlinable
    public var canAdmit: Bool { !freeSlots.isEmpty }

    /// Batches waiting for the store.
    @inlinable
    public var waitingForStore: Int { waiting }

    /// Batches in flight (waiting, or finished but not drained).
    public var inFlight: Int { slots.count - freeSlots.count }

    /// Takes the packets of `batch` (leaving it empty) and runs them as far
    /// as they go without waiting for the store. Check ``canAdmit`` first.
    @inlinable
    public func admit(_ batch: PacketBatch, now: Timestamp) {
        precondition(batch.count <= batchCapacity, "a batch larger than the runner's batch capacity")
        guard let id = freeSlots.popLast() else { preconditionFailure("admit with no free slot: check canAdmit") }
        let slot = slots[id]
        tally.packetsIn += batch.count
        tally.batchesIn += 1
        slot.now = now
        slot.position = 0
        slot.serial = nextSerial
        nextSerial += 1
        slot.running = true
        let count = batch.count
        slot.admitted = count
        slot.allServed = false
        if batch.capacity == batchCapacity {
            batch.exchange(&slot.packets, count: 0)
        } else {
            slot.packets.initialize(from: batch.storage, count: count)
            batch.removeAll()
        }
        if let flowCache {
            let hits = admitThroughCache(slot, count: count, cache: flowCache)
            if hits > 0 { counters.add(at: cacheHits, hits) }
            slot.allServed = hits == count
        } else {
            for i in 0..<count { deliver(UInt16(truncatingIfNeeded: i), entry, slot) }
        }
        proceed(slot)
    }

    /// The number of the oldest batch still running (this one, if none
    /// older is): cache entries installed after it was admitted wait for it.
    @inlinable
    func oldestRunning() -> Int64 {
        var oldest = nextSerial
        for slot in slots where slot.running && slot.serial < oldest { oldest = slot.serial }
        return oldest
    }

    /// Sends each of the slot's `count` packets whose flow the cache has a
    /// live entry for, that this batch may use, straight to its port with
    /// the entry's rewrite, and the others into the graph (those of a kind
    /// the cache can hold as candidates); returns how many the cache served.
    /// In three passes, so that the batch's memory accesses overlap: the
    /// keys, each bucket's key line prefetched; the lookups, each entry found
    /// prefetched; then the rewrites. A packet that
    /// changes a connection's state removes its flow's entry: the flow's
    /// later packets must not overtake it, and wait for an entry installed
    /// after it left. The slot's and the cache's fields are read once, into
    /// locals, as stores into packets could otherwise alias them.
    @inlinable @inline(__always)
    func admitThroughCache(_ slot: BatchSlot, count: Int, cache: FlowCache) -> Int {
        slot.candidateCount = 0
        let horizon = oldestRunning(), now = slot.now.nanoseconds
        let packets = slot.packets, candidates = slot.candidates, leases = slot.leases
        let lists = slot.lists, counts = slot.counts, capacity = slot.capacity, nodeCount = slot.nodeCount
        let buckets = cache.buckets
        lookUp(count, buckets: buckets, candidates: candidates) { i in
            let packet = packets + i
            return (packet.pointee.data, Int(packet.pointee.length), packet.pointee.linkType, packet.pointee.port)
        }
        // The entries found are read again here, in order: a packet that
        // changes its connection's state clears its flow's entry (nothing is
        // installed during admission), so the flow's later packets in this
        // batch fail the lease check and follow it through the graph.
        var hits = 0
        for i in 0..<count {
            let candidate = candidates + i
            let parse = candidate.pointee.parse
            if parse == .servable, let found = candidate.pointee.found,
               found.pointee.lease > now && horizon >= found.pointee.firstBatch {
                found.pointee.rewrite(candidate.pointee.data.unsafelyUnwrapped, at: candidate.pointee.headers)
                leases[i] = .min
                let list = nodeCount &+ Int(found.pointee.output)
                lists[list &* capacity &+ counts[list]] = UInt16(truncatingIfNeeded: i)
                counts[list] &+= 1
                hits &+= 1
                continue
            }
            if parse == .servable {
                keepCandidate(i, slot)
            } else {
                leases[i] = .min
                if parse == .changesState { cache.remove(candidate.pointee.key, hash: candidate.pointee.hash) }
            }
            deliver(UInt16(truncatingIfNeeded: i), entry, slot)
        }
        return hits
    }

    /// The first two passes of a batch's lookups: each frame's key (from
    /// `frame`: its bytes, length, link type and arrival port), its bucket's
    /// key line prefetched; then each servable key's entry, prefetched.
    @inlinable @inline(__always)
    func lookUp(_ count: Int, buckets: FlowCache.Buckets, candidates: UnsafeMutablePointer<FlowCandidate>,
                frame: (Int) -> (UnsafeMutableRawPointer, Int, LinkType, UInt16)) {
        for i in 0..<count {
            let candidate = candidates + i
            let (data, length, linkType, port) = frame(i)
            candidate.pointee.data = data
            let parse = PacketParser.parseCacheable(data, length: length, linkType: linkType, port: port,
                                                    headers: &candidate.pointee.headers, key: &candidate.pointee.key)
            candidate.pointee.parse = parse
            if parse != .refused {
                let hash = candidate.pointee.key.hash
                candidate.pointee.hash = hash
                buckets.prefetch(hash)
            }
        }
        for i in 0..<count {
            let candidate = candidates + i
            guard candidate.pointee.parse == .servable else { continue }
            let found = buckets.entry(for: candidate.pointee.key, hash: candidate.pointee.hash)
            candidate.pointee.found = found
            if let found { buckets.prefetch(found) }
        }
    }

    /// Keeps the slot's packet `i` as a flow cache candidate: where its bytes
    /// are and how they began, to check its flow's entry against when it
    /// leaves.
    @usableFromInline
    func keepCandidate(_ i: Int, _ slot: BatchSlot) {
        let packet = slot.packets[i]
        slot.leases[i] = .max
        slot.candidates[i].dataOffset = packet.dataOffset
        slot.candidates[i].length = packet.length
        slot.candidateCount += 1
        (slot.snapshots + i * BatchSlot.snapshotSize)
            .copyMemory(from: packet.data, byteCount: min(Int(packet.length), BatchSlot.snapshotSize))
    }

    /// Installs the flows of the finished slot's candidates that every node
    /// on their path allowed to cache, each checked first: the cached
    /// rewrite applied to the packet as it came in must give the bytes the
    /// graph gave.
    @usableFromInline
    func installFlows(_ slot: BatchSlot, into flowCache: FlowCache) {
        let now = slot.now.nanoseconds
        for output in 0..<ports.count {
            let number = slot.nodeCount + output
            let list = slot.list(number)
            for k in 0..<slot.counts[number] {
                let index = Int(list[k])
                let lease = slot.leases[index]
                guard lease > now else { continue }
                slot.leases[index] = .min
                if let entry = checkedEntry(index, slot, output: output, lease: lease) {
                    flowCache.install(slot.candidates[index].key, entry, hash: slot.candidates[index].hash, now: now)
                    counters.add(at: cacheInstalls)
                } else {
                    counters.add(at: cacheRejects)
                }
            }
        }
    }

    /// The cache entry for the slot's packet `index`, or `nil` when its
    /// rewrite cannot be expressed as a cached one.
    func checkedEntry(_ index: Int, _ slot: BatchSlot, output: Int, lease: Int64) -> FlowCache.Entry? {
        let packet = slot.packets[index]
        let candidate = slot.candidates[index]
        guard packet.dataOffset == candidate.dataOffset, packet.length == candidate.length else { return nil }
        var headers = CacheableHeaders()
        var after = FlowCacheKey.none
        guard PacketParser.parseCacheable(packet.data, length: Int(packet.length), linkType: packet.linkType, port: 0,
                                          headers: &headers, key: &after) == .servable,
              headers == candidate.headers else { return nil }
        let count = min(Int(packet.length), BatchSlot.snapshotSize)
        probe.copyMemory(from: slot.snapshots + index * BatchSlot.snapshotSize, byteCount: count)
        let entry = FlowCache.makeEntry(candidate.key, addresses: after.addresses, ports: UInt32(truncatingIfNeeded: after.rest >> 32),
                                    output: output, lease: lease, firstBatch: nextSerial)
        entry.rewrite(probe, at: headers)
        guard UnsafeRawBufferPointer(start: probe, count: count)
            .elementsEqual(UnsafeRawBufferPointer(start: packet.data, count: count)) else { return nil }
        return entry
    }

    /// Collects the store's answers and continues the batches they belong
    /// to. With `wait`, blocks until at least one answer comes when any
    /// batch is waiting.
    @inlinable
    public func advance(wait: Bool) {
        guard waiting > 0, let session else { return }
        session.poll(wait: wait) { request in
            waiting -= 1
            let slot = slots[request.tag]
            let node = graph.order[slot.position]
            if !programs[node].resume(self, slot, node) {
                slot.position += 1
                proceed(slot)
            }
        }
    }

    /// Hands each finished batch's packets to `emit`, port by port (the
    /// packets are then the caller's), and frees its slot. Batches leave in
    /// the order they were admitted: one that finished early (its packets
    /// all served by the flow cache, or needing no store) waits for every
    /// older batch, so that a flow's packets never overtake its packets in
    /// an older batch still waiting for the store.
    @inlinable
    public func drain(_ emit: (UInt16, PacketBatch) -> Void) {
        guard !finished.isEmpty else { return }
        if finished.count > 1 { finished.sort { slots[$0].serial < slots[$1].serial } }
        let oldest = oldestRunning()
        var drained = 0
        for id in finished {
            let slot = slots[id]
            guard slot.serial < oldest else { break }
            for (index, output) in slot.outputs.enumerated() {
                let number = slot.nodeCount + index
                let count = slot.counts[number]
                guard count > 0 else { continue }
                let list = slot.list(number)
                if count == slot.admitted && (slot.allServed || Self.isInOrder(list, count: count)) {
                    // The whole batch leaves by this port as it came: hand it over.
                    output.exchange(&slot.packets, count: count)
                } else {
                    for k in 0..<count { output.append(slot.packets[Int(list[k])]) }
                }
                slot.counts[number] = 0
                emit(ports[index], output)
                precondition(output.isEmpty, "emit must take every packet of the batch")
            }
            freeSlots.append(id)
            drained += 1
        }
        if drained == finished.count {
            finished.removeAll(keepingCapacity: true)
        } else {
            finished.removeFirst(drained)
        }
    }

    /// Whether the index list holds 0, 1, ... `count - 1` in order.
    @inlinable
    static func isInOrder(_ list: UnsafeMutablePointer<UInt16>, count: Int) -> Bool {
        for k in 0..<count where list[k] != UInt16(truncatingIfNeeded: k) { return false }
        return true
    }

    /// Runs `slot`'s nodes in order from its position until it waits or ends.
    @inlinable
    func proceed(_ slot: BatchSlot) {
        let order = graph.order
        while slot.position < order.count {
            let node = order[slot.position]
            if slot.counts[node] > 0 && programs[node].run(self, slot, node) { return }
            slot.position += 1
        }
        slot.running = false
        if let flowCache, slot.candidateCount > 0 { installFlows(slot, into: flowCache) }
        finished.append(slot.id)
    }

    /// Sends the slot's packet `packet` on.
    @inlinable @inline(__always)
    func deliver(_ packet: UInt16, _ route: Route, _ slot: BatchSlot) {
        switch route.kind {
        case .node: slot.append(packet, to: Int(route.index))
        case .port: slot.append(packet, to: slot.nodeCount + Int(route.index))
        case .drop:
            counters.add(at: Int(route.index))
            pool.release(slot.packets[Int(packet)])
        }
    }

    /// Sends the slot's request to the store.
    @inlinable
    func submit(_ slot: BatchSlot) {
        slot.outgoing.tag = slot.id
        slot.outgoing.now = slot.now
        waiting += 1
        tally.roundTrips += 1
        tally.stateOperations += slot.outgoing.operations.count
        session!.submit(slot.outgoing)
    }

    /// Why the store last failed a request, if it ever did.
    public var lastStoreFailure: String? { storeFailure }
    @usableFromInline var storeFailure: String? = nil

    /// Drops every packet waiting at `node` under the counter at `reason`,
    /// because the store failed with `failure`.
    @inlinable
    func dropAll(_ node: Int, _ slot: BatchSlot, reason: Int, failure: String) {
        storeFailure = failure
        let list = slot.list(node)
        for k in 0..<slot.counts[node] {
            counters.add(at: reason)
            pool.release(slot.packets[Int(list[k])])
        }
        slot.counts[node] = 0
    }

    /// Drops by reason so far.
    public var drops: [String: Int] {
        dropCounters.reduce(into: [:]) { result, item in
            let count = counters.values[item.value]
            if count > 0 { result[item.key] = count }
        }
    }
}
