import StatelessKit

/// The embedded, in-process store: the default. Tables are sharded and
/// safe to use from every worker at once; every operation of
/// ``StateOperationKind`` is atomic. Instances of an NF in one process share
/// it; instances in several processes share Redis instead.
public final class EmbeddedStore: StateStore, @unchecked Sendable {
    /// The number of shards per table (a power of two).
    public let shardCount: Int
    let lock = ShardLock()
    var deployments: [String: EmbeddedDeployment] = [:]

    /// A store with `shardCount` shards per table.
    public init(shardCount: Int = 64) {
        precondition(shardCount > 0 && shardCount.nonzeroBitCount == 1, "the shard count must be a power of two")
        self.shardCount = shardCount
    }

    deinit { lock.destroy() }

    public func prepare(_ schema: StateSchema) throws {
        _ = try deployment(schema)
    }

    public func makeSession(for schema: StateSchema) throws -> any StateSession {
        EmbeddedSession(try deployment(schema))
    }

    func deployment(_ schema: StateSchema) throws -> EmbeddedDeployment {
        lock.lock()
        defer { lock.unlock() }
        if let existing = deployments[schema.namespace] {
            guard existing.tables.map(\.description.name) == schema.tables.map(\.name),
                  existing.pools.map(\.description.name) == schema.pools.map(\.name) else {
                throw StateStoreError("deployment \(schema.namespace) exists with other tables or pools")
            }
            return existing
        }
        let deployment = EmbeddedDeployment(schema: schema, shardCount: shardCount)
        deployments[schema.namespace] = deployment
        return deployment
    }

    /// What a deployment's tables hold: entries and bytes per table, items
    /// free per pool.
    public func statistics(namespace: String) -> StoreStatistics? {
        lock.lock()
        let deployment = deployments[namespace]
        lock.unlock()
        guard let deployment else { return nil }
        return StoreStatistics(
            tables: Dictionary(uniqueKeysWithValues: deployment.tables.map {
                ($0.description.name, StoreStatistics.Table(entries: $0.entries.load(ordering: .relaxed), bytes: $0.bytes))
            }),
            freeItems: Dictionary(uniqueKeysWithValues: deployment.pools.map { ($0.description.name, $0.available) }),
            leasedItems: [:])
    }
}

/// A failure of a store.
public struct StateStoreError: Error, CustomStringConvertible, Sendable {
    /// What failed.
    public let description: String
    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

/// The tables and pools of one deployment.
final class EmbeddedDeployment: @unchecked Sendable {
    let tables: [EmbeddedTable]
    let pools: [EmbeddedPool]

    init(schema: StateSchema, shardCount: Int) {
        tables = schema.tables.map { EmbeddedTable($0, shardCount: shardCount) }
        pools = schema.pools.map(EmbeddedPool.init)
    }

    func give(_ resource: PoolResource) {
        resource.withUnsafeBytes { pools[resource.pool].give($0.baseAddress!) }
    }
}

/// A worker's session on the embedded store: each request is answered when
/// it is submitted, and handed back by the next poll.
final class EmbeddedSession: StateSession {
    let deployment: EmbeddedDeployment
    /// The deployment's tables, unretained (the deployment keeps them), so
    /// that an operation costs no reference counting.
    let tables: [Unmanaged<EmbeddedTable>]
    let answered = AnsweredRequests()
    var sweepTable = 0
    var sweepShard = 0
    /// The keys of the entries a sweep found expired, back to back (reused).
    var expiredKeys: [UInt8] = []
    /// The hashes of a request's read keys, by operation (reused; other
    /// operations' places hold whatever was there).
    var hashes: UnsafeMutablePointer<UInt64>
    var hashCapacity = 256

    init(_ deployment: EmbeddedDeployment) {
        self.deployment = deployment
        tables = deployment.tables.map { Unmanaged.passUnretained($0) }
        hashes = .allocate(capacity: hashCapacity)
        hashes.initialize(repeating: 0, count: hashCapacity)
    }

    deinit { hashes.deallocate() }

