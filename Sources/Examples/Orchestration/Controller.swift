import Foundation
import Logging
import StatelessKitStore

/// A controller at work: every `interval` it reads the instances' reports
/// from the registry, lets its ``ControllerPolicy`` decide, starts and
/// stops instances through its launcher and steers traffic; now and then
/// it publishes its view to the registry for `statelessnf controller
/// status`. Everything it knows is in the store, so a controller that is
/// restarted picks the fleet up where it was.
public final class Controller {
    public let policy: ControllerPolicy
    let registry: InstanceRegistry
    let steering: TrafficSteering
    let launcher: InstanceLauncher
    let interval: Double
    let logger: Logger
    private let started = DispatchTime.now()
    private var lastPublished = -Double.infinity
    private var lastDesiredRead = -Double.infinity
    private var registryFailing = false

    public init(policy: ControllerPolicy, registry: InstanceRegistry, steering: TrafficSteering, launcher: InstanceLauncher,
                interval: Double = 0.005, logger: Logger = Logger(label: "statelessnf.controller")) {
        self.policy = policy
        self.registry = registry
        self.steering = steering
        self.launcher = launcher
        self.interval = interval
        self.logger = logger
    }

    /// Seconds since the controller started (monotonic).
    var now: Double { Double(DispatchTime.now().uptimeNanoseconds - started.uptimeNanoseconds) / 1e9 }

    /// Runs until `stop` returns true.
    public func run(until stop: () -> Bool) {
        while !stop() {
            step()
            Thread.sleep(forTimeInterval: interval)
        }
        publish(force: true)
    }

    /// One look at the fleet, and what follows from it.
    public func step() {
        let time = now
        let reports: [String: InstanceReport]
        do {
            reports = try registry.reports()
            if time - lastDesiredRead > 0.1 {
                policy.desired = try registry.desired()
                lastDesiredRead = time
            }
            if registryFailing { logger.notice("the registry answers again") }
            registryFailing = false
        } catch {
            // Without reports nothing is known: act on nothing rather than
            // take every instance for failed.
            if !registryFailing { logger.error("cannot read the registry; holding the fleet as it is", metadata: ["error": "\(error)"]) }
            registryFailing = true
            return
        }
        for action in policy.step(now: time, reports: reports, ended: launcher.ended()) {
            apply(action, at: time)
        }
        publish(force: false)
    }

    func apply(_ action: ControllerAction, at time: Double) {
        switch action {
        case .launch(let name):
            logger.notice("starting instance", metadata: ["instance": "\(name)"])
            do { try launcher.launch(name) } catch {
                logger.error("could not start instance", metadata: ["instance": "\(name)", "error": "\(error)"])
            }
        case .stop(let name):
            logger.notice("stopping instance", metadata: ["instance": "\(name)"])
            launcher.stop(name)
        case .steer(let names):
            logger.notice("steering traffic", metadata: ["instances": "\(names.joined(separator: ","))"])
            do { try steering.steer(to: names) } catch {
                logger.error("steering failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Publishes the view every 100 ms (or now, with `force`).
    func publish(force: Bool) {
        let time = now
        guard force || time - lastPublished >= 0.1 else { return }
        lastPublished = time
        var fields: [String: String] = ["updated": "\(Int64(Date().timeIntervalSince1970 * 1000))",
                                        "steered": (policy.steered ?? []).joined(separator: ",")]
        if let desired = policy.desired { fields["desired"] = "\(desired)" }
        for slot in policy.slots {
            fields["slot:" + slot.name] = "\(slot.state.rawValue) \(String(format: "%.3f", time - slot.since))"
        }
        try? registry.publishView(fields)
    }
}
