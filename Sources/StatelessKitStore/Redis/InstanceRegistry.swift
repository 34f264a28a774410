#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// What an NF instance says of itself in each heartbeat.
public struct InstanceReport: Sendable, Equatable {
    /// How an instance stands.
    public enum State: String, Sendable {
        /// Processing packets.
        case running
        /// Stopped cleanly.
        case stopped
    }

    /// The instance's name, unique in the deployment.
    public var name: String
    /// The NF it runs (`nat`, `lb`, `firewall`).
    public var nf: String
    public var state: State
    /// Its process.
    public var pid: Int32
    /// Counts every heartbeat: a reader that sees it move knows the instance
    /// is alive, whatever the clocks say.
    public var sequence: Int
    /// When it started and when it sent this, in milliseconds since the epoch.
    public var started: Int64
    public var sent: Int64
    /// Packets received since it started, and per second over the last
    /// heartbeats.
    public var packets: Int
    public var packetsPerSecond: Double
    /// Worker threads.
    public var workers: Int

    public init(name: String, nf: String, state: State = .running, pid: Int32 = getpid(), sequence: Int = 0,
                started: Int64, sent: Int64, packets: Int = 0, packetsPerSecond: Double = 0, workers: Int = 1) {
        self.name = name
        self.nf = nf
        self.state = state
        self.pid = pid
        self.sequence = sequence
        self.started = started
        self.sent = sent
        self.packets = packets
        self.packetsPerSecond = packetsPerSecond
        self.workers = workers
    }

    var fields: [String] {
        ["nf", nf, "state", state.rawValue, "pid", "\(pid)", "sequence", "\(sequence)", "started", "\(started)",
         "sent", "\(sent)", "packets", "\(packets)", "pps", "\(packetsPerSecond)", "workers", "\(workers)"]
    }

    init?(name: String, fields: [String: String]) {
        guard let nf = fields["nf"], let state = fields["state"].flatMap(State.init(rawValue:)),
              let pid = fields["pid"].flatMap({ Int32($0) }), let sequence = fields["sequence"].flatMap({ Int($0) }),
              let started = fields["started"].flatMap({ Int64($0) }), let sent = fields["sent"].flatMap({ Int64($0) })
        else { return nil }
        self.init(name: name, nf: nf, state: state, pid: pid, sequence: sequence, started: started, sent: sent,
                  packets: fields["packets"].flatMap { Int($0) } ?? 0,
                  packetsPerSecond: fields["pps"].flatMap { Double($0) } ?? 0,
                  workers: fields["workers"].flatMap { Int($0) } ?? 1)
    }
}

/// The NF instances of a deployment, as they report themselves through
/// Redis: each instance's heartbeat is one pipelined write of its report
/// (`{NAMESPACE}:instance:NAME`, a hash, with a TTL of `retention`) and its
/// name in `{NAMESPACE}:instances` (a set). A controller reads them all in
/// one round trip per instance and, being in the same store, needs no
/// channel of its own to the instances.
///
/// One connection (made again after a failure), used by one thread at a
/// time.
public final class InstanceRegistry {
    let endpoint: RedisEndpoint
    /// The connection, made again after one fails (a hiredis context that
    /// timed out or lost its socket cannot be used again).
    private var current: RedisConnection?
    var connection: RedisConnection {
        get throws(RedisError) {
            if let current { return current }
            let made = try RedisConnection(endpoint)
            current = made
            return made
        }
    }
    /// The deployment's namespace (an NF's `namespace`).
    public let namespace: String
    /// How long a report outlives its instance's last heartbeat.
    public let retention: Double

    /// A registry of the deployment `namespace` on `endpoint`.
    public init(_ endpoint: RedisEndpoint, namespace: String, retention: Double = 60) throws(RedisError) {
        self.endpoint = endpoint
        current = try RedisConnection(endpoint)
        self.namespace = namespace
        self.retention = retention
    }

    var setKey: String { RedisLayout.prefix(namespace) + "instances" }
    func key(_ name: String) -> String { RedisLayout.prefix(namespace) + "instance:" + name }

    /// The heartbeat, atomic and in one round trip: the name in the set,
    /// the report in the hash, the hash's TTL.
    static let beatScript = """
        redis.call('SADD', KEYS[1], ARGV[1])
        redis.call('HSET', KEYS[2], unpack(ARGV, 3))
        redis.call('PEXPIRE', KEYS[2], ARGV[2])
        return 1
        """

    /// Writes `report` (a heartbeat).
    public func beat(_ report: InstanceReport) throws(RedisError) {
        try check(command(["EVAL", Self.beatScript, "2", setKey, key(report.name), report.name,
                                      "\(Int(retention * 1000))"] + report.fields))
    }

    /// Every instance's last report, by name (instances whose report has
    /// expired are left out, and forgotten).
    public func reports() throws(RedisError) -> [String: InstanceReport] {
        guard case .array(let names) = try command(["SMEMBERS", setKey]) else { return [:] }
        var reports: [String: InstanceReport] = [:]
        for case .bulk(let bytes) in names {
            let name = String(decoding: bytes, as: UTF8.self)
            let fields = try hash(key(name))
            guard !fields.isEmpty else {
                _ = try command(["SREM", setKey, name])
                continue
            }
            if let report = InstanceReport(name: name, fields: fields) { reports[name] = report }
        }
        return reports
    }

    // MARK: The controller's side

    var viewKey: String { RedisLayout.prefix(namespace) + "controller" }
    var desiredKey: String { RedisLayout.prefix(namespace) + "controller:desired" }

    /// Replaces the controller's published view (a field per instance, and
    /// whatever else it says), for `statelessnf controller status`.
    public func publishView(_ fields: [String: String]) throws(RedisError) {
        let flat = fields.sorted { $0.key < $1.key }.flatMap { [$0.key, $0.value] }
        try check(command(["EVAL", "redis.call('DEL', KEYS[1]) if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end return 1",
                                      "1", viewKey] + flat))
    }

    /// The controller's last published view.
    public func view() throws(RedisError) -> [String: String] {
        try hash(viewKey)
    }

    /// Sets the fleet's size on command (`nil`: the load decides again).
    public func setDesired(_ count: Int?) throws(RedisError) {
        try check(command(count.map { ["SET", desiredKey, "\($0)"] } ?? ["DEL", desiredKey]))
    }

    /// The fleet's size on command, if one is set.
    public func desired() throws(RedisError) -> Int? {
        guard case .bulk(let bytes) = try command(["GET", desiredKey]) else { return nil }
        return Int(String(decoding: bytes, as: UTF8.self))
    }

    /// The fields of the hash at `key` (empty when there is none).
    func hash(_ key: String) throws(RedisError) -> [String: String] {
        guard case .array(let flat) = try command(["HGETALL", key]) else { return [:] }
        var fields: [String: String] = [:]
        var index = 0
        while index + 1 < flat.count {
            if case .bulk(let field) = flat[index], case .bulk(let value) = flat[index + 1] {
                fields[String(decoding: field, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
            }
            index += 2
        }
        return fields
    }

    /// Sends a command; a failed connection is dropped, to be made again
    /// at the next call.
    func command(_ arguments: [String]) throws(RedisError) -> RedisReply {
        do {
            return try connection.command(arguments)
        } catch {
            current = nil
            throw error
        }
    }

    func check(_ reply: RedisReply) throws(RedisError) {
        if case .error(let message) = reply { throw RedisError(message: "instance registry: \(message)") }
    }
}
