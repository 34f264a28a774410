/// How a controller watches and sizes its fleet: how fast it calls an
/// instance failed, and when it adds or removes one. Durations in seconds,
/// rates in packets per second per instance.
public struct ControllerSettings: Sendable, Equatable, Decodable {
    /// An instance whose heartbeats stop for this long is suspected: traffic
    /// is steered away from it at once. A suspected instance whose
    /// heartbeats come back rejoins.
    public var heartbeatTimeout: Double = 0.03
    /// Suspected for this long, an instance is failed: it is stopped, and
    /// replaced if the fleet is below its floor.
    public var failAfter: Double = 1
    /// A launched instance that sends no heartbeat within this is failed.
    public var startTimeout: Double = 15
    /// The fewest and the most instances.
    public var floor: Int = 1
    public var ceiling: Int = 1
    /// Scale out when the instances average more than this...
    public var scaleOutAbove: Double? = nil
    /// ...and in when they average less than this, for `sustain` seconds.
    public var scaleInBelow: Double? = nil
    public var sustain: Double = 1
    /// The least time between two scaling steps.
    public var cooldown: Double = 3
    /// A scaled-in instance is steered away from this long before it is
    /// stopped, so that what is in flight through it arrives.
    public var drain: Double = 1

    public init() {}

    enum CodingKeys: String, CodingKey {
        case heartbeatTimeout, failAfter, startTimeout, floor, ceiling, scaleOutAbove, scaleInBelow, sustain, cooldown, drain
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        heartbeatTimeout = try c.decodeIfPresent(Double.self, forKey: .heartbeatTimeout) ?? heartbeatTimeout
        failAfter = try c.decodeIfPresent(Double.self, forKey: .failAfter) ?? failAfter
        startTimeout = try c.decodeIfPresent(Double.self, forKey: .startTimeout) ?? startTimeout
        floor = try c.decodeIfPresent(Int.self, forKey: .floor) ?? floor
        ceiling = try c.decodeIfPresent(Int.self, forKey: .ceiling) ?? ceiling
        scaleOutAbove = try c.decodeIfPresent(Double.self, forKey: .scaleOutAbove)
        scaleInBelow = try c.decodeIfPresent(Double.self, forKey: .scaleInBelow)
        sustain = try c.decodeIfPresent(Double.self, forKey: .sustain) ?? sustain
        cooldown = try c.decodeIfPresent(Double.self, forKey: .cooldown) ?? cooldown
        drain = try c.decodeIfPresent(Double.self, forKey: .drain) ?? drain
    }

    /// Checks the settings against `slots` instance slots; the error names
    /// the field and the problem.
    public func check(slots: Int) throws(SettingsError) {
        func fail(_ field: String, _ problem: String) -> SettingsError { SettingsError(field: field, problem: problem) }
        guard heartbeatTimeout > 0 else { throw fail("heartbeatTimeout", "must be positive") }
        guard failAfter >= heartbeatTimeout else { throw fail("failAfter", "must be at least heartbeatTimeout") }
        guard startTimeout > 0 else { throw fail("startTimeout", "must be positive") }
        guard floor >= 0 else { throw fail("floor", "must not be negative") }
        guard ceiling >= max(floor, 1) else { throw fail("ceiling", "must be at least the floor and at least 1") }
        guard ceiling <= slots else { throw fail("ceiling", "is \(ceiling), but only \(slots) instance slots are configured") }
        if let above = scaleOutAbove, let below = scaleInBelow, below >= above {
            throw fail("scaleInBelow", "must be less than scaleOutAbove")
        }
        guard sustain >= 0, cooldown >= 0, drain >= 0 else { throw fail("sustain, cooldown, drain", "must not be negative") }
    }
}

/// A controller setting that is wrong.
public struct SettingsError: Error, CustomStringConvertible, Sendable {
    public let field: String
    public let problem: String
    public var description: String { "\(field): \(problem)" }
}
