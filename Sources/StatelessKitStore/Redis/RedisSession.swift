#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CHiredisShim
import DequeModule
import Logging
import StatelessKit

/// A worker's session on the Redis store: one connection, on which each
/// request leaves as one pipelined write and its replies are matched back
/// in order, several requests in flight.
///
/// When Redis is lost (a broken connection, or no reply within the reply
/// timeout), the requests in flight that only read or move deadlines wait
/// to be sent again; the others fail (their packets are dropped and counted
/// as `stateUnavailable`; what they wrote in Redis stays consistent), and
/// the session reconnects with a backoff that doubles from
/// 10 ms to the endpoint's maximum. For the endpoint's `hold` after the
/// loss, new requests wait for Redis (the runner stops admitting batches
/// once all its slots wait, so nothing queues without bound); after that
/// they fail at once, until Redis is back.
final class RedisSession: StateSession {
    let store: RedisStore
    let endpoint: RedisEndpoint
    let logger: Logger
    let tables: [TableDescription]
    let pools: [PoolDescription]
    let namespace: String
    /// `{namespace}:`
    let prefix: [UInt8]
    /// `{namespace}:r<table>:`, per table.
    let recordPrefixes: [[UInt8]]
    /// `{namespace}:p<pool>`, per pool.
    let poolKeys: [[UInt8]]
    let tableNumbers: [[UInt8]]
    let keySizes: [[UInt8]]
    let capacities: [[UInt8]]
    let poolNumbers: [[UInt8]]
    /// `{namespace}:d<table>` and `{namespace}:l<pool>`: what a sweep walks.
    let deadlineIndexKeys: [[UInt8]]
    let leaseKeys: [[UInt8]]
    /// Key and value sizes per table, for the packet path (reading a
    /// `TableDescription` copies its name and closures).
    let keyLengths: UnsafeMutableBufferPointer<Int>
    let valueLengths: UnsafeMutableBufferPointer<Int>
    let grace: Int64
    let lease: Int64
    let sweepInterval: Int64

    @exclusivity(unchecked) var connection: RedisConnection?
    /// A second connection for sweeps and for rerunning an operation whose
    /// script Redis had forgotten; opened when first needed.
    var control: RedisConnection?
    @exclusivity(unchecked) var sha: [UInt8]
    @exclusivity(unchecked) var writer = RESPWriter()
    @exclusivity(unchecked) var resource: [UInt8] = []
    /// Requests sent, oldest first, and how far the oldest one's replies came.
    @exclusivity(unchecked) var pending = Deque<StateRequest>()
    @exclusivity(unchecked) var cursor = 0
    /// Requests waiting for Redis to come back.
    var held: [StateRequest] = []
    let answered = AnsweredRequests()
    /// When Redis was lost (monotonic seconds), if it is.
    var lostAt: Double? = nil
    var nextAttempt = 0.0
    var backoff = 0.01
    var lastFailure = ""
    var lastSweep = Int64.min
    @exclusivity(unchecked) var counts = Statistics()

    struct Statistics {
        var disconnects = 0
        var reconnects = 0
        var failedRequests = 0
        var heldRequests = 0
        var scriptReloads = 0
        var sweepFailures = 0
    }

    init(store: RedisStore, schema: StateSchema) throws {
        self.store = store
        endpoint = store.endpoint
        logger = store.logger
        tables = schema.tables
        pools = schema.pools
        namespace = schema.namespace
        let prefix = RedisLayout.prefix(schema.namespace)
        self.prefix = Array(prefix.utf8)
        recordPrefixes = schema.tables.indices.map { Array((prefix + RedisLayout.recordPrefix(table: $0)).utf8) }
        poolKeys = schema.pools.indices.map { Array("\(prefix)p\($0)".utf8) }
        tableNumbers = schema.tables.indices.map { Array("\($0)".utf8) }
        keySizes = schema.tables.map { Array("\($0.keySize)".utf8) }
        capacities = schema.tables.map { Array("\($0.capacity)".utf8) }
        poolNumbers = schema.pools.indices.map { Array("\($0)".utf8) }
        deadlineIndexKeys = schema.tables.indices.map { Array("\(prefix)d\($0)".utf8) }
        leaseKeys = schema.pools.indices.map { Array("\(prefix)l\($0)".utf8) }
        keyLengths = .allocate(capacity: max(schema.tables.count, 1))
        valueLengths = .allocate(capacity: max(schema.tables.count, 1))
        for (i, table) in schema.tables.enumerated() {
            keyLengths[i] = table.keySize
            valueLengths[i] = table.valueSize
        }
        grace = Int64(endpoint.grace * 1e9)
        lease = Int64(endpoint.lease * 1e9)
        sweepInterval = Int64(endpoint.sweepInterval * 1e9)
        let connection = try RedisConnection(endpoint)
        sha = try RedisStore.loadScript(connection)
        connection.useArena()
        self.connection = connection
    }

