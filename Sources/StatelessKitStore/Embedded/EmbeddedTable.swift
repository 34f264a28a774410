import Atomics
import StatelessKit

/// An embedded table: entries spread over shards by key hash. A
/// bidirectional entry is stored under each of its keys (each copy names the
/// other key), so a read takes one shard's lock; a change takes the locks of
/// the shards of both copies, in shard order.
final class EmbeddedTable: @unchecked Sendable {
    let description: TableDescription
    let shards: [TableShard]
    let shardShift: UInt64
    let keySize: Int
    let valueSize: Int
    let partnerOffset: Int
    let valueOffset: Int
    let flagsOffset: Int
    /// Live entries (a bidirectional pair counts once), against the capacity.
    let entries = ManagedAtomic<Int>(0)

    init(_ description: TableDescription, shardCount: Int) {
        self.description = description
        keySize = description.keySize
        valueSize = description.valueSize
        partnerOffset = 8 + keySize
        valueOffset = 8 + keySize * (description.isBidirectional ? 2 : 1)
        flagsOffset = valueOffset + valueSize
        let stride = (flagsOffset + 1 + 7) & ~7
        let copies = description.capacity * (description.isBidirectional ? 2 : 1)
        // Room for hash imbalance between shards.
        let perShard = copies / shardCount + copies / (shardCount * 4) + 64
        shards = (0..<shardCount).map { _ in TableShard(recordCapacity: perShard, stride: stride) }
        shardShift = UInt64(64 - shardCount.trailingZeroBitCount)
    }

    deinit { shards.forEach { $0.destroy() } }

    /// Bytes the table holds.
    var bytes: Int { shards.reduce(0) { $0 + $1.bytes } }

    @inline(__always) func shard(_ hash: UInt64) -> Int { shardShift == 64 ? 0 : Int(hash >> shardShift) }

    @inline(__always) func deadline(_ record: UnsafeMutableRawPointer) -> Int64 {
        record.load(as: Int64.self)
    }

    /// A key located: its hash and shard.
    struct Located {
        let key: UnsafeRawPointer
        let hash: UInt64
        let shard: Int
    }

    @inline(__always) func locate(_ key: UnsafeRawPointer) -> Located {
        let hash = keyHash(key, keySize)
        return Located(key: key, hash: hash, shard: shard(hash))
    }

    /// Asks for the index lines a lookup of `key` starts at (a hint);
    /// returns the key's hash, for ``read(_:hash:now:_:)``.
    @inline(__always) func prefetch(_ key: UnsafeRawPointer) -> UInt64 {
        let hash = keyHash(key, keySize)
        shards[shard(hash)].prefetch(hash: hash)
        return hash
    }

    /// Locks `shards` (each once, in order), runs `body`, unlocks.
    @inline(__always)
    func locked<R>(_ wanted: ShardSet, _ body: () -> R) -> R {
        wanted.forEach { shards[$0].lock.lock() }
        defer { wanted.forEachReversed { shards[$0].lock.unlock() } }
        return body()
    }

    /// Runs `body` with the locks of `key`'s shard and, if the entry there
    /// has a partner copy, of the partner's shard; `body` gets the slot of
    /// `key` (or `nil`) and the partner's location. Extra shards in `also`
    /// are locked too.
    func withEntry<R>(_ key: Located, also: Int? = nil,
                      _ body: (Int?, Located?) -> R) -> R {
        var wanted = ShardSet(key.shard)
        if let also { wanted.insert(also) }
        while true {
            let outcome: R? = locked(wanted) {
                guard let slot = shards[key.shard].find(key.key, keySize, hash: key.hash) else { return body(nil, nil) }
                let record = shards[key.shard].record(slot)
                guard record.load(fromByteOffset: flagsOffset, as: UInt8.self) & TableShard.hasPartner != 0 else {
                    return body(slot, nil)
                }
                let partner = locate(UnsafeRawPointer(record + partnerOffset))
                guard wanted.contains(partner.shard) else { return nil }
                return body(slot, partner)
            }
            if let outcome { return outcome }
            // The partner's shard was not locked: lock it too and look again.
            let record = locked(ShardSet(key.shard)) { () -> Located? in
                guard let slot = shards[key.shard].find(key.key, keySize, hash: key.hash) else { return nil }
                let record = shards[key.shard].record(slot)
                return locate(UnsafeRawPointer(record + partnerOffset))
            }
            if let partner = record { wanted.insert(partner.shard) }
        }
    }

