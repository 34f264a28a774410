import StatelessKit

/// How a deployment's state is laid out in Redis (Documentation/Redis.md
/// has the whole picture).
///
/// Every key of a deployment starts with the hash tag `{namespace}:`, so
/// several NFs share one Redis, and all the keys one operation touches (an
/// entry's two copies, its pool, the table's index and count) fall in one
/// Redis Cluster slot. After the prefix:
///
/// | key | type | holds |
/// |---|---|---|
/// | `schema` | string | the tables and pools, one per line |
/// | `r<table>:<key>` | string | an entry (a record), with a TTL |
/// | `d<table>` | sorted set | each entry's deadline (ms), for the sweep |
/// | `n<table>` | string | live entries, against the capacity |
/// | `p<pool>` | list | free items, a stack |
/// | `l<pool>` | sorted set | items taken and not yet held, by lease deadline |
/// | `i<pool>` | string | set once the pool is filled |
///
/// A record is binary: the deadline (8 bytes, big-endian, sign bit flipped
/// so that byte order is time order), a flags byte (1: has a partner; 2:
/// holds a resource; 4: the first key of its pair), the partner key, the
/// resource (pool number, 2 bytes; item size, 1 byte; item), and the value.
public enum RedisLayout {
    /// The prefix of every key of the deployment `namespace`.
    public static func prefix(_ namespace: String) -> String { "{\(namespace)}:" }

    /// The key of `table`'s entry at `key`, without the deployment prefix.
    static func recordPrefix(table: Int) -> String { "r\(table):" }

    /// A deadline as records carry it.
    @inline(__always)
    static func encodeDeadline(_ nanoseconds: Int64, to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: (UInt64(bitPattern: nanoseconds) ^ (1 << 63)).bigEndian, as: UInt64.self)
    }

    /// A record's deadline.
    @inline(__always)
    static func decodeDeadline(_ pointer: UnsafeRawPointer) -> Int64 {
        Int64(bitPattern: UInt64(bigEndian: pointer.loadUnaligned(as: UInt64.self)) ^ (1 << 63))
    }

    /// Where a record's value starts, or `nil` if the record is malformed.
    @inline(__always)
    static func valueOffset(_ record: UnsafeRawPointer, count: Int, keySize: Int) -> Int? {
        guard count >= 9 else { return nil }
        let flags = record.load(fromByteOffset: 8, as: UInt8.self)
        var offset = 9
        if flags & 1 != 0 { offset += keySize }
        if flags & 2 != 0 {
            guard offset + 3 <= count else { return nil }
            offset += 3 + Int(record.load(fromByteOffset: offset + 2, as: UInt8.self))
        }
        return offset <= count ? offset : nil
    }

    /// A held resource as records carry it: pool (2 bytes), size, item.
    static func encodeResource(_ resource: PoolResource, into bytes: inout [UInt8]) {
        bytes.append(UInt8(resource.pool >> 8))
        bytes.append(UInt8(resource.pool & 0xFF))
        bytes.append(UInt8(resource.count))
        resource.withUnsafeBytes { bytes.append(contentsOf: $0) }
    }

    /// The schema as the `schema` key holds it: what a second instance must
    /// agree with.
    static func describe(_ schema: StateSchema) -> String {
        var lines = ["statelesskit 1"]
        for (id, table) in schema.tables.enumerated() {
            lines.append("table \(id) \(table.name) key=\(table.keySize) value=\(table.valueSize) capacity=\(table.capacity)"
                         + (table.isBidirectional ? " bidirectional" : ""))
        }
        for (id, pool) in schema.pools.enumerated() {
            lines.append("pool \(id) \(pool.name) item=\(pool.itemSize) items=\(pool.items.count)")
        }
        return lines.joined(separator: "\n")
    }

    /// The milliseconds Redis keeps a record whose deadline is `deadline`
    /// at `now`: the time left plus `grace`, so that a sweep, which returns
    /// the entry's resource, normally comes first; 0 for no expiry.
    @inline(__always)
    static func ttl(deadline: Int64, now: Int64, grace: Int64) -> Int64 {
        if deadline == .max { return 0 }
        return max(1, (deadline &- now) / 1_000_000 + grace / 1_000_000)
    }
}