    deinit {
        writer.deallocate()
        keyLengths.deallocate()
        valueLengths.deallocate()
    }

    var statistics: [String: Int] {
        ["store.disconnects": counts.disconnects, "store.reconnects": counts.reconnects,
         "store.failedRequests": counts.failedRequests, "store.heldRequests": counts.heldRequests,
         "store.scriptReloads": counts.scriptReloads, "store.sweepFailures": counts.sweepFailures]
    }

    // MARK: Sending

    func submit(_ request: StateRequest) {
        request.prepareResults()
        if request.operations.isEmpty {
            answered.append(request)
            return
        }
        if connection == nil { reconnectIfDue() }
        guard let connection else {
            if let lostAt, Self.clock() - lostAt < endpoint.hold {
                counts.heldRequests += 1
                held.append(request)
            } else {
                fail(request, lastFailure)
            }
            return
        }
        writer.reset()
        encode(request)
        pending.append(request)
        do {
            // Written at once, so that Redis works on it while this worker
            // goes on with other batches.
            try connection.write(writer.bytes, count: writer.count)
        } catch {
            lost(error.message)
        }
    }

    /// Writes `request`'s commands: each run of reads as one MGET, every
    /// other operation as a call of the script.
    func encode(_ request: StateRequest) {
        request.operations.withUnsafeBufferPointer { operations in
            var index = 0
            while index < operations.count {
                if operations[index].kind == .read {
                    var end = index + 1
                    while end < operations.count && operations[end].kind == .read { end += 1 }
                    writer.command(1 + end - index)
                    writer.argument(Self.mget)
                    for op in operations[index..<end] {
                        writer.argument(recordPrefixes[Int(op.table)], request.bytes(at: op.key),
                                        keyLengths[Int(op.table)])
                    }
                    index = end
                } else {
                    encodeScript(operations[index], request)
                    index += 1
                }
            }
        }
    }

    /// Starts a call of the script: `EVALSHA sha 1 KEY OP PREFIX NOW`, then
    /// `arguments` more. `key` writes the key the operation is about.
    func beginScript(_ arguments: Int, _ operation: RedisScript.Operation, now: Int64, key: () -> Void) {
        writer.command(4 + 3 + arguments)
        writer.argument(Self.evalsha)
        writer.argument(sha)
        writer.argument(Self.one)
        key()
        writer.argument(operation.word)
        writer.argument(prefix)
        writer.deadline(now)
    }

    func encodeScript(_ op: StateOperation, _ request: StateRequest) {
        let now = request.now.nanoseconds
        let table = Int(op.table)
        switch op.kind {
        case .take:
            beginScript(2, .take, now: now) { writer.argument(poolKeys[table]) }
            writer.argument(poolNumbers[table])
            writer.argument(Int((now &+ lease) / 1_000_000))
            return
        case .give:
            beginScript(2, .give, now: now) { writer.argument(poolKeys[table]) }
            writer.argument(poolNumbers[table])
            writer.argument(request.bytes(at: op.key), pools[table].itemSize)
            return
        default:
            break
        }
        let keySize = keyLengths[table], valueSize = valueLengths[table]
        let key = request.bytes(at: op.key)
        // The table's number and key size, then the operation's own arguments.
        func begin(_ arguments: Int, _ operation: RedisScript.Operation) {
            beginScript(arguments, operation, now: now) { writer.argument(recordPrefixes[table], key, keySize) }
            writer.argument(tableNumbers[table])
            writer.argument(keySizes[table])
        }
        // A new deadline: as records carry it, the TTL, the index's score.
        func expiry(_ deadline: Int64) {
            writer.deadline(deadline)
            writer.argument(Int(RedisLayout.ttl(deadline: deadline, now: now, grace: grace)))
            writer.argument(Int(deadline / 1_000_000))
        }
        switch op.kind {
        case .insertIfAbsent:
            begin(11, .insert)
            writer.argument(capacities[table])
            writer.argument(key, keySize)
            if op.secondKey >= 0 {
                writer.argument(request.bytes(at: op.secondKey), keySize)
            } else {
                writer.argument([])
            }
            let value = request.bytes(at: op.value)
            writer.argument(value, valueSize)
            resource.removeAll(keepingCapacity: true)
            if let held = tables[table].heldResource?(key, value) { RedisLayout.encodeResource(held, into: &resource) }
            writer.argument(resource)
            expiry(op.deadline)
            writer.argument(op.releaseOnConflict ? Self.one : Self.zero)
        case .compareAndSet:
            begin(8, .compareAndSet)
            writer.argument(key, keySize)
            writer.argument(request.bytes(at: op.expected), valueSize)
            writer.argument(request.bytes(at: op.value), valueSize)
            expiry(op.deadline)
        case .touch:
            begin(6, .touch)
            writer.argument(key, keySize)
            expiry(op.deadline)
        case .delete:
            begin(3, .delete)
            writer.argument(key, keySize)
        case .add:
            begin(5, .add)
            writer.argument(capacities[table])
            writer.argument(key, keySize)
            writer.argument(Int(op.delta))
        case .read, .take, .give:
            preconditionFailure("handled above")
        }
    }

