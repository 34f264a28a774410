#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CHiredisShim

/// A failure talking to Redis: connecting, sending, or an error reply.
public struct RedisError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, as hiredis or the server said it.
    public var message: String

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
}

/// One blocking connection to a Redis server through hiredis.
///
/// Commands are sent with `redisAppendCommandArgv` (Swift cannot call
/// hiredis's variadic functions), so arguments may hold any bytes.
public final class RedisConnection {
    @usableFromInline let context: UnsafeMutablePointer<redisContext>

    /// Connects to `host`:`port`, giving up after `timeout` seconds.
    public init(host: String, port: Int, timeout: Double = 2) throws(RedisError) {
        let tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        guard let context = redisConnectWithTimeout(host, Int32(port), tv) else {
            throw RedisError(message: "cannot allocate a hiredis context")
        }
        guard context.pointee.err == 0 else {
            let message = Self.errorString(context)
            redisFree(context)
            throw RedisError(message: "connecting to \(host):\(port): \(message)")
        }
        self.context = context
    }

    deinit { redisFree(context) }

    /// Sends one command and waits for its reply.
    public func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        let bytes = arguments.map { Array($0.utf8) }
        let status: Int32 = bytes.withPointers { argv, lengths in
            redisAppendCommandArgv(context, Int32(bytes.count), argv, lengths)
        }
        guard status == REDIS_OK else { throw RedisError(message: Self.errorString(context)) }
        var raw: UnsafeMutableRawPointer? = nil
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisError(message: Self.errorString(context))
        }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

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
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
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
