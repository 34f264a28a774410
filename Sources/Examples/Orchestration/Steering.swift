import Foundation

/// Where traffic goes: whatever splits it over the instances in a real
/// deployment (an upstream router's equal-cost routes, an OpenFlow or P4
/// switch, a hardware load splitter) behind one call.
public protocol TrafficSteering: AnyObject {
    /// Sends traffic to exactly `instances` (none: traffic has nowhere to go
    /// and is dropped at the splitter).
    func steer(to instances: [String]) throws
}

/// Steering by a Linux router's multipath routes: on each router (a network
/// namespace, or this one), a prefix routed through a nexthop group of the
/// instances' addresses, a resilient group where the kernel has them (so
/// that removing an instance moves only its own flows), a plain multipath
/// group otherwise. Every change to a router is one `ip -batch`.
public final class LinuxRouteSteering: TrafficSteering {
    /// One router's share: the prefix it routes through the instances and,
    /// per instance, the next hop toward it (`via ADDRESS dev IFACE`).
    public struct Router: Sendable, Equatable, Decodable {
        /// The router's network namespace (`nil`: the controller's own).
        public var namespace: String?
        /// The prefixes routed through the instances.
        public var prefixes: [String]
        /// Each instance's next hop from this router.
        public var nexthops: [String: String]
        /// The nexthop group's id (members take the ids after it).
        public var group: Int = 1000

        public init(namespace: String?, prefixes: [String], nexthops: [String: String], group: Int = 1000) {
            self.namespace = namespace
            self.prefixes = prefixes
            self.nexthops = nexthops
            self.group = group
        }

        enum CodingKeys: String, CodingKey { case namespace, prefixes, nexthops, group }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            namespace = try c.decodeIfPresent(String.self, forKey: .namespace)
            prefixes = try c.decode([String].self, forKey: .prefixes)
            nexthops = try c.decode([String: String].self, forKey: .nexthops)
            group = try c.decodeIfPresent(Int.self, forKey: .group) ?? 1000
        }
    }

    public let routers: [Router]
    /// The slots, in order: each instance's nexthop id is the group's plus
    /// its index plus one.
    let slots: [String]
    private var resilient = true

    /// Steering over `routers`, for the instance slots `slots`.
    public init(routers: [Router], slots: [String]) throws(SteeringError) {
        for router in routers {
            for slot in slots where router.nexthops[slot] == nil {
                throw SteeringError("router \(router.namespace ?? "(this namespace)"): no nexthop for instance \(slot)")
            }
        }
        self.routers = routers
        self.slots = slots
    }

    public func steer(to instances: [String]) throws {
        for router in routers {
            var commands: [String] = []
            let ids = instances.compactMap { name in slots.firstIndex(of: name).map { router.group + 1 + $0 } }
            for (name, id) in zip(instances, ids) { commands.append("nexthop replace id \(id) \(router.nexthops[name]!)") }
            if ids.isEmpty {
                commands += router.prefixes.map { "route replace blackhole \($0)" }
            } else {
                let members = ids.map(String.init).joined(separator: "/")
                commands.append("nexthop replace id \(router.group) group \(members)"
                                + (resilient ? " type resilient buckets 256 idle_timer 0" : ""))
                commands += router.prefixes.map { "route replace \($0) nhid \(router.group)" }
            }
            do {
                try Self.ip(commands, namespace: router.namespace)
            } catch let error as SteeringError where resilient && error.description.contains("resilient") {
                // An older kernel: plain multipath groups.
                resilient = false
                try steer(to: instances)
                return
            }
        }
    }

    /// Runs `ip -batch -` (in `namespace`) with `commands`.
    static func ip(_ commands: [String], namespace: String?) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = (namespace.map { ["-n", $0] } ?? []) + ["-batch", "-"]
        let input = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(Data((commands.joined(separator: "\n") + "\n").utf8))
        try input.fileHandleForWriting.close()
        let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw SteeringError("ip\(namespace.map { " -n \($0)" } ?? ""): \(message.trimmingCharacters(in: .whitespacesAndNewlines)) (commands: \(commands.joined(separator: "; ")))")
        }
    }
}

/// Steering that could not be applied.
public struct SteeringError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