    static let mget = Array("MGET".utf8)
    static let evalsha = Array("EVALSHA".utf8)
    static let one = Array("1".utf8)
    static let zero = Array("0".utf8)

    // MARK: Receiving

    @discardableResult
    func poll(wait: Bool, _ handle: (StateRequest) -> Void) -> Int {
        receive(wait: wait)
        return answered.handOver(handle)
    }

    /// Reads what Redis has answered; with `wait`, until at least one
    /// request is answered, the reply timeout passes (Redis is then deemed
    /// lost), or held requests give up.
    func receive(wait: Bool) {
        while true {
            if let connection, !pending.isEmpty {
                let blocking = wait && answered.isEmpty
                do {
                    guard let node = try connection.nextNode(wait: blocking ? endpoint.replyTimeout : 0) else {
                        if blocking {
                            lost("no reply within \(Int(endpoint.replyTimeout * 1000)) ms")
                            continue
                        }
                        return
                    }
                    take(node, connection.arena.unsafelyUnwrapped)
                } catch {
                    lost(error.message)
                }
                continue
            }
            guard connection == nil, !held.isEmpty else { return }
            // Redis is lost and requests wait for it.
            let now = Self.clock()
            if let lostAt, now - lostAt >= endpoint.hold {
                let waiting = held
                held.removeAll()
                for request in waiting { fail(request, lastFailure) }
                return
            }
            reconnectIfDue()
            if connection == nil {
                guard wait && answered.isEmpty else { return }
                let until = min(nextAttempt, (lostAt ?? now) + endpoint.hold)
                if until > now { usleep(useconds_t(min((until - now) * 1e6, 1e6))) }
            }
        }
    }

    /// Takes one reply for the oldest pending request.
    func take(_ reply: Int, _ arena: ReplyArena) {
        guard let request = pending.first else { return }
        let count = request.operations.count
        if request.operations[cursor].kind == .read {
            var end = cursor + 1
            while end < count && request.operations[end].kind == .read { end += 1 }
            if arena.type(reply) == REDIS_REPLY_ARRAY && arena.elements(reply) == end - cursor {
                for i in cursor..<end { readResult(i, arena.element(reply, i - cursor), arena, request) }
            } else {
                request.failure = request.failure ?? "Redis answered MGET with \(Self.describe(arena.reply(reply)))"
            }
            cursor = end
        } else {
            scriptResult(cursor, reply, arena, request)
            cursor += 1
        }
        if cursor == count {
            pending.removeFirst()
            cursor = 0
            if let failure = request.failure { fail(request, failure) } else { answered.append(request) }
        }
    }

    @inline(__always)
    func readResult(_ index: Int, _ element: Int, _ arena: ReplyArena, _ request: StateRequest) {
        let type = arena.type(element)
        if type == REDIS_REPLY_NIL { return }
        let table = Int(request.operations[index].table)
        let valueSize = valueLengths[table]
        let (record, count) = arena.string(element)
        guard type == REDIS_REPLY_STRING,
              let offset = RedisLayout.valueOffset(record, count: count, keySize: keyLengths[table]),
              count - offset == valueSize else {
            request.failure = request.failure
                ?? "a malformed record in table \(tables[table].name): \(Self.describe(arena.reply(element)))"
            return
        }
        let deadline = RedisLayout.decodeDeadline(record)
        guard deadline >= request.now.nanoseconds else { return }
        request.results[index] = StateResult(status: .ok, value: request.storeResult(record + offset, count: valueSize),
                                             deadline: deadline)
    }

