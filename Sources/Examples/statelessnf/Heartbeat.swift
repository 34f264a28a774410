import Foundation
import Logging
import StatelessKitStore

/// Sends an NF instance's heartbeats to its deployment's ``InstanceRegistry``
/// from a thread of its own, every `interval`, as long as every worker keeps
/// polling: a worker that hangs stops the heartbeats as surely as a process
/// that dies. Each heartbeat carries the packets received so far and the
/// rate over the last second (a controller's load policy wants the rate,
/// not one heartbeat's burst). A registry that cannot be reached is logged
/// once and retried at each beat; the packets flow meanwhile.
final class HeartbeatSender: @unchecked Sendable {
    let registry: InstanceRegistry
    let interval: Double
    let activity: @Sendable () -> [Int]
    let packets: @Sendable () -> Int
    private let condition = NSCondition()
    private var ending = false
    private var ended = false
    private var report: InstanceReport
    /// (milliseconds, packets) of the heartbeats of the last second.
    private var recent: [(Int64, Int)] = []

    /// A sender for instance `name` running `nf` with `workers` workers;
    /// `activity` gives each worker's poll count, `packets` the packets
    /// received so far.
    init(registry: InstanceRegistry, name: String, nf: String, workers: Int, interval: Double,
         activity: @escaping @Sendable () -> [Int], packets: @escaping @Sendable () -> Int) {
        self.registry = registry
        self.interval = interval
        self.activity = activity
        self.packets = packets
        let now = Self.milliseconds()
        report = InstanceReport(name: name, nf: nf, started: now, sent: now, workers: workers)
    }

    static func milliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Starts beating.
    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "statelessnf-heartbeat"
        thread.start()
    }

    /// Sends a last report in `state` and stops beating.
    func stop(_ state: InstanceReport.State) {
        condition.lock()
        ending = true
        condition.broadcast()
        while !ended { condition.wait() }
        condition.unlock()
        report.state = state
        send(force: true)
    }

    private func loop() {
        var lastActivity: [Int] = []
        var failing = false
        while true {
            condition.lock()
            if !ending { _ = condition.wait(until: Date().addingTimeInterval(interval)) }
            let stop = ending
            condition.unlock()
            if stop { break }
            let current = activity()
            // Every worker must have polled since the last beat.
            let alive = lastActivity.isEmpty || zip(current, lastActivity).allSatisfy { $0 != $1 }
            lastActivity = current
            guard alive else { continue }
            failing = !send(force: false, failing: failing)
        }
        condition.lock()
        ended = true
        condition.broadcast()
        condition.unlock()
    }

    /// Sends the report; returns whether it went.
    @discardableResult
    private func send(force: Bool, failing: Bool = false) -> Bool {
        let now = Self.milliseconds()
        let received = packets()
        recent.append((now, received))
        if let cut = recent.firstIndex(where: { now - $0.0 <= 1000 }), cut > 0 { recent.removeFirst(cut - 1) }
        if let oldest = recent.first, now > oldest.0 {
            report.packetsPerSecond = Double(received - oldest.1) / (Double(now - oldest.0) / 1000)
        }
        report.packets = received
        report.sent = now
        report.sequence += 1
        do {
            try registry.beat(report)
            if failing { log.notice("heartbeats reach the registry again", metadata: ["instance": "\(report.name)"]) }
            return true
        } catch {
            if !failing || force {
                log.error("heartbeat failed; retrying at each beat", metadata: ["instance": "\(report.name)", "error": "\(error)"])
            }
            return false
        }
    }
}
