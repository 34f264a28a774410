import Foundation
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// A NAT-like deployment: mappings found from both sides, holding ports of a pool.
struct Endpoint4: StateCodable, Hashable {
    var address: UInt32
    var port: UInt16
    static var encodedSize: Int { 6 }
    func encode(to pointer: UnsafeMutableRawPointer) {
        address.encode(to: pointer)
        port.encode(to: pointer + 4)
    }
    init(decoding pointer: UnsafeRawPointer) {
        address = UInt32(decoding: pointer)
        port = UInt16(decoding: pointer + 4)
    }
    init(address: UInt32, port: UInt16) {
        self.address = address
        self.port = port
    }
}

/// A mapping's value: both endpoints, so that either key finds the whole.
struct Binding: StateCodable, Hashable {
    var inside: Endpoint4
    var outside: Endpoint4
    static var encodedSize: Int { 12 }
    func encode(to pointer: UnsafeMutableRawPointer) {
        inside.encode(to: pointer)
        outside.encode(to: pointer + 6)
    }
    init(decoding pointer: UnsafeRawPointer) {
        inside = Endpoint4(decoding: pointer)
        outside = Endpoint4(decoding: pointer + 6)
    }
    init(inside: Endpoint4, outside: Endpoint4) {
        self.inside = inside
        self.outside = outside
    }
}

final class NATLikeState: @unchecked Sendable {
    let schema: StateSchema
    let mappings: StateTable<Endpoint4, Binding>
    let ports: StatePool<Endpoint4>
    let counters: StateTable<Endpoint4, UInt64>

    init(namespace: String = "test-\(UUID())", ports count: Int = 1000, capacity: Int = 10_000) {
        schema = StateSchema(namespace: namespace)
        let portList = (0..<count).map { Endpoint4(address: 0xCB00_7101, port: UInt16(1024 + $0)) }
        ports = schema.pool("ports", items: portList)
        let pool = ports
        mappings = schema.table("mappings", key: Endpoint4.self, value: Binding.self, capacity: capacity,
                                reverseKey: { _, binding in binding.outside },
                                heldResource: { _, binding in PoolResource(pool, binding.outside) })
        counters = schema.table("counters", key: Endpoint4.self, value: UInt64.self, capacity: 100)
    }
}

/// Builds and runs one request on a session.
struct Requests {
    let session: any StateSession

    @discardableResult
    func run(now: Int64 = 0, _ fill: (StateRequest) -> Void) -> StateRequest {
        let request = StateRequest()
        request.now = Timestamp(nanoseconds: now)
        fill(request)
        session.submit(request)
        var answered: StateRequest? = nil
        session.poll(wait: true) { answered = $0 }
        return answered!
    }

    func insert(_ state: NATLikeState, _ binding: Binding, deadline: Int64 = 1_000, now: Int64 = 0,
                release: Bool = false) -> StateResult {
        run(now: now) { r in
            _ = r.append(StateOperation(kind: .insertIfAbsent, table: Int32(state.mappings.id), key: r.store(binding.inside),
                                        secondKey: r.store(binding.outside), value: r.store(binding), deadline: deadline,
                                        releaseOnConflict: release))
        }.results[0]
    }

    func take(_ state: NATLikeState) -> Endpoint4? {
        let taken = run { r in _ = r.append(StateOperation(kind: .take, table: Int32(state.ports.id))) }
        return taken.results[0].status == .ok ? Endpoint4(decoding: taken.resultBytes(at: taken.results[0].value)) : nil
    }

    func read(_ state: NATLikeState, _ key: Endpoint4, now: Int64 = 0) -> Binding? {
        let request = run(now: now) { r in _ = r.append(StateOperation(kind: .read, table: Int32(state.mappings.id), key: r.store(key))) }
        let result = request.results[0]
        return result.status == .ok ? Binding(decoding: request.resultBytes(at: result.value)) : nil
    }
}

@Suite("Store operations, on the embedded store and on Redis")
struct StoreOperationTests {
    let inside = Endpoint4(address: 0x0A00_0001, port: 40000)
    let outside = Endpoint4(address: 0xCB00_7101, port: 1024)

