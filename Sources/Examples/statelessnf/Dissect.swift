import ArgumentParser
import Foundation
import StatelessKit

/// `statelessnf dissect`: reads captures and says what is in them.
struct Dissect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read captures and summarise what they hold: packets, protocols, flows, checksums, and malformed packets by reason.")

    @Argument(help: "pcap or pcapng files to read.")
    var paths: [String]

    @Flag(help: "Print a machine-readable JSON summary instead of tables.")
    var json = false

    func run() throws {
        var total = TraceStatistics()
        var perFile: [(String, TraceStatistics)] = []
        for path in paths {
            let reader = try CaptureReader(path: path)
            let pool = BufferPool(count: 1, dataRoom: reader.suggestedDataRoom)
            guard var packet = pool.allocate() else { fatalError("a new pool has a buffer") }
            defer { pool.release(packet) }
            var statistics = TraceStatistics()
            statistics.files = 1
            while try reader.next(into: &packet) {
                statistics.add(&packet)
            }
            perFile.append((path, statistics))
            total.merge(statistics)
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            struct Output: Encodable { var files: [String: TraceStatistics]; var total: TraceStatistics }
            let output = Output(files: Dictionary(perFile, uniquingKeysWith: { a, _ in a }), total: total)
            print(String(decoding: try encoder.encode(output), as: UTF8.self))
            return
        }
        for (path, statistics) in perFile {
            print(Self.render(title: (path as NSString).lastPathComponent, statistics))
        }
        if perFile.count > 1 { print(Self.render(title: "all \(perFile.count) files", total)) }
    }

    static func render(title: String, _ s: TraceStatistics) -> String {
        func list(_ counts: [String: Int]) -> String {
            counts.isEmpty ? "-" : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }
                .map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        }
        var lines = ["\(title): \(s.packets) packets, \(s.bytes) bytes, \(String(format: "%.3f", s.durationSeconds)) s"]
        let malformedCount = s.malformed.values.reduce(0, +)
        let rows: [(String, String)] = [
            ("network", list(s.network)),
            ("transport", list(s.transport)),
            ("flows", "\(s.flows)" + (s.flowsByProtocol.isEmpty ? "" : " (\(list(s.flowsByProtocol)))")),
            ("VLAN", "\(s.vlanTagged) tagged, \(s.qinq) QinQ"),
            ("fragments", "\(s.fragments)"),
            ("ICMP errors", "\(s.icmpErrors)"),
            ("IPv4 checksum", list(s.checksums["ipv4Header"] ?? [:])),
            ("L4 checksum", list(s.checksums["transport"] ?? [:])),
            ("cut by capture", "\(s.truncatedByCapture)"),
            ("unsupported", list(s.unsupported)),
            ("malformed", malformedCount == 0 ? "0" : "\(malformedCount): \(list(s.malformed))"),
        ]
        for (label, value) in rows {
            lines.append("  " + label.padding(toLength: 15, withPad: " ", startingAt: 0) + value)
        }
        return lines.joined(separator: "\n")
    }
}
