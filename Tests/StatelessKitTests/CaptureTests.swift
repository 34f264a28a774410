import Foundation
import StatelessKit
import Testing

@Suite("Capture I/O")
struct CaptureTests {
    let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("statelesskit-capture-\(UUID())")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    func temporary(_ name: String) -> String { directory.appendingPathComponent(name).path }

    @Test("reading a pcap and writing it back gives the same bytes", .enabled(if: Traces.available, Traces.skipNote),
          arguments: Traces.all)
    func roundTrip(trace: String) throws {
        let reader = try CaptureReader(path: Traces.path(trace))
        guard case .pcap(let header) = reader.format else {
            // pcapng is read, not written: its packets are checked in the pcapng test.
            return
        }
        let out = temporary("round-trip.pcap")
        let writer = try PcapWriter(path: out, header: header)
        while let record = try reader.next() {
            try writer.write(timestamp: record.timestamp, originalLength: record.originalLength, bytes: record.bytes)
        }
        try writer.close()
        let original = try Data(contentsOf: URL(fileURLWithPath: Traces.path(trace)))
        let written = try Data(contentsOf: URL(fileURLWithPath: out))
        #expect(original == written, "\(trace): \(original.count) bytes read, \(written.count) written")
    }

    @Test("pcapng captures read the same packets tshark lists", .enabled(if: Traces.available, Traces.skipNote),
          arguments: ["PcapPlusPlus/icmp-types.pcap", "PcapPlusPlus/ipv4-malformed.pcap"])
    func pcapng(trace: String) throws {
        let reader = try CaptureReader(path: Traces.path(trace))
        #expect(reader.format == .pcapng)
        var lengths: [Int] = []
        var timestamps: [Timestamp] = []
        while let record = try reader.next() {
            lengths.append(record.bytes.count)
            timestamps.append(record.timestamp)
        }
        let fixture = try JSONDecoder().decode(
            TraceDecodeTests.Fixture.self,
            from: Data(contentsOf: Traces.fixtures.appendingPathComponent(
                "tshark/" + trace.replacingOccurrences(of: "/", with: "__") + ".json")))
        #expect(lengths.count == fixture.packets)
        #expect(lengths.map(String.init) == fixture.sample.map { $0["frame.cap_len"]![0] })
        #expect(timestamps.map(\.description) == fixture.sample.map { $0["frame.time_epoch"]![0] })
    }

