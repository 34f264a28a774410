import Foundation
import StatelessKit
import StatelessKitStore
import Testing

/// redis-server could not be started.
public struct RedisServerError: Error, CustomStringConvertible {
    public var description: String
}

/// A redis-server that a test starts on a free loopback port and a unix
/// socket in a folder of its own, and stops when it is done. It can be
/// stopped and started again on the same port and folder (with its
/// append-only file, when `persistent`), paused and resumed.
public final class RedisServer: @unchecked Sendable {
    public static let executable: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    public static let skipNote: Comment = "skipped: redis-server is not installed (make test installs it; apt-get install redis-server)"

    /// One server for a whole test process; tests keep apart by namespace.
    /// Stopped when the process exits.
    public static let shared: RedisServer? = {
        guard executable != nil, let server = try? RedisServer() else { return nil }
        atexit { RedisServer.shared?.stop(removing: true) }
        return server
    }()

    public let port: Int
    public let socketPath: String
    public let directory: URL
    let arguments: [String]
    var process: Process?

    /// A server with `arguments` added to redis-server's; `persistent`
    /// keeps an append-only file, fsynced at every write.
    public init(persistent: Bool = false, arguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("statelesskit-redis-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        socketPath = directory.appendingPathComponent("redis.sock").path
        self.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--unixsocket", socketPath,
                          "--save", "", "--dir", directory.path,
                          "--logfile", directory.appendingPathComponent("redis.log").path]
            + (persistent ? ["--appendonly", "yes", "--appendfsync", "always"] : ["--appendonly", "no"]) + arguments
        try start()
    }

    deinit { stop(removing: true) }

    /// The URL of the TCP port, with `options` (`?...`) and `credentials` (`user:password@`).
    public func url(credentials: String = "", options: String = "") -> String {
        "redis://\(credentials)127.0.0.1:\(port)" + (options.isEmpty ? "" : "?\(options)")
    }

    /// The URL of the unix socket.
    public var unixURL: String { "redis+unix://\(socketPath)" }

    /// Starts the server (again) and waits until it answers.
    public func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments = arguments
        // Not the tests' own pipes: were the test process to die, a server
        // holding them would keep `swift test` waiting for their end.
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        self.process = process
        let deadline = Date().addingTimeInterval(10)
        while true {
            // Any answer will do (a server with a password answers NOAUTH).
            if let connection = try? RedisConnection(RedisEndpoint(address: .unix(path: socketPath))),
               (try? connection.command(["PING"])) != nil { break }
            guard Date() < deadline, process.isRunning else {
                stop(removing: true)
                throw RedisServerError(description: "redis-server did not start on port \(port)")
            }
            usleep(20_000)
        }
    }

    /// Shuts the server down (SHUTDOWN NOSAVE, or SIGKILL if it does not
    /// go: a process started from a test thread may inherit a signal mask
    /// that blocks SIGTERM); with `removing`, deletes its folder.
    public func stop(removing: Bool = false) {
        if let process, process.isRunning {
            resume()
            var endpoint = RedisEndpoint(address: .unix(path: socketPath))
            if let flag = arguments.firstIndex(of: "--requirepass"), flag + 1 < arguments.count {
                endpoint.password = arguments[flag + 1]
            }
            if let connection = try? RedisConnection(endpoint) {
                _ = try? connection.command(["SHUTDOWN", "NOSAVE"])
            }
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        process = nil
        if removing { try? FileManager.default.removeItem(at: directory) }
    }

    /// Freezes the server (SIGSTOP): it accepts nothing and answers nothing.
    public func pause() {
        if let process { kill(process.processIdentifier, SIGSTOP) }
    }

    /// Lets a paused server go on.
    public func resume() {
        if let process { kill(process.processIdentifier, SIGCONT) }
    }

    /// Runs one command on the server.
    public func command(_ arguments: [String]) throws -> RedisReply {
        try RedisConnection(RedisEndpoint(address: .unix(path: socketPath))).command(arguments)
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw RedisServerError(description: "no free port: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// The stores tests run on: the embedded store always, Redis when
/// redis-server is installed (CI installs it; the Redis suites say so when
/// they skip).
public enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case embedded, redis

    /// The kinds this machine can run.
    public static var available: [StoreKind] { RedisServer.executable == nil ? [.embedded] : allCases }

    public var testDescription: String { rawValue }

    /// A fresh store of this kind (Redis: on the process's shared server;
    /// tests keep apart by namespace).
    public func make() throws -> any InspectableStore {
        switch self {
        case .embedded: return EmbeddedStore()
        case .redis:
            guard let server = RedisServer.shared else { throw RedisServerError(description: "redis-server could not start") }
            return try RedisStore(url: server.url())
        }
    }
}
