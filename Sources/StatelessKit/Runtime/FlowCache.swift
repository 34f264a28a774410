import CPrefetchShim
#if canImport(Glibc)
import Glibc
#endif

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
/// Set-associative, four entries a bucket, and two buckets a key (the top
/// bits of its hash pick the first, the low bits the second, where it goes
/// when the first is full): an entry replaces the key's old one, an expired
/// one, or else the first bucket's next in turn; a new entry takes the first
/// free way. A bucket's four keys share one cache line and each entry has
/// a line of its own, so that a lookup touches two lines whatever the way,
/// and a batch's lookups are made in three passes so that their memory
/// accesses overlap: each packet's key, its bucket's key line prefetched;
/// the key compares, each entry found prefetched; the rewrites. Keys,
/// entries and checksum sums are kept in network byte order, so that the
/// cached path swaps no byte. The tables live in 2 MB pages where the
/// kernel gives them. Allocates only when made.
@usableFromInline
final class FlowCache {
    @usableFromInline
    struct Entry {
        /// Until when the entry may serve packets (nanoseconds).
        @usableFromInline var lease: Int64 = .min
        /// The first batch number that may use the entry: every batch
        /// admitted before it was installed must have left first, so that a
        /// flow's cached packets never overtake its packets still in the graph.
        @usableFromInline var firstBatch: Int64 = .max
        /// The new source and destination addresses, as they lie in the packet.
        @usableFromInline var addresses: UInt64 = 0
        /// The new source and destination ports, as they lie in the packet.
        @usableFromInline var ports: UInt32 = 0
        /// The port index the packets leave by.
        @usableFromInline var output: Int32 = 0
        /// What the address change adds to the IPv4 header checksum's sum,
        /// folded, in the packet's byte order.
        @usableFromInline var ipSum: UInt16 = 0
        /// What the address and port changes add to the TCP/UDP checksum's
        /// sum, folded, in the packet's byte order.
        @usableFromInline var transportSum: UInt16 = 0

        @inlinable
        init() {}
    }

    /// The keys, a bucket's four in one cache line.
    @usableFromInline let keys: UnsafeMutableRawPointer
    /// The entries, one to a cache line, in the order of their keys.
    @usableFromInline let entries: UnsafeMutableRawPointer
    /// Which bucket a hash picks: its top bits (``FlowCacheKey/hash`` is a
    /// multiplicative hash, whose top bits every bit of the key reaches).
    @usableFromInline let bucketShift: UInt64
    @usableFromInline let bucketMask: UInt64
    @usableFromInline var victim: Int = 0
    /// How many entries the cache holds at most.
    let capacity: Int
    static let hugePage = 2 << 20
    @usableFromInline static let line = 64
    /// A bucket's keys: four, one line.
    @usableFromInline static let keySize = MemoryLayout<FlowCacheKey>.stride

    /// A cache of at least `capacity` entries (rounded up to a power of two,
    /// at least one bucket).
    init(capacity: Int) {
        precondition(MemoryLayout<Entry>.size <= Self.line && 4 * Self.keySize == Self.line,
                     "a flow cache entry fills one line, and a bucket's keys one")
        let buckets = max(1, (capacity + 3) / 4)
        let rounded = 1 << (Int.bitWidth - (buckets - 1).leadingZeroBitCount)
        self.capacity = rounded * 4
        bucketMask = UInt64(rounded - 1)
        // The hash's top bits, as many as the buckets need (one bucket:
        // the mask alone gives 0).
        let bucketBits = Int.bitWidth - (rounded - 1).leadingZeroBitCount
        bucketShift = UInt64(64 - max(1, bucketBits))
        keys = Self.table(bytes: self.capacity * Self.keySize)
        entries = Self.table(bytes: self.capacity * Self.line)
        for index in 0..<self.capacity {
            (keys + index * Self.keySize).initializeMemory(as: FlowCacheKey.self, repeating: .none, count: 1)
            (entries + index * Self.line).initializeMemory(as: Entry.self, repeating: Entry(), count: 1)
        }
    }

