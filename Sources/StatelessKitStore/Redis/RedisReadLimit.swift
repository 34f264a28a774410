import CHiredisShim
import StatelessKit

/// What one Redis server can answer: a pipelined multi-key read loop (the
/// established-flow path of an NF, with nothing else), to compare an NF's
/// rate on the same server against, in the same run.
public enum RedisReadLimit {
    /// Reads `keys` round and round for `seconds`: one `MGET` of `batch`
    /// keys per command, `inFlight` commands in flight on one connection,
    /// as a worker's session sends them. Returns the keys read and the
    /// seconds it took.
    public static func measure(_ endpoint: RedisEndpoint, keys: [[UInt8]], batch: Int, inFlight: Int,
                               seconds: Double) throws -> (keys: Int, seconds: Double) {
        precondition(!keys.isEmpty && batch > 0 && inFlight > 0, "keys, a batch and room in flight")
        let connection = try RedisConnection(endpoint)
        connection.useArena()
        let arena = connection.arena!
        var writer = RESPWriter()
        defer { writer.deallocate() }
        var cursor = 0
        func send() throws(RedisError) {
            writer.reset()
            writer.command(1 + batch)
            writer.argument(Array("MGET".utf8))
            for _ in 0..<batch {
                writer.argument(keys[cursor])
                cursor = cursor + 1 == keys.count ? 0 : cursor + 1
            }
            try connection.write(writer.bytes, count: writer.count)
        }
        for _ in 0..<inFlight { try send() }
        let start = Timestamp.wallClock().nanoseconds
        let end = start + Int64(seconds * 1e9)
        var answered = 0
        var now = start
        while now < end {
            guard let reply = try connection.nextNode(wait: endpoint.replyTimeout) else {
                throw RedisError(message: "\(endpoint): no reply within \(Int(endpoint.replyTimeout * 1000)) ms")
            }
            let elements = arena.type(reply) == REDIS_REPLY_ARRAY ? arena.elements(reply) : -1
            guard elements == batch else { throw RedisError(message: "\(endpoint): MGET answered something else") }
            answered += 1
            try send()
            if answered & 15 == 0 { now = Timestamp.wallClock().nanoseconds }
        }
        let elapsed = Double(Timestamp.wallClock().nanoseconds - start) / 1e9
        for _ in 0..<inFlight { _ = try connection.nextNode(wait: endpoint.replyTimeout) }
        return (answered * batch, elapsed)
    }
}

extension RedisStore {
    /// The keys under which `namespace` keeps entries of table `table`, up
    /// to `limit` of them: for ``RedisReadLimit`` to read what an NF reads.
    public func recordKeys(namespace: String, table: Int, limit: Int) throws -> [[UInt8]] {
        let connection = try RedisConnection(endpoint)
        let pattern = RedisLayout.prefix(namespace) + RedisLayout.recordPrefix(table: table) + "*"
        var keys: [[UInt8]] = []
        try Self.scan(connection, matching: pattern) { (found: [[UInt8]]) -> Bool in
            keys += found
            return keys.count < limit
        }
        return Array(keys.prefix(limit))
    }

    /// Deletes every key of the deployment `namespace`.
    public func removeDeployment(namespace: String) throws {
        let connection = try RedisConnection(endpoint)
        let pattern = RedisLayout.prefix(namespace) + "*"
        try Self.scan(connection, matching: pattern) { keys in
            if !keys.isEmpty { try Self.check(connection.command([Array("UNLINK".utf8)] + keys), "deleting keys") }
            return true
        }
        lock.lock()
        prepared[namespace] = nil
        lock.unlock()
    }
}
