/// A handle on the result of a state operation a node issued; read it with
/// ``StateAccess`` in the node's next step.
public struct Ticket<Result>: Sendable {
    @usableFromInline let index: Int32

    @usableFromInline init(_ index: Int) { self.index = Int32(index) }
}

/// A table entry as read: its value and when it expires.
public struct Entry<Value: StateCodable>: Sendable {
    /// The value.
    public var value: Value
    /// When the entry expires if nothing refreshes it.
    public var deadline: Timestamp

    /// An entry.
    @inlinable
    public init(value: Value, deadline: Timestamp) {
        self.value = value
        self.deadline = deadline
    }
}

/// The outcome of an insert-if-absent.
public enum Insertion<Value: StateCodable>: Sendable {
    /// This insert won: the entry is the one given.
    case inserted(Entry<Value>)
    /// Another insert won: the entry is the winner's.
    case present(Entry<Value>)
    /// The table is full; nothing was inserted.
    case full
    /// The entry's second key belongs to another live entry (for a NAT, the
    /// external port is held by another mapping); nothing was inserted.
    case collision
}

/// The outcome of a compare-and-set.
public enum Swap<Value: StateCodable>: Sendable {
    /// The value was the expected one and is now the new one.
    case swapped
    /// The value was another: here it is.
    case conflict(Entry<Value>)
    /// There is no such entry.
    case missing
}

/// Marks the tickets whose operations return no value.
public enum Done: Sendable {}

/// What a stateful node uses to read and change state: it issues operations
/// in one step and reads their results in the next. The runtime sends the
/// operations of a whole batch step to the store as one request.
public struct StateAccess {
    /// The request the operations issued now go into.
    @usableFromInline let outgoing: StateRequest
    /// The request whose results this step reads.
    @usableFromInline let answered: StateRequest?
    /// The runtime's clock reading.
    public let now: Timestamp
    /// Keeps each flow's packets in order through this node, for nodes
    /// whose state changes with every packet (see ``FlowSequencer``).
    public let sequencer: FlowSequencer

    @usableFromInline
    init(outgoing: StateRequest, answered: StateRequest?, now: Timestamp, sequencer: FlowSequencer) {
        self.outgoing = outgoing
        self.answered = answered
        self.now = now
        self.sequencer = sequencer
    }

    /// Whether this step issued any operation.
    @usableFromInline var issued: Int { outgoing.operations.count }

    @inlinable
    func operation(_ kind: StateOperationKind, table: Int, key: Int32 = -1, secondKey: Int32 = -1,
                   value: Int32 = -1, expected: Int32 = -1, deadline: Int64 = 0, delta: Int64 = 0,
                   releaseOnConflict: Bool = false) -> Int {
        outgoing.append(StateOperation(kind: kind, table: Int32(table), key: key, secondKey: secondKey, value: value,
                                       expected: expected, deadline: deadline, delta: delta,
                                       releaseOnConflict: releaseOnConflict))
    }

    // MARK: Issuing

    /// Reads the entry of `key` (either key of a bidirectional entry).
    @inlinable @inline(__always)
    public func read<K, V>(_ table: StateTable<K, V>, _ key: K) -> Ticket<Entry<V>?> {
        Ticket(operation(.read, table: table.id, key: outgoing.store(key)))
    }

    /// Inserts `value` under `key` (and, for a bidirectional table, under its
    /// reverse key too) unless `key` is present, expiring at `deadline`. With
    /// `releaseOnConflict`, losing the race returns the resource `value` would
    /// have held to its pool.
    @inlinable
    public func insertIfAbsent<K, V>(_ table: StateTable<K, V>, _ key: K, _ value: V, deadline: Timestamp,
                                     releaseOnConflict: Bool = false) -> Ticket<Insertion<V>> {
        let second = table.reverseKey.map { outgoing.store($0(key, value)) } ?? -1
        return Ticket(operation(.insertIfAbsent, table: table.id, key: outgoing.store(key), secondKey: second,
                                value: outgoing.store(value), deadline: deadline.nanoseconds,
                                releaseOnConflict: releaseOnConflict))
    }

