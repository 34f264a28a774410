/// One worker's cache of what the graph did to each flow's packets, so that
/// the next packets of an established flow skip the graph and the store.
///
/// A packet becomes a candidate when ``PacketParser/parseCacheable`` accepts
/// it (IPv4 UDP, or TCP without SYN, FIN or RST); a TCP packet with one of
/// those removes its flow's entry and crosses the graph, and the entry comes
/// back only once every batch admitted before its new install has left, so
/// that a flow's packets leave in the order they came. Its treatment is cached
/// when it leaves by a port and every node it crossed vouched for its flow:
/// plain nodes by declaring ``Node/isFlowDeterministic``, stateful nodes per
/// packet with ``NodeContext/cacheFlow(until:)``, which bounds the entry's
/// lease (a NAT lets a mapping be cached until its next refresh is due and
/// never longer than the shortest time another instance could make it
/// expire in). What is cached is the net rewrite of the addresses and ports
/// and the port the packet left by, checked when it is installed: the
/// runtime applies the rewrite to a copy of the packet as it came in and
/// installs the entry only if that gives the bytes the graph produced.
///
/// Set-associative, four entries a bucket, replacing an expired entry
/// first, then in turn. Allocates only when made.
@usableFromInline
final class FlowCache {
    @usableFromInline
    struct Entry {
        @usableFromInline var key = FlowCacheKey.none
        /// Until when the entry may serve packets (nanoseconds).
        @usableFromInline var lease: Int64 = .min
        /// The first batch number that may use the entry: every batch
        /// admitted before it was installed must have left first, so that a
        /// flow's cached packets never overtake its packets still in the graph.
        @usableFromInline var firstBatch: Int64 = .max
        /// The new source (high half) and destination (low half) addresses.
        @usableFromInline var addresses: UInt64 = 0
        /// The new source (high half) and destination (low half) ports.
        @usableFromInline var ports: UInt32 = 0
        /// The port index the packets leave by.
        @usableFromInline var output: Int32 = 0
        /// What the address change adds to the IPv4 header checksum's sum.
        @usableFromInline var ipSum: UInt32 = 0
        /// What the address and port changes add to the TCP/UDP checksum's sum.
        @usableFromInline var transportSum: UInt32 = 0

        @inlinable
        init() {}
    }

    @usableFromInline let entries: UnsafeMutablePointer<Entry>
    @usableFromInline let bucketMask: UInt64
    @usableFromInline var victim: Int = 0
    /// How many entries the cache holds at most.
    let capacity: Int

    /// A cache of at least `capacity` entries (rounded up to a power of two,
    /// at least one bucket).
    init(capacity: Int) {
        let buckets = max(1, (capacity + 3) / 4)
        let rounded = 1 << (Int.bitWidth - (buckets - 1).leadingZeroBitCount)
        self.capacity = rounded * 4
        bucketMask = UInt64(rounded - 1)
        entries = .allocate(capacity: self.capacity)
        entries.initialize(repeating: Entry(), count: self.capacity)
    }

    deinit {
        entries.deallocate()
    }

    /// The live entry of `key` that batch `batch` may use at `now`, if any.
    @inlinable @inline(__always)
    func find(_ key: FlowCacheKey, hash: UInt64, now: Int64, batch: Int64) -> UnsafeMutablePointer<Entry>? {
        let bucket = entries + Int(hash & bucketMask) << 2
        for way in 0..<4 where bucket[way].key == key {
            let entry = bucket + way
            return entry.pointee.lease > now && batch >= entry.pointee.firstBatch ? entry : nil
        }
        return nil
    }

    /// Installs `entry` in place of the key's old entry, an expired one, or
    /// the bucket's next in turn.
    @usableFromInline
    func install(_ entry: Entry, hash: UInt64, now: Int64) {
        let bucket = entries + Int(hash & bucketMask) << 2
        var slot = -1
        for way in 0..<4 {
            if bucket[way].key == entry.key { slot = way; break }
            if slot < 0 && bucket[way].lease <= now { slot = way }
        }
        if slot < 0 {
            slot = victim
            victim = (victim + 1) & 3
        }
        bucket[slot] = entry
    }

    /// The entry that rewrites packets of `key` to `addresses` and `ports`
    /// and sends them to port index `output` until `lease`, for batches from
    /// `firstBatch` on.
    static func entry(_ key: FlowCacheKey, addresses: UInt64, ports: UInt32, output: Int, lease: Int64,
                      firstBatch: Int64) -> Entry {
        func change(_ old: UInt64, _ new: UInt64, words: Int) -> UInt32 {
            var sum: UInt32 = 0
            for word in 0..<words {
                let shift = UInt64(word * 16)
                sum &+= UInt32(~UInt16(truncatingIfNeeded: old >> shift)) &+ UInt32(UInt16(truncatingIfNeeded: new >> shift))
            }
            return InternetChecksum.fold(sum)
        }
        var entry = Entry()
        entry.key = key
        entry.lease = lease
        entry.firstBatch = firstBatch
        entry.addresses = addresses
        entry.ports = ports
        entry.output = Int32(output)
        entry.ipSum = change(key.addresses, addresses, words: 4)
        entry.transportSum = InternetChecksum.fold(entry.ipSum &+ change(key.rest >> 32, UInt64(ports), words: 2))
        return entry
    }

    /// Forgets the entry of `key`, if any.
    @inlinable @inline(__always)
    func remove(_ key: FlowCacheKey, hash: UInt64) {
        let bucket = entries + Int(hash & bucketMask) << 2
        for way in 0..<4 where bucket[way].key == key { bucket[way] = Entry() }
    }
}

/// A packet that may have its flow cached when it leaves: its key, and
/// where its bytes were when it came in.
@usableFromInline
struct FlowCandidate {
    @usableFromInline var key = FlowCacheKey.none
    @usableFromInline var hash: UInt64 = 0
    @usableFromInline var dataOffset: Int32 = 0
    @usableFromInline var length: Int32 = 0

    @inlinable
    init() {}
}

extension Packet {
    /// Applies a cached rewrite: the new addresses and ports, and the IPv4
    /// header and TCP/UDP checksums updated by the entry's precomputed sums
    /// (RFC 1624, as the graph's field-by-field rewrites do: one's
    /// complement addition gives the same checksum in whatever grouping;
    /// a zero UDP checksum stays zero and none becomes zero). The layout must
    /// be the one ``PacketParser/parseCacheable`` gave.
    @inlinable @inline(__always)
    func applyCachedRewrite(_ entry: FlowCache.Entry) {
        let l3 = Int(layout.l3Offset), l4 = Int(layout.l4Offset)
        let headerChecksum = UInt32(~data.loadBigEndian(l3 + 10, as: UInt16.self))
        data.storeBigEndian(~UInt16(truncatingIfNeeded: InternetChecksum.fold(headerChecksum &+ entry.ipSum)), at: l3 + 10)
        let udp = layout.transport == .udp
        let field = l4 + (udp ? 6 : 16)
        let old = data.loadBigEndian(field, as: UInt16.self)
        if !udp || old != 0 {
            let new = ~UInt16(truncatingIfNeeded: InternetChecksum.fold(UInt32(~old) &+ entry.transportSum))
            data.storeBigEndian(udp && new == 0 ? 0xFFFF : new, at: field)
        }
        data.storeBytes(of: entry.addresses.bigEndian, toByteOffset: l3 + 12, as: UInt64.self)
        data.storeBytes(of: entry.ports.bigEndian, toByteOffset: l4, as: UInt32.self)
    }
}
