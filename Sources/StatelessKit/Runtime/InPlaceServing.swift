/// Frames that lie in buffers a source received them into and a sink sends
/// as they are (DPDK's mbufs), which the runner's flow cache can serve
/// where they lie, before any ``Packet`` is made of them
/// (``GraphRunner/serveInPlace(_:count:arrivingOn:linkType:now:outputs:)``).
public protocol FrameBurst {
    /// Where frame `index`'s bytes start, and how many there are: 0 when
    /// it cannot be served where it lies (its bytes are not in one piece).
    func frame(_ index: Int) -> (data: UnsafeMutableRawPointer, length: Int)
}

extension GraphRunner {
    /// Serves where they lie the frames of `burst` (its first `count`, all
    /// arriving on graph port `port`, with link type `linkType`) whose flows
    /// the flow cache holds a live entry for: each is rewritten in place and
    /// `outputs[i]` set to the index (in ``ports``) of the port it leaves
    /// by; the others get -1 and are the caller's to admit, as packets and
    /// in their order, in the next batch (``admit(_:now:)``). Returns how
    /// many it served, and counts them as admitted.
    ///
    /// This is the flow cache's path without the batch: what ``admit(_:now:)``
    /// does for a packet the cache serves, with the same checks, so the
    /// caller must send the served frames before it admits or drains
    /// anything else. A served frame overtakes nothing: nothing is served
    /// while a batch is in flight (running, or finished and not drained),
    /// and a TCP packet that opens or closes a connection removes its
    /// flow's entry, so that the flow's later frames in the burst are not
    /// served ahead of it.
    /// A runner without a flow cache serves nothing. `count` is at most the
    /// batch capacity.
    @inlinable
    public func serveInPlace<Burst: FrameBurst>(_ burst: Burst, count: Int, arrivingOn port: UInt16, linkType: LinkType,
                                                now: Timestamp, outputs: UnsafeMutablePointer<Int16>) -> Int {
        precondition(count <= batchCapacity, "a burst larger than the runner's batch capacity")
        guard let cache = flowCache, inFlight == 0 else {
            outputs.update(repeating: -1, count: count)
            return 0
        }
        let now = now.nanoseconds
        let candidates = burstCandidates, buckets = cache.buckets
        lookUp(count, buckets: buckets, candidates: candidates) { i in
            let frame = burst.frame(i)
            return (frame.data, frame.length, linkType, port)
        }
        var hits = 0
        for i in 0..<count {
            let candidate = candidates + i
            let parse = candidate.pointee.parse
            // Nothing is in flight, so every entry was installed before
            // the next batch's number: only its lease matters.
            if parse == .servable, let found = candidate.pointee.found, found.pointee.lease > now {
                found.pointee.rewrite(candidate.pointee.data.unsafelyUnwrapped, at: candidate.pointee.headers)
                outputs[i] = Int16(truncatingIfNeeded: found.pointee.output)
                hits &+= 1
            } else {
                outputs[i] = -1
                if parse == .changesState { cache.remove(candidate.pointee.key, hash: candidate.pointee.hash) }
            }
        }
        if hits > 0 {
            tally.packetsIn &+= hits
            counters.add(at: cacheHits, hits)
        }
        return hits
    }
}