    /// Removes the entry in `slot` of `key`'s shard and its partner copy
    /// (whose shard must be locked); returns the resource it held.
    func removePair(_ key: Located, slot: Int, partner: Located?) -> PoolResource? {
        let record = shards[key.shard].record(slot)
        let resource = description.heldResource?(UnsafeRawPointer(record + 8), UnsafeRawPointer(record + valueOffset))
        if let partner, let partnerSlot = shards[partner.shard].find(partner.key, keySize, hash: partner.hash) {
            shards[partner.shard].remove(partnerSlot)
        }
        shards[key.shard].remove(slot)
        entries.wrappingDecrement(ordering: .relaxed)
        return resource
    }

    /// Writes a copy: deadline, flags, key, partner key, value.
    func writeCopy(_ record: UnsafeMutableRawPointer, partner: UnsafeRawPointer?, value: UnsafeRawPointer,
                   deadline: Int64) {
        record.storeBytes(of: deadline, as: Int64.self)
        record.storeBytes(of: partner == nil ? 0 : TableShard.hasPartner, toByteOffset: flagsOffset, as: UInt8.self)
        if let partner { (record + partnerOffset).copyMemory(from: partner, byteCount: keySize) }
        (record + valueOffset).copyMemory(from: value, byteCount: valueSize)
    }

    // MARK: Operations

    /// Reads the entry of `key`, whose hash is known (``prefetch(_:)``).
    @inline(__always)
    func read(_ key: UnsafeRawPointer, hash: UInt64, now: Int64, _ request: StateRequest) -> StateResult {
        let key = Located(key: key, hash: hash, shard: shard(hash))
        let shard = shards[key.shard]
        shard.lock.lock()
        defer { shard.lock.unlock() }
        guard let slot = shard.find(key.key, keySize, hash: key.hash) else { return StateResult(status: .missing) }
        let record = shard.record(slot)
        let deadline = deadline(record)
        guard deadline >= now else { return StateResult(status: .missing) }
        let value = request.storeResult(record + valueOffset, count: valueSize)
        return StateResult(status: .ok, value: value, deadline: deadline)
    }

    /// Inserts unless present; returns the result and the resources to give
    /// back to pools (an expired entry's, a rejected value's).
    /// What an insert hands back to pools: an expired entry's resource under
    /// either key, and the rejected value's (held inline: no allocation).
    struct Released {
        var expiredFirst: PoolResource? = nil
        var expiredSecond: PoolResource? = nil
        var rejected: PoolResource? = nil

        func forEach(_ body: (PoolResource) -> Void) {
            if let expiredFirst { body(expiredFirst) }
            if let expiredSecond { body(expiredSecond) }
            if let rejected { body(rejected) }
        }
    }

