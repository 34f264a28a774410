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
    /// The EAL must be running.
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

    /// The packet over `mbuf` (a one-segment packet): its data as the mbuf
    /// holds it.
    @inline(__always)
    static func packet(over mbuf: OpaquePointer) -> Packet {
        var packet = Packet(buffer: sk_mbuf_buf_addr(mbuf)!, bufferSize: Int(sk_mbuf_buf_len(mbuf)),
                            handle: UInt(bitPattern: Int(bitPattern: UnsafeRawPointer(mbuf))),
                            headroom: Int(sk_mbuf_data_off(mbuf)))
        _ = packet.setLength(Int(sk_pktmbuf_data_len(mbuf)))
        packet.originalLength = packet.length
        return packet
    }

    /// The mbuf a packet is a view over, its data and length brought up to
    /// date (a rewrite may have moved the start or changed the length).
    @inline(__always)
    static func mbuf(of packet: Packet) -> OpaquePointer {
        let mbuf = OpaquePointer(bitPattern: packet.handle)!
        sk_mbuf_set_data(mbuf, UInt16(packet.dataOffset), UInt16(packet.length))
        return mbuf
    }

    public func allocate() -> Packet? {
        guard let mbuf = sk_pktmbuf_alloc(pool) else { return nil }
        return Self.packet(over: mbuf)
    }

    public func release(_ packet: Packet) {
        sk_pktmbuf_free(OpaquePointer(bitPattern: packet.handle))
    }
}
