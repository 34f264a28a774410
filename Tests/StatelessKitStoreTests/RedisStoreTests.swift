import Foundation
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

@Suite("Redis URLs")
struct RedisURLTests {
    @Test("TCP and unix URLs, credentials, databases and options")
    func parse() throws {
        let plain = try RedisEndpoint(url: "redis://127.0.0.1:6380/2")
        #expect(plain.address == .tcp(host: "127.0.0.1", port: 6380) && plain.database == 2 && plain.password == nil)
        let acl = try RedisEndpoint(url: "redis://nf:s%40cret@redis.example:6379?timeout=50ms&hold=2s&connect_timeout=1.5s")
        #expect(acl.user == "nf" && acl.password == "s@cret")
        #expect(acl.replyTimeout == 0.05 && acl.hold == 2 && acl.connectTimeout == 1.5)
        #expect(acl.description == "redis://nf:***@redis.example:6379", "the password is never shown")
        let passwordOnly = try RedisEndpoint(url: "redis://:pw@[::1]")
        #expect(passwordOnly.user == nil && passwordOnly.password == "pw" && passwordOnly.address == .tcp(host: "::1", port: 6379))
        let unix = try RedisEndpoint(url: "redis+unix:///run/redis/redis.sock?db=3&hold=0")
        #expect(unix.address == .unix(path: "/run/redis/redis.sock") && unix.database == 3 && unix.hold == 0)
    }

    @Test("a bad URL names the part that is wrong, and hides the password")
    func errors() {
        func problem(_ url: String) -> String {
            do {
                _ = try RedisEndpoint(url: url)
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem("http://x") .contains("the scheme must be redis:// or redis+unix://"))
        #expect(problem("redis://host:99999").contains("the port '99999' is not a number from 1 to 65535"))
        #expect(problem("redis://host/x").contains("the database 'x' is not a number"))
        #expect(problem("redis://host?timeout=soon").contains("timeout=soon is not a duration"))
        #expect(problem("redis://host?colour=blue").contains("unknown option 'colour'"))
        #expect(problem("redis+unix://relative.sock").contains("absolute path"))
        let hidden = problem("redis://user:topsecret@host:0")
        #expect(!hidden.contains("topsecret") && hidden.contains("user:***@"))
    }
}

@Suite("Redis store", .enabled(if: RedisServer.executable != nil, RedisServer.skipNote))
struct RedisStoreTests {
    let inside = Endpoint4(address: 0x0A00_0001, port: 40000)

    @Test("the unix socket works like TCP; a second deployment with other tables is refused")
    func unixSocketAndSchema() throws {
        let server = try #require(RedisServer.shared)
        let store = try RedisStore(url: server.unixURL)
        let state = NATLikeState(ports: 10)
        let r = Requests(session: try store.makeSession(for: state.schema))
        let port = try #require(r.take(state))
        #expect(r.insert(state, Binding(inside: inside, outside: port)).status == .ok)
        #expect(r.read(state, port) == Binding(inside: inside, outside: port))
        let other = StateSchema(namespace: state.schema.namespace)
        _ = other.table("something-else", key: UInt64.self, value: UInt64.self, capacity: 5)
        #expect(throws: StateStoreError.self) { try RedisStore(url: server.url()).prepare(other) }
    }

    @Test("wrong or missing credentials are refused clearly; a password and an ACL user work")
    func authentication() throws {
        let server = try RedisServer(arguments: ["--requirepass", "right-password"])
        func failure(_ url: String) -> String {
            do {
                _ = try RedisStore(url: url)
                return "connected"
            } catch {
                return "\(error)"
            }
        }
        #expect(failure(server.url()).contains("NOAUTH"), "no password")
        let wrong = failure(server.url(credentials: ":wrong-password@"))
        #expect(wrong.contains("WRONGPASS") && wrong.contains("authenticating"), "\(wrong)")
        #expect(!wrong.contains("wrong-password"), "the password is not shown")
        let store = try RedisStore(url: server.url(credentials: ":right-password@"))
        let state = NATLikeState(ports: 4)
        #expect(Requests(session: try store.makeSession(for: state.schema)).take(state) != nil)
        let admin = try RedisConnection(RedisEndpoint(url: server.url(credentials: ":right-password@")))
        #expect(try admin.command(["ACL", "SETUSER", "nf", "on", ">nf-password", "~*", "+@all"]) == .status("OK"))
        let user = try RedisStore(url: server.url(credentials: "nf:nf-password@"))
        #expect(Requests(session: try user.makeSession(for: state.schema)).take(state) != nil)
        #expect(failure(server.url(credentials: "nf:nope@")).contains("WRONGPASS"))
    }

