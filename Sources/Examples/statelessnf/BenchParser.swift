import ArgumentParser
import Foundation
import StatelessKit

/// `statelessnf bench parser`: the parser's cost per packet over captures
/// held in memory.
struct BenchParser: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parser",
        abstract: "Measure the packet parser's cost per packet over captures held in memory.",
        discussion: """
            Every packet of the captures is read once into pooled buffers; then the \
            parser runs over them again and again. "parse" is PacketParser alone; \
            "parse+key" adds the flow key and its symmetric hash, what a network \
            function's lookup stage does for every packet. For instructions per \
            packet, run `make bench-parser`, which runs this command under \
            callgrind (--passes fixes the work done).
            """)

    @Argument(help: "pcap or pcapng files whose packets to parse.")
    var paths: [String]

    @Option(help: "Seconds to spend measuring each variant (ignored with --passes).")
    var seconds: Double = 2

    @Option(help: "Run exactly this many passes over the packets instead of timing (for callgrind).")
    var passes: Int?

    @Option(help: "Measure only this variant: parse or parse+key.")
    var variant: String?

    @Flag(help: "Print a machine-readable JSON summary.")
    var json = false

    func validate() throws {
        if let variant, !["parse", "parse+key"].contains(variant) {
            throw ValidationError("--variant must be parse or parse+key, not \(variant)")
        }
        if let passes, passes < 1 { throw ValidationError("--passes must be at least 1") }
        if seconds <= 0 { throw ValidationError("--seconds must be positive") }
    }

    func run() throws {
        var packets: [Packet] = []
        var pools: [BufferPool] = []
        for path in paths {
            // One pass to size the pool, one to fill it.
            var count = 0
            var largest = 64
            let sizing = try CaptureReader(path: path)
            while let record = try sizing.next() {
                count += 1
                largest = max(largest, record.bytes.count)
            }
            guard count > 0 else { continue }
            let pool = BufferPool(count: count, dataRoom: largest)
            pools.append(pool)
            let reader = try CaptureReader(path: path)
            while var packet = pool.allocate(), try reader.next(into: &packet) {
                packets.append(packet)
            }
        }
        guard !packets.isEmpty else { throw ValidationError("the captures hold no packet") }
        let count = packets.count
        var results: [String: Double] = [:]
        var checksum: UInt64 = 0
        let variants = variant.map { [$0] } ?? ["parse", "parse+key"]
        for variant in variants {
            let withKey = variant == "parse+key"
            var done = 0
            let start = DispatchTime.now().uptimeNanoseconds
            var elapsed: UInt64 = 0
            repeat {
                packets.withUnsafeMutableBufferPointer { buffer in
                    for i in 0..<count {
                        if let layout = try? PacketParser.parse(buffer[i].data, length: Int(buffer[i].length),
                                                                linkType: buffer[i].linkType) {
                            buffer[i].layout = layout
                            if withKey, let key = buffer[i].flowKey {
                                checksum &+= key.symmetricHash()
                            } else {
                                checksum &+= UInt64(layout.l4Offset)
                            }
                        }
                    }
                }
                done += 1
                elapsed = DispatchTime.now().uptimeNanoseconds - start
            } while passes.map { done < $0 } ?? (Double(elapsed) < seconds * 1e9)
            results[variant] = Double(elapsed) / Double(done * count)
        }
        if json {
            let output: [String: Any] = ["packets": count, "nsPerPacket": results, "passes": passes as Any]
            let data = try JSONSerialization.data(withJSONObject: output, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("\(count) packets from \(paths.count) captures (check \(checksum & 0xFF))")
            for variant in variants {
                let ns = results[variant]!
                print("  \(variant.padding(toLength: 10, withPad: " ", startingAt: 0)) \(String(format: "%7.1f", ns)) ns/packet  \(String(format: "%6.1f", 1000 / ns)) Mpps")
            }
        }
    }
}
