/// Where a runtime's packets come from: a capture, generated traffic, a
/// DPDK port.
public protocol PacketSource: AnyObject {
    /// Fills `batch` with packets from `pool` (each with its arrival port and
    /// timestamp set); returns how many: zero when nothing is there now,
    /// which for a source that ``isExhausted`` means the end.
    func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int
    /// Whether a read of zero means the end (a capture's), not merely
    /// nothing yet (a live port's). True by default.
    var isExhausted: Bool { get }
}

extension PacketSource {
    public var isExhausted: Bool { true }
}

/// A source whose frames lie in buffers that its sink sends as they are (a
/// DPDK port's mbufs), so that the runner's flow cache can serve an
/// established flow's frames where they lie, before any packet is made of
/// them (``GraphRunner/serveInPlace(_:count:arrivingOn:linkType:now:outputs:)``),
/// and the source sends them on itself.
public protocol InPlaceSource: PacketSource {
    /// Offers each burst it reads to `runner`'s flow cache from now on,
    /// sending what the cache serves by `sink`'s outputs; returns whether it
    /// will (it declines a sink of another kind, and frames that need more
    /// than the cached rewrite, such as Ethernet addresses from a neighbour
    /// table). A read then counts the frames it served too, which do not
    /// come into the batch.
    func serveInPlace(through runner: GraphRunner, to sink: any PacketSink) -> Bool
    /// Frames served where they lay, by the graph port they left by.
    var servedInPlace: [UInt16: Int] { get }
}

/// Where a runtime's packets go, by the port they leave by.
public protocol PacketSink: AnyObject {
    /// Takes the packets of `batch` leaving by `port`. The runtime releases
    /// the buffers of the packets left in the batch afterwards; a sink that
    /// hands the buffers on itself (a DPDK port) empties the batch.
    func write(_ batch: PacketBatch, port: UInt16) throws
    /// Finishes (flushes and closes).
    func close() throws
}

/// Reads a capture as a packet source, every packet arriving on one port.
public final class CaptureSource: PacketSource {
    /// The reader.
    public let reader: CaptureReader
    /// The port packets arrive on.
    public let port: UInt16

    /// A source reading `path`, its packets arriving on `port`.
    public init(path: String, port: UInt16 = 0) throws(CaptureError) {
        reader = try CaptureReader(path: path)
        self.port = port
    }

    public func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int {
        let start = batch.count
        let read = try reader.read(into: batch, from: pool)
        for i in start..<batch.count { batch[i].port = port }
        return read
    }
}

/// Writes packets to pcap files, one per port (a port with no file is
/// counted and dropped).
public final class CaptureSink: PacketSink {
    let writers: [UInt16: PcapWriter]
    /// Packets written, by port.
    public private(set) var written: [UInt16: Int] = [:]

    /// A sink writing the packets leaving by each port to its file.
    public init(paths: [UInt16: String], linkType: CaptureLinkType = .ethernet) throws(CaptureError) {
        var writers: [UInt16: PcapWriter] = [:]
        for (port, path) in paths {
            writers[port] = try PcapWriter(path: path, header: PcapFileHeader(linkType: linkType, nanosecondTimestamps: true))
        }
        self.writers = writers
    }

    public func write(_ batch: PacketBatch, port: UInt16) throws {
        written[port, default: 0] += batch.count
        guard let writer = writers[port] else { return }
        for i in 0..<batch.count { try writer.write(batch[i]) }
    }

    public func close() throws {
        for writer in writers.values { try writer.close() }
    }
}
