import CDPDKShim
import StatelessKit

/// A ``PacketPool`` backed by an `rte_mempool`: each packet is a view over
/// an mbuf's buffer (its handle is the mbuf's address), so a packet received
/// on a port goes through the graph and out of a port without a copy.
public final class MbufPool: PacketPool {
    /// The mempool.
    let pool: OpaquePointer
    /// The largest packet a buffer holds, headroom excluded.
    public let dataRoom: Int
    /// Bytes reserved in front of each packet's data (DPDK's headroom).
    public let headroom: Int

    /// A pool of `count` mbufs (a power of two minus one suits DPDK best)
    /// with `dataRoom` bytes for packet data each, plus DPDK's headroom.
    /// The EAL must be running. Without hugepages the mbufs are packed one
    /// after another across the 4 KB pages (`RTE_MEMPOOL_F_NO_IOVA_CONTIG`):
    /// DPDK's default there gives each mbuf a page of its own, which puts
    /// every mbuf's header in the same set of the L1 cache, so that a burst's
    /// mbufs evict one another (the NAT ran 40-50% faster packed). No device
    /// DMAs into 4 KB pages; with hugepages the pool is DPDK's default.
    public init(name: String, count: Int, dataRoom: Int = 2048, cacheSize: Int = 256) throws(DPDKError) {
        let headroom = 128
        guard let pool = sk_pktmbuf_pool_create(name, UInt32(count), UInt32(min(cacheSize, 512)),
                                                UInt16(dataRoom + headroom)) else {
            throw DPDKError(operation: "rte_pktmbuf_pool_create \(name)", code: sk_errno())
        }
        self.pool = pool
        self.dataRoom = dataRoom
        self.headroom = headroom
    }

    deinit { sk_mempool_free(pool) }

    public func allocate() -> Packet? {
        guard let mbuf = sk_pktmbuf_alloc(pool) else { return nil }
        return MbufFields().packet(over: mbuf)
    }

    public func release(_ packet: Packet) {
        sk_pktmbuf_free(OpaquePointer(bitPattern: packet.handle))
    }
}

/// Where an `rte_mbuf` keeps the fields a packet view needs (the shim's
/// constants, checked against offsetof when the shim is compiled), so that
/// receiving and sending read and write them directly, at fixed offsets,
/// instead of calling into C once per field and packet.
@usableFromInline
struct MbufFields: Sendable {
    @usableFromInline var bufferAddress: Int { @inline(__always) get { Int(SK_MBUF_BUF_ADDR) } }
    @usableFromInline var bufferLength: Int { @inline(__always) get { Int(SK_MBUF_BUF_LEN) } }
    @usableFromInline var dataOffset: Int { @inline(__always) get { Int(SK_MBUF_DATA_OFF) } }
    @usableFromInline var segments: Int { @inline(__always) get { Int(SK_MBUF_NB_SEGS) } }
    @usableFromInline var dataLength: Int { @inline(__always) get { Int(SK_MBUF_DATA_LEN) } }
    @usableFromInline var packetLength: Int { @inline(__always) get { Int(SK_MBUF_PKT_LEN) } }

    @usableFromInline
    init() {}

    /// The number of segments of `mbuf`'s packet.
    @inline(__always)
    @usableFromInline
    func segments(of mbuf: OpaquePointer) -> UInt16 {
        UnsafeRawPointer(mbuf).load(fromByteOffset: segments, as: UInt16.self)
    }

    /// The packet over `mbuf` (a one-segment packet): its data as the mbuf
    /// holds it, arriving on the graph's port `port` at `time`.
    @inline(__always)
    func packet(over mbuf: OpaquePointer, port: UInt16 = 0, at time: Timestamp = .zero) -> Packet {
        let raw = UnsafeRawPointer(mbuf)
        return Packet(buffer: raw.load(fromByteOffset: bufferAddress, as: UnsafeMutableRawPointer.self),
                      bufferSize: Int(raw.load(fromByteOffset: bufferLength, as: UInt16.self)),
                      handle: UInt(bitPattern: raw),
                      dataOffset: Int(raw.load(fromByteOffset: dataOffset, as: UInt16.self)),
                      length: Int(raw.load(fromByteOffset: dataLength, as: UInt16.self)),
                      port: port, timestamp: time)
    }

    /// Writes `length` bytes from `source` as `mbuf`'s one segment, at its
    /// data offset (which leaves room for them).
    @inlinable @inline(__always)
    func write(_ mbuf: OpaquePointer, from source: UnsafeRawPointer, length: Int) {
        let raw = UnsafeMutableRawPointer(mbuf)
        let data = raw.load(fromByteOffset: bufferAddress, as: UnsafeMutableRawPointer.self)
            + Int(raw.load(fromByteOffset: dataOffset, as: UInt16.self))
        data.copyMemory(from: source, byteCount: length)
        raw.storeBytes(of: UInt16(truncatingIfNeeded: length), toByteOffset: dataLength, as: UInt16.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: length), toByteOffset: packetLength, as: UInt32.self)
    }

    /// The mbuf a packet is a view over, its data and length brought up to
    /// date (a rewrite may have moved the start or changed the length).
    @inline(__always)
    func mbuf(of packet: Packet) -> OpaquePointer {
        let raw = UnsafeMutableRawPointer(bitPattern: packet.handle)!
        // A packet's data lies inside its buffer, whose size fits 16 bits.
        raw.storeBytes(of: UInt16(truncatingIfNeeded: packet.dataOffset), toByteOffset: dataOffset, as: UInt16.self)
        raw.storeBytes(of: UInt16(truncatingIfNeeded: packet.length), toByteOffset: dataLength, as: UInt16.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: packet.length), toByteOffset: packetLength, as: UInt32.self)
        return OpaquePointer(raw)
    }
}

/// A queue's burst of mbufs as frames the flow cache can serve where they lie.
struct MbufBurst: FrameBurst {
    let mbufs: UnsafeMutablePointer<OpaquePointer?>
    let fields: MbufFields

    @inline(__always)
    func frame(_ index: Int) -> (data: UnsafeMutableRawPointer, length: Int) {
        let raw = UnsafeMutableRawPointer(mbufs[index].unsafelyUnwrapped)
        let data = raw.load(fromByteOffset: fields.bufferAddress, as: UnsafeMutableRawPointer.self)
            + Int(raw.load(fromByteOffset: fields.dataOffset, as: UInt16.self))
        let whole = fields.segments(of: OpaquePointer(raw)) == 1
        return (data, whole ? Int(raw.load(fromByteOffset: fields.dataLength, as: UInt16.self)) : 0)
    }
}
