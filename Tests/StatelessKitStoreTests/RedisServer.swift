import Foundation
import StatelessKitStore
import Testing

/// redis-server could not be started.
struct RedisServerError: Error, CustomStringConvertible {
    var description: String
}

/// A redis-server that a test starts on a free loopback port and a unix
/// socket in a folder of its own, and stops when it is done.
final class RedisServer {
    static let executable: String? = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    static let skipNote: Comment = "skipped: redis-server is not installed (make test installs it; apt-get install redis-server)"

    let port: Int
    let socketPath: String
    let directory: URL
    let process = Process()

    init(arguments: [String] = []) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("statelesskit-redis-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        port = try Self.freePort()
        socketPath = directory.appendingPathComponent("redis.sock").path
        process.executableURL = URL(fileURLWithPath: Self.executable!)
        process.arguments = ["--port", "\(port)", "--bind", "127.0.0.1", "--unixsocket", socketPath,
                             "--save", "", "--appendonly", "no", "--dir", directory.path,
                             "--logfile", directory.appendingPathComponent("redis.log").path] + arguments
        try process.run()
        let deadline = Date().addingTimeInterval(10)
        while true {
            if let connection = try? RedisConnection(host: "127.0.0.1", port: port, timeout: 0.5),
               (try? connection.command(["PING"])) == .status("PONG") { break }
            guard Date() < deadline, process.isRunning else {
                stop()
                throw RedisServerError(description: "redis-server did not start on port \(port)")
            }
            usleep(20_000)
        }
    }

    deinit { stop() }

    /// Shuts the server down with SHUTDOWN NOSAVE, or SIGKILL if it does not
    /// go (a process started from a test thread may inherit a signal mask
    /// that blocks SIGTERM).
    func stop() {
        if process.isRunning {
            if let connection = try? RedisConnection(host: "127.0.0.1", port: port, timeout: 1) {
                _ = try? connection.command(["SHUTDOWN", "NOSAVE"])
            }
            let deadline = Date().addingTimeInterval(3)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now.
    static func freePort() throws -> Int {
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
