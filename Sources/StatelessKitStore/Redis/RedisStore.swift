#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import Logging
import StatelessKit

/// The Redis store: state that every NF instance, in any process on any
/// machine, shares through one Redis server.
///
/// Each worker's session has a connection of its own, on which the state
/// operations of a batch step leave as one pipelined write (consecutive
/// reads as one `MGET`, every other operation as a call of one Lua script
/// that Redis runs atomically); several batches are in flight at once.
/// Entries expire on the runtime's clock; a sweep that any session runs
/// returns their resources to their pools, and Redis drops what no sweep
/// reached a grace period later. ``RedisEndpoint`` lists the options, and
/// Documentation/Redis.md the layout and the behaviour when Redis fails.
public final class RedisStore: StateStore, @unchecked Sendable {
    /// Where Redis is.
    public let endpoint: RedisEndpoint
    let logger: Logger
    let lock = ShardLock()
    var prepared: [String: String] = [:]

    /// A store on the Redis server at `endpoint`. Connects once to check
    /// that the server answers and the credentials are right.
    public init(_ endpoint: RedisEndpoint, logger: Logger = Logger(label: "statelesskit.redis")) throws(RedisError) {
        self.endpoint = endpoint
        self.logger = logger
        let connection = try RedisConnection(endpoint)
        switch try connection.command(["PING"]) {
        case .status("PONG"): break
        case .error(let message) where message.hasPrefix("NOAUTH"):
            throw RedisError(message: "\(endpoint) wants a password (redis://:PASSWORD@host or redis://USER:PASSWORD@host): \(message)")
        case let other: throw RedisError(message: "\(endpoint) answered PING with \(other)")
        }
    }

    /// A store on the Redis server at `url` (see ``RedisEndpoint``).
    public convenience init(url: String, logger: Logger = Logger(label: "statelesskit.redis")) throws {
        try self.init(try RedisEndpoint(url: url), logger: logger)
    }

    deinit { lock.destroy() }

    /// Checks that the deployment's schema in Redis is `schema`'s (writing
    /// it if there is none), and fills its pools if nobody has.
    public func prepare(_ schema: StateSchema) throws {
        let description = RedisLayout.describe(schema)
        lock.lock()
        let done = prepared[schema.namespace] == description
        lock.unlock()
        if done { return }
        let connection = try RedisConnection(endpoint)
        let prefix = RedisLayout.prefix(schema.namespace)
        let schemaKey = prefix + "schema"
        _ = try Self.check(connection.command(["SET", schemaKey, description, "NX"]), "writing \(schemaKey)")
        let present = try Self.check(connection.command(["GET", schemaKey]), "reading \(schemaKey)")
        guard present.bytes == Array(description.utf8) else {
            let other = present.bytes.map { String(decoding: $0, as: UTF8.self) } ?? "?"
            throw StateStoreError("deployment \(schema.namespace) exists in \(endpoint) with other tables or pools:\n"
                                  + "there: \(other)\nhere: \(description)")
        }
        let sha = try Self.loadScript(connection)
        var filled = 0
        for (id, pool) in schema.pools.enumerated() {
            let arguments: [[UInt8]] = [Array("EVALSHA".utf8), sha, Array("1".utf8), Array("\(prefix)p\(id)".utf8),
                                        Array("\(RedisScript.Operation.initPool.word)".utf8), Array(prefix.utf8), [UInt8](repeating: 0, count: 8),
                                        Array("\(id)".utf8)] + pool.items
            let reply = try Self.check(connection.command(arguments), "filling pool \(pool.name)")
            if case .integer(let items) = reply { filled += Int(items) }
        }
        if filled > 0 {
            logger.info("filled the deployment's pools", metadata: [
                "deployment": "\(schema.namespace)", "pools": "\(schema.pools.count)", "items": "\(filled)",
                "redis": "\(endpoint)"])
        }
        lock.lock()
        prepared[schema.namespace] = description
        lock.unlock()
    }

    public func makeSession(for schema: StateSchema) throws -> any StateSession {
        try prepare(schema)
        return try RedisSession(store: self, schema: schema)
    }

    /// Loads the state script; returns its SHA.
    static func loadScript(_ connection: RedisConnection) throws -> [UInt8] {
        let reply = try check(connection.command(["SCRIPT", "LOAD", RedisScript.source]), "loading the state script")
        guard let sha = reply.bytes, sha.count == 40 else {
            throw RedisError(message: "\(connection.endpoint): SCRIPT LOAD answered \(reply)")
        }
        return sha
    }

    /// `reply`, unless it is an error, which is thrown saying what was being done.
    @discardableResult
    static func check(_ reply: RedisReply, _ doing: String) throws(RedisError) -> RedisReply {
        if case .error(let message) = reply { throw RedisError(message: "\(doing): \(message)") }
        return reply
    }
}
