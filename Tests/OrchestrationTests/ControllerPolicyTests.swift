import Orchestration
import StatelessKitStore
import Testing

/// The controller's decisions on a manual clock: what it does when
/// heartbeats stop, resume, or the load changes.
@Suite("Controller policy")
struct ControllerPolicyTests {
    /// A fleet of instances whose heartbeats the test sends by hand.
    final class Fleet {
        var reports: [String: InstanceReport] = [:]
        var now = 0.0

        func beat(_ name: String, pps: Double = 0, pid: Int32 = 100, state: InstanceReport.State = .running) {
            var report = reports[name] ?? InstanceReport(name: name, nf: "nat", pid: pid, started: 0, sent: 0)
            if report.pid != pid { report = InstanceReport(name: name, nf: "nat", pid: pid, started: 0, sent: 0) }
            report.sequence += 1
            report.packetsPerSecond = pps
            report.state = state
            reports[name] = report
        }
    }

    static func settings(_ change: (inout ControllerSettings) -> Void = { _ in }) -> ControllerSettings {
        var settings = ControllerSettings()
        settings.heartbeatTimeout = 0.03
        settings.failAfter = 0.5
        settings.floor = 2
        settings.ceiling = 3
        change(&settings)
        return settings
    }

    /// Starts a policy and brings `names` to active.
    static func running(_ policy: ControllerPolicy, _ fleet: Fleet, _ names: [String]) -> [ControllerAction] {
        var actions = policy.step(now: fleet.now, reports: fleet.reports)
        fleet.now += 0.005
        for name in names { fleet.beat(name) }
        actions += policy.step(now: fleet.now, reports: fleet.reports)
        return actions
    }

