/// Where a Redis server is and how to talk to it, from a URL:
///
/// - `redis://[user:password@]host[:port][/db][?options]`
/// - `redis+unix://[user:password@]/path/to/socket[?db=N&options]`
///
/// A password alone (`redis://:secret@host`) authenticates as the default
/// user; `user:password` as an ACL user. Characters of the user and
/// password may be percent-encoded. Options (durations in `ms` or `s`; a
/// bare number is milliseconds):
///
/// | option | default | |
/// |---|---|---|
/// | `connect_timeout` | 1s | giving up on a connection attempt |
/// | `timeout` | 500ms | waiting for a reply before the connection is deemed lost |
/// | `hold` | 200ms | how long after losing Redis requests wait for it before they fail |
/// | `backoff` | 1s | the longest wait between reconnection attempts (they start at 10 ms and double) |
/// | `sweep` | 100ms | how often (on the runtime's clock) a session sweeps expired entries |
/// | `grace` | 30s | how long after its deadline Redis keeps an entry that no sweep removed |
/// | `lease` | 30s | how long a taken pool item waits for the entry that will hold it |
public struct RedisEndpoint: Sendable, Equatable, CustomStringConvertible {
    /// A TCP host and port, or a unix socket.
    public enum Address: Sendable, Equatable {
        /// A host name or address, and a port.
        case tcp(host: String, port: Int)
        /// A unix socket's path.
        case unix(path: String)
    }

    /// Where the server listens.
    public var address: Address
    /// The ACL user, if any.
    public var user: String?
    /// The password, if any.
    public var password: String?
    /// The logical database.
    public var database = 0
    /// Seconds before a connection attempt fails.
    public var connectTimeout = 1.0
    /// Seconds a reply may take before the connection is deemed lost.
    public var replyTimeout = 0.5
    /// Seconds that requests wait for a lost Redis before they fail.
    public var hold = 0.2
    /// The longest wait between reconnection attempts, in seconds.
    public var maximumBackoff = 1.0
    /// How often a session sweeps expired entries, in seconds of the runtime's clock.
    public var sweepInterval = 0.1
    /// Seconds Redis keeps an entry past its deadline if no sweep removed it.
    public var grace = 30.0
    /// Seconds a taken pool item may wait for its entry before it goes back.
    public var lease = 30.0

    /// An endpoint at `address`, with the defaults.
    public init(address: Address) {
        self.address = address
    }

