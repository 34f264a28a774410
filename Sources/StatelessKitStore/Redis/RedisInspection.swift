import StatelessKit

/// A deployment as Redis holds it, read back for tools (`statelessnf
/// inspect`) and tests.
public struct RedisDeployment: Sendable {
    /// A table as the deployment's schema key declares it.
    public struct Table: Sendable {
        /// The table's number.
        public var id: Int
        /// Its name.
        public var name: String
        /// The key's size.
        public var keySize: Int
        /// The value's size.
        public var valueSize: Int
        /// The most entries.
        public var capacity: Int
    }
    /// A pool as declared.
    public struct Pool: Sendable {
        /// The pool's number.
        public var id: Int
        /// Its name.
        public var name: String
        /// Items it started with.
        public var items: Int
    }
    /// The deployment's name.
    public var namespace: String
    /// Its tables.
    public var tables: [Table]
    /// Its pools.
    public var pools: [Pool]
}

/// An entry read back from Redis.
public struct RedisEntry: Sendable {
    /// The key it was found by (the first key of a pair).
    public var key: [UInt8]
    /// The partner key, for a pair.
    public var partner: [UInt8]?
    /// The value.
    public var value: [UInt8]
    /// The deadline, on the runtime's clock (nanoseconds).
    public var deadline: Int64
    /// The held resource's pool and item, if any.
    public var resource: (pool: Int, item: [UInt8])?
}

extension RedisStore: InspectableStore {
    /// The deployments in this Redis database.
    public func deployments() throws -> [RedisDeployment] {
        let connection = try RedisConnection(endpoint)
        var names: [String] = []
        try Self.scan(connection, matching: "{*}:schema") { keys in
            for key in keys {
                let text = String(decoding: key, as: UTF8.self)
                names.append(String(text.dropFirst().dropLast("}:schema".count)))
            }
            return true
        }
        return try names.sorted().compactMap { try deployment(namespace: $0, connection) }
    }

    /// Calls `body` with each batch of the keys matching `pattern` (SCAN),
    /// while it returns `true`.
    static func scan(_ connection: RedisConnection, matching pattern: String, _ body: ([[UInt8]]) throws -> Bool) throws {
        var cursor = "0"
        repeat {
            guard case .array(let parts) = try check(connection.command(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]),
                                                     "listing keys"),
                  parts.count == 2, let next = parts[0].bytes, case .array(let found) = parts[1] else {
                throw RedisError(message: "SCAN gave an unexpected reply")
            }
            cursor = String(decoding: next, as: UTF8.self)
            guard try body(found.compactMap(\.bytes)) else { return }
        } while cursor != "0"
    }

    /// The deployment `namespace` as its schema key declares it, or `nil`.
    public func deployment(namespace: String) throws -> RedisDeployment? {
        try deployment(namespace: namespace, RedisConnection(endpoint))
    }

    func deployment(namespace: String, _ connection: RedisConnection) throws -> RedisDeployment? {
        let reply = try Self.check(connection.command(["GET", RedisLayout.prefix(namespace) + "schema"]), "reading the schema")
        guard let bytes = reply.bytes else { return nil }
        var deployment = RedisDeployment(namespace: namespace, tables: [], pools: [])
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst() {
            let words = line.split(separator: " ")
            guard words.count >= 3, let id = Int(words[1]) else { continue }
            var fields: [String: Int] = [:]
            for word in words.dropFirst(3) {
                let parts = word.split(separator: "=")
                if parts.count == 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
            }
            if words[0] == "table" {
                deployment.tables.append(.init(id: id, name: String(words[2]), keySize: fields["key"] ?? 0,
                                               valueSize: fields["value"] ?? 0, capacity: fields["capacity"] ?? 0))
            } else if words[0] == "pool" {
                deployment.pools.append(.init(id: id, name: String(words[2]), items: fields["items"] ?? 0))
            }
        }
        return deployment
    }

    public func statistics(namespace: String) throws -> StoreStatistics? {
        let connection = try RedisConnection(endpoint)
        guard let deployment = try deployment(namespace: namespace, connection) else { return nil }
        let prefix = RedisLayout.prefix(namespace)
        func integer(_ arguments: [String]) throws -> Int {
            switch try Self.check(connection.command(arguments), arguments.joined(separator: " ")) {
            case .integer(let value): return Int(value)
            case .bulk(let bytes): return Int(String(decoding: bytes, as: UTF8.self)) ?? 0
            default: return 0
            }
        }
        var statistics = StoreStatistics(tables: [:], freeItems: [:], leasedItems: [:])
        for table in deployment.tables {
            statistics.tables[table.name] = .init(entries: try integer(["GET", "\(prefix)n\(table.id)"]))
        }
        for pool in deployment.pools {
            statistics.freeItems[pool.name] = try integer(["LLEN", "\(prefix)p\(pool.id)"])
            statistics.leasedItems[pool.name] = try integer(["ZCARD", "\(prefix)l\(pool.id)"])
        }
        return statistics
    }

    /// Up to `count` entries of a table, soonest deadline first.
    public func entries(namespace: String, table: RedisDeployment.Table, count: Int) throws -> [RedisEntry] {
        let connection = try RedisConnection(endpoint)
        let prefix = RedisLayout.prefix(namespace)
        guard case .array(let members) = try Self.check(
            connection.command(["ZRANGE", "\(prefix)d\(table.id)", "0", "\(max(count, 1) - 1)"]), "sampling \(table.name)") else {
            return []
        }
        var entries: [RedisEntry] = []
        for member in members {
            guard let bytes = member.bytes, bytes.count >= 1 + table.keySize else { continue }
            let key = Array(bytes[1..<(1 + table.keySize)])
            let reply = try Self.check(connection.command([Array("GET".utf8), Array((prefix + "r\(table.id):").utf8) + key]),
                                       "reading an entry of \(table.name)")
            guard let record = reply.bytes, let entry = Self.entry(key: key, record: record, table: table) else { continue }
            entries.append(entry)
        }
        return entries
    }

    static func entry(key: [UInt8], record: [UInt8], table: RedisDeployment.Table) -> RedisEntry? {
        record.withUnsafeBytes { raw -> RedisEntry? in
            guard let base = raw.baseAddress,
                  let offset = RedisLayout.valueOffset(base, count: raw.count, keySize: table.keySize) else { return nil }
            let flags = record[8]
            var position = 9
            var partner: [UInt8]? = nil
            if flags & 1 != 0 {
                partner = Array(record[position..<(position + table.keySize)])
                position += table.keySize
            }
            var resource: (Int, [UInt8])? = nil
            if flags & 2 != 0 {
                let pool = Int(record[position]) << 8 | Int(record[position + 1])
                resource = (pool, Array(record[(position + 3)..<offset]))
            }
            return RedisEntry(key: key, partner: partner, value: Array(record[offset...]),
                              deadline: RedisLayout.decodeDeadline(base), resource: resource)
        }
    }
}
