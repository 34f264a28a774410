import StatelessKitStore
import StoreTestSupport
import Testing

/// The hiredis shim links and works against a real redis-server.
@Suite("hiredis shim", .enabled(if: RedisServer.executable != nil, RedisServer.skipNote))
struct HiredisSmokeTests {
    @Test("connects to a redis-server the test started, which answers PING; binary values round-trip")
    func ping() throws {
        let server = try RedisServer()
        let connection = try RedisConnection(host: "127.0.0.1", port: server.port)
        #expect(try connection.command(["PING"]) == .status("PONG"))
        let binary = String(decoding: [0, 1, 0xFF, 0x7F, 10, 13], as: UTF8.self)
        #expect(try connection.command(["SET", "k", binary]) == .status("OK"))
        #expect(try connection.command(["GET", "k"]) == .bulk(Array(binary.utf8)))
        #expect(try connection.command(["GET", "missing"]) == .null)
        #expect(try connection.command(["INCRBY", "n", "5"]) == .integer(5))
        guard case .error(let message) = try connection.command(["NOSUCHCOMMAND"]) else {
            Issue.record("an unknown command is an error reply")
            return
        }
        #expect(message.hasPrefix("ERR"))
    }

    @Test("a refused connection is an error that says where")
    func refused() throws {
        let port = try RedisServer.freePort()
        let error = #expect(throws: RedisError.self) { try RedisConnection(host: "127.0.0.1", port: port, timeout: 1) }
        #expect(error?.message.contains("127.0.0.1:\(port)") == true)
    }
}
