/// What a state operation does.
public enum StateOperationKind: UInt8, Sendable {
    /// Read an entry by either of its keys.
    case read
    /// Insert an entry unless its key is present; every racer gets the
    /// winner's value. A bidirectional entry is installed under both keys at
    /// once, or not at all.
    case insertIfAbsent
    /// Replace an entry's value if it is still the expected one.
    case compareAndSet
    /// Delete an entry (both keys), returning any resource it holds to its pool.
    case delete
    /// Move an entry's deadline.
    case touch
    /// Add to a counter entry (created at zero), returning the new value.
    case add
    /// Take an item from a pool.
    case take
    /// Return an item to a pool.
    case give
}

/// One operation of a request. Keys and values are offsets into the
/// request's byte arena.
public struct StateOperation: Sendable {
    /// What it does.
    public var kind: StateOperationKind
    /// The table (or, for take and give, the pool).
    public var table: Int32
    /// The key's offset in the arena (the item's, for give); -1 for none.
    public var key: Int32
    /// The second key's offset, for a bidirectional insert; -1 for none.
    public var secondKey: Int32
    /// The value's offset (the new value for compare-and-set); -1 for none.
    public var value: Int32
    /// The expected value's offset, for compare-and-set; -1 for none.
    public var expected: Int32
    /// The new deadline (insert, compare-and-set, touch), in nanoseconds on
    /// the runtime's clock.
    public var deadline: Int64
    /// The amount to add.
    public var delta: Int64
    /// For an insert that loses the race: return the resource the rejected
    /// value would have held to its pool.
    public var releaseOnConflict: Bool

    /// An operation; offsets of -1 mean none.
    @inlinable
    public init(kind: StateOperationKind, table: Int32, key: Int32 = -1, secondKey: Int32 = -1, value: Int32 = -1,
                expected: Int32 = -1, deadline: Int64 = 0, delta: Int64 = 0, releaseOnConflict: Bool = false) {
        self.kind = kind
        self.table = table
        self.key = key
        self.secondKey = secondKey
        self.value = value
        self.expected = expected
        self.deadline = deadline
        self.delta = delta
        self.releaseOnConflict = releaseOnConflict
    }
}

/// How an operation ended.
public enum StateStatus: UInt8, Sendable {
    /// Done; a read or take found what it looked for.
    case ok
    /// No such entry (or it expired), or the pool is empty.
    case missing
    /// An insert found the key present (the result is the present value), or
    /// a compare-and-set found another value (the result is that value).
    case conflict
    /// The table is at its capacity.
    case full
    /// An insert's second key belongs to another live entry.
    case collision
    /// The store failed; the request's ``StateRequest/failure`` says why.
    case failed
}

/// The result of one operation. A value is an offset into the request's
/// result arena.
public struct StateResult: Sendable {
    /// How it ended.
    public var status: StateStatus
    /// The value's offset in the result arena (the entry's value, or the
    /// item taken); -1 for none.
    public var value: Int32
    /// The entry's deadline.
    public var deadline: Int64
    /// A counter's new value.
    public var integer: Int64

    /// A result.
    @inlinable
    public init(status: StateStatus, value: Int32 = -1, deadline: Int64 = 0, integer: Int64 = 0) {
        self.status = status
        self.value = value
        self.deadline = deadline
        self.integer = integer
    }

    /// A result with no value.
    public static let empty = StateResult(status: .missing, value: -1, deadline: 0, integer: 0)
}

/// The state operations of one batch step, sent to the store as one request,
/// and their results. Reused from batch to batch: filling and answering one
/// allocates nothing once its buffers have grown to the batch's needs.
public final class StateRequest: @unchecked Sendable {
    /// The operations, in order.
    @exclusivity(unchecked) public var operations: [StateOperation] = []
    /// Their results, one each, once the request completes.
    @exclusivity(unchecked) public var results: [StateResult] = []
    /// The runtime's clock reading: entries whose deadline is before it are gone.
    @exclusivity(unchecked) public var now: Timestamp = .zero
    /// Why the store could not answer, when it could not.
    public var failure: String? = nil
    /// A number the submitter uses to find its request again.
    @exclusivity(unchecked) public var tag: Int = 0

    @exclusivity(unchecked) @usableFromInline var arena: UnsafeMutableRawPointer
    @exclusivity(unchecked) @usableFromInline var arenaCount = 0
    @exclusivity(unchecked) @usableFromInline var arenaCapacity: Int
    @exclusivity(unchecked) @usableFromInline var resultArena: UnsafeMutableRawPointer
    @exclusivity(unchecked) @usableFromInline var resultArenaCount = 0
    @exclusivity(unchecked) @usableFromInline var resultArenaCapacity: Int

