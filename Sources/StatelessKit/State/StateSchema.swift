/// A state table an NF declares: fixed-size keys and values, how many
/// entries it may hold, whether each entry is found by a second key too (both
/// directions of a flow installed together), the pool resource an entry
/// holds, how long an idle entry lives (per protocol and connection state,
/// from the entry), and how a packet's key is taken from it.
///
/// Tables are declared through a ``StateSchema``, which numbers them; node
/// code holds the table and passes it to ``StateAccess``.
public struct StateTable<Key: StateCodable, Value: StateCodable>: @unchecked Sendable {
    /// The table's number in its schema.
    public let id: Int
    /// The table's name, as stores and tools show it.
    public let name: String
    /// The most entries the table may hold; an insert beyond it fails.
    public let capacity: Int
    /// The second key of an entry, for tables whose entries are found from
    /// both directions of a flow; `nil` for one-key tables.
    public let reverseKey: (@Sendable (Key, Value) -> Key)?
    /// The pool resource an entry holds, which goes back to its pool when the
    /// entry is deleted or expires.
    public let heldResource: (@Sendable (Key, Value) -> PoolResource?)?
    /// How long an entry lives idle, in nanoseconds, from its key and value
    /// (per protocol, per connection state); `nil` when each write gives its
    /// deadline itself.
    public let idleTimeout: (@Sendable (Key, Value) -> Int64)?
    /// How a packet's key for this table is taken from it; `nil` when node
    /// code computes keys itself.
    public let keyOf: (@Sendable (Packet) -> Key?)?

    /// How much longer than its idle timeout an entry may live: a refresh
    /// sets the deadline this far beyond the timeout, and the next refresh is
    /// due only once the deadline is nearer than the timeout. An entry so
    /// lives at least its timeout after its last use and at most 1/32 longer
    /// (at least 1 s), and a busy flow costs one store write per 1/32 of its
    /// timeout instead of one per packet.
    @inlinable
    public static func slack(_ timeout: Int64) -> Int64 { refreshSlack(timeout) }
}

/// ``StateTable/slack(_:)``, the same for every table (no generic type to
/// name on the packet path).
@inlinable @inline(__always)
func refreshSlack(_ timeout: Int64) -> Int64 { max(1_000_000_000, timeout / 32) }

/// A pooled resource held by a table entry: an item of a pool, encoded
/// (up to 32 bytes, held inline: making one allocates nothing).
public struct PoolResource: Sendable, Equatable {
    /// The pool's number in its schema.
    public let pool: Int
    /// The item's encoded size.
    public let count: Int
    @usableFromInline var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)

    /// The resource `item` of `pool`.
    @inlinable
    public init<Item>(_ pool: StatePool<Item>, _ item: Item) {
        precondition(Item.encodedSize <= 32, "a pool item encodes in at most 32 bytes")
        self.pool = pool.id
        count = Item.encodedSize
        withUnsafeMutableBytes(of: &storage) { item.encode(to: $0.baseAddress!) }
    }

    /// Calls `body` with the item's encoding.
    @inlinable
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body(UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
    }

    /// The item's encoding.
    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.pool == rhs.pool && lhs.bytes == rhs.bytes
    }
}

/// A pool of resources (the free external ports of a NAT), from which items
/// are taken and to which they return, atomically in the store.
public struct StatePool<Item: StateCodable>: Sendable {
    /// The pool's number in its schema.
    public let id: Int
    /// The pool's name.
    public let name: String
    /// The items the pool starts with.
    public let items: [Item]
}

/// The tables and pools of one NF deployment. A store is set up from it, and
/// a deployment's keys are named after `namespace`, so that several NFs share
/// one store.
public final class StateSchema: @unchecked Sendable {
    /// The deployment's name: what keys are prefixed with.
    public let namespace: String
    /// The tables, by number.
    public private(set) var tables: [TableDescription] = []
    /// The pools, by number.
    public private(set) var pools: [PoolDescription] = []

    /// An empty schema for the deployment `namespace`.
    public init(namespace: String) {
        self.namespace = namespace
    }

    /// Declares a table.
    public func table<Key: StateCodable, Value: StateCodable>(
        _ name: String, key: Key.Type, value: Value.Type, capacity: Int,
        reverseKey: (@Sendable (Key, Value) -> Key)? = nil,
        heldResource: (@Sendable (Key, Value) -> PoolResource?)? = nil,
        idleTimeout: (@Sendable (Key, Value) -> Int64)? = nil,
        keyOf: (@Sendable (Packet) -> Key?)? = nil
    ) -> StateTable<Key, Value> {
        precondition(capacity > 0, "table \(name): the capacity must be positive")
        precondition(!tables.contains { $0.name == name }, "table \(name) declared twice")
        let table = StateTable(id: tables.count, name: name, capacity: capacity, reverseKey: reverseKey,
                               heldResource: heldResource, idleTimeout: idleTimeout, keyOf: keyOf)
        tables.append(TableDescription(
            name: name, keySize: Key.encodedSize, valueSize: Value.encodedSize, capacity: capacity,
            isBidirectional: reverseKey != nil,
            reverseKey: reverseKey.map { derive in
                { @Sendable key, value in Self.encode(derive(Key(decoding: key), Value(decoding: value))) }
            },
            heldResource: heldResource.map { derive in
                { @Sendable key, value in derive(Key(decoding: key), Value(decoding: value)) }
            }))
        return table
    }

    /// Declares a pool holding `items`.
    public func pool<Item: StateCodable>(_ name: String, items: [Item]) -> StatePool<Item> {
        precondition(!pools.contains { $0.name == name }, "pool \(name) declared twice")
        let pool = StatePool(id: pools.count, name: name, items: items)
        pools.append(PoolDescription(name: name, itemSize: Item.encodedSize, items: items.map(Self.encode)))
        return pool
    }

    static func encode<T: StateCodable>(_ value: T) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: T.encodedSize)
        bytes.withUnsafeMutableBytes { value.encode(to: $0.baseAddress!) }
        return bytes
    }
}

/// A table as a store sees it: sizes and the derivations it needs, on bytes.
public struct TableDescription: Sendable {
    /// The table's name.
    public let name: String
    /// The key's encoded size.
    public let keySize: Int
    /// The value's encoded size.
    public let valueSize: Int
    /// The most entries.
    public let capacity: Int
    /// Whether each entry has a second key.
    public let isBidirectional: Bool
    /// The second key from the first key and the value.
    public let reverseKey: (@Sendable (UnsafeRawPointer, UnsafeRawPointer) -> [UInt8])?
    /// The resource an entry holds, from its key and value.
    public let heldResource: (@Sendable (UnsafeRawPointer, UnsafeRawPointer) -> PoolResource?)?
}

/// A pool as a store sees it.
public struct PoolDescription: Sendable {
    /// The pool's name.
    public let name: String
    /// The item's encoded size.
    public let itemSize: Int
    /// The items the pool starts with, encoded.
    public let items: [[UInt8]]
}
