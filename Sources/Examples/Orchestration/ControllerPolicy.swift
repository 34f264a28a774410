import StatelessKitStore

/// What a controller does next.
public enum ControllerAction: Equatable, Sendable {
    /// Start the instance of this slot.
    case launch(String)
    /// Stop it (it failed, or was scaled in).
    case stop(String)
    /// Send traffic to exactly these instances, in slot order.
    case steer([String])
}

/// The decisions of a controller, apart from any clock, store or process:
/// fed the instances' latest reports and the time, it says which instances
/// to launch, stop and steer traffic to. Failure is acted on
/// speculatively: an instance whose heartbeats stop is steered away from at
/// once, and steered to again if they come back (it was only slow); only if
/// they stay away is it stopped and replaced.
public final class ControllerPolicy {
    /// Where an instance slot stands.
    public enum State: String, Sendable {
        /// No instance.
        case idle
        /// Launched; no heartbeat yet.
        case starting
        /// Heartbeats fresh; traffic goes to it.
        case active
        /// Heartbeats stopped; traffic steered away, waiting to see.
        case suspected
        /// Scaled in: traffic steered away, stopped once drained.
        case draining
    }

    /// A slot as the controller sees it.
    public struct Slot: Sendable, Equatable {
        public let name: String
        public internal(set) var state: State = .idle
        /// When it entered its state.
        public internal(set) var since: Double = 0
        /// The last heartbeat's sequence, and when it was first seen.
        public internal(set) var sequence = -1
        public internal(set) var heard: Double = -.infinity
        /// The instance's last report.
        public internal(set) var report: InstanceReport? = nil
        /// The process last stopped here: its reports, still arriving as it
        /// ends, do not make the slot active again.
        public internal(set) var retired: Int32? = nil
    }

    public let settings: ControllerSettings
    /// The slots, in the order they are used.
    public private(set) var slots: [Slot]
    /// A size set on command, within the floor and the ceiling; `nil`
    /// lets the load decide.
    public var desired: Int? = nil
    /// The instances traffic goes to now.
    public private(set) var steered: [String]? = nil
    var lastScaling = -Double.infinity
    var aboveSince: Double? = nil
    var belowSince: Double? = nil

    /// A policy over the instance slots `names`.
    public init(settings: ControllerSettings, slots names: [String]) {
        self.settings = settings
        slots = names.map { Slot(name: $0) }
    }

    /// The instances that count toward the fleet's size.
    var serving: Int { slots.filter { $0.state == .active || $0.state == .starting || $0.state == .suspected }.count }

    /// One step at `now` (seconds, monotonic): the instances' reports by name,
    /// and the slots whose process is known to have ended. Returns what to do,
    /// in order.
    public func step(now: Double, reports: [String: InstanceReport], ended: Set<String> = []) -> [ControllerAction] {
        // (A controller that stalls sees, at its next look, the sequences
        // that moved meanwhile: only instances that really went silent are
        // suspected.)
        var actions: [ControllerAction] = []
        for index in slots.indices {
            if let report = reports[slots[index].name] { observe(index, report, now) }
            actions += transition(index, now: now, ended: ended.contains(slots[index].name))
        }
        actions += size(now: now)
        var target = slots.filter { $0.state == .active }.map(\.name)
        if target.isEmpty {
            // Steering away helps only if there is somewhere to go: with
            // every instance suspected, traffic stays with them.
            target = slots.filter { $0.state == .suspected }.map(\.name)
        }
        if target != steered {
            steered = target
            actions.append(.steer(target))
        }
        return actions
    }

    func observe(_ index: Int, _ report: InstanceReport, _ now: Double) {
        slots[index].report = report
        if report.sequence != slots[index].sequence {
            slots[index].sequence = report.sequence
            slots[index].heard = now
        }
    }

    func move(_ index: Int, to state: State, _ now: Double) {
        if state == .idle { slots[index].retired = slots[index].report?.pid }
        slots[index].state = state
        slots[index].since = now
    }

    func transition(_ index: Int, now: Double, ended: Bool) -> [ControllerAction] {
        let slot = slots[index]
        let fresh = now - slot.heard <= settings.heartbeatTimeout && slot.report?.state == .running
            && slot.report?.pid != slot.retired
        let stopped = ended || slot.report?.state == .stopped
        switch slot.state {
        case .idle:
            // An instance started by hand (or left by an earlier controller) joins.
            if fresh && slot.heard >= slot.since { move(index, to: .active, now) }
        case .starting:
            if fresh && slot.heard >= slot.since {
                move(index, to: .active, now)
            } else if stopped || now - slot.since > settings.startTimeout {
                move(index, to: .idle, now)
                return [.stop(slot.name)]
            }
        case .active:
            if stopped {
                move(index, to: .idle, now)
                return [.stop(slot.name)]
            }
            if !fresh { move(index, to: .suspected, now) }
        case .suspected:
            if stopped || now - slot.since > settings.failAfter {
                move(index, to: .idle, now)
                return [.stop(slot.name)]
            }
            if fresh { move(index, to: .active, now) }
        case .draining:
            if stopped || now - slot.since > settings.drain {
                move(index, to: .idle, now)
                return [.stop(slot.name)]
            }
        }
        return []
    }

    /// Launches or drains toward the floor, the size on command, or the load.
    func size(now: Double) -> [ControllerAction] {
        let count = serving
        var target = count
        var byLoad = false
        if let desired {
            target = desired
        } else {
            let active = slots.filter { $0.state == .active }
            let load = active.isEmpty ? 0 : active.map { $0.report?.packetsPerSecond ?? 0 }.reduce(0, +) / Double(active.count)
            aboveSince = settings.scaleOutAbove.flatMap { load > $0 ? (aboveSince ?? now) : nil }
            belowSince = settings.scaleInBelow.flatMap { load < $0 && !active.isEmpty ? (belowSince ?? now) : nil }
            let settled = now - lastScaling >= settings.cooldown && !slots.contains { $0.state == .starting }
            if settled, let since = aboveSince, now - since >= settings.sustain { target = count + 1; byLoad = true }
            if settled, let since = belowSince, now - since >= settings.sustain { target = count - 1; byLoad = true }
        }
        target = min(max(target, settings.floor), settings.ceiling)
        var actions: [ControllerAction] = []
        if target > count {
            for _ in count..<target {
                guard let index = slots.firstIndex(where: { $0.state == .idle }) else { break }
                move(index, to: .starting, now)
                actions.append(.launch(slots[index].name))
            }
        } else if target < count {
            for _ in target..<count {
                // Instances still starting go first (they carry no traffic),
                // then the last active one, drained before it is stopped.
                if let index = slots.lastIndex(where: { $0.state == .starting }) {
                    move(index, to: .idle, now)
                    actions.append(.stop(slots[index].name))
                } else if let index = slots.lastIndex(where: { $0.state == .active }) {
                    move(index, to: .draining, now)
                }
            }
        }
        if target != count && byLoad {
            // (The cooldown is between steps the load takes; the floor and
            // commands act at once.)
            lastScaling = now
            aboveSince = nil
            belowSince = nil
        }
        return actions
    }
}
