import SystemPackage

/// Writes a classic pcap file, buffered. Given a reader's header, it writes
/// the file back byte for byte.
///
/// ```swift
/// let writer = try PcapWriter(path: "out.pcap", header: PcapFileHeader(linkType: .ethernet))
/// try writer.write(packet)
/// try writer.close()
/// ```
public final class PcapWriter {
    /// The file's path.
    public let path: String
    /// The file header written.
    public let header: PcapFileHeader
    /// Records written so far.
    public private(set) var recordCount = 0

    let descriptor: FileDescriptor
    var buffer: [UInt8] = []
    var closed = false

    static let flushThreshold = 1 << 20

    /// Creates (or truncates) `path` and writes `header`.
    public init(path: String, header: PcapFileHeader) throws(CaptureError) {
        self.path = path
        self.header = header
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .writeOnly, options: [.create, .truncate],
                                                 permissions: [.ownerReadWrite, .groupRead, .otherRead])
        } catch {
            throw CaptureError(path: path, offset: nil, kind: .cannotOpen, detail: "cannot create: \(error)")
        }
        buffer.reserveCapacity(Self.flushThreshold + 65_536)
        append(UInt32(header.nanosecondTimestamps ? 0xA1B2_3C4D : 0xA1B2_C3D4))
        append(header.versionMajor)
        append(header.versionMinor)
        append(UInt32(bitPattern: header.thisZone))
        append(header.sigFigs)
        append(header.snapLength)
        append(header.linkTypeField)
    }

    deinit { try? close() }

    /// Writes one record.
    public func write(timestamp: Timestamp, originalLength: Int, bytes: UnsafeRawBufferPointer) throws(CaptureError) {
        precondition(!closed, "write to a closed PcapWriter")
        append(UInt32(truncatingIfNeeded: timestamp.seconds))
        let fraction = timestamp.nanosecondsOfSecond
        append(UInt32(truncatingIfNeeded: header.nanosecondTimestamps ? fraction : fraction / 1000))
        append(UInt32(truncatingIfNeeded: bytes.count))
        append(UInt32(truncatingIfNeeded: max(originalLength, bytes.count)))
        buffer.append(contentsOf: bytes)
        recordCount += 1
        if buffer.count >= Self.flushThreshold { try flush() }
    }

    /// Writes a packet: its bytes, timestamp and original length.
    public func write(_ packet: Packet) throws(CaptureError) {
        try write(timestamp: packet.timestamp, originalLength: Int(packet.originalLength),
                  bytes: UnsafeRawBufferPointer(packet.bytes))
    }

    /// Writes what is buffered to the file.
    public func flush() throws(CaptureError) {
        guard !buffer.isEmpty else { return }
        do {
            _ = try buffer.withUnsafeBytes { try descriptor.writeAll($0) }
        } catch {
            throw CaptureError(path: path, offset: nil, kind: .cannotWrite, detail: "write failed: \(error)")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes the file. Further writes are a programming error.
    public func close() throws(CaptureError) {
        guard !closed else { return }
        closed = true
        defer { try? descriptor.close() }
        try flush()
    }

    func append<T: FixedWidthInteger>(_ value: T) {
        let ordered = header.byteOrder == .littleEndian ? value.littleEndian : value.bigEndian
        withUnsafeBytes(of: ordered) { buffer.append(contentsOf: $0) }
    }
}
