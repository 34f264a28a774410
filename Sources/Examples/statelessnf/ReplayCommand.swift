import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit

/// `statelessnf replay`: plays a capture through an NF as if it sat on the path.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Play a capture through the NAT or the firewall as if it sat on that path.",
        discussion: """
            nat: packets from the inside (by the internal prefixes) enter the inside port. \
            Packets to the inside are first re-addressed to the external address and port \
            the NAT chose for their flow, as the outside world would send them, and enter \
            the outside port; each that comes back out on the inside must equal the \
            capture's packet byte for byte. Mismatches are counted and the command fails \
            if there is any.

            firewall: packets from an internal address enter the inside port, all others \
            the outside port; what the firewall lets through each way is written to \
            --outside-out and --inside-out, and every drop is counted by reason \
            (--verdicts lists each packet's).

            Examples:
              statelessnf replay nat --trace inside.pcap --external 203.0.113.1
              statelessnf replay firewall --trace edge.pcap --rules edge.rules \\
                  --internal 10.0.0.0/8 --inside-out in.pcap --outside-out out.pcap
            """)

    @Argument(help: "The network function: nat or firewall.")
    var nf: NFKind

    @Option(help: "The capture to play (pcap or pcapng).")
    var trace: String

    @Option(help: "Write what leaves on the inside to this pcap file.")
    var insideOut: String?

    @Option(help: "Write what leaves on the outside to this pcap file.")
    var outsideOut: String?

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @Flag(help: "firewall: list each packet's verdict (frame, direction, pass or drop and why).")
    var verdicts = false

    @OptionGroup var nat: NATOptions
    @OptionGroup(title: "Firewall options") var firewall: FirewallOptions
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        switch nf {
        case .nat: try replayNAT()
        case .firewall: try replayFirewall()
        case .lb: throw ValidationError("replay plays captures through nat or firewall")
        }
    }

    /// The capture's records, each played by `play`, whose output each side's writer gets.
    func play(insidePort: UInt16, outsidePort: UInt16,
              _ play: (_ frame: [UInt8], _ time: Timestamp, _ linkType: LinkType) -> GraphHarness.Output) throws {
        let reader = try CaptureReader(path: trace)
        let linkType: CaptureLinkType
        if case .pcap(let header) = reader.format, let type = header.linkType { linkType = type } else { linkType = .ethernet }
        let insideWriter = try insideOut.map { try PcapWriter(path: $0, header: PcapFileHeader(linkType: linkType, nanosecondTimestamps: true)) }
        let outsideWriter = try outsideOut.map { try PcapWriter(path: $0, header: PcapFileHeader(linkType: linkType, nanosecondTimestamps: true)) }
        while let record = try reader.next() {
            let output = play(Array(record.bytes), record.timestamp, record.linkType.packetLinkType)
            try write(output.packets(on: insidePort), to: insideWriter, at: record.timestamp)
            try write(output.packets(on: outsidePort), to: outsideWriter, at: record.timestamp)
        }
        try insideWriter?.close()
        try outsideWriter?.close()
    }

    func replayFirewall() throws {
        let function = Firewall(try firewall.firewallConfig(file: nat.config, internal: nat.internal, insidePort: 1,
                                                            outsidePort: 2))
        let store = try storeOptions.makeStore()
        let replay = try FirewallReplay(firewall: function, session: try store.makeSession(for: function.state.schema))
        let started = Date()
        try play(insidePort: function.insidePort, outsidePort: function.outsidePort) { replay.play($0, at: $1, linkType: $2) }
        let report = replay.report
        if json {
            struct Printed: Encodable { var report: FirewallReplay.Report; var verdicts: [FirewallReplay.Verdict]? }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(Printed(report: report, verdicts: verdicts ? replay.verdicts : nil)),
                         as: UTF8.self))
            return
        }
        if verdicts { for verdict in replay.verdicts { print(verdict) } }
        let rows: [(String, String)] = [
            ("packets", "\(report.packets)"),
            ("outbound", "\(report.outbound) (\(report.outboundPassed) passed)"),
            ("inbound", "\(report.inbound) (\(report.inboundPassed) passed)"),
            ("not IP", "\(report.notIP) (not played)"),
            ("drops", Self.list(report.drops)),
            ("connections", "\(report.connectionsOpened) opened, \(report.entriesExpired) entries expired"),
            ("state operations", "\(report.stateOperations) in \(report.storeRoundTrips) store round trips"),
            ("elapsed", String(format: "%.3f s", Date().timeIntervalSince(started))),
        ]
        print("replay firewall: \(trace)")
        for (label, value) in rows { print("  " + label.padding(toLength: 18, withPad: " ", startingAt: 0) + value) }
    }

    static func list(_ counts: [String: Int]) -> String {
        counts.isEmpty ? "none" : counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    func replayNAT() throws {
        var options = nat
        if options.external == nil && options.config == nil { options.external = "203.0.113.1" }
        // The replay gives the NAT two ports, so that each side's output stays apart.
        let function = NAT(try options.natConfig(insidePort: 1, outsidePort: 2))
        let store = try storeOptions.makeStore()
        let replay = try NATReplay(nat: function, session: try store.makeSession(for: function.state.schema))
        let started = Date()
        try play(insidePort: function.insidePort, outsidePort: function.outsidePort) { replay.play($0, at: $1, linkType: $2) }
        let report = replay.report
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let rows: [(String, String)] = [
                ("packets", "\(report.packets)"),
                ("from the inside", "\(report.outbound) (\(report.outboundTranslated) translated out)"),
                ("to the inside", "\(report.inbound) re-addressed (\(report.inboundTranslated) came back in)"),
                ("byte-identical", "\(report.matches)"),
                ("mismatches", report.mismatches == 0 ? "0" : "\(report.mismatches) (first at packets \(report.firstMismatches.map(String.init).joined(separator: ", ")))"),
                ("no mapping", "\(report.inboundWithoutMapping) (arrived unsolicited in the capture)"),
                ("not translatable", "\(report.notTranslatable) (ARP, IPv6, or crossing no NAT side)"),
                ("NAT drops", Self.list(report.drops)),
                ("flows", "\(report.flowsCreated) created, \(report.flowsExpired) expired"),
                ("state operations", "\(report.stateOperations) in \(report.storeRoundTrips) store round trips"),
                ("elapsed", String(format: "%.3f s", Date().timeIntervalSince(started))),
            ]
            print("replay nat: \(trace)")
            for (label, value) in rows { print("  " + label.padding(toLength: 18, withPad: " ", startingAt: 0) + value) }
        }
        if report.mismatches > 0 { throw ExitCode(1) }
    }

    func write(_ frames: [[UInt8]], to writer: PcapWriter?, at time: Timestamp) throws {
        guard let writer else { return }
        for frame in frames {
            try frame.withUnsafeBytes { try writer.write(timestamp: time, originalLength: frame.count, bytes: $0) }
        }
    }
}