    /// Reads the entry of the key the table's `keyOf` takes from `packet`;
    /// `nil` when the packet has no such key.
    @inlinable
    public func read<K, V>(_ table: StateTable<K, V>, of packet: Packet) -> Ticket<Entry<V>?>? {
        guard let keyOf = table.keyOf else { preconditionFailure("table \(table.name) declares no keyOf") }
        return keyOf(packet).map { read(table, $0) }
    }

    /// The deadline the table's idle timeout gives `key` and `value` now
    /// (with the refresh slack; see ``StateTable/slack(_:)``).
    @inlinable
    public func deadline<K, V>(_ table: StateTable<K, V>, _ key: K, _ value: V) -> Timestamp {
        guard let idleTimeout = table.idleTimeout else { preconditionFailure("table \(table.name) declares no idleTimeout") }
        return deadline(timeout: idleTimeout(key, value))
    }

    /// The deadline of an entry idle for `timeout` nanoseconds from now,
    /// with the refresh slack (``StateTable/slack(_:)``): for nodes that know
    /// the timeout already.
    @inlinable @inline(__always)
    public func deadline(timeout: Int64) -> Timestamp {
        Timestamp(nanoseconds: now.nanoseconds + timeout + refreshSlack(timeout))
    }

    /// Inserts `value` under `key` unless present, with the deadline the
    /// table's idle timeout gives it.
    @inlinable
    public func insertIfAbsent<K, V>(_ table: StateTable<K, V>, _ key: K, _ value: V,
                                     releaseOnConflict: Bool = false) -> Ticket<Insertion<V>> {
        insertIfAbsent(table, key, value, deadline: deadline(table, key, value), releaseOnConflict: releaseOnConflict)
    }

    /// Keeps an entry that a packet used alive, by the table's idle timeout:
    /// when its value changes (`updated`), a compare-and-set with the new
    /// deadline; otherwise a touch, only when the deadline has come nearer
    /// than the timeout. Returns whether it issued an operation.
    @inlinable
    @discardableResult
    public func refresh<K, V>(_ table: StateTable<K, V>, _ key: K, _ entry: Entry<V>, updated: V? = nil) -> Bool {
        let value = updated ?? entry.value
        guard let idleTimeout = table.idleTimeout else { preconditionFailure("table \(table.name) declares no idleTimeout") }
        return refresh(table, key, entry, updated: updated, timeout: idleTimeout(key, value))
    }

    /// ``refresh(_:_:_:updated:)`` with the idle timeout, in nanoseconds, that
    /// the node already knows (what the table's `idleTimeout` gives the
    /// value it keeps): the same, without calling it.
    @inlinable @inline(__always)
    @discardableResult
    public func refresh<K, V>(_ table: StateTable<K, V>, _ key: K, _ entry: Entry<V>, updated: V? = nil,
                              timeout: Int64) -> Bool {
        let deadline = deadline(timeout: timeout)
        if let updated, updated != entry.value {
            compareAndSet(table, key, expected: entry.value, new: updated, deadline: deadline)
            return true
        }
        guard entry.deadline.nanoseconds < now.nanoseconds + timeout else { return false }
        touch(table, key, deadline: deadline)
        return true
    }

    /// How long the flow cache may keep a decision taken from `entry`, an
    /// entry kept alive by ``refresh(_:_:_:updated:timeout:)`` with
    /// `timeout`: until its next refresh is due (before then, refreshing
    /// writes nothing, so the next packet after it must cross the graph to
    /// write it), and no later than `horizon` nanoseconds from now. For
    /// ``NodeContext/cacheFlow(until:)``.
    @inlinable
    public func cacheLease<V>(_ entry: Entry<V>, timeout: Int64, horizon: Int64) -> Timestamp {
        Timestamp(nanoseconds: min(entry.deadline.nanoseconds - timeout, now.nanoseconds + horizon))
    }