    @Test("a bidirectional entry is found by either key; a second insert gets the first's value", arguments: StoreKind.available)
    func bidirectional(_ kind: StoreKind) throws {
        let store = try kind.make()
        let state = NATLikeState()
        let r = Requests(session: try store.makeSession(for: state.schema))
        let binding = Binding(inside: inside, outside: outside)
        #expect(r.insert(state, binding).status == .ok)
        #expect(r.read(state, inside) == binding)
        #expect(r.read(state, outside) == binding)
        let rival = Binding(inside: inside, outside: Endpoint4(address: outside.address, port: 2000))
        let second = r.run { req in
            _ = req.append(StateOperation(kind: .insertIfAbsent, table: Int32(state.mappings.id), key: req.store(rival.inside),
                                          secondKey: req.store(rival.outside), value: req.store(rival), deadline: 1_000))
        }
        #expect(second.results[0].status == .conflict)
        #expect(Binding(decoding: second.resultBytes(at: second.results[0].value)) == binding)
        #expect(r.read(state, rival.outside) == nil, "the loser's reverse key was not installed")
        // A racer inserting the very same pair (both keys) is told of the winner, not of a collision.
        #expect(r.insert(state, Binding(inside: inside, outside: outside)).status == .conflict)
        // A different inside endpoint may not take an outside endpoint held by a live mapping.
        let thief = Binding(inside: Endpoint4(address: 0x0A00_0002, port: 1), outside: outside)
        #expect(r.insert(state, thief).status == .collision)
        #expect(try store.statistics(namespace: state.schema.namespace)?.tables["mappings"]?.entries == 1)
    }

    @Test("expired entries read as missing, are replaced, and give their resource back", arguments: StoreKind.available)
    func expiry(_ kind: StoreKind) throws {
        let store = try kind.make()
        let state = NATLikeState(ports: 2)
        let session = try store.makeSession(for: state.schema)
        let r = Requests(session: session)
        // Take both ports, map one, leave the other out.
        let taken = r.run { req in
            _ = req.append(StateOperation(kind: .take, table: Int32(state.ports.id)))
            _ = req.append(StateOperation(kind: .take, table: Int32(state.ports.id)))
            _ = req.append(StateOperation(kind: .take, table: Int32(state.ports.id)))
        }
        #expect(taken.results.map(\.status) == [.ok, .ok, .missing])
        let port = Endpoint4(decoding: taken.resultBytes(at: taken.results[0].value))
        #expect(r.insert(state, Binding(inside: inside, outside: port), deadline: 100).status == .ok)
        #expect(r.read(state, inside, now: 100) != nil, "alive at its deadline")
        #expect(r.read(state, inside, now: 101) == nil, "gone after it")
        #expect(try store.statistics(namespace: state.schema.namespace)?.freeItems["ports"] == 0)
        #expect(session.expire(now: Timestamp(nanoseconds: 101), budget: .max) == 1, "one full sweep")
        #expect(try store.statistics(namespace: state.schema.namespace)?.freeItems["ports"] == 1, "expiry gave the port back")
        #expect(try store.statistics(namespace: state.schema.namespace)?.tables["mappings"]?.entries == 0)
        #expect(r.read(state, port, now: 0) == nil, "both keys are gone")
    }