    /// `bytes` for a table, in 2 MB pages when that large.
    static func table(bytes size: Int) -> UnsafeMutableRawPointer {
        let alignment = size >= Self.hugePage ? Self.hugePage : Self.line
        let bytes = (size + alignment - 1) / alignment * alignment
        let table = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: alignment)
        #if canImport(Glibc)
        // Lookups land anywhere in the table: with 4 KB pages nearly every
        // one would miss the TLB.
        if alignment == Self.hugePage { _ = madvise(table, bytes, MADV_HUGEPAGE) }
        #endif
        return table
    }

    deinit {
        keys.deallocate()
        entries.deallocate()
    }

    /// The key at `index`.
    @inlinable @inline(__always)
    func key(_ index: Int) -> UnsafeMutablePointer<FlowCacheKey> {
        (keys + index &* Self.keySize).assumingMemoryBound(to: FlowCacheKey.self)
    }

    /// The entry at `index`.
    @inlinable @inline(__always)
    func entry(_ index: Int) -> UnsafeMutablePointer<Entry> {
        (entries + index &* Self.line).assumingMemoryBound(to: Entry.self)
    }

    /// The table's buckets, as a value a batch's lookups keep in registers.
    @inlinable
    var buckets: Buckets { Buckets(keys: keys, entries: entries, shift: bucketShift, mask: bucketMask) }

    /// The buckets of a flow cache: where they are and which a hash picks.
    @usableFromInline
    struct Buckets {
        @usableFromInline let keys: UnsafeMutableRawPointer
        @usableFromInline let entries: UnsafeMutableRawPointer
        @usableFromInline let shift: UInt64
        @usableFromInline let mask: UInt64

        @inlinable
        init(keys: UnsafeMutableRawPointer, entries: UnsafeMutableRawPointer, shift: UInt64, mask: UInt64) {
            self.keys = keys
            self.entries = entries
            self.shift = shift
            self.mask = mask
        }

        /// The index of `hash`'s bucket.
        @inlinable @inline(__always)
        func index(_ hash: UInt64) -> Int {
            Int(truncatingIfNeeded: (hash &>> shift) & mask)
        }

        /// The index of `hash`'s second bucket, where its key goes when the
        /// first is full (two choices leave almost no bucket overflowing).
        @inlinable @inline(__always)
        func alternate(_ hash: UInt64) -> Int {
            Int(truncatingIfNeeded: hash & mask)
        }

        /// The line of `hash`'s bucket's keys.
        @inlinable @inline(__always)
        func keyLine(_ bucket: Int) -> UnsafeMutableRawPointer {
            keys + bucket &* FlowCache.line
        }

        /// Starts loading the keys of `hash`'s bucket into the CPU cache.
        @inlinable @inline(__always)
        func prefetch(_ hash: UInt64) {
            sk_prefetch(keyLine(index(hash)))
        }

        /// Starts loading `entry` into the CPU cache.
        @inlinable @inline(__always)
        func prefetch(_ entry: UnsafeMutablePointer<Entry>) {
            sk_prefetch(UnsafeRawPointer(entry))
        }

        /// The entry of `key`, if the cache has one: in its bucket, or else
        /// in its second.
        @inlinable @inline(__always)
        func entry(for key: FlowCacheKey, hash: UInt64) -> UnsafeMutablePointer<Entry>? {
            let first = index(hash)
            if let found = entry(for: key, in: first) { return found }
            let second = alternate(hash)
            return second == first ? nil : entry(for: key, in: second)
        }

        /// The entry of `key` in bucket `bucket`, if it is there: its four
        /// keys lie in one line, each entry in a line of its own.
        @inlinable @inline(__always)
        func entry(for key: FlowCacheKey, in bucket: Int) -> UnsafeMutablePointer<Entry>? {
            let line = keyLine(bucket).assumingMemoryBound(to: FlowCacheKey.self)
            var way = 0
            repeat {
                if line[way].addresses == key.addresses && line[way].rest == key.rest {
                    return (entries + (bucket &<< 2 | way) &* FlowCache.line).assumingMemoryBound(to: Entry.self)
                }
                way &+= 1
            } while way != 4
            return nil
        }
    }

    /// Installs `entry` for `key` in place of the key's old entry, an
    /// expired one in its bucket or else in its second, or the bucket's
    /// next in turn.
    @usableFromInline
    func install(_ key: FlowCacheKey, _ entry: Entry, hash: UInt64, now: Int64) {
        let first = buckets.index(hash) << 2, second = buckets.alternate(hash) << 2
        var slot = -1
        search: for pass in 0..<(second == first ? 1 : 2) {
            let start = pass == 0 ? first : second
            for way in start..<start + 4 {
                if self.key(way).pointee == key { slot = way; break search }
                if slot < 0 && self.entry(way).pointee.lease <= now { slot = way }
            }
        }
        if slot < 0 {
            slot = first + victim
            victim = (victim + 1) & 3
        }
        self.key(slot).pointee = key
        self.entry(slot).pointee = entry
    }

    /// The entry that rewrites packets of `key` to `addresses` and `ports`
    /// (as they lie in the packet, as the key's) and sends them to port
    /// index `output` until `lease`, for batches from `firstBatch` on. The
    /// checksum sums are taken over the words as they lie, so they come out
    /// in the packet's byte order too: one's complement sums do not depend
    /// on byte order (RFC 1071, section 2).
    static func makeEntry(_ key: FlowCacheKey, addresses: UInt64, ports: UInt32, output: Int, lease: Int64,
                      firstBatch: Int64) -> Entry {
        var entry = Entry()
        entry.lease = lease
        entry.firstBatch = firstBatch
        entry.addresses = addresses
        entry.ports = ports
        entry.output = Int32(output)
        let halves = { (value: UInt64) in (UInt32(truncatingIfNeeded: value >> 32), UInt32(truncatingIfNeeded: value)) }
        let (oldSource, oldDestination) = halves(key.addresses), (newSource, newDestination) = halves(addresses)
        let ipSum = InternetChecksum.fold(InternetChecksum.change(from: oldSource, to: newSource)
                                          &+ InternetChecksum.change(from: oldDestination, to: newDestination))
        let transportSum = InternetChecksum.fold(
            ipSum &+ InternetChecksum.change(from: UInt32(truncatingIfNeeded: key.rest >> 32), to: ports))
        entry.ipSum = UInt16(truncatingIfNeeded: ipSum)
        entry.transportSum = UInt16(truncatingIfNeeded: transportSum)
        return entry
    }

    /// Forgets the entry of `key`, if any.
    @inlinable @inline(__always)
    func remove(_ key: FlowCacheKey, hash: UInt64) {
        guard let found = buckets.entry(for: key, hash: hash) else { return }
        self.key((UnsafeMutableRawPointer(found) - entries) / Self.line).pointee = .none
        found.pointee = Entry()
    }
}