    /// Replaces the value of `key` with `new` if it is `expected`, and sets
    /// its deadline.
    @inlinable @inline(__always)
    public func compareAndSet<K, V>(_ table: StateTable<K, V>, _ key: K, expected: V, new: V,
                                    deadline: Timestamp) -> Ticket<Swap<V>> {
        Ticket(operation(.compareAndSet, table: table.id, key: outgoing.store(key), value: outgoing.store(new),
                         expected: outgoing.store(expected), deadline: deadline.nanoseconds))
    }

    /// Deletes the entry of `key` (under both keys), returning any resource
    /// it holds to its pool.
    @inlinable
    @discardableResult
    public func delete<K, V>(_ table: StateTable<K, V>, _ key: K) -> Ticket<Bool> {
        Ticket(operation(.delete, table: table.id, key: outgoing.store(key)))
    }

    /// Moves the deadline of the entry of `key`.
    @inlinable @inline(__always)
    @discardableResult
    public func touch<K, V>(_ table: StateTable<K, V>, _ key: K, deadline: Timestamp) -> Ticket<Bool> {
        Ticket(operation(.touch, table: table.id, key: outgoing.store(key), deadline: deadline.nanoseconds))
    }

    /// Adds `delta` to the counter under `key` (created at zero, never
    /// expiring), returning the new value.
    @inlinable
    @discardableResult
    public func add<K>(_ table: StateTable<K, UInt64>, _ key: K, _ delta: Int64) -> Ticket<Int64> {
        Ticket(operation(.add, table: table.id, key: outgoing.store(key), delta: delta))
    }

    /// Takes an item from `pool`.
    @inlinable
    public func take<I>(_ pool: StatePool<I>) -> Ticket<I?> {
        Ticket(operation(.take, table: pool.id))
    }

    /// Returns `item` to `pool`.
    @inlinable
    @discardableResult
    public func give<I>(_ pool: StatePool<I>, _ item: I) -> Ticket<Done> {
        Ticket(operation(.give, table: pool.id, key: outgoing.store(item)))
    }

    // MARK: Reading results of the previous step

    @inlinable
    func result<R>(_ ticket: Ticket<R>) -> StateResult {
        guard let answered, Int(ticket.index) < answered.results.count else {
            preconditionFailure("a ticket read in the step that issued it, or in another batch")
        }
        return answered.results[Int(ticket.index)]
    }

    @inlinable
    func entry<V: StateCodable>(_ result: StateResult) -> Entry<V> {
        Entry(value: V(decoding: answered.unsafelyUnwrapped.resultBytes(at: result.value)),
              deadline: Timestamp(nanoseconds: result.deadline))
    }

    /// The entry a read found, or `nil`.
    @inlinable
    public subscript<V>(_ ticket: Ticket<Entry<V>?>) -> Entry<V>? {
        let result = self.result(ticket)
        return result.status == .ok ? entry(result) : nil
    }

    /// What an insert did.
    @inlinable
    public subscript<V>(_ ticket: Ticket<Insertion<V>>) -> Insertion<V> {
        let result = self.result(ticket)
        switch result.status {
        case .ok: return .inserted(entry(result))
        case .conflict: return .present(entry(result))
        case .collision: return .collision
        default: return .full
        }
    }

    /// What a compare-and-set did.
    @inlinable
    public subscript<V>(_ ticket: Ticket<Swap<V>>) -> Swap<V> {
        let result = self.result(ticket)
        switch result.status {
        case .ok: return .swapped
        case .conflict: return .conflict(entry(result))
        default: return .missing
        }
    }

    /// Whether a delete or touch found its entry.
    @inlinable
    public subscript(_ ticket: Ticket<Bool>) -> Bool {
        self.result(ticket).status == .ok
    }

    /// A counter's new value.
    @inlinable
    public subscript(_ ticket: Ticket<Int64>) -> Int64 {
        self.result(ticket).integer
    }

    /// The item taken, or `nil` when the pool was empty.
    @inlinable
    public subscript<I: StateCodable>(_ ticket: Ticket<I?>) -> I? {
        let result = self.result(ticket)
        return result.status == .ok ? I(decoding: answered.unsafelyUnwrapped.resultBytes(at: result.value)) : nil
    }
}
