import CPrefetchShim
/// One shard of an embedded table: an open-addressing index (linear probing,
/// backward-shift deletion) over a slab of fixed-size records, guarded by a
/// lock. Every method but `lock`/`unlock` expects the lock held.
///
/// A record is: deadline (8 bytes), the key, the partner key (for
/// bidirectional tables), the value, and a flags byte.
///
/// A value of pointers (no reference counting on the packet path): copies
/// share the shard, and its table calls ``destroy()`` once.
struct TableShard: @unchecked Sendable {
    let lock = ShardLock()
    let mask: Int
    let tags: UnsafeMutablePointer<UInt32>
    let refs: UnsafeMutablePointer<UInt32>
    let records: UnsafeMutableRawPointer
    let recordCapacity: Int
    let stride: Int
    let free: UnsafeMutablePointer<UInt32>
    /// The free count and the sweep cursor.
    private let counters: UnsafeMutablePointer<Int>

    var freeCount: Int {
        get { counters[0] }
        nonmutating set { counters[0] = newValue }
    }

    var sweepCursor: Int {
        get { counters[1] }
        nonmutating set { counters[1] = newValue }
    }

    static let hasPartner: UInt8 = 1

    init(recordCapacity: Int, stride: Int) {
        self.recordCapacity = recordCapacity
        self.stride = stride
        var slots = 16
        while slots < recordCapacity * 10 / 7 + 1 { slots <<= 1 }
        mask = slots - 1
        tags = .allocate(capacity: slots)
        tags.initialize(repeating: 0, count: slots)
        refs = .allocate(capacity: slots)
        refs.initialize(repeating: 0, count: slots)
        records = .allocate(byteCount: max(recordCapacity, 1) * stride, alignment: 16)
        free = .allocate(capacity: max(recordCapacity, 1))
        for i in 0..<recordCapacity { free[i] = UInt32(recordCapacity - 1 - i) }
        counters = .allocate(capacity: 2)
        counters.initialize(repeating: 0, count: 2)
        counters[0] = recordCapacity
    }

    /// Frees the shard's memory.
    func destroy() {
        tags.deallocate()
        refs.deallocate()
        records.deallocate()
        free.deallocate()
        counters.deallocate()
        lock.destroy()
    }

    /// Bytes this shard holds.
    var bytes: Int { (mask + 1) * 8 + recordCapacity * (stride + 4) }

    /// Records in use.
    var count: Int { recordCapacity - freeCount }

    @inline(__always) static func tag(_ hash: UInt64) -> UInt32 {
        let tag = UInt32(truncatingIfNeeded: hash)
        return tag == 0 ? 0x8000_0000 : tag
    }

    @inline(__always) func record(_ slot: Int) -> UnsafeMutableRawPointer {
        records + Int(refs[slot]) * stride
    }

    /// Asks for the index lines a lookup of `hash` starts at (a hint).
    @inline(__always)
    func prefetch(hash: UInt64) {
        let slot = Int(Self.tag(hash)) & mask
        sk_prefetch(tags + slot)
        sk_prefetch(refs + slot)
    }

    /// The slot holding `key`, or `nil`.
    @inline(__always)
    func find(_ key: UnsafeRawPointer, _ keySize: Int, hash: UInt64) -> Int? {
        let tag = Self.tag(hash)
        var slot = Int(tag) & mask
        while tags[slot] != 0 {
            if tags[slot] == tag && memcmp(record(slot) + 8, key, keySize) == 0 { return slot }
            slot = (slot + 1) & mask
        }
        return nil
    }

    /// Adds a record; returns it, or `nil` when the shard is full. The caller
    /// knows the key is absent.
    func insert(_ key: UnsafeRawPointer, _ keySize: Int, hash: UInt64) -> UnsafeMutableRawPointer? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        let index = free[freeCount]
        let tag = Self.tag(hash)
        var slot = Int(tag) & mask
        while tags[slot] != 0 { slot = (slot + 1) & mask }
        tags[slot] = tag
        refs[slot] = index
        let record = records + Int(index) * stride
        (record + 8).copyMemory(from: key, byteCount: keySize)
        return record
    }

    /// Removes the record in `slot`.
    func remove(_ slot: Int) {
        free[freeCount] = refs[slot]
        freeCount += 1
        var hole = slot
        var next = slot
        while true {
            next = (next + 1) & mask
            if tags[next] == 0 { break }
            let home = Int(tags[next]) & mask
            // Leave an entry whose home lies cyclically in (hole, next].
            let stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if stays { continue }
            tags[hole] = tags[next]
            refs[hole] = refs[next]
            hole = next
        }
        tags[hole] = 0
    }
}

@inline(__always)
func memcmp(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ count: Int) -> Int32 {
    var i = 0
    while i + 8 <= count {
        if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return 1
        }
        i += 8
    }
    if i < count && count >= 8 {
        // The last 8 bytes, overlapping words already compared: one load each.
        return a.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
            == b.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self) ? 0 : 1
    }
    while i < count {
        if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return 1 }
        i += 1
    }
    return 0
}