    func insertIfAbsent(_ key: UnsafeRawPointer, second: UnsafeRawPointer?, value: UnsafeRawPointer,
                        deadline: Int64, now: Int64, releaseOnConflict: Bool,
                        _ request: StateRequest) -> (StateResult, Released) {
        let first = locate(key)
        let second = second.map(locate)
        var released = Released()
        let rejected = releaseOnConflict ? description.heldResource?(key, value) : nil
        // Lock the shards of both keys; clear expired entries under either
        // (with their partners, which withEntry locks too).
        if let second {
            let (taken, expired) = withEntry(second, also: first.shard) { slot, partner -> (Bool, PoolResource?) in
                guard let slot else { return (false, nil) }
                let record = shards[second.shard].record(slot)
                if self.deadline(record) >= now {
                    // Taken, unless by this very entry (a racer inserted it
                    // first): then the first key answers with a conflict.
                    let mine = record.load(fromByteOffset: flagsOffset, as: UInt8.self) & TableShard.hasPartner != 0
                        && memcmp(record + partnerOffset, key, keySize) == 0
                    return (!mine, nil)
                }
                return (false, removePair(second, slot: slot, partner: partner))
            }
            released.expiredSecond = expired
            if taken {
                // The second key belongs to another live entry.
                return (StateResult(status: .collision), released)
            }
        }
        let (result, expired, wasRejected) = withEntry(first, also: second?.shard) {
            slot, partner -> (StateResult, PoolResource?, Bool) in
            var expired: PoolResource? = nil
            if let slot {
                let record = shards[first.shard].record(slot)
                let present = self.deadline(record)
                if present >= now {
                    return (StateResult(status: .conflict, value: request.storeResult(record + valueOffset, count: valueSize),
                                        deadline: present), nil, true)
                }
                expired = removePair(first, slot: slot, partner: partner)
            }
            if let second,
               shards[second.shard].find(second.key, keySize, hash: second.hash) != nil {
                return (StateResult(status: .collision), expired, false)
            }
            if entries.loadThenWrappingIncrement(ordering: .relaxed) >= description.capacity {
                entries.wrappingDecrement(ordering: .relaxed)
                return (StateResult(status: .full), expired, true)
            }
            guard let copy = shards[first.shard].insert(key, keySize, hash: first.hash) else {
                entries.wrappingDecrement(ordering: .relaxed)
                return (StateResult(status: .full), expired, true)
            }
            writeCopy(copy, partner: second?.key, value: value, deadline: deadline)
            if let second {
                guard let other = shards[second.shard].insert(second.key, keySize, hash: second.hash) else {
                    if let slot = shards[first.shard].find(key, keySize, hash: first.hash) { shards[first.shard].remove(slot) }
                    entries.wrappingDecrement(ordering: .relaxed)
                    return (StateResult(status: .full), expired, true)
                }
                writeCopy(other, partner: key, value: value, deadline: deadline)
            }
            return (StateResult(status: .ok, value: request.storeResult(value, count: valueSize), deadline: deadline),
                    expired, false)
        }
        released.expiredFirst = expired
        if wasRejected { released.rejected = rejected }
        return (result, released)
    }

    func compareAndSet(_ key: UnsafeRawPointer, expected: UnsafeRawPointer, new: UnsafeRawPointer, deadline: Int64,
                       now: Int64, _ request: StateRequest) -> StateResult {
        let key = locate(key)
        return withEntry(key) { slot, partner in
            guard let slot else { return StateResult(status: .missing) }
            let record = shards[key.shard].record(slot)
            let present = self.deadline(record)
            guard present >= now else { return StateResult(status: .missing) }
            guard memcmp(record + valueOffset, expected, valueSize) == 0 else {
                return StateResult(status: .conflict, value: request.storeResult(record + valueOffset, count: valueSize),
                                   deadline: present)
            }
            update(key, slot: slot, partner: partner) { copy in
                (copy + valueOffset).copyMemory(from: new, byteCount: valueSize)
                copy.storeBytes(of: deadline, as: Int64.self)
            }
            return StateResult(status: .ok, deadline: deadline)
        }
    }

    func touch(_ key: UnsafeRawPointer, deadline: Int64, now: Int64) -> StateResult {
        let key = locate(key)
        return withEntry(key) { slot, partner in
            guard let slot, self.deadline(shards[key.shard].record(slot)) >= now else { return StateResult(status: .missing) }
            update(key, slot: slot, partner: partner) { $0.storeBytes(of: deadline, as: Int64.self) }
            return StateResult(status: .ok, deadline: deadline)
        }
    }

    /// Deletes the entry of `key`; with `onlyIfExpiredAt`, only if it has
    /// expired by then. Returns whether a live entry was deleted, and the
    /// resource it held.
    func delete(_ key: UnsafeRawPointer, now: Int64, onlyIfExpired: Bool = false) -> (Bool, PoolResource?) {
        let key = locate(key)
        return withEntry(key) { slot, partner in
            guard let slot else { return (false, nil) }
            let live = deadline(shards[key.shard].record(slot)) >= now
            if onlyIfExpired && live { return (false, nil) }
            return (live, removePair(key, slot: slot, partner: partner))
        }
    }

