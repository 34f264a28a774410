/// A controller's configuration file (YAML or JSON):
///
/// ```yaml
/// registry: redis+unix:///run/statelessnf/redis.sock
/// namespace: nat                 # the NF's deployment
/// interval: 0.005                # seconds between looks at the fleet
/// logs: /var/log/statelessnf     # each instance's output, NAME.log
/// settings: { heartbeatTimeout: 0.03, floor: 1, ceiling: 3, scaleOutAbove: 200000, scaleInBelow: 50000 }
/// instances:                     # the slots, in the order they are used
///   - name: nf1
///     command: ip netns exec nf1 statelessnf run nat --instance nf1 --store redis+unix:///run/statelessnf/redis.sock ...
/// steering:
///   routers:
///     - namespace: r1
///       prefixes: [10.9.0.0/24]
///       nexthops: { nf1: via 10.1.1.2 dev r1-nf1 }
/// ```
public struct ControllerConfig: Sendable, Decodable {
    /// An instance slot: its name and the command that starts it.
    public struct Slot: Sendable, Equatable, Decodable {
        public var name: String
        public var command: String
    }

    /// Where the steering goes.
    public struct Steering: Sendable, Equatable, Decodable {
        public var routers: [LinuxRouteSteering.Router]
    }

    public var registry: String
    public var namespace: String
    public var interval: Double = 0.005
    public var logs: String?
    public var settings: ControllerSettings = ControllerSettings()
    public var instances: [Slot]
    public var steering: Steering

    enum CodingKeys: String, CodingKey { case registry, namespace, interval, logs, settings, instances, steering }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        registry = try c.decode(String.self, forKey: .registry)
        namespace = try c.decode(String.self, forKey: .namespace)
        interval = try c.decodeIfPresent(Double.self, forKey: .interval) ?? interval
        logs = try c.decodeIfPresent(String.self, forKey: .logs)
        settings = try c.decodeIfPresent(ControllerSettings.self, forKey: .settings) ?? settings
        instances = try c.decode([Slot].self, forKey: .instances)
        steering = try c.decode(Steering.self, forKey: .steering)
    }

    /// Checks what decoding cannot; the error names the field.
    public func check() throws(SettingsError) {
        guard !instances.isEmpty else { throw SettingsError(field: "instances", problem: "needs at least one slot") }
        guard Set(instances.map(\.name)).count == instances.count else {
            throw SettingsError(field: "instances", problem: "two slots have the same name")
        }
        guard interval > 0 && interval <= 1 else { throw SettingsError(field: "interval", problem: "must be more than 0 and at most 1 second") }
        try settings.check(slots: instances.count)
    }
}
