import Foundation
import StoreTestSupport
import Testing

/// The orchestration scenarios on real kernel TCP (Scripts/scenario.sh on
/// the namespace testbed): a fleet of NF instances that share Redis loses
/// no connection when an instance is killed, when it scales out and in, or
/// when a flow's two directions cross different instances; the same fleet
/// with a store per instance (the traditional design) breaks connections.
/// One scenario at a time: they share the testbed's namespaces.
@Suite("Orchestration scenarios", .serialized)
struct OrchestrationScenarioTests {
    static let note: String? = DPDKRunTests.namespacesNote
        ?? (RedisServer.executable == nil ? "skipped: redis-server is not installed (make deps installs it)" : nil)

    /// Runs a scenario; its result.
    static func scenario(_ name: String, nf: String = "nat", store: String) throws -> [String: Any] {
        let (status, output, error) = try CommandTests.run(
            [CommandTests.binary, name, "--nf", nf, "--store", store],
            executable: DPDKRunTests.repository.appendingPathComponent("Scripts/scenario.sh").path)
        #expect(status == 0, "\(name) \(nf) \(store): \(error)")
        let line = try #require(output.split(separator: "\n").last, "\(name): no result: \(error)")
        let result = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        print("scenario \(line)")
        return result
    }

    @Test("the NAT on Redis: kill -9, scale 1 to 3 to 1, asymmetric paths; 20 connections each, none broken",
          .enabled(if: CommandTests.built && note == nil, Comment(rawValue: note ?? "skipped: the command is not built")),
          arguments: ["failure", "scale", "asymmetric"])
    func stateless(scenario: String) throws {
        let result = try Self.scenario(scenario, store: "redis")
        #expect(result["connections"] as? Int == 20 && result["broken"] as? Int == 0, "\(result)")
        // (How many datagrams a fleet change costs depends on the machine's
        // load: Documentation/Evaluation.md reports it; here, that the
        // flows got through.)
        #expect((result["udpReceived"] as? Int ?? 0) > 8_000, "the UDP flows get through: \(result)")
    }

    @Test("the traditional design (a store per instance) breaks connections when an instance dies or paths are asymmetric",
          .enabled(if: CommandTests.built && note == nil, Comment(rawValue: note ?? "skipped: the command is not built")),
          arguments: ["failure", "asymmetric"])
    func traditional(scenario: String) throws {
        let result = try Self.scenario(scenario, store: "memory")
        #expect((result["broken"] as? Int ?? 0) > 0, "\(result)")
    }

    @Test("the firewall and the load balancer on Redis: kill -9, scale 1 to 3 to 1 and asymmetric paths with every connection",
          .enabled(if: CommandTests.built && note == nil, Comment(rawValue: note ?? "skipped: the command is not built")),
          arguments: ["firewall", "lb"], ["failure", "scale", "asymmetric"])
    func otherNFs(nf: String, scenario: String) throws {
        let result = try Self.scenario(scenario, nf: nf, store: "redis")
        #expect(result["connections"] as? Int == 20 && result["broken"] as? Int == 0, "\(result)")
    }

    @Test("an instance paused for 0.3 s is steered away and back, never restarted, and no connection breaks",
          .enabled(if: CommandTests.built && note == nil, Comment(rawValue: note ?? "skipped: the command is not built")))
    func wronglySuspected() throws {
        let result = try Self.scenario("pause", store: "redis")
        #expect(result["broken"] as? Int == 0, "\(result)")
        let events = (result["events"] as? [String] ?? []).joined(separator: "; ")
        // "nf1 pid P before, Q after"
        let pids = events.components(separatedBy: "pid ").last?.split(separator: " ").prefix(3)
            .compactMap { Int($0.trimmingCharacters(in: .punctuationCharacters)) } ?? []
        #expect(pids.count == 2 && pids[0] == pids[1] && pids[0] > 0, "the same process before and after: \(events)")
        #expect(events.contains("steering changes"), "\(events)")
    }

    @Test("the load policy scales the fleet out while traffic lasts and back to its floor after, breaking no connection",
          .enabled(if: CommandTests.built && note == nil, Comment(rawValue: note ?? "skipped: the command is not built")))
    func autoscale() throws {
        let result = try Self.scenario("autoscale", store: "redis")
        #expect(result["broken"] as? Int == 0, "\(result)")
        #expect((result["fleetMax"] as? Int ?? 0) >= 2 && result["fleetEnd"] as? Int == 1, "\(result)")
    }
}