    /// Parses a `redis://` or `redis+unix://` URL; an error names the part
    /// that is wrong.
    public init(url: String) throws(RedisURLError) {
        var rest: Substring
        let isUnix: Bool
        if url.hasPrefix("redis://") {
            rest = url.dropFirst("redis://".count)
            isUnix = false
        } else if url.hasPrefix("redis+unix://") {
            rest = url.dropFirst("redis+unix://".count)
            isUnix = true
        } else {
            throw RedisURLError(url, "the scheme must be redis:// or redis+unix://")
        }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        var user: String? = nil
        var password: String? = nil
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                let name = credentials[..<colon]
                user = name.isEmpty ? nil : try Self.decode(name, url, "user")
                password = try Self.decode(credentials[credentials.index(after: colon)...], url, "password")
            } else {
                password = try Self.decode(credentials, url, "password")
            }
        }
        var database = 0
        if isUnix {
            guard rest.hasPrefix("/"), rest.count > 1 else {
                throw RedisURLError(url, "a redis+unix URL needs the socket's absolute path")
            }
            address = .unix(path: String(rest))
        } else {
            var hostPort = rest
            if let slash = rest.firstIndex(of: "/") {
                hostPort = rest[..<slash]
                let db = rest[rest.index(after: slash)...]
                if !db.isEmpty {
                    guard let number = Int(db), number >= 0 else {
                        throw RedisURLError(url, "the database '\(db)' is not a number")
                    }
                    database = number
                }
            }
            var host = hostPort
            var port = 6379
            if hostPort.hasPrefix("[") {
                // An IPv6 address: [::1]:6379.
                guard let close = hostPort.firstIndex(of: "]") else {
                    throw RedisURLError(url, "the IPv6 host lacks its closing ']'")
                }
                host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
                let after = hostPort[hostPort.index(after: close)...]
                if after.hasPrefix(":") { port = try Self.port(after.dropFirst(), url) }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = hostPort[..<colon]
                port = try Self.port(hostPort[hostPort.index(after: colon)...], url)
            }
            guard !host.isEmpty else { throw RedisURLError(url, "the host is missing") }
            address = .tcp(host: String(host), port: port)
        }
        self.user = user
        self.password = password
        self.database = database
        for pair in query.split(separator: "&") where !pair.isEmpty {
            guard let equals = pair.firstIndex(of: "=") else {
                throw RedisURLError(url, "the option '\(pair)' has no value (NAME=VALUE)")
            }
            let name = String(pair[..<equals])
            let value = pair[pair.index(after: equals)...]
            switch name {
            case "db":
                guard let number = Int(value), number >= 0 else {
                    throw RedisURLError(url, "the database '\(value)' is not a number")
                }
                self.database = number
            case "connect_timeout": connectTimeout = try Self.duration(value, name, url)
            case "timeout": replyTimeout = try Self.duration(value, name, url)
            case "hold": hold = try Self.duration(value, name, url, zero: true)
            case "backoff": maximumBackoff = try Self.duration(value, name, url)
            case "sweep": sweepInterval = try Self.duration(value, name, url)
            case "grace": grace = try Self.duration(value, name, url, zero: true)
            case "lease": lease = try Self.duration(value, name, url)
            default:
                throw RedisURLError(url, "unknown option '\(name)' (known: db, connect_timeout, timeout, hold, "
                                    + "backoff, sweep, grace, lease)")
            }
        }
    }

    /// The URL without the password.
    public var description: String {
        let credentials = password == nil ? "" : "\(user ?? ""):***@"
        switch address {
        case .tcp(let host, let port):
            let shown = host.contains(":") ? "[\(host)]" : host
            return "redis://\(credentials)\(shown):\(port)" + (database == 0 ? "" : "/\(database)")
        case .unix(let path):
            return "redis+unix://\(credentials)\(path)" + (database == 0 ? "" : "?db=\(database)")
        }
    }

    static func port(_ text: Substring, _ url: String) throws(RedisURLError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw RedisURLError(url, "the port '\(text)' is not a number from 1 to 65535")
        }
        return port
    }

    static func duration(_ text: Substring, _ name: String, _ url: String, zero: Bool = false) throws(RedisURLError) -> Double {
        var number = text
        var scale = 0.001
        if text.hasSuffix("ms") {
            number = text.dropLast(2)
        } else if text.hasSuffix("s") {
            number = text.dropLast()
            scale = 1
        }
        guard let value = Double(number), value.isFinite, value > 0 || (zero && value == 0) else {
            throw RedisURLError(url, "\(name)=\(text) is not a duration (say 250ms or 2s)")
        }
        return value * scale
    }

    static func decode(_ text: Substring, _ url: String, _ part: String) throws(RedisURLError) -> String {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(),
                  let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else {
                throw RedisURLError(url, "the \(part) has a bad percent escape")
            }
            bytes.append(value)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A Redis URL that cannot be used: which URL (its password hidden) and why.
public struct RedisURLError: Error, CustomStringConvertible, Sendable {
    /// The URL, with any password replaced by `***`.
    public let url: String
    /// What is wrong.
    public let problem: String

    init(_ url: String, _ problem: String) {
        var shown = url
        if let schemeEnd = url.range(of: "://"), let at = url.lastIndex(of: "@"), at > schemeEnd.upperBound {
            let credentials = url[schemeEnd.upperBound..<at]
            if let colon = credentials.firstIndex(of: ":") {
                shown = String(url[..<url.index(after: colon)]) + "***" + String(url[at...])
            }
        }
        self.url = shown
        self.problem = problem
    }

    public var description: String { "\(url): \(problem)" }
}
