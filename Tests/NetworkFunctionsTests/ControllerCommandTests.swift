import Foundation
import StatelessKitStore
import StoreTestSupport
import Testing

/// The instance registry on a real redis-server, and `statelessnf
/// controller status|scale|run` as an operator uses them.
@Suite("The controller's commands and the instance registry")
struct ControllerCommandTests {
    static let ready = CommandTests.built && RedisServer.executable != nil

    @Test("heartbeats are read back whole; an expired report is forgotten; the view and the size on command round-trip",
          .enabled(if: RedisServer.executable != nil, RedisServer.skipNote))
    func registry() throws {
        let server = try #require(RedisServer.shared)
        let namespace = "registry-\(UUID())"
        let registry = try InstanceRegistry(try RedisEndpoint(url: server.url()), namespace: namespace, retention: 0.3)
        var report = InstanceReport(name: "nf1", nf: "nat", pid: 4242, sequence: 7, started: 1000, sent: 2000,
                                    packets: 12345, packetsPerSecond: 678.5, workers: 2)
        try registry.beat(report)
        try registry.beat(InstanceReport(name: "nf2", nf: "nat", state: .stopped, started: 1, sent: 2))
        var reports = try registry.reports()
        #expect(reports["nf1"] == report && reports["nf2"]?.state == .stopped && reports.count == 2)
        report.sequence = 8
        try registry.beat(report)
        #expect(try registry.reports()["nf1"]?.sequence == 8)
        usleep(500_000)
        reports = try registry.reports()
        #expect(reports.isEmpty, "reports past their retention are gone: \(reports)")
        try registry.publishView(["slot:nf1": "active 0.5", "steered": "nf1"])
        #expect(try registry.view() == ["slot:nf1": "active 0.5", "steered": "nf1"])
        try registry.setDesired(3)
        #expect(try registry.desired() == 3)
        try registry.setDesired(nil)
        #expect(try registry.desired() == nil)
    }

    @Test("controller status shows each instance's state, heartbeat and load; scale sets and clears the size on command",
          .enabled(if: ready, "skipped: the command is not built or redis-server is not installed"))
    func statusAndScale() throws {
        let server = try #require(RedisServer.shared)
        let namespace = "status-\(UUID())"
        let url = server.url()
        let registry = try InstanceRegistry(try RedisEndpoint(url: url), namespace: namespace)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try registry.beat(InstanceReport(name: "nf1", nf: "nat", pid: 111, sequence: 3, started: now - 5000, sent: now,
                                         packets: 5000, packetsPerSecond: 1500, workers: 1))
        try registry.publishView(["slot:nf1": "active 1.250", "slot:nf2": "idle 3.000", "steered": "nf1",
                                  "updated": "\(now)"])
        var (status, output, error) = try CommandTests.run(["controller", "status", "--registry", url, "--namespace", namespace, "--json"])
        #expect(status == 0, "\(error)")
        let object = try CommandTests.json(output)
        let instances = try #require(object["instances"] as? [[String: Any]])
        #expect(instances.count == 2 && object["steered"] as? [String] == ["nf1"], "\(object)")
        #expect(instances[0]["instance"] as? String == "nf1" && instances[0]["controller"] as? String == "active"
                && instances[0]["reported"] as? String == "running" && instances[0]["packetsPerSecond"] as? Double == 1500
                && instances[0]["pid"] as? Int == 111, "\(instances[0])")
        #expect(instances[1]["controller"] as? String == "idle" && instances[1]["reported"] == nil, "\(instances[1])")
        (status, output, error) = try CommandTests.run(["controller", "status", "--registry", url, "--namespace", namespace])
        #expect(status == 0 && output.contains("traffic to [nf1]") && output.contains("INSTANCE") && output.contains("1500"), "\(output)")
        (status, _, error) = try CommandTests.run(["controller", "scale", "2", "--registry", url, "--namespace", namespace])
        let desired = try registry.desired()
        #expect(status == 0 && desired == 2, "\(error)")
        (status, _, error) = try CommandTests.run(["controller", "scale", "auto", "--registry", url, "--namespace", namespace])
        let cleared = try registry.desired()
        #expect(status == 0 && cleared == nil, "\(error)")
        (status, _, error) = try CommandTests.run(["controller", "scale", "many", "--registry", url, "--namespace", namespace])
        #expect(status != 0 && error.contains("a number of instances, or auto"), "\(error)")
    }

    @Test("a controller configuration with a mistake names the field",
          .enabled(if: ready, "skipped: the command is not built or redis-server is not installed"))
    func badConfig() throws {
        let folder = try CommandTests.folder("controller")
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("controller.yaml").path
        let base = """
            registry: \(try #require(RedisServer.shared).url())
            namespace: bad
            instances:
              - { name: nf1, command: "true" }
            steering:
              routers:
                - { prefixes: [10.9.0.0/24], nexthops: { nf1: via 10.1.1.2 dev x } }

            """
        for (settings, message) in [("settings: { ceiling: 2 }", "ceiling: is 2, but only 1 instance slots are configured"),
                                    ("settings: { heartbeatTimeout: 0.5, failAfter: 0.1 }", "failAfter: must be at least heartbeatTimeout")] {
            try (base + settings + "\n").write(toFile: path, atomically: true, encoding: .utf8)
            let (status, _, error) = try CommandTests.run(["controller", "run", "--config", path])
            #expect(status != 0 && error.contains(message), "\(error)")
        }
        try base.replacingOccurrences(of: "nf1: via", with: "nf9: via").write(toFile: path, atomically: true, encoding: .utf8)
        let (status, _, error) = try CommandTests.run(["controller", "run", "--config", path])
        #expect(status != 0 && error.contains("no nexthop for instance nf1"), "\(error)")
    }
}
