import ArgumentParser
import Dispatch
import Foundation
import Orchestration
import StatelessKitStore

/// `statelessnf controller`: runs a fleet of NF instances, or shows it.
struct ControllerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "controller",
        abstract: "Watch a fleet of NF instances sharing Redis: detect failures, scale, steer traffic.",
        subcommands: [Run.self, Status.self, Scale.self])

    /// `controller run --config FILE`.
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the controller (until SIGINT or SIGTERM).",
            discussion: """
                Every interval it reads the instances' heartbeats from the registry. An instance \
                whose heartbeats stop for settings.heartbeatTimeout is steered away from at once \
                (and back if they resume); after settings.failAfter it is stopped and, if the fleet \
                is below its floor, replaced. Between floor and ceiling, the fleet grows and shrinks \
                with the instances' packets per second, or to the size set by `controller scale`. \
                The configuration is described in Documentation/Orchestration.md.
                """)

        @Option(help: "The controller's configuration file (YAML or JSON).")
        var config: String

        @Flag(help: "Stop the instances it started when it stops.")
        var stopInstances = false

        func run() throws {
            let config = try ConfigFile.load(self.config, as: ControllerConfig.self)
            do { try config.check() } catch { throw ValidationError("\(self.config): \(error)") }
            let registry = try Self.registry(config.registry, namespace: config.namespace)
            let slots = config.instances.map(\.name)
            let steering: LinuxRouteSteering
            do {
                steering = try LinuxRouteSteering(routers: config.steering.routers, slots: slots)
            } catch {
                throw ValidationError("\(self.config): steering: \(error)")
            }
            let logs = config.logs.map { URL(fileURLWithPath: $0) }
            if let logs { try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true) }
            let launcher = ShellLauncher(commands: Dictionary(uniqueKeysWithValues: config.instances.map { ($0.name, $0.command) }),
                                         logs: logs)
            let controller = Controller(policy: ControllerPolicy(settings: config.settings, slots: slots), registry: registry,
                                        steering: steering, launcher: launcher, interval: config.interval)
            let stopping = StopFlag()
            let watches = SignalWatch.watch([SIGINT, SIGTERM]) { stopping.set() }
            defer { watches.forEach { $0.cancel() } }
            log.notice("controller running", metadata: ["namespace": "\(config.namespace)", "slots": "\(slots.joined(separator: ","))"])
            controller.run(until: { stopping.isSet })
            if stopInstances { launcher.stopAll() }
        }

        static func registry(_ url: String, namespace: String) throws -> InstanceRegistry {
            do {
                return try InstanceRegistry(try RedisEndpoint(url: url), namespace: namespace)
            } catch {
                throw ValidationError("registry \(url): \(error)")
            }
        }
    }

    /// `controller status`.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the instances, their state and load at a glance.")

        @Option(help: "The registry's Redis URL.")
        var registry: String

        @Option(help: "The deployment's namespace (the NF's).")
        var namespace: String

        @Flag(help: "Print JSON.")
        var json = false

        func run() throws {
            let registry = try Run.registry(self.registry, namespace: namespace)
            let reports = try registry.reports()
            let view = try registry.view()
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            var names = Set(reports.keys)
            for key in view.keys where key.hasPrefix("slot:") { names.insert(String(key.dropFirst(5))) }
            let rows: [[String: Any]] = names.sorted().map { name in
                let report = reports[name]
                let slot = view["slot:" + name]?.split(separator: " ")
                var row: [String: Any] = ["instance": name, "controller": slot.map { String($0[0]) } ?? "-"]
                if let report {
                    row["reported"] = report.state.rawValue
                    row["heartbeatAgeMs"] = now - report.sent
                    row["packetsPerSecond"] = report.packetsPerSecond
                    row["packets"] = report.packets
                    row["pid"] = Int(report.pid)
                    row["nf"] = report.nf
                    row["workers"] = report.workers
                }
                return row
            }
            let controllerAge = view["updated"].flatMap { Int64($0) }.map { now - $0 }
            if json {
                let object: [String: Any] = ["namespace": namespace, "instances": rows,
                                             "steered": view["steered"].map { $0.isEmpty ? [] : $0.split(separator: ",").map(String.init) } ?? [],
                                             "controllerAgeMs": controllerAge ?? -1, "desired": view["desired"].flatMap { Int($0) } ?? -1]
                let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            print("deployment \(namespace): \(reports.count) instance(s) reporting; controller "
                  + (controllerAge.map { "seen \($0) ms ago" } ?? "not running")
                  + (view["steered"].map { ", traffic to [\($0)]" } ?? "")
                  + (view["desired"].map { ", size on command \($0)" } ?? ""))
            let header = ["INSTANCE", "CONTROLLER", "REPORTED", "HEARTBEAT", "PPS", "PACKETS", "PID"]
            var table = [header]
            for row in rows {
                table.append([row["instance"] as! String, row["controller"] as! String, row["reported"] as? String ?? "-",
                              (row["heartbeatAgeMs"] as? Int64).map { "\($0) ms ago" } ?? "-",
                              (row["packetsPerSecond"] as? Double).map { String(format: "%.0f", $0) } ?? "-",
                              (row["packets"] as? Int).map { "\($0)" } ?? "-", (row["pid"] as? Int).map { "\($0)" } ?? "-"])
            }
            let widths = header.indices.map { column in table.map { $0[column].count }.max()! }
            for line in table {
                print(line.enumerated().map { $0.element.padding(toLength: widths[$0.offset] + 2, withPad: " ", startingAt: 0) }
                    .joined().trimmingCharacters(in: .whitespaces))
            }
        }
    }

    /// `controller scale N`.
    struct Scale: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set the fleet's size (within its floor and ceiling), or give it back to the load with 'auto'.")

        @Argument(help: "The number of instances, or auto.")
        var size: String

        @Option(help: "The registry's Redis URL.")
        var registry: String

        @Option(help: "The deployment's namespace (the NF's).")
        var namespace: String

        func validate() throws {
            guard size == "auto" || (Int(size) ?? -1) >= 0 else { throw ValidationError("size: a number of instances, or auto") }
        }

        func run() throws {
            try Run.registry(registry, namespace: namespace).setDesired(Int(size))
            print(size == "auto" ? "the load decides the size of \(namespace)" : "\(namespace): \(size) instance(s) on command")
        }
    }
}

/// A flag one thread sets and another reads.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}
