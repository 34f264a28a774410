import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore

/// `statelessnf demo`: two NAT instances, one fails halfway; shared state
/// against state kept per instance.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Two NAT instances carry thousands of TCP and UDP flows; halfway one stops and its flows move to the other. Run once with the instances sharing the store, once with state of their own.")

    @Option(help: "Flows (half TCP, half UDP).")
    var flows: Int = 4000

    @Option(help: "Rounds of traffic (each: a packet out and its reply, per flow); the failure comes halfway.")
    var rounds: Int = 10

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        guard (2...200_000).contains(flows) else { throw ValidationError("--flows must be 2 to 200000") }
        guard (2...1000).contains(rounds) else { throw ValidationError("--rounds must be 2 to 1000") }
    }

    func run() throws {
        // The shared store: the embedded one, or Redis (in a deployment of
        // its own, removed afterwards).
        let store = try storeOptions.makeStore()
        let namespace = store is RedisStore ? "demo-\(getpid())" : "demo"
        defer { try? (store as? RedisStore)?.removeDeployment(namespace: namespace) }
        let shared = try FailoverScenario.run(flows: flows, rounds: rounds, shareStore: true, store: store,
                                              namespace: namespace)
        let separate = try FailoverScenario.run(flows: flows, rounds: rounds, shareStore: false)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(["sharedStore": shared, "statePerInstance": separate]), as: UTF8.self))
            return
        }
        func percent(_ part: Int, _ whole: Int) -> String {
            String(format: "%d (%.1f%%)", part, whole == 0 ? 0 : 100 * Double(part) / Double(whole))
        }
        let rows: [(String, String, String)] = [
            ("flows (TCP + UDP)", "\(shared.flows)", "\(separate.flows)"),
            ("flows moved at the failure", "\(shared.movedFlows)", "\(separate.movedFlows)"),
            ("flows that kept their mapping", percent(shared.keptMapping, shared.flows), percent(separate.keptMapping, separate.flows)),
            ("flows whose mapping changed", "\(shared.changedMapping)", "\(separate.changedMapping)"),
            ("packets sent", "\(shared.packetsSent)", "\(separate.packetsSent)"),
            ("packets delivered", percent(shared.packetsDelivered, shared.packetsSent), percent(separate.packetsDelivered, separate.packetsSent)),
            ("lost for lack of state", "\(shared.lostForLackOfState)", "\(separate.lostForLackOfState)"),
            ("replies to the wrong host", "\(shared.deliveredToWrongHost)", "\(separate.deliveredToWrongHost)"),
            ("other drops", "\(shared.otherDrops.values.reduce(0, +))", "\(separate.otherDrops.values.reduce(0, +))"),
        ]
        print("""
            Two NAT instances, \(flows) flows (\(flows / 2) TCP, \(flows - flows / 2) UDP), \(rounds) rounds of a packet out \
            and its reply per flow; after round \(rounds / 2) instance B stops and all its flows go to A.

            """)
        let widths = (30, 28)
        print("  " + "".padding(toLength: widths.0, withPad: " ", startingAt: 0)
              + "shared store (stateless)".padding(toLength: widths.1, withPad: " ", startingAt: 0) + "state per instance")
        for (label, a, b) in rows {
            print("  " + label.padding(toLength: widths.0, withPad: " ", startingAt: 0)
                  + a.padding(toLength: widths.1, withPad: " ", startingAt: 0) + b)
        }
        print("""

            With the shared store, instance A finds every mapping B made, so B's flows carry on with the same \
            external address and port. With state per instance (each with an external address of its own, \
            as such NATs are deployed), A knows none of them: new packets get new \
            mappings (A's own address), which breaks TCP connections, and replies to B's mappings are dropped.
            """)
    }
}
