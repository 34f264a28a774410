import Foundation
import StatelessKit

/// Prints a run's summary for a person, or as JSON.
enum SummaryPrinter {
    static func render(_ summary: RunSummary, title: String, ports: [UInt16: String], extra: [(String, String)] = []) -> String {
        func list(_ counts: [String: Int]) -> String {
            counts.isEmpty ? "none" : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
                .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        let out = summary.packetsOut.sorted { $0.key < $1.key }
            .map { "\(ports[$0.key] ?? "port \($0.key)") \($0.value)" }.joined(separator: ", ")
        let dropped = summary.drops.values.reduce(0, +)
        let rate = summary.elapsed > 0 ? Double(summary.packetsIn) / summary.elapsed / 1e6 : 0
        var rows: [(String, String)] = [
            ("packets in", "\(summary.packetsIn)"),
            ("packets out", out.isEmpty ? "0" : out),
            ("dropped", dropped == 0 ? "0" : "\(dropped): \(list(summary.drops))"),
            ("flows created", "\(flowsCreated(summary))"),
            ("entries expired", "\(summary.expired)"),
            ("state operations", "\(summary.stateOperations) (\(String(format: "%.2f", Double(summary.stateOperations) / Double(max(summary.packetsIn, 1)))) per packet)"),
            ("store round trips", "\(summary.roundTrips) (\(String(format: "%.2f", Double(summary.roundTrips) / Double(max(summary.batches, 1)))) per batch)"),
            ("elapsed", String(format: "%.3f s (%.2f Mpps)", summary.elapsed, rate)),
        ]
        if let hits = summary.counters["flowCache.hits"] {
            rows.append(("flow cache", "\(hits) packets served (\(String(format: "%.1f", Double(hits) / Double(max(summary.packetsIn, 1)) * 100))%), "
                         + "\(summary.counters["flowCache.installed"] ?? 0) flows installed, "
                         + "\(summary.counters["flowCache.rejected"] ?? 0) rejected"))
        }
        if let disconnects = summary.counters["store.disconnects"] {
            rows.append(("store faults", "\(disconnects) disconnections, \(summary.counters["store.reconnects"] ?? 0) reconnections, "
                         + "\(summary.counters["store.failedRequests"] ?? 0) failed requests, "
                         + "\(summary.counters["store.heldRequests"] ?? 0) held"))
        }
        if let received = summary.counters["dpdk.received"] {
            rows.append(("dpdk", "received \(received), sent \(summary.counters["dpdk.sent"] ?? 0), "
                         + "unsent \(summary.counters["dpdk.unsent"] ?? 0), dropped on receipt \(summary.counters["dpdk.droppedOnReceipt"] ?? 0)"))
            // Each port's totals and, where there are several, its queues'.
            let perPort = Dictionary(grouping: summary.counters.filter { $0.key.hasPrefix("dpdk.port") }) {
                String($0.key.dropFirst(5).prefix { $0 != "." })
            }
            for (port, counts) in perPort.sorted(by: { $0.key < $1.key }) {
                func value(_ name: String) -> Int { counts.first { $0.key.hasSuffix("." + name) && !$0.key.contains(".queue") }?.value ?? 0 }
                var text = "received \(value("received")), sent \(value("sent")), missed \(value("missed")), no buffer \(value("noBuffer"))"
                let queues = counts.filter { $0.key.contains(".queue") && $0.key.hasSuffix(".received") }.sorted { $0.key < $1.key }
                if queues.count > 1 { text += "; received by queue " + queues.map { "\($0.value)" }.joined(separator: "/") }
                rows.append(("  " + port, text))
            }
            // Where pinned workers ran (`--worker-cpus`), in worker order.
            let cpus = summary.counters.compactMap { key, cpu -> (Int, Int)? in
                guard key.hasPrefix("dpdk.worker"), key.hasSuffix(".cpu"),
                      let worker = Int(key.dropFirst(11).dropLast(4)) else { return nil }
                return (worker, cpu)
            }.sorted { $0.0 < $1.0 }
            if !cpus.isEmpty { rows.append(("  workers", "on CPU " + cpus.map { "\($0.1)" }.joined(separator: ", ") + " (pinned)")) }
            if let p50 = summary.counters["dpdk.latency.p50Microseconds"] {
                rows.append(("  latency", "receipt to send: p50 \(p50) µs, p99 \(summary.counters["dpdk.latency.p99Microseconds"] ?? 0) µs, "
                             + "p99.9 \(summary.counters["dpdk.latency.p999Microseconds"] ?? 0) µs, max \(summary.counters["dpdk.latency.maxMicroseconds"] ?? 0) µs"))
            }
            let link = summary.counters.filter { $0.key.hasPrefix("dpdk.link.") }
            if !link.isEmpty {
                rows.append(("  link", list(Dictionary(uniqueKeysWithValues: link.map { (String($0.key.dropFirst(10)), $0.value) }))))
            }
        }
        rows += extra
        let malformed = summary.counters.filter { $0.key.hasPrefix("malformed.") }
        if !malformed.isEmpty { rows.append(("malformed", list(malformed))) }
        return ([title] + rows.map { "  " + $0.0.padding(toLength: max(18, $0.0.count + 1), withPad: " ", startingAt: 0) + $0.1 })
            .joined(separator: "\n")
    }

    /// Flows (NAT mappings, LB assignments) the NF created.
    static func flowsCreated(_ summary: RunSummary) -> Int {
        summary.counters.filter { ["nat.mappingsCreated", "lb.flowsCreated", "firewall.connectionsOpened"].contains($0.key) }.values.reduce(0, +)
    }

    static func json(_ summary: RunSummary, extra: [String: Any] = [:]) throws -> String {
        var object: [String: Any] = [
            "packetsIn": summary.packetsIn,
            "packetsOut": Dictionary(uniqueKeysWithValues: summary.packetsOut.map { ("\($0.key)", $0.value) }),
            "drops": summary.drops,
            "counters": summary.counters,
            "flowsCreated": flowsCreated(summary),
            "flowsExpired": summary.expired,
            "stateOperations": summary.stateOperations,
            "storeRoundTrips": summary.roundTrips,
            "batches": summary.batches,
            "elapsedSeconds": summary.elapsed,
        ]
        object.merge(extra) { $1 }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