    /// An empty request.
    public init(capacity: Int = 64) {
        arenaCapacity = max(capacity * 64, 256)
        arena = .allocate(byteCount: arenaCapacity, alignment: 8)
        resultArenaCapacity = arenaCapacity
        resultArena = .allocate(byteCount: resultArenaCapacity, alignment: 8)
        operations.reserveCapacity(capacity)
        results.reserveCapacity(capacity)
    }

    deinit {
        arena.deallocate()
        resultArena.deallocate()
    }

    /// Whether there is nothing to send.
    @inlinable
    public var isEmpty: Bool { operations.isEmpty }

    /// Forgets every operation and result, keeping the buffers.
    @inlinable
    public func reset() {
        operations.removeAll(keepingCapacity: true)
        results.removeAll(keepingCapacity: true)
        arenaCount = 0
        resultArenaCount = 0
        failure = nil
    }

    /// Appends an operation; returns its index.
    @inlinable
    public func append(_ operation: StateOperation) -> Int {
        operations.append(operation)
        return operations.count - 1
    }

    /// Copies `count` bytes into the arena; returns their offset.
    @inlinable
    public func store(_ bytes: UnsafeRawPointer, count: Int) -> Int32 {
        let offset = reserve(count)
        (arena + Int(offset)).copyMemory(from: bytes, byteCount: count)
        return offset
    }

    /// Encodes `value` into the arena; returns its offset.
    @inlinable @inline(__always)
    public func store<T: StateCodable>(_ value: T) -> Int32 {
        let offset = reserve(T.encodedSize)
        value.encode(to: arena + Int(offset))
        return offset
    }

    @inlinable @inline(__always)
    func reserve(_ count: Int) -> Int32 {
        if arenaCount + count > arenaCapacity { growArena(count) }
        let offset = arenaCount
        arenaCount += (count + 7) & ~7
        return Int32(offset)
    }

    @usableFromInline @inline(never)
    func growArena(_ count: Int) {
        Self.grow(&arena, &arenaCapacity, used: arenaCount, needed: count)
    }

    /// Makes room for `needed` more bytes after `used` in a buffer.
    @inlinable
    static func grow(_ buffer: inout UnsafeMutableRawPointer, _ capacity: inout Int, used: Int, needed: Int) {
        guard used + needed > capacity else { return }
        let larger = max(capacity * 2, used + needed)
        let grown = UnsafeMutableRawPointer.allocate(byteCount: larger, alignment: 8)
        grown.copyMemory(from: buffer, byteCount: used)
        buffer.deallocate()
        buffer = grown
        capacity = larger
    }

    /// The bytes at `offset` of the arena.
    @inlinable
    public func bytes(at offset: Int32) -> UnsafeRawPointer {
        UnsafeRawPointer(arena + Int(offset))
    }

    /// Copies `count` result bytes into the result arena; returns their offset.
    /// Stores call this when they answer.
    @inlinable
    public func storeResult(_ bytes: UnsafeRawPointer, count: Int) -> Int32 {
        Self.grow(&resultArena, &resultArenaCapacity, used: resultArenaCount, needed: count)
        let offset = resultArenaCount
        (resultArena + offset).copyMemory(from: bytes, byteCount: count)
        resultArenaCount += (count + 7) & ~7
        return Int32(offset)
    }

    /// The result bytes at `offset`.
    @inlinable
    public func resultBytes(at offset: Int32) -> UnsafeRawPointer {
        UnsafeRawPointer(resultArena + Int(offset))
    }

    /// Sizes ``results`` to one per operation (each ``StateResult/empty``),
    /// keeping its storage; a store calls this before it answers.
    @inlinable
    public func prepareResults() {
        let count = operations.count
        if results.count > count { results.removeLast(results.count - count) }
        while results.count < count { results.append(.empty) }
    }

    /// Forgets the results and any failure, keeping the operations: for a
    /// store that sends the request again.
    @inlinable
    public func clearResults() {
        results.removeAll(keepingCapacity: true)
        resultArenaCount = 0
        failure = nil
        prepareResults()
    }

    /// Marks every operation failed, with `reason`.
    public func fail(_ reason: String) {
        failure = reason
        results = operations.map { _ in StateResult(status: .failed, value: -1, deadline: 0, integer: 0) }
    }
}