/// A packet that may have its flow cached when it leaves: its key, and
/// where its bytes were when it came in.
@usableFromInline
struct FlowCandidate {
    /// What the flow cache's parse made of it.
    @usableFromInline var parse = FlowCacheParse.refused
    @usableFromInline var headers = CacheableHeaders()
    @usableFromInline var key = FlowCacheKey.none
    @usableFromInline var hash: UInt64 = 0
    /// Its flow's entry, if the cache has one.
    @usableFromInline var found: UnsafeMutablePointer<FlowCache.Entry>? = nil
    /// Where its bytes start (set by the lookups).
    @usableFromInline var data: UnsafeMutableRawPointer? = nil
    @usableFromInline var dataOffset: Int32 = 0
    @usableFromInline var length: Int32 = 0

    @inlinable
    init() {}
}

extension FlowCache.Entry {
    /// Applies the entry's rewrite to the frame at `data`: the new addresses
    /// and ports, and the IPv4 header and TCP/UDP checksums updated by the
    /// entry's precomputed sums (RFC 1624, as the graph's field-by-field
    /// rewrites do: one's complement addition gives the same checksum in
    /// whatever grouping; a zero UDP checksum stays zero and none becomes
    /// zero), at the headers ``PacketParser/parseCacheable`` found. Every
    /// field is read and written as it lies, in network byte order, as the
    /// entry's sums are.
    @inlinable @inline(__always)
    func rewrite(_ data: UnsafeMutableRawPointer, at headers: CacheableHeaders) {
        let ip = data + Int(headers.l3Offset), transport = data + Int(headers.l4Offset)
        let headerChecksum = ip.loadUnaligned(fromByteOffset: 10, as: UInt16.self)
        ip.storeBytes(of: InternetChecksum.updated(headerChecksum, addingFolded: ipSum), toByteOffset: 10, as: UInt16.self)
        // A branch per transport, so that each has its checksum's offset and rule as constants.
        if headers.isUDP {
            updateTransportChecksum(transport, at: 6, udp: true)
        } else {
            updateTransportChecksum(transport, at: 16, udp: false)
        }
        ip.storeBytes(of: addresses, toByteOffset: 12, as: UInt64.self)
        transport.storeBytes(of: ports, toByteOffset: 0, as: UInt32.self)
    }

    /// Updates the TCP or UDP checksum at `offset` in the header at
    /// `transport` by the entry's sum, by the rule for `udp`.
    @inlinable @inline(__always)
    func updateTransportChecksum(_ transport: UnsafeMutableRawPointer, at offset: Int, udp: Bool) {
        if let new = Packet.updatedTransportChecksum(transport.loadUnaligned(fromByteOffset: offset, as: UInt16.self), udp: udp,
                                                     { InternetChecksum.updated($0, addingFolded: transportSum) }) {
            transport.storeBytes(of: new, toByteOffset: offset, as: UInt16.self)
        }
    }
}