    @Test("Redis stopped and started again: requests fail, counted and explained, then the session reconnects; AOF state is used again")
    func stopAndStart() throws {
        let server = try RedisServer(persistent: true)
        let store = try RedisStore(url: server.url(options: "hold=0&timeout=200ms"))
        let state = NATLikeState(ports: 100)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        let port = try #require(r.take(state))
        let binding = Binding(inside: inside, outside: port)
        #expect(r.insert(state, binding, deadline: 10_000).status == .ok)
        server.stop()
        let failed = r.run { req in _ = req.append(StateOperation(kind: .read, table: Int32(state.mappings.id), key: req.store(inside))) }
        #expect(failed.results[0].status == .failed)
        #expect(failed.failure?.contains("is unavailable") == true, "\(failed.failure ?? "no reason")")
        // While Redis is down, requests fail at once (hold=0), without waiting for a timeout.
        let started = Date()
        for _ in 0..<20 { #expect(r.read(state, inside) == nil) }
        #expect(Date().timeIntervalSince(started) < 5)
        try server.start()
        var back: Binding? = nil
        let deadline = Date().addingTimeInterval(5)
        while back == nil && Date() < deadline {
            back = r.read(state, inside)
            if back == nil { usleep(20_000) }
        }
        #expect(back == binding, "the mapping survived the restart through the append-only file")
        #expect(r.read(state, port) == binding)
        #expect(session.statistics["store.disconnects"] == 1)
        #expect((session.statistics["store.reconnects"] ?? 0) >= 1)
        #expect((session.statistics["store.failedRequests"] ?? 0) >= 21)
        let statistics = try #require(try store.statistics(namespace: state.schema.namespace))
        #expect(statistics.freeItems["ports"] == 99 && statistics.tables["mappings"]?.entries == 1)
    }

    @Test("a short outage within the hold time loses nothing: requests wait for Redis")
    func holdAcrossRestart() throws {
        let server = try RedisServer(persistent: true)
        let store = try RedisStore(url: server.url(options: "hold=5s&timeout=200ms"))
        let state = NATLikeState(ports: 100)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        let port = try #require(r.take(state))
        #expect(r.insert(state, Binding(inside: inside, outside: port), deadline: 10_000).status == .ok)
        server.stop()
        let restart = Thread { usleep(300_000); try? server.start() }
        restart.start()
        let started = Date()
        #expect(r.read(state, inside) == Binding(inside: inside, outside: port), "held until Redis came back")
        #expect(Date().timeIntervalSince(started) >= 0.2)
        #expect(session.statistics["store.heldRequests"] == 1 && session.statistics["store.failedRequests"] == 0)
    }

    @Test("Redis answering too slowly: the reply timeout fails requests in flight, and the session recovers")
    func slowRedis() throws {
        let server = try RedisServer()
        let store = try RedisStore(url: server.url(options: "hold=0&timeout=100ms"))
        let state = NATLikeState(ports: 10)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        let port = try #require(r.take(state))
        #expect(r.insert(state, Binding(inside: inside, outside: port)).status == .ok)
        server.pause()
        let started = Date()
        let slow = r.run { req in _ = req.append(StateOperation(kind: .read, table: Int32(state.mappings.id), key: req.store(inside))) }
        #expect(slow.results[0].status == .failed && slow.failure?.contains("no reply within 100 ms") == true,
                "\(slow.failure ?? "answered")")
        #expect(Date().timeIntervalSince(started) < 2, "the timeout bounds the wait")
        server.resume()
        var back: Binding? = nil
        let deadline = Date().addingTimeInterval(5)
        while back == nil && Date() < deadline {
            back = r.read(state, inside)
            if back == nil { usleep(20_000) }
        }
        #expect(back == Binding(inside: inside, outside: port))
    }

