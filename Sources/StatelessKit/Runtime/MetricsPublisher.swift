import CoreMetrics

/// Publishes a runner's counters through swift-metrics, so that whatever
/// metrics backend the process bootstrapped (Prometheus, StatsD, ...) sees
/// packets, drops by reason, store round trips and what nodes count.
///
/// The packet path counts in the runner's own ``Counters`` (an array
/// increment); ``publish()`` hands the growth since its last call to
/// swift-metrics counters, so call it now and then (the ``Driver`` does after
/// every 1,024 batches and at the end).
public final class MetricsPublisher {
    let runner: GraphRunner
    let prefix: String
    let dimensions: [(String, String)]
    let factory: any MetricsFactory
    var published: [String: Int] = [:]
    var counters: [String: CoreMetrics.Counter] = [:]

    /// A publisher of `runner`'s counters, named `PREFIX_NAME` (dots become
    /// underscores) with `dimensions` (say, the NF and the instance), to
    /// `factory` (by default, the one the process bootstrapped).
    public init(runner: GraphRunner, prefix: String = "statelessnf", dimensions: [(String, String)] = [],
                factory: any MetricsFactory = MetricsSystem.factory) {
        self.runner = runner
        self.prefix = prefix
        self.dimensions = dimensions
        self.factory = factory
    }

    /// Hands the counters' growth since the last call to swift-metrics.
    public func publish() {
        var current = runner.counters.all
        current.merge(runner.session?.statistics ?? [:], uniquingKeysWith: +)
        current["packets.in"] = runner.packetsIn
        current["store.roundTrips"] = runner.roundTrips
        current["store.operations"] = runner.stateOperations
        for (name, value) in current {
            let delta = value - (published[name] ?? 0)
            guard delta > 0 else { continue }
            published[name] = value
            let counter = counters[name] ?? {
                let label = prefix + "_" + name.replacingDots()
                let created = CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
                counters[name] = created
                return created
            }()
            counter.increment(by: delta)
        }
    }
}

extension String {
    func replacingDots() -> String {
        String(map { $0 == "." ? "_" : $0 })
    }
}