    @Test("all four classic pcap variants write and read back",
          arguments: [(false, CaptureByteOrder.littleEndian), (true, .littleEndian), (false, .bigEndian), (true, .bigEndian)])
    func variants(nanoseconds: Bool, order: CaptureByteOrder) throws {
        let path = temporary("variant.pcap")
        let header = PcapFileHeader(linkType: .ethernet, snapLength: 65535, nanosecondTimestamps: nanoseconds,
                                    byteOrder: order)
        let frames = (0..<5).map { i in
            PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, UInt8(i)), destination: IPv4Address(192, 0, 2, 1))
                .udp(source: 1000 + UInt16(i), destination: 53, payload: Array(repeating: UInt8(i), count: i * 10))
        }
        let stamps = (0..<5).map { Timestamp(seconds: 1_700_000_000 + Int64($0), nanoseconds: 123_456_789) }
        let writer = try PcapWriter(path: path, header: header)
        for (frame, stamp) in zip(frames, stamps) {
            try frame.withUnsafeBytes { try writer.write(timestamp: stamp, originalLength: frame.count + 4, bytes: $0) }
        }
        try writer.close()
        let reader = try CaptureReader(path: path)
        #expect(reader.format == .pcap(header))
        var i = 0
        while let record = try reader.next() {
            #expect(Array(record.bytes) == frames[i])
            #expect(record.originalLength == frames[i].count + 4)
            let expected = nanoseconds ? stamps[i].nanoseconds : stamps[i].nanoseconds / 1000 * 1000
            #expect(record.timestamp.nanoseconds == expected)
            i += 1
        }
        #expect(i == frames.count)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let magic = order == .littleEndian ? bytes.prefix(4).reversed() : Array(bytes.prefix(4))
        #expect(Array(magic) == (nanoseconds ? [0xA1, 0xB2, 0x3C, 0x4D] : [0xA1, 0xB2, 0xC3, 0xD4]))
    }

    @Test("raw IP captures read as raw IP packets")
    func rawIP() throws {
        let path = temporary("raw.pcap")
        let writer = try PcapWriter(path: path, header: PcapFileHeader(linkType: .rawIP))
        let datagram = PacketBuilder(rawIP: true)
            .ipv6(source: IPv6Address("2001:db8::1")!, destination: IPv6Address("2001:db8::2")!)
            .tcp(source: 1, destination: 2, flags: .syn)
        try datagram.withUnsafeBytes { try writer.write(timestamp: .zero, originalLength: datagram.count, bytes: $0) }
        try writer.close()
        let reader = try CaptureReader(path: path)
        let pool = BufferPool(count: 1)
        var packet = pool.allocate()!
        defer { pool.release(packet) }
        #expect(try reader.next(into: &packet))
        #expect(packet.linkType == .rawIP)
        try packet.parse()
        #expect(packet.layout.network == .ipv6 && packet.layout.transport == .tcp)
        #expect(try !reader.next(into: &packet))
    }

    @Test("a truncated file names the file and the byte offset")
    func truncated() throws {
        let path = temporary("cut.pcap")
        let writer = try PcapWriter(path: path, header: PcapFileHeader(linkType: .ethernet))
        let frame = PacketBuilder().ipv4(source: IPv4Address(1, 2, 3, 4), destination: IPv4Address(5, 6, 7, 8))
            .udp(source: 1, destination: 2, payload: Array(repeating: 7, count: 100))
        for _ in 0..<3 {
            try frame.withUnsafeBytes { try writer.write(timestamp: .zero, originalLength: frame.count, bytes: $0) }
        }
        try writer.close()
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        bytes.removeLast(10)
        try bytes.write(to: URL(fileURLWithPath: path))
        let reader = try CaptureReader(path: path)
        #expect(try reader.next() != nil)
        #expect(try reader.next() != nil)
        let third = UInt64(24 + 2 * (16 + frame.count))
        let error = #expect(throws: CaptureError.self) { try reader.next() }
        #expect(error?.kind == .truncated)
        #expect(error?.offset == third)
        #expect(error?.description.contains(path) == true)
        #expect(error?.description.contains("at byte \(third)") == true)
    }

    @Test("a corrupt record length is refused with its offset")
    func corruptLength() throws {
        let path = temporary("corrupt.pcap")
        var bytes = [UInt8]()
        let header: [UInt32] = [0xA1B2_C3D4, 0x0004_0002, 0, 0, 65535, 1]
        for word in header { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
        for word in [UInt32(0), 0, 0x7FFF_FFFF, 60] { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let reader = try CaptureReader(path: path)
        let error = #expect(throws: CaptureError.self) { try reader.next() }
        #expect(error?.kind == .badLength)
        #expect(error?.offset == 24)
    }

    @Test("files that are not captures are refused clearly")
    func notACapture() throws {
        let empty = temporary("empty.pcap")
        try Data().write(to: URL(fileURLWithPath: empty))
        #expect(throws: CaptureError.self) { try CaptureReader(path: empty) }
        let text = temporary("text.pcap")
        try Data("hello, this is not a capture".utf8).write(to: URL(fileURLWithPath: text))
        let error = #expect(throws: CaptureError.self) { try CaptureReader(path: text) }
        #expect(error?.kind == .notACapture)
        let missing = temporary("missing.pcap")
        let noFile = #expect(throws: CaptureError.self) { try CaptureReader(path: missing) }
        #expect(noFile?.kind == .cannotOpen)
        let linkType = temporary("sll.pcap")
        var bytes = [UInt8]()
        for word in [UInt32(0xA1B2_C3D4), 0x0004_0002, 0, 0, 65535, 113] { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: URL(fileURLWithPath: linkType))
        let unsupported = #expect(throws: CaptureError.self) { try CaptureReader(path: linkType) }
        #expect(unsupported?.kind == .unsupportedLinkType)
        #expect(unsupported?.description.contains("link type 113") == true)
    }

    @Test("pcapng: truncated and inconsistent blocks are refused with offsets")
    func pcapngErrors() throws {
        func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
            let padded = body + [UInt8](repeating: 0, count: (4 - body.count % 4) % 4)
            var out = [UInt8]()
            for word in [type, UInt32(12 + padded.count)] { withUnsafeBytes(of: word.littleEndian) { out += $0 } }
            out += padded
            withUnsafeBytes(of: UInt32(12 + padded.count).littleEndian) { out += $0 }
            return out
        }
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let shb = block(0x0A0D_0D0A, le32(0x1A2B_3C4D) + [1, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8))
        // Interface: Ethernet, nanosecond resolution (if_tsresol = 9).
        let idb = block(1, [1, 0, 0, 0] + le32(0) + [9, 0, 1, 0, 9, 0, 0, 0] + [0, 0, 0, 0])
        let frame = PacketBuilder().ipv4(source: IPv4Address(1, 1, 1, 1), destination: IPv4Address(2, 2, 2, 2))
            .udp(source: 5, destination: 6)
        let ticks: UInt64 = 1_700_000_000_123_456_789
        let epb = block(6, le32(0) + le32(UInt32(ticks >> 32)) + le32(UInt32(ticks & 0xFFFF_FFFF))
            + le32(UInt32(frame.count)) + le32(UInt32(frame.count)) + frame)
        let good = temporary("good.pcapng")
        try Data(shb + idb + epb).write(to: URL(fileURLWithPath: good))
        let reader = try CaptureReader(path: good)
        let record = try #require(try reader.next())
        #expect(record.timestamp.nanoseconds == Int64(ticks))
        #expect(Array(record.bytes) == frame)
        #expect(try reader.next() == nil)

        let unknownInterface = temporary("no-idb.pcapng")
        try Data(shb + epb).write(to: URL(fileURLWithPath: unknownInterface))
        let e1 = #expect(throws: CaptureError.self) { try CaptureReader(path: unknownInterface).next() }
        #expect(e1?.kind == .unknownInterface)
        #expect(e1?.offset == UInt64(shb.count + 8))

        var mismatched = epb
        mismatched[mismatched.count - 4] ^= 0x04
        let badTrailer = temporary("trailer.pcapng")
        try Data(shb + idb + mismatched).write(to: URL(fileURLWithPath: badTrailer))
        let e2 = #expect(throws: CaptureError.self) { try CaptureReader(path: badTrailer).next() }
        #expect(e2?.kind == .badLength)
        #expect(e2?.offset == UInt64(shb.count + idb.count + epb.count - 4))

        let cut = temporary("cut.pcapng")
        try Data((shb + idb + epb).dropLast(7)).write(to: URL(fileURLWithPath: cut))
        let e3 = #expect(throws: CaptureError.self) { try CaptureReader(path: cut).next() }
        #expect(e3?.kind == .truncated)
        #expect(e3?.offset == UInt64(shb.count + idb.count))
    }

    @Test("a large capture streams in bounded memory")
    func streaming() throws {
        let path = temporary("large.pcap")
        let writer = try PcapWriter(path: path, header: PcapFileHeader(linkType: .ethernet))
        let frame = PacketBuilder().ipv4(source: IPv4Address(1, 2, 3, 4), destination: IPv4Address(5, 6, 7, 8))
            .udp(source: 1, destination: 2, payload: Array(repeating: 7, count: 1400))
        let count = 40_000  // about 57 MiB
        for i in 0..<count {
            try frame.withUnsafeBytes {
                try writer.write(timestamp: Timestamp(nanoseconds: Int64(i) * 1000), originalLength: frame.count, bytes: $0)
            }
        }
        try writer.close()
        let reader = try CaptureReader(path: path)
        let pool = BufferPool(count: 32)
        let batch = PacketBatch(capacity: 32)
        var read = 0
        while try reader.read(into: batch, from: pool) > 0 {
            read += batch.count
            pool.release(batch)
        }
        #expect(read == count)
        #expect(pool.available == 32)
        #expect(reader.bufferBytes <= 1 << 20, "reading a 57 MiB capture held \(reader.bufferBytes) bytes")
    }
}