    func submit(_ request: StateRequest) {
        let now = request.now.nanoseconds
        request.prepareResults()
        request.operations.withUnsafeBufferPointer { operations in
            if operations.count > hashCapacity {
                hashes.deallocate()
                hashCapacity = operations.count * 2
                hashes = .allocate(capacity: hashCapacity)
                hashes.initialize(repeating: 0, count: hashCapacity)
            }
            // Every read's key hashed and its index lines asked for first, so
            // that the cache misses of a batch's lookups overlap instead of
            // queueing one behind the other.
            for i in 0..<operations.count where operations[i].kind == .read {
                hashes[i] = tables[Int(operations[i].table)]._withUnsafeGuaranteedRef {
                    $0.prefetch(request.bytes(at: operations[i].key))
                }
            }
            request.results.withUnsafeMutableBufferPointer { results in
                for i in 0..<operations.count {
                    let op = operations[i]
                    // Reads (most of a batch's operations) go straight to their table.
                    results[i] = op.kind == .read
                        ? tables[Int(op.table)]._withUnsafeGuaranteedRef {
                            $0.read(request.bytes(at: op.key), hash: hashes[i], now: now, request)
                        }
                        : execute(op, request, now: now)
                }
            }
        }
        answered.append(request)
    }

    /// Runs `op`, any operation but a read (``submit(_:)`` runs those).
    func execute(_ op: StateOperation, _ request: StateRequest, now: Int64) -> StateResult {
        switch op.kind {
        case .take:
            return deployment.pools[Int(op.table)].take(request)
        case .give:
            deployment.pools[Int(op.table)].give(request.bytes(at: op.key))
            return StateResult(status: .ok)
        default:
            break
        }
        return tables[Int(op.table)]._withUnsafeGuaranteedRef { table in
            execute(op, on: table, request, now: now)
        }
    }

    @inline(__always)
    func execute(_ op: StateOperation, on table: EmbeddedTable, _ request: StateRequest, now: Int64) -> StateResult {
        let key = request.bytes(at: op.key)
        switch op.kind {
        case .read:
            preconditionFailure("submit runs reads with the hash it prefetched by")
        case .insertIfAbsent:
            let (result, released) = table.insertIfAbsent(
                key, second: op.secondKey >= 0 ? request.bytes(at: op.secondKey) : nil, value: request.bytes(at: op.value),
                deadline: op.deadline, now: now, releaseOnConflict: op.releaseOnConflict, request)
            released.forEach(deployment.give)
            return result
        case .compareAndSet:
            return table.compareAndSet(key, expected: request.bytes(at: op.expected), new: request.bytes(at: op.value),
                                       deadline: op.deadline, now: now, request)
        case .delete:
            let (live, resource) = table.delete(key, now: now)
            if let resource { deployment.give(resource) }
            return StateResult(status: live ? .ok : .missing)
        case .touch:
            return table.touch(key, deadline: op.deadline, now: now)
        case .add:
            return table.add(key, delta: op.delta)
        case .take, .give:
            preconditionFailure("handled above")
        }
    }

    @discardableResult
    func poll(wait: Bool, _ handle: (StateRequest) -> Void) -> Int {
        answered.handOver(handle)
    }

    func expire(now: Timestamp, budget: Int) -> Int {
        var expired = 0
        var examined = 0
        let tables = deployment.tables
        guard !tables.isEmpty else { return 0 }
        let shardCount = tables[0].shards.count
        // `budget` bounds the index slots examined, so a sweep costs the same
        // however full or empty the tables are.
        var shardsVisited = 0
        while examined < budget && shardsVisited < tables.count * shardCount {
            let table = tables[sweepTable]
            expiredKeys.removeAll(keepingCapacity: true)
            let (looked, wrapped) = table.expiredKeys(in: sweepShard, now: now.nanoseconds, budget: budget - examined,
                                                      into: &expiredKeys)
            examined += looked
            expiredKeys.withUnsafeBytes { keys in
                for offset in stride(from: 0, to: keys.count, by: table.keySize) {
                    let (_, resource) = table.delete(keys.baseAddress! + offset, now: now.nanoseconds, onlyIfExpired: true)
                    if let resource { deployment.give(resource) }
                    expired += 1
                }
            }
            if wrapped {
                shardsVisited += 1
                sweepShard += 1
                if sweepShard == shardCount {
                    sweepShard = 0
                    sweepTable = (sweepTable + 1) % tables.count
                }
            }
        }
        return expired
    }
}

extension EmbeddedStore: InspectableStore {}
