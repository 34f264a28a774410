/// Reads a classic pcap (microsecond or nanosecond timestamps, either byte
/// order) or pcapng capture, one record at a time, in bounded memory.
///
/// A corrupt or truncated file gives a ``CaptureError`` naming the file and
/// the byte offset of the problem.
///
/// ```swift
/// let reader = try CaptureReader(path: "trace.pcap")
/// while let record = try reader.next() {
///     print(record.timestamp, record.bytes.count)
/// }
/// ```
public final class CaptureReader {
    /// The largest record accepted: libpcap's largest snapshot length.
    public static let maximumRecordLength = 262_144

    /// The file's path.
    public var path: String { input.path }
    /// What kind of file it is.
    public let format: CaptureFormat

    let input: FileInput
    var byteOrder: CaptureByteOrder
    /// pcapng: the interfaces of the current section.
    var interfaces: [PcapngInterface] = []

    /// Opens `path` and reads its file header (or, for pcapng, prepares to
    /// read its first section).
    public init(path: String) throws(CaptureError) {
        input = try FileInput(path: path)
        guard try input.fill(4) >= 4 else {
            throw CaptureError(path: path, offset: 0, kind: .notACapture,
                               detail: "too short to be a capture (\(input.available) bytes)")
        }
        let magic = input.pointer.loadUnaligned(as: UInt32.self)
        switch magic {
        case 0x0A0D_0D0A:
            format = .pcapng
            byteOrder = .littleEndian
        default:
            guard let (order, nanoseconds) = Self.pcapMagic(magic) else {
                throw CaptureError(
                    path: path, offset: 0, kind: .notACapture,
                    detail: "not a pcap or pcapng file (magic number 0x\(String(UInt32(bigEndian: magic), radix: 16)))")
            }
            byteOrder = order
            try input.require(24, "the pcap file header")
            let p = input.pointer
            var header = PcapFileHeader(linkType: .ethernet, nanosecondTimestamps: nanoseconds, byteOrder: order)
            header.versionMajor = Self.load(p, 4, order, as: UInt16.self)
            header.versionMinor = Self.load(p, 6, order, as: UInt16.self)
            header.thisZone = Int32(bitPattern: Self.load(p, 8, order, as: UInt32.self))
            header.sigFigs = Self.load(p, 12, order, as: UInt32.self)
            header.snapLength = Self.load(p, 16, order, as: UInt32.self)
            header.linkTypeField = Self.load(p, 20, order, as: UInt32.self)
            guard header.versionMajor == 2 else {
                throw CaptureError(path: path, offset: 4, kind: .unsupportedVersion,
                                   detail: "pcap version \(header.versionMajor).\(header.versionMinor) is not 2.x")
            }
            guard header.linkType != nil else {
                throw Self.unsupportedLinkType(path, offset: 20, header.linkTypeField & 0xFFFF)
            }
            format = .pcap(header)
            input.skip(24)
        }
    }

    /// The next record, or `nil` at the end of the file. The record's bytes
    /// are valid until the next call.
    public func next() throws(CaptureError) -> CaptureRecord? {
        switch format {
        case .pcap(let header): return try nextPcapRecord(header)
        case .pcapng: return try nextPcapngRecord()
        }
    }

    /// Reads the next record into `packet` (its bytes, timestamp, original
    /// length and link type). Returns `false` at the end of the file.
    public func next(into packet: inout Packet) throws(CaptureError) -> Bool {
        guard let record = try next() else { return false }
        guard packet.setBytes(record.bytes) else {
            throw CaptureError(path: path, offset: record.fileOffset, kind: .recordTooLarge,
                               detail: "a \(record.bytes.count)-byte packet does not fit a \(Int(packet.bufferSize) - packet.headroom)-byte buffer")
        }
        packet.originalLength = Int32(clamping: record.originalLength)
        packet.timestamp = record.timestamp
        packet.linkType = record.linkType.packetLinkType
        return true
    }

