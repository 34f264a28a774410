#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CHiredisShim

/// A failure talking to Redis: connecting, sending, a timeout, or an error
/// reply.
public struct RedisError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as hiredis or the server said it.
    public var message: String

    /// An error saying `message`.
    public init(message: String) { self.message = message }

    public var description: String { message }
}

/// A reply from Redis.
public enum RedisReply: Equatable, Sendable {
    /// A simple string (`+OK`, `+PONG`).
    case status(String)
    /// A bulk string, as bytes.
    case bulk([UInt8])
    /// An integer.
    case integer(Int64)
    /// An array of replies.
    case array([RedisReply])
    /// A nil bulk string or array.
    case null
    /// An error reply (`-ERR ...`).
    case error(String)

    /// The bytes of a bulk or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): return bytes
        case .status(let text): return Array(text.utf8)
        default: return nil
        }
    }
}

/// One connection to a Redis server through hiredis.
///
/// ``command(_:)-([[UInt8]])`` sends one command and waits for its reply.
/// Sessions pipeline instead: they write RESP themselves and send it in one
/// piece (straight to the socket on a session's connection, whose replies
/// hiredis builds in a reused arena; through hiredis's buffer on the others),
/// then take replies in order. Commands are never built with hiredis's
/// variadic functions, which Swift cannot call, so arguments may hold any
/// bytes.
///
/// Making a connection sets SIGPIPE to be ignored in the process, as
/// hiredis asks of its users: a write to a connection Redis closed is then
/// an error the session handles, not the end of the process.
public final class RedisConnection {
    let context: UnsafeMutablePointer<redisContext>
    /// Where it is connected.
    public let endpoint: RedisEndpoint
    /// Where replies are built once ``useArena()`` was called.
    var arena: ReplyArena? = nil

