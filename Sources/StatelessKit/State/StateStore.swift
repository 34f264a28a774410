/// Where state lives: the embedded in-process store, or Redis. A store is
/// set up once from a deployment's ``StateSchema``; each worker opens a
/// session of its own.
public protocol StateStore: AnyObject, Sendable {
    /// Creates the tables and pools of `schema` if they do not exist (a pool
    /// is filled only when it is created, so instances that share a store
    /// share its pools).
    func prepare(_ schema: StateSchema) throws
    /// A session for one worker on the deployment of `schema` (prepared
    /// first if it is not yet).
    func makeSession(for schema: StateSchema) throws -> any StateSession
}

/// One worker's connection to a store. Requests are asynchronous and
/// pipelined: ``submit(_:)`` sends, ``poll(wait:_:)`` hands back what has
/// been answered, in submission order. Node code never sees a session.
public protocol StateSession: AnyObject {
    /// Sends a request. Its results are filled in when it comes back from
    /// ``poll(wait:_:)``.
    func submit(_ request: StateRequest)
    /// Calls `answered` with each request answered since the last poll,
    /// oldest first; with `wait`, blocks until at least one is, if any is
    /// outstanding. Returns how many were handed back.
    @discardableResult
    func poll(wait: Bool, _ answered: (StateRequest) -> Void) -> Int
    /// Removes entries whose deadline is before `now`, returning the
    /// resources they hold to their pools; returns how many. `budget` bounds
    /// the work (for the embedded store, index slots examined), so that a
    /// call costs the same however full the tables are; repeated calls sweep
    /// everything. Safe to run on several workers and instances at once.
    func expire(now: Timestamp, budget: Int) -> Int
    /// What the session counts about its store (reconnections, failed
    /// requests, ...), by counter name; runners add these to their counters.
    var statistics: [String: Int] { get }
}

extension StateSession {
    /// No statistics.
    public var statistics: [String: Int] { [:] }
}