    @Test("compare-and-set, touch, delete and counters", arguments: StoreKind.available)
    func operations(_ kind: StoreKind) throws {
        let store = try kind.make()
        let state = NATLikeState()
        let r = Requests(session: try store.makeSession(for: state.schema))
        let outside = r.take(state)!
        let binding = Binding(inside: inside, outside: outside)
        #expect(r.insert(state, binding, deadline: 50).status == .ok)
        let changed = Binding(inside: inside, outside: outside)
        let swapped = r.run { req in
            _ = req.append(StateOperation(kind: .compareAndSet, table: Int32(state.mappings.id), key: req.store(outside),
                                          value: req.store(changed), expected: req.store(binding), deadline: 500))
            _ = req.append(StateOperation(kind: .compareAndSet, table: Int32(state.mappings.id), key: req.store(outside),
                                          value: req.store(changed), expected: req.store(Binding(inside: outside, outside: inside)), deadline: 500))
            _ = req.append(StateOperation(kind: .touch, table: Int32(state.mappings.id), key: req.store(inside), deadline: 900))
            _ = req.append(StateOperation(kind: .read, table: Int32(state.mappings.id), key: req.store(outside)))
        }
        #expect(swapped.results.map(\.status) == [.ok, .conflict, .ok, .ok])
        #expect(swapped.results[3].deadline == 900, "a touch through one key moves both copies")
        let counted = r.run { req in
            for delta in [5, -2, 10] as [Int64] {
                _ = req.append(StateOperation(kind: .add, table: Int32(state.counters.id), key: req.store(inside), delta: delta))
            }
        }
        #expect(counted.results.map(\.integer) == [5, 3, 13])
        let deleted = r.run { req in
            _ = req.append(StateOperation(kind: .delete, table: Int32(state.mappings.id), key: req.store(outside)))
            _ = req.append(StateOperation(kind: .delete, table: Int32(state.mappings.id), key: req.store(inside)))
        }
        #expect(deleted.results.map(\.status) == [.ok, .missing])
        #expect(try store.statistics(namespace: state.schema.namespace)?.freeItems["ports"] == 1000,
                "deleting gave the held port to the pool")
    }

    @Test("a full table refuses new entries and returns what they would have held", arguments: StoreKind.available)
    func capacity(_ kind: StoreKind) throws {
        let store = try kind.make()
        let state = NATLikeState(ports: 10, capacity: 3)
        let r = Requests(session: try store.makeSession(for: state.schema))
        var statuses: [StateStatus] = []
        for i in 0..<5 {
            let binding = Binding(inside: Endpoint4(address: 1, port: UInt16(i)), outside: r.take(state)!)
            statuses.append(r.insert(state, binding, release: true).status)
        }
        #expect(statuses == [.ok, .ok, .ok, .full, .full])
        #expect(try store.statistics(namespace: state.schema.namespace)?.freeItems["ports"] == 7,
                "10 ports, 3 held, the 2 refused ones back")
    }

    /// Four threads race to map the same 2,000 inside endpoints, each taking
    /// a port per attempt and releasing it on losing: every endpoint ends
    /// with one mapping, no port is held twice, and no port leaks.
    @Test("racing workers end with one mapping per key and no port held twice", arguments: StoreKind.available)
    func races(_ kind: StoreKind) throws {
        let store = try kind.make()
        let keys = 2_000
        let state = NATLikeState(ports: keys * 4, capacity: keys)
        let threads = 4
        let winners = LockedArray<Binding>()
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            let r = Requests(session: try! store.makeSession(for: state.schema))
            for k in 0..<keys {
                let key = Endpoint4(address: 0x0A00_0000, port: UInt16((k * 7 + worker * 13) % keys))
                let taken = r.run { req in _ = req.append(StateOperation(kind: .take, table: Int32(state.ports.id))) }
                let port = Endpoint4(decoding: taken.resultBytes(at: taken.results[0].value))
                let result = r.run { req in
                    let b = Binding(inside: key, outside: port)
                    _ = req.append(StateOperation(kind: .insertIfAbsent, table: Int32(state.mappings.id), key: req.store(key),
                                                  secondKey: req.store(port), value: req.store(b), deadline: 1_000,
                                                  releaseOnConflict: true))
                }
                let status = result.results[0].status
                #expect(status == .ok || status == .conflict)
                if status == .ok { winners.append(Binding(inside: key, outside: port)) }
            }
        }
        let won = winners.values
        #expect(won.count == keys, "one insert won per key")
        #expect(Set(won.map(\.inside)).count == keys)
        #expect(Set(won.map(\.outside)).count == keys, "no port held twice")
        let r = Requests(session: try store.makeSession(for: state.schema))
        for binding in won {
            #expect(r.read(state, binding.inside) == binding)
            #expect(r.read(state, binding.outside) == binding)
        }
        let statistics = try store.statistics(namespace: state.schema.namespace)!
        #expect(statistics.freeItems["ports"]! + statistics.tables["mappings"]!.entries == keys * 4, "no port leaked")
    }
}

final class LockedArray<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var storage: [T] = []
    func append(_ value: T) { lock.lock(); storage.append(value); lock.unlock() }
    var values: [T] { lock.lock(); defer { lock.unlock() }; return storage }
}