    /// Reads up to `batch`'s free capacity of records into packets taken from
    /// `pool`. Returns how many were read: fewer than asked only at the end of
    /// the file or when the pool ran dry.
    public func read(into batch: PacketBatch, from pool: some PacketPool) throws(CaptureError) -> Int {
        var read = 0
        while !batch.isFull, var packet = pool.allocate() {
            let more: Bool
            do {
                more = try next(into: &packet)
            } catch {
                pool.release(packet)
                throw error
            }
            guard more else {
                pool.release(packet)
                break
            }
            batch.append(packet)
            read += 1
        }
        return read
    }

    /// The bytes the reader holds in memory: one read buffer, whatever the
    /// file's size (it grows only for a record larger than itself).
    public var bufferBytes: Int { input.capacity }

    /// The largest packet the file may hold, for sizing buffers: its snapshot
    /// length, within 2,048 and ``maximumRecordLength``.
    public var suggestedDataRoom: Int {
        switch format {
        case .pcap(let header):
            return min(max(Int(header.snapLength), 2048), Self.maximumRecordLength)
        case .pcapng:
            return Self.maximumRecordLength
        }
    }

    // MARK: - Classic pcap

    func nextPcapRecord(_ header: PcapFileHeader) throws(CaptureError) -> CaptureRecord? {
        guard try input.fill(16) > 0 else { return nil }
        try input.require(16, "a record header")
        let p = input.pointer
        let recordOffset = input.offset
        let seconds = Int64(Self.load(p, 0, byteOrder, as: UInt32.self))
        let fraction = Int64(Self.load(p, 4, byteOrder, as: UInt32.self))
        let capturedLength = Int(Self.load(p, 8, byteOrder, as: UInt32.self))
        let originalLength = Int(Self.load(p, 12, byteOrder, as: UInt32.self))
        guard capturedLength <= Self.maximumRecordLength else {
            throw CaptureError(path: path, offset: recordOffset, kind: .badLength,
                               detail: "a record claims \(capturedLength) captured bytes (at most \(Self.maximumRecordLength) are possible): the file is corrupt")
        }
        try input.require(16 + capturedLength, "a \(capturedLength)-byte record")
        let linkType = header.linkType ?? .ethernet
        let record = CaptureRecord(
            timestamp: Timestamp(seconds: seconds, nanoseconds: header.nanosecondTimestamps ? fraction : fraction * 1000),
            originalLength: originalLength,
            bytes: UnsafeRawBufferPointer(start: input.pointer + 16, count: capturedLength),
            linkType: linkType, fileOffset: recordOffset)
        input.skip(16 + capturedLength)
        return record
    }

    static func pcapMagic(_ magic: UInt32) -> (CaptureByteOrder, Bool)? {
        let host: CaptureByteOrder = 1.littleEndian == 1 ? .littleEndian : .bigEndian
        let swapped: CaptureByteOrder = host == .littleEndian ? .bigEndian : .littleEndian
        switch magic {
        case 0xA1B2_C3D4: return (host, false)
        case 0xA1B2_3C4D: return (host, true)
        case 0xD4C3_B2A1: return (swapped, false)
        case 0x4D3C_B2A1: return (swapped, true)
        default: return nil
        }
    }

    @inlinable
    static func load<T: FixedWidthInteger>(_ p: UnsafeRawPointer, _ offset: Int, _ order: CaptureByteOrder,
                                           as: T.Type) -> T {
        let raw = p.loadUnaligned(fromByteOffset: offset, as: T.self)
        return order == .littleEndian ? T(littleEndian: raw) : T(bigEndian: raw)
    }

    static func unsupportedLinkType(_ path: String, offset: UInt64, _ value: UInt32) -> CaptureError {
        CaptureError(path: path, offset: offset, kind: .unsupportedLinkType,
                     detail: "link type \(value) is not supported (StatelessKit reads Ethernet (1) and raw IP (12, 14, 101, 228, 229))")
    }
}