    @Test("the floor is launched, and traffic goes to instances once they beat")
    func startsTheFloor() {
        let policy = ControllerPolicy(settings: Self.settings(), slots: ["a", "b", "c"])
        let fleet = Fleet()
        let first = policy.step(now: 0, reports: [:])
        #expect(first == [.launch("a"), .launch("b"), .steer([])])
        fleet.now = 0.2
        fleet.beat("a")
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.steer(["a"])])
        fleet.beat("b")
        #expect(policy.step(now: fleet.now + 0.001, reports: fleet.reports) == [.steer(["a", "b"])])
        #expect(policy.slots.map(\.state) == [.active, .active, .idle])
    }

    @Test("missed heartbeats: steered away at once, back when they resume (it was only slow)")
    func speculativeRejoin() {
        let policy = ControllerPolicy(settings: Self.settings(), slots: ["a", "b", "c"])
        let fleet = Fleet()
        _ = Self.running(policy, fleet, ["a", "b"])
        // b falls silent for longer than the timeout; a keeps beating.
        for _ in 0..<8 {
            fleet.now += 0.005
            fleet.beat("a")
            let actions = policy.step(now: fleet.now, reports: fleet.reports)
            if policy.slots[1].state == .suspected {
                #expect(actions == [.steer(["a"])], "steered away the step it is suspected")
                break
            }
            #expect(actions.isEmpty)
        }
        #expect(policy.slots[1].state == .suspected)
        #expect(fleet.now < 0.05, "suspected within the heartbeat timeout and a step")
        fleet.now += 0.005
        fleet.beat("a")
        fleet.beat("b")
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.steer(["a", "b"])], "b rejoins")
        #expect(policy.slots[1].state == .active)
    }

    @Test("an instance silent past failAfter is stopped and replaced to keep the floor")
    func failureReplaced() {
        let policy = ControllerPolicy(settings: Self.settings(), slots: ["a", "b", "c"])
        let fleet = Fleet()
        _ = Self.running(policy, fleet, ["a", "b"])
        var all: [ControllerAction] = []
        while fleet.now < 0.7 {
            fleet.now += 0.005
            fleet.beat("a")
            all += policy.step(now: fleet.now, reports: fleet.reports)
        }
        #expect(all == [.steer(["a"]), .stop("b"), .launch("b")], "\(all)")
        // The replacement is a new process in the slot; the old one's late reports count for nothing.
        fleet.beat("b", pid: 100)
        fleet.now += 0.005
        fleet.beat("a")
        #expect(policy.step(now: fleet.now, reports: fleet.reports).isEmpty, "the stopped process does not come back")
        fleet.beat("b", pid: 200)
        fleet.now += 0.005
        fleet.beat("a")
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.steer(["a", "b"])])
    }

    @Test("an instance whose process ended, or that reports itself stopped, leaves at once")
    func endedProcess() {
        let policy = ControllerPolicy(settings: Self.settings { $0.floor = 1 }, slots: ["a", "b", "c"])
        let fleet = Fleet()
        _ = Self.running(policy, fleet, ["a"])
        policy.desired = 2
        fleet.now += 0.005
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.launch("b")])
        fleet.beat("a")
        fleet.beat("b")
        fleet.now += 0.005
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.steer(["a", "b"])])
        fleet.beat("a")
        fleet.beat("b")
        fleet.now += 0.005
        #expect(policy.step(now: fleet.now, reports: fleet.reports, ended: ["b"]) == [.stop("b"), .launch("b"), .steer(["a"])])
        fleet.beat("a", state: .stopped)
        fleet.now += 0.005
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.stop("a"), .launch("a"), .steer([])])
    }

    @Test("scale out above the load threshold, sustained, and in below it, with a cooldown between; drained before stopped")
    func scaling() {
        let policy = ControllerPolicy(settings: Self.settings {
            $0.floor = 1; $0.scaleOutAbove = 100_000; $0.scaleInBelow = 20_000; $0.sustain = 0.5; $0.cooldown = 1; $0.drain = 0.2
        }, slots: ["a", "b", "c"])
        let fleet = Fleet()
        _ = Self.running(policy, fleet, ["a"])
        var actions: [(Double, ControllerAction)] = []
        func run(until end: Double, pps: Double) {
            while fleet.now < end {
                fleet.now += 0.01
                for slot in policy.slots where slot.state == .active || slot.state == .starting || slot.state == .draining {
                    fleet.beat(slot.name, pps: pps)
                }
                actions += policy.step(now: fleet.now, reports: fleet.reports).map { (fleet.now, $0) }
            }
        }
        run(until: 0.4, pps: 150_000)
        #expect(actions.isEmpty, "not sustained yet")
        run(until: 0.6, pps: 150_000)
        #expect(actions.map(\.1) == [.launch("b"), .steer(["a", "b"])], "scaled out once 0.5 s above the threshold")
        run(until: 1.4, pps: 150_000)
        #expect(actions.count == 2, "cooldown")
        run(until: 1.7, pps: 150_000)
        #expect(actions.map(\.1).suffix(2) == [.launch("c"), .steer(["a", "b", "c"])])
        run(until: 5.0, pps: 150_000)
        #expect(actions.count == 4, "the ceiling")
        run(until: 7.0, pps: 5_000)
        let scaleIn = actions.dropFirst(4).map(\.1)
        #expect(scaleIn.prefix(2) == [.steer(["a", "b"]), .stop("c")], "c steered away, then stopped after the drain: \(scaleIn)")
        run(until: 12.0, pps: 5_000)
        #expect(policy.slots.map(\.state) == [.active, .idle, .idle], "down to the floor")
    }

    @Test("a size set on command wins over the load, within floor and ceiling")
    func onCommand() {
        let policy = ControllerPolicy(settings: Self.settings { $0.floor = 1 }, slots: ["a", "b", "c"])
        let fleet = Fleet()
        _ = Self.running(policy, fleet, ["a"])
        policy.desired = 9
        fleet.now += 0.005
        fleet.beat("a")
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.launch("b"), .launch("c")])
        policy.desired = 0
        fleet.now += 0.005
        fleet.beat("a")
        #expect(policy.step(now: fleet.now, reports: fleet.reports) == [.stop("c"), .stop("b")],
                "down to the floor, 1: the instances still starting go first")
        #expect(policy.slots.map(\.state) == [.active, .idle, .idle])
    }

    @Test("an instance started by hand joins")
    func adoption() {
        let policy = ControllerPolicy(settings: Self.settings { $0.floor = 0 }, slots: ["a", "b"])
        let fleet = Fleet()
        #expect(policy.step(now: 0, reports: [:]) == [.steer([])])
        fleet.beat("b")
        #expect(policy.step(now: 0.01, reports: fleet.reports) == [.steer(["b"])])
    }

    @Test("bad settings name the field")
    func badSettings() {
        #expect(throws: SettingsError.self) { try Self.settings { $0.ceiling = 4 }.check(slots: 3) }
        do {
            try Self.settings { $0.scaleOutAbove = 10; $0.scaleInBelow = 20 }.check(slots: 3)
            Issue.record("accepted")
        } catch {
            #expect(error.field == "scaleInBelow")
        }
    }
}

/// What the controller does when it, not the instances, was slow.
@Suite("Controller policy when the controller stalls")
struct ControllerStallTests {
    @Test("a controller that could not look for a while suspects no instance that beat meanwhile; all suspected at once, traffic stays with them")
    func stalls() {
        let policy = ControllerPolicy(settings: ControllerPolicyTests.settings(), slots: ["a", "b", "c"])
        let fleet = ControllerPolicyTests.Fleet()
        _ = ControllerPolicyTests.running(policy, fleet, ["a", "b"])
        // The controller's own loop stalls for 200 ms while the instances beat.
        fleet.now += 0.2
        fleet.beat("a")
        fleet.beat("b")
        #expect(policy.step(now: fleet.now, reports: fleet.reports).isEmpty, "no instance suspected for the controller's stall")
        // Both go silent while the controller runs: both suspected, but traffic has nowhere else to go.
        var actions: [ControllerAction] = []
        for _ in 0..<10 {
            fleet.now += 0.005
            actions += policy.step(now: fleet.now, reports: fleet.reports)
        }
        #expect(policy.slots[0].state == .suspected && policy.slots[1].state == .suspected)
        #expect(!actions.contains(.steer([])), "never steered to nobody: \(actions)")
        #expect(policy.steered == ["a", "b"])
    }
}