    @Test("SCRIPT FLUSH: the operation that found the script gone runs again, nothing fails")
    func scriptFlush() throws {
        // Its own server: on the shared one a test running alongside could reload the script between the flush and
        // this session's first call, and then there would be nothing for this session to reload.
        let server = try RedisServer()
        let store = try RedisStore(url: server.url())
        let state = NATLikeState(ports: 10)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        #expect(try server.command(["SCRIPT", "FLUSH"]) == .status("OK"))
        let port = try #require(r.take(state))
        #expect(r.insert(state, Binding(inside: inside, outside: port)).status == .ok)
        #expect((session.statistics["store.scriptReloads"] ?? 0) >= 1 && session.statistics["store.failedRequests"] == 0)
        #expect(try server.command(["SCRIPT", "FLUSH"]) == .status("OK"))
        #expect(session.expire(now: Timestamp(nanoseconds: 1_000_000_000_000), budget: 100) == 1, "the sweep reloads it too")
    }

    @Test("an item taken by an instance that died before holding it returns to its pool when its lease runs out")
    func leases() throws {
        let server = try #require(RedisServer.shared)
        let store = try RedisStore(url: server.url(options: "lease=2s&sweep=1ms"))
        let state = NATLikeState(ports: 3)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        _ = r.run(now: 0) { req in _ = req.append(StateOperation(kind: .take, table: Int32(state.ports.id))) }
        var statistics = try #require(try store.statistics(namespace: state.schema.namespace))
        #expect(statistics.freeItems["ports"] == 2 && statistics.leasedItems["ports"] == 1)
        #expect(session.expire(now: Timestamp(nanoseconds: 1_000_000_000), budget: 100) == 0)
        #expect(try store.statistics(namespace: state.schema.namespace)?.leasedItems["ports"] == 1, "the lease still runs")
        _ = session.expire(now: Timestamp(nanoseconds: 3_000_000_000), budget: 100)
        statistics = try #require(try store.statistics(namespace: state.schema.namespace))
        #expect(statistics.freeItems["ports"] == 3 && statistics.leasedItems["ports"] == 0)
    }

    @Test("an entry Redis dropped at its TTL before any sweep still gives its resource back and leaves the count")
    func droppedByRedis() throws {
        let server = try #require(RedisServer.shared)
        let store = try RedisStore(url: server.url(options: "grace=0"))
        let state = NATLikeState(ports: 5)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        let port = try #require(r.take(state))
        // Lives 100 ms on the runtime's clock, so Redis keeps it 100 ms.
        #expect(r.insert(state, Binding(inside: inside, outside: port), deadline: 100_000_000).status == .ok)
        usleep(400_000)
        #expect(r.read(state, inside, now: 0) == nil, "Redis dropped both copies")
        #expect(try store.statistics(namespace: state.schema.namespace)?.tables["mappings"]?.entries == 1,
                "counted until a sweep")
        #expect(session.expire(now: Timestamp(nanoseconds: 200_000_000), budget: 100) == 1)
        let statistics = try #require(try store.statistics(namespace: state.schema.namespace))
        #expect(statistics.freeItems["ports"] == 5 && statistics.tables["mappings"]?.entries == 0)
        // The port is free: a new mapping may hold it.
        let again = try #require(r.take(state))
        #expect(r.insert(state, Binding(inside: Endpoint4(address: 9, port: 9), outside: again), now: 300_000_000).status == .ok)
    }

    @Test("several batches in flight on one connection come back in order, each its own")
    func pipelining() throws {
        let store = try StoreKind.redis.make()
        let state = NATLikeState(ports: 10)
        let session = try store.makeSession(for: state.schema)
        let requests = (0..<8).map { i -> StateRequest in
            let request = StateRequest()
            request.tag = i
            for k in 0..<16 {
                _ = request.append(StateOperation(kind: .add, table: Int32(state.counters.id),
                                                  key: request.store(Endpoint4(address: 1, port: UInt16(k))), delta: Int64(i)))
                _ = request.append(StateOperation(kind: .read, table: Int32(state.mappings.id),
                                                  key: request.store(Endpoint4(address: 2, port: UInt16(k)))))
            }
            return request
        }
        requests.forEach(session.submit)
        var order: [Int] = []
        while order.count < requests.count {
            session.poll(wait: true) { request in
                order.append(request.tag)
                #expect(request.failure == nil)
                #expect(request.results.count == 32)
                #expect(request.results[1].status == .missing)
            }
        }
        #expect(order == Array(0..<8))
        #expect(requests[7].results[30].integer == (0..<8).reduce(0, +), "each add saw the ones before it")
    }
}
