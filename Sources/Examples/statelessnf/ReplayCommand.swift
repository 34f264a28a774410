import ArgumentParser
import Foundation
import NetworkFunctions
import StatelessKit

/// `statelessnf replay`: plays a capture through an NF as if it sat on the path.
struct ReplayCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Play a capture recorded on the inside of the NAT as if the NAT sat on that path.",
        discussion: """
            Packets from the inside (by the internal prefixes) enter the inside port. \
            Packets to the inside are first re-addressed to the external address and port \
            the NAT chose for their flow, as the outside world would send them, and enter \
            the outside port; each that comes back out on the inside must equal the \
            capture's packet byte for byte. Mismatches are counted and the command fails \
            if there is any.
            """)

    @Argument(help: "The network function: nat.")
    var nf: NFKind

    @Option(help: "The capture to play (pcap or pcapng).")
    var trace: String

    @Option(help: "Write what leaves on the inside to this pcap file.")
    var insideOut: String?

    @Option(help: "Write what leaves on the outside to this pcap file.")
    var outsideOut: String?

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    @OptionGroup var nat: NATOptions
    @OptionGroup var storeOptions: StoreOptions

    func run() throws {
        var options = nat
        if options.external == nil && options.config == nil { options.external = "203.0.113.1" }
        // The replay gives the NAT two ports, so that each side's output stays apart.
        let function = NAT(try options.natConfig(insidePort: 1, outsidePort: 2))
        let store = try storeOptions.makeStore()
        let replay = try NATReplay(nat: function, session: try store.makeSession(for: function.state.schema))
        let reader = try CaptureReader(path: trace)
        let linkType: CaptureLinkType
        if case .pcap(let header) = reader.format, let type = header.linkType { linkType = type } else { linkType = .ethernet }
        let insideWriter = try insideOut.map { try PcapWriter(path: $0, header: PcapFileHeader(linkType: linkType, nanosecondTimestamps: true)) }
        let outsideWriter = try outsideOut.map { try PcapWriter(path: $0, header: PcapFileHeader(linkType: linkType, nanosecondTimestamps: true)) }
        let started = Date()
        while let record = try reader.next() {
            let output = replay.play(Array(record.bytes), at: record.timestamp, linkType: record.linkType.packetLinkType)
            try write(output.packets(on: function.insidePort), to: insideWriter, at: record.timestamp)
            try write(output.packets(on: function.outsidePort), to: outsideWriter, at: record.timestamp)
        }
        try insideWriter?.close()
        try outsideWriter?.close()
        let report = replay.report
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            func list(_ counts: [String: Int]) -> String {
                counts.isEmpty ? "none" : counts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            }
            let rows: [(String, String)] = [
                ("packets", "\(report.packets)"),
                ("from the inside", "\(report.outbound) (\(report.outboundTranslated) translated out)"),
                ("to the inside", "\(report.inbound) re-addressed (\(report.inboundTranslated) came back in)"),
                ("byte-identical", "\(report.matches)"),
                ("mismatches", report.mismatches == 0 ? "0" : "\(report.mismatches) (first at packets \(report.firstMismatches.map(String.init).joined(separator: ", ")))"),
                ("no mapping", "\(report.inboundWithoutMapping) (arrived unsolicited in the capture)"),
                ("not translatable", "\(report.notTranslatable) (ARP, IPv6, or crossing no NAT side)"),
                ("NAT drops", list(report.drops)),
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
