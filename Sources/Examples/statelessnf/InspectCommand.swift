import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore

/// `statelessnf inspect`: what a shared Redis holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the NF deployments in a Redis store: tables, their sizes, pools, and a readable sample of entries.",
        discussion: """
            Example:
              statelessnf inspect --store redis://127.0.0.1:6379 --nf nat --sample 5
            """)

    @Option(help: "The Redis store: redis://[user:password@]host:port[/db] or redis+unix:///path[?db=N].")
    var store: String

    @Option(help: "The deployment (the NF's namespace, 'nat' by default); all of them when absent.")
    var nf: String?

    @Option(help: "Entries to show per table, soonest deadline first.")
    var sample: Int = 5

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard sample >= 0 else { throw ValidationError("--sample must not be negative") }
    }

    func run() throws {
        let endpoint: RedisEndpoint
        do { endpoint = try RedisEndpoint(url: store) } catch { throw ValidationError("--store \(error)") }
        let redis: RedisStore
        do { redis = try RedisStore(endpoint) } catch { throw ValidationError("--store: \(error)") }
        var deployments = try redis.deployments()
        if let nf {
            deployments = deployments.filter { $0.namespace == nf }
            guard !deployments.isEmpty else {
                throw ValidationError("--nf \(nf): no such deployment in \(endpoint) (found: \(try redis.deployments().map(\.namespace).joined(separator: ", ")))")
            }
        }
        let now = Timestamp.wallClock().nanoseconds
        var reports: [Report] = []
        for deployment in deployments {
            let statistics = try redis.statistics(namespace: deployment.namespace)
            var report = Report(deployment: deployment.namespace, tables: [], pools: [])
            for table in deployment.tables {
                let entries = try redis.entries(namespace: deployment.namespace, table: table, count: sample)
                report.tables.append(.init(
                    name: table.name, entries: statistics?.tables[table.name]?.entries ?? 0, capacity: table.capacity,
                    sample: entries.map { entry in
                        Report.Entry(entry: Self.describe(table: table.name, entry),
                                     deadline: Self.time(entry.deadline), remaining: Self.remaining(entry.deadline, now: now))
                    }))
            }
            for pool in deployment.pools {
                report.pools.append(.init(name: pool.name, items: pool.items, free: statistics?.freeItems[pool.name] ?? 0,
                                          leased: statistics?.leasedItems[pool.name] ?? 0))
            }
            reports.append(report)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
            return
        }
        if reports.isEmpty { print("\(endpoint): no deployments") }
        for report in reports {
            print("\(endpoint) deployment \(report.deployment)")
            print("  table".padding(toLength: 28, withPad: " ", startingAt: 0) + "entries".padding(toLength: 12, withPad: " ", startingAt: 0) + "capacity")
            for table in report.tables {
                print("  " + table.name.padding(toLength: 26, withPad: " ", startingAt: 0)
                      + "\(table.entries)".padding(toLength: 12, withPad: " ", startingAt: 0) + "\(table.capacity)")
            }
            print("  pool".padding(toLength: 28, withPad: " ", startingAt: 0) + "free".padding(toLength: 12, withPad: " ", startingAt: 0) + "leased  of")
            for pool in report.pools {
                print("  " + pool.name.padding(toLength: 26, withPad: " ", startingAt: 0)
                      + "\(pool.free)".padding(toLength: 12, withPad: " ", startingAt: 0)
                      + "\(pool.leased)".padding(toLength: 8, withPad: " ", startingAt: 0) + "\(pool.items)")
            }
            for table in report.tables where !table.sample.isEmpty {
                print("  \(table.name), soonest deadline first:")
                for entry in table.sample {
                    print("    \(entry.entry)  deadline \(entry.deadline) (\(entry.remaining))")
                }
            }
        }
    }

    /// An entry in words: NAT mappings, LB flows and firewall connections
    /// decoded, other tables in hex.
    static func describe(table: String, _ entry: RedisEntry) -> String {
        if table == "connections4" || table == "connections6", entry.value.count == TrackedConnection.encodedSize {
            let key: ConnectionKey? = entry.key.withUnsafeBytes { bytes in
                switch bytes.count {
                case ConnectionKey4.encodedSize: return ConnectionKey(ConnectionKey4(decoding: bytes.baseAddress!))
                case ConnectionKey.encodedSize: return ConnectionKey(decoding: bytes.baseAddress!)
                default: return nil
                }
            }
            if let key {
                let connection = entry.value.withUnsafeBytes { TrackedConnection(decoding: $0.baseAddress!) }
                let state = connection.ipProtocol == IPProtocol.tcp ? "\(connection.tcp.state)"
                                                                     : (connection.replied ? "replied" : "unreplied")
                return "\(connection.originalKey(from: key)) [\(state)]"
            }
        }
        if (table == "mappings" || table == "fragments"), entry.value.count == NATBinding.encodedSize {
            return entry.value.withUnsafeBytes { NATBinding(decoding: $0.baseAddress!).description }
        }
        if table == "flows", entry.value.count == LBAssignment.encodedSize {
            return entry.value.withUnsafeBytes { LBAssignment(decoding: $0.baseAddress!).description }
        }
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        return "key \(hex(entry.key))" + (entry.partner.map { " / \(hex($0))" } ?? "") + " value \(hex(entry.value))"
    }

    /// A deadline as a UTC time (the runtime's clock: the wall clock, or a
    /// replayed capture's).
    static func time(_ nanoseconds: Int64) -> String {
        if nanoseconds == .max { return "never" }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(nanoseconds) / 1e9))
    }

    static func remaining(_ deadline: Int64, now: Int64) -> String {
        if deadline == .max { return "no expiry" }
        let seconds = Double(deadline - now) / 1e9
        let magnitude = abs(seconds)
        let text = magnitude < 120 ? String(format: "%.1f s", magnitude)
            : magnitude < 7200 ? String(format: "%.1f min", magnitude / 60) : String(format: "%.1f h", magnitude / 3600)
        return seconds >= 0 ? "in \(text) by the wall clock" : "\(text) ago by the wall clock"
    }

    struct Report: Codable {
        struct Entry: Codable {
            var entry: String
            var deadline: String
            var remaining: String
        }
        struct Table: Codable {
            var name: String
            var entries: Int
            var capacity: Int
            var sample: [Entry]
        }
        struct Pool: Codable {
            var name: String
            var items: Int
            var free: Int
            var leased: Int
        }
        var deployment: String
        var tables: [Table]
        var pools: [Pool]
    }
}