    func scriptResult(_ index: Int, _ reply: Int, _ arena: ReplyArena, _ request: StateRequest) {
        if arena.type(reply) == REDIS_REPLY_ERROR && arena.text(reply).hasPrefix("NOSCRIPT") {
            // Redis restarted or its scripts were flushed: the operation did
            // not run. Load the script again and run the operation once more.
            counts.scriptReloads += 1
            logger.notice("Redis lost the state script; loading it again", metadata: ["redis": "\(endpoint)"])
            do {
                scriptResult(index, try runOnControl(index, request), request)
            } catch {
                request.failure = request.failure ?? error.description
            }
            return
        }
        guard arena.type(reply) == REDIS_REPLY_ARRAY, arena.elements(reply) == 4,
              arena.type(arena.element(reply, 0)) == REDIS_REPLY_INTEGER,
              let status = StateStatus(rawValue: UInt8(clamping: arena.integer(arena.element(reply, 0)))) else {
            scriptResult(index, arena.reply(reply), request)
            return
        }
        var result = StateResult(status: status)
        let value = arena.element(reply, 1)
        if arena.type(value) == REDIS_REPLY_STRING {
            let (bytes, count) = arena.string(value)
            result.value = request.storeResult(bytes, count: count)
        }
        let deadline = arena.element(reply, 2)
        if arena.type(deadline) == REDIS_REPLY_STRING, case let (bytes, 8) = arena.string(deadline) {
            result.deadline = RedisLayout.decodeDeadline(bytes)
        }
        let integer = arena.element(reply, 3)
        if arena.type(integer) == REDIS_REPLY_INTEGER { result.integer = arena.integer(integer) }
        request.results[index] = result
    }

    /// A script's reply as a value (from the control connection, or one
    /// of an unexpected shape).
    func scriptResult(_ index: Int, _ reply: RedisReply, _ request: StateRequest) {
        guard case .array(let parts) = reply, parts.count == 4, case .integer(let code) = parts[0],
              let status = StateStatus(rawValue: UInt8(clamping: code)) else {
            request.failure = request.failure ?? "Redis answered \(request.operations[index].kind) with \(Self.describe(reply))"
            return
        }
        var result = StateResult(status: status)
        if case .bulk(let value) = parts[1] {
            result.value = value.withUnsafeBytes { request.storeResult($0.baseAddress!, count: $0.count) }
        }
        if case .bulk(let deadline) = parts[2], deadline.count == 8 {
            result.deadline = deadline.withUnsafeBytes { RedisLayout.decodeDeadline($0.baseAddress!) }
        }
        if case .integer(let integer) = parts[3] { result.integer = integer }
        request.results[index] = result
    }

    /// Loads the script and runs operation `index` of `request` on the
    /// control connection; returns the reply.
    func runOnControl(_ index: Int, _ request: StateRequest) throws(RedisError) -> RedisReply {
        let control = try controlConnection()
        sha = try Self.rethrow { try RedisStore.loadScript(control) }
        writer.reset()
        encodeScript(request.operations[index], request)
        try control.send(writer.bytes, count: writer.count)
        try control.flush()
        guard let reply = try control.nextReply(wait: endpoint.replyTimeout) else {
            self.control = nil
            throw RedisError(message: "\(endpoint): no reply within \(Int(endpoint.replyTimeout * 1000)) ms")
        }
        defer { freeReplyObject(reply) }
        return RedisConnection.convert(reply)
    }

    func controlConnection() throws(RedisError) -> RedisConnection {
        if let control { return control }
        let made = try RedisConnection(endpoint)
        control = made
        return made
    }

    // MARK: Losing and finding Redis

    func fail(_ request: StateRequest, _ reason: String) {
        counts.failedRequests += 1
        request.fail(reason)
        answered.append(request)
    }

    /// Redis is lost: fails the requests in flight and plans a reconnection.
    func lost(_ reason: String) {
        connection = nil
        cursor = 0
        let now = Self.clock()
        if lostAt == nil {
            lostAt = now
            counts.disconnects += 1
            backoff = 0.01
            logger.warning("lost Redis; reconnecting", metadata: [
                "redis": "\(endpoint)", "reason": "\(reason)", "inFlight": "\(pending.count)",
                "hold": "\(Int(endpoint.hold * 1000)) ms"])
        }
        lastFailure = "Redis at \(endpoint) is unavailable: \(reason)"
        nextAttempt = now + backoff
        // Requests in flight may or may not have run. Those that only read
        // or move deadlines can run again, so they wait with the others;
        // the rest fail.
        var again: [StateRequest] = []
        while let request = pending.popFirst() {
            if endpoint.hold > 0 && request.operations.allSatisfy({ $0.kind == .read || $0.kind == .touch }) {
                request.clearResults()
                counts.heldRequests += 1
                again.append(request)
            } else {
                fail(request, lastFailure + " (with the request in flight)")
            }
        }
        held.insert(contentsOf: again, at: 0)
    }