    func add(_ key: UnsafeRawPointer, delta: Int64) -> StateResult {
        let key = locate(key)
        let shard = shards[key.shard]
        shard.lock.lock()
        defer { shard.lock.unlock() }
        let record: UnsafeMutableRawPointer
        if let slot = shard.find(key.key, keySize, hash: key.hash) {
            record = shard.record(slot)
        } else {
            guard entries.loadThenWrappingIncrement(ordering: .relaxed) < description.capacity,
                  let fresh = shard.insert(key.key, keySize, hash: key.hash) else {
                entries.wrappingDecrement(ordering: .relaxed)
                return StateResult(status: .full)
            }
            var zero: UInt64 = 0
            writeCopy(fresh, partner: nil, value: &zero, deadline: .max)
            record = fresh
        }
        let value = Int64(bitPattern: UInt64(decoding: record + valueOffset)) &+ delta
        UInt64(bitPattern: value).encode(to: record + valueOffset)
        return StateResult(status: .ok, integer: value)
    }

    /// Applies `change` to both copies of an entry.
    func update(_ key: Located, slot: Int, partner: Located?, _ change: (UnsafeMutableRawPointer) -> Void) {
        change(shards[key.shard].record(slot))
        if let partner, let other = shards[partner.shard].find(partner.key, keySize, hash: partner.hash) {
            change(shards[partner.shard].record(other))
        }
    }

    /// Appends to `keys` the keys of entries in `shardIndex` that expired
    /// before `now`, among up to `budget` index slots examined from the
    /// shard's cursor; returns how many were examined and whether the cursor
    /// went round to the start.
    func expiredKeys(in shardIndex: Int, now: Int64, budget: Int, into keys: inout [UInt8]) -> (Int, Bool) {
        let shard = shards[shardIndex]
        shard.lock.lock()
        defer { shard.lock.unlock() }
        var examined = 0
        while examined < budget {
            let slot = shard.sweepCursor
            shard.sweepCursor = (slot + 1) & shard.mask
            examined += 1
            if shard.tags[slot] != 0 {
                let record = shard.record(slot)
                if deadline(record) < now {
                    keys.append(contentsOf: UnsafeRawBufferPointer(start: record + 8, count: keySize))
                }
            }
            if shard.sweepCursor == 0 { return (examined, true) }
        }
        return (examined, false)
    }
}

/// Up to four shard numbers, kept sorted and unique, with no allocation: the
/// locks one operation takes, in the order that rules out deadlock.
struct ShardSet {
    private var values: (Int, Int, Int, Int) = (0, 0, 0, 0)
    private(set) var count = 0

    init(_ first: Int) { insert(first) }

    func contains(_ shard: Int) -> Bool {
        var found = false
        forEach { if $0 == shard { found = true } }
        return found
    }

    mutating func insert(_ shard: Int) {
        guard !contains(shard) else { return }
        precondition(count < 4, "an operation locks at most four shards")
        withUnsafeMutableBytes(of: &values) { raw in
            let slots = raw.bindMemory(to: Int.self)
            var i = count
            while i > 0 && slots[i - 1] > shard {
                slots[i] = slots[i - 1]
                i -= 1
            }
            slots[i] = shard
        }
        count += 1
    }

    @inline(__always) func forEach(_ body: (Int) -> Void) {
        withUnsafeBytes(of: values) { raw in
            let slots = raw.bindMemory(to: Int.self)
            for i in 0..<count { body(slots[i]) }
        }
    }

    @inline(__always) func forEachReversed(_ body: (Int) -> Void) {
        withUnsafeBytes(of: values) { raw in
            let slots = raw.bindMemory(to: Int.self)
            for i in (0..<count).reversed() { body(slots[i]) }
        }
    }
}
