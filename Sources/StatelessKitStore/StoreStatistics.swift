import StatelessKit

/// What a deployment's tables and pools hold in a store.
public struct StoreStatistics: Sendable, Equatable {
    /// A table's size.
    public struct Table: Sendable, Equatable {
        /// Live entries (a bidirectional pair counts once; the Redis store
        /// counts entries until a sweep removes them).
        public var entries: Int
        /// Bytes the table holds, where the store knows (the embedded store).
        public var bytes: Int?

        /// A table's size.
        public init(entries: Int, bytes: Int? = nil) {
            self.entries = entries
            self.bytes = bytes
        }
    }
    /// The tables, by name.
    public var tables: [String: Table]
    /// Free items, by pool name.
    public var freeItems: [String: Int]
    /// Items taken and not yet held by an entry, by pool name (the Redis
    /// store, where a lease brings back items whose taker died).
    public var leasedItems: [String: Int]

    /// Statistics of tables and pools.
    public init(tables: [String: Table], freeItems: [String: Int], leasedItems: [String: Int]) {
        self.tables = tables
        self.freeItems = freeItems
        self.leasedItems = leasedItems
    }
}

/// A store that can say what a deployment holds.
public protocol InspectableStore: StateStore {
    /// What the deployment `namespace` holds, or `nil` if the store has no
    /// such deployment.
    func statistics(namespace: String) throws -> StoreStatistics?
}


/// A session's requests that have been answered and not yet handed back.
final class AnsweredRequests {
    @exclusivity(unchecked) private var requests: [StateRequest] = []

    init() { requests.reserveCapacity(16) }

    /// Adds an answered request.
    @inline(__always)
    func append(_ request: StateRequest) { requests.append(request) }

    /// Whether there are none.
    var isEmpty: Bool { requests.isEmpty }

    /// Hands each to `handle`, oldest first, and forgets them; returns how
    /// many there were. Handling a request may submit the next step of its
    /// batch, which a store that answers at once appends here: those are
    /// handed over too.
    func handOver(_ handle: (StateRequest) -> Void) -> Int {
        let count = requests.count
        var index = 0
        while index < requests.count {
            handle(requests[index])
            index += 1
        }
        requests.removeAll(keepingCapacity: true)
        return count
    }
}