    /// Tries to connect again if the backoff has passed.
    func reconnectIfDue() {
        let now = Self.clock()
        guard now >= nextAttempt else { return }
        do {
            let fresh = try RedisConnection(endpoint)
            sha = try Self.rethrow { try RedisStore.loadScript(fresh) }
            fresh.useArena()
            connection = fresh
            counts.reconnects += 1
            logger.notice("Redis is back", metadata: [
                "redis": "\(endpoint)", "after": "\(Int((now - (lostAt ?? now)) * 1000)) ms"])
            lostAt = nil
            let waiting = held
            held.removeAll()
            for request in waiting { submit(request) }
        } catch {
            lastFailure = "Redis at \(endpoint) is unavailable: \(error.message)"
            backoff = min(backoff * 2, endpoint.maximumBackoff)
            nextAttempt = now + backoff
            logger.debug("reconnecting to Redis failed", metadata: [
                "redis": "\(endpoint)", "reason": "\(error.message)", "retryIn": "\(Int(backoff * 1000)) ms"])
        }
    }

    // MARK: Expiry

    /// Every `sweep` interval of the runtime's clock, removes up to `budget`
    /// expired entries per table (returning their resources) and returns
    /// pool items whose lease ran out, on the control connection.
    func expire(now: Timestamp, budget: Int) -> Int {
        let clock = now.nanoseconds
        guard lastSweep == .min || clock &- lastSweep >= sweepInterval || clock < lastSweep else { return 0 }
        lastSweep = clock
        do {
            // Lua numbers are doubles: keep the count an exact integer.
            return try sweep(now: clock, budget: min(budget, 1 << 20))
        } catch {
            counts.sweepFailures += 1
            control = nil
            logger.warning("sweeping expired entries failed", metadata: ["redis": "\(endpoint)", "reason": "\(error)"])
            return 0
        }
    }

    func sweep(now: Int64, budget: Int) throws -> Int {
        let control = try controlConnection()
        let score = Int(now / 1_000_000)
        for attempt in 0..<2 {
            writer.reset()
            for table in tables.indices {
                beginScript(4, .sweep, now: now) { writer.argument(deadlineIndexKeys[table]) }
                writer.argument(tableNumbers[table])
                writer.argument(keySizes[table])
                writer.argument(budget)
                writer.argument(score)
            }
            for pool in pools.indices {
                beginScript(3, .reclaim, now: now) { writer.argument(leaseKeys[pool]) }
                writer.argument(poolNumbers[pool])
                writer.argument(budget)
                writer.argument(score)
            }
            try control.send(writer.bytes, count: writer.count)
            try control.flush()
            var removed = 0
            var forgotten = false
            var failure: String? = nil
            for index in 0..<(tables.count + pools.count) {
                guard let reply = try control.nextReply(wait: endpoint.replyTimeout) else {
                    throw RedisError(message: "no reply within \(Int(endpoint.replyTimeout * 1000)) ms")
                }
                defer { freeReplyObject(reply) }
                switch reply.pointee.type {
                case REDIS_REPLY_INTEGER:
                    if index < tables.count { removed += Int(reply.pointee.integer) }
                case REDIS_REPLY_ERROR where Self.text(reply).hasPrefix("NOSCRIPT"):
                    forgotten = true
                default:
                    failure = Self.describe(reply)
                }
            }
            if let failure { throw RedisError(message: failure) }
            guard forgotten && attempt == 0 else { return removed }
            counts.scriptReloads += 1
            sha = try RedisStore.loadScript(control)
        }
        return 0
    }

    // MARK: Helpers

    /// Monotonic seconds.
    static func clock() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    static func text(_ reply: UnsafeMutablePointer<redisReply>) -> String {
        guard let str = reply.pointee.str else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: str, count: reply.pointee.len), as: UTF8.self)
    }

    static func describe(_ reply: UnsafeMutablePointer<redisReply>) -> String {
        describe(RedisConnection.convert(reply))
    }

    static func describe(_ reply: RedisReply) -> String {
        switch reply {
        case .error(let message): return "the error \(message)"
        case let other: return "the unexpected reply \(other)"
        }
    }

    static func rethrow<T>(_ body: () throws -> T) throws(RedisError) -> T {
        do { return try body() } catch let error as RedisError { throw error } catch {
            throw RedisError(message: "\(error)")
        }
    }
}