    /// Connects to `endpoint`, authenticates and selects its database.
    public init(_ endpoint: RedisEndpoint) throws(RedisError) {
        self.endpoint = endpoint
        _ = Self.ignoreBrokenPipes
        let connectLimit = Self.timeval(endpoint.connectTimeout)
        let made: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): made = redisConnectWithTimeout(host, Int32(port), connectLimit)
        case .unix(let path): made = redisConnectUnixWithTimeout(path, connectLimit)
        }
        guard let made else { throw RedisError(message: "cannot allocate a hiredis context") }
        guard made.pointee.err == 0 else {
            let message = Self.errorString(made)
            redisFree(made)
            throw RedisError(message: "connecting to \(endpoint): \(message)")
        }
        context = made
        redisSetTimeout(context, Self.timeval(endpoint.replyTimeout))
        if case .tcp = endpoint.address { redisEnableKeepAlive(context) }
        if let password = endpoint.password {
            let arguments = endpoint.user.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            if case .error(let message) = try command(arguments) {
                throw RedisError(message: "authenticating to \(endpoint)\(endpoint.user.map { " as \($0)" } ?? ""): \(message)")
            }
        }
        if endpoint.database != 0, case .error(let message) = try command(["SELECT", "\(endpoint.database)"]) {
            throw RedisError(message: "selecting database \(endpoint.database) on \(endpoint): \(message)")
        }
    }

    /// Connects to `host`:`port` with the default options and `timeout` for
    /// connecting and replies.
    public convenience init(host: String, port: Int, timeout: Double = 2) throws(RedisError) {
        var endpoint = RedisEndpoint(address: .tcp(host: host, port: port))
        endpoint.connectTimeout = timeout
        endpoint.replyTimeout = timeout
        try self.init(endpoint)
    }

    deinit { redisFree(context) }

    /// Ignores SIGPIPE, once.
    static let ignoreBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// Sends one command and waits for its reply. A reply that is an error
    /// comes back as ``RedisReply/error(_:)``; a broken connection or a
    /// timeout throws.
    public func command(_ arguments: [[UInt8]]) throws(RedisError) -> RedisReply {
        precondition(arena == nil, "a connection whose replies go to an arena reads them with nextNode")
        let status: Int32 = arguments.withPointers { argv, lengths in
            redisAppendCommandArgv(context, Int32(arguments.count), argv, lengths)
        }
        guard status == REDIS_OK else { throw RedisError(message: Self.errorString(context)) }
        var raw: UnsafeMutableRawPointer? = nil
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
        }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Sends one command of text arguments and waits for its reply.
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        try command(arguments.map { Array($0.utf8) })
    }

    // MARK: Pipelining

    /// From now on, replies are built in an arena (no allocation per
    /// reply): read them with ``nextNode(wait:)``, not ``command(_:)``.
    func useArena() {
        // Reads and writes no longer block: a read with nothing to read
        // costs one system call, and a poll only when the caller waits.
        let flags = fcntl(context.pointee.fd, F_GETFL)
        _ = fcntl(context.pointee.fd, F_SETFL, flags | O_NONBLOCK)
        context.pointee.flags &= ~Int32(REDIS_BLOCK)
        let arena = ReplyArena()
        self.arena = arena
        context.pointee.reader.pointee.fn = ReplyArena.functions
        context.pointee.reader.pointee.privdata = Unmanaged.passUnretained(arena).toOpaque()
    }

    /// Writes `count` bytes of RESP straight to the socket (no copy into
    /// hiredis's buffer, no allocation), waiting up to the reply timeout
    /// for room when it is full. For connections that ``useArena()``.
    func write(_ bytes: UnsafeRawPointer, count: Int) throws(RedisError) {
        var written = 0
        while written < count {
            let sent = Glibc.send(context.pointee.fd, bytes + written, count - written, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                written += sent
                continue
            }
            if sent < 0 && errno == EINTR { continue }
            guard sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) else {
                throw RedisError(message: "\(endpoint): \(String(cString: strerror(errno)))")
            }
            var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLOUT), revents: 0)
            guard Glibc.poll(&descriptor, 1, Int32((endpoint.replyTimeout * 1000).rounded(.up))) > 0 else {
                throw RedisError(message: "\(endpoint): could not send within \(Int(endpoint.replyTimeout * 1000)) ms")
            }
        }
    }

    /// The next reply, as a node of the arena (valid until the next call),
    /// waiting up to `wait` seconds; `nil` when none came in time.
    func nextNode(wait: Double) throws(RedisError) -> Int? {
        var raw: UnsafeMutableRawPointer? = nil
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw protocolError() }
        if let raw { return arena!.node(raw) }
        guard redisBufferRead(context) == REDIS_OK else {
            throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
        }
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw protocolError() }
        if let raw { return arena!.node(raw) }
        guard wait > 0 else { return nil }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&descriptor, 1, Int32((wait * 1000).rounded(.up))) > 0 else { return nil }
        guard redisBufferRead(context) == REDIS_OK else {
            throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
        }
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw protocolError() }
        return raw.map { arena!.node($0) }
    }

    /// Queues `count` bytes of RESP (one or more commands) for ``flush()``.
    func send(_ bytes: UnsafeRawPointer, count: Int) throws(RedisError) {
        guard redisAppendFormattedCommand(context, bytes.assumingMemoryBound(to: CChar.self), count) == REDIS_OK else {
            throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
        }
    }

    /// Writes everything queued, waiting up to the reply timeout for room
    /// when the socket is full.
    func flush() throws(RedisError) {
        var done: Int32 = 0
        while true {
            guard redisBufferWrite(context, &done) == REDIS_OK else {
                throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
            }
            if done != 0 { return }
            var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLOUT), revents: 0)
            guard Glibc.poll(&descriptor, 1, Int32((endpoint.replyTimeout * 1000).rounded(.up))) > 0 else {
                throw RedisError(message: "\(endpoint): could not send within \(Int(endpoint.replyTimeout * 1000)) ms")
            }
        }
    }

    /// The next reply (free it with `freeReplyObject`): one already read, or
    /// else, reading what has arrived, waiting up to `wait` seconds for it.
    /// `nil` when none came in time; throws when the connection broke.
    func nextReply(wait: Double) throws(RedisError) -> UnsafeMutablePointer<redisReply>? {
        var raw: UnsafeMutableRawPointer? = nil
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw protocolError() }
        if let raw { return raw.assumingMemoryBound(to: redisReply.self) }
        var descriptor = pollfd(fd: context.pointee.fd, events: Int16(POLLIN), revents: 0)
        let ready = Glibc.poll(&descriptor, 1, Int32((wait * 1000).rounded(.up)))
        guard ready > 0 else { return nil }
        guard redisBufferRead(context) == REDIS_OK else {
            throw RedisError(message: "\(endpoint): \(Self.errorString(context))")
        }
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw protocolError() }
        return raw?.assumingMemoryBound(to: redisReply.self)
    }

    func protocolError() -> RedisError {
        RedisError(message: "\(endpoint): \(Self.errorString(context))")
    }

    // MARK: Conversions

    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let r = reply.pointee
        func text() -> String {
            String(decoding: UnsafeRawBufferPointer(start: r.str, count: Int(r.len)), as: UTF8.self)
        }
        switch r.type {
        case REDIS_REPLY_STATUS: return .status(text())
        case REDIS_REPLY_STRING: return .bulk(Array(UnsafeRawBufferPointer(start: r.str, count: Int(r.len))))
        case REDIS_REPLY_INTEGER: return .integer(r.integer)
        case REDIS_REPLY_ERROR: return .error(text())
        case REDIS_REPLY_ARRAY:
            return .array((0..<Int(r.elements)).map { convert(r.element[$0]!) })
        default: return .null
        }
    }

    static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let text = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            return text.isEmpty ? "the connection failed" : text
        }
    }

    static func timeval(_ seconds: Double) -> Glibc.timeval {
        Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1_000_000))
    }
}

extension Array where Element == [UInt8] {
    /// Calls `body` with C arrays of pointers to and lengths of each element.
    func withPointers<R>(_ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R) -> R {
        let buffers = map { bytes -> UnsafeMutableBufferPointer<CChar> in
            let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: Swift.max(bytes.count, 1))
            for (i, byte) in bytes.enumerated() { buffer[i] = CChar(bitPattern: byte) }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var pointers: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0.baseAddress) }
        let lengths = map(\.count)
        return pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { body(argv.baseAddress!, $0.baseAddress!) }
        }
    }
}
