/// A fixed set of equal-sized packet buffers in one allocation, handed out
/// and taken back with no per-packet allocation.
///
/// The buffers sit in a single slab of `count × stride` bytes allocated once;
/// a stack of free indices makes ``allocate()`` and ``release(_:)`` a few
/// instructions each. Pages of the slab that no packet touched are never
/// committed by the kernel, so a pool sized for large capture records costs
/// only what it uses.
public final class BufferPool: PacketPool {
    /// The default room for packet data: a 1500-byte MTU frame with tags,
    /// the same as a DPDK mbuf's default.
    public static let defaultDataRoom = 2048
    /// The default headroom, as in DPDK (`RTE_PKTMBUF_HEADROOM`).
    public static let defaultHeadroom = 128

    /// The number of buffers.
    public let count: Int
    /// Room for packet data in each buffer.
    public let dataRoom: Int
    /// Bytes reserved in front of each packet's data.
    public let headroom: Int
    /// The distance between two buffers in the slab (64-byte aligned).
    public let stride: Int

    @usableFromInline let slab: UnsafeMutableRawPointer
    @usableFromInline let free: UnsafeMutablePointer<UInt32>
    @exclusivity(unchecked) @usableFromInline var freeCount: Int

    /// A pool of `count` buffers, each with `dataRoom` bytes for packet data
    /// after `headroom` bytes.
    public init(count: Int, dataRoom: Int = BufferPool.defaultDataRoom,
                headroom: Int = BufferPool.defaultHeadroom) {
        precondition(count > 0 && count <= Int(UInt32.max), "a pool holds 1 to 2^32-1 buffers")
        precondition(dataRoom > 0 && headroom >= 0, "a buffer has room for data")
        self.count = count
        self.dataRoom = dataRoom
        self.headroom = headroom
        stride = (headroom + dataRoom + 63) & ~63
        slab = UnsafeMutableRawPointer.allocate(byteCount: count * stride, alignment: 64)
        free = .allocate(capacity: count)
        for i in 0..<count { free[i] = UInt32(count - 1 - i) }
        freeCount = count
    }

    deinit {
        slab.deallocate()
        free.deallocate()
    }

    /// Buffers not handed out.
    @inlinable
    public var available: Int { freeCount }

    /// Takes a buffer, or returns `nil` when all are handed out.
    @inlinable
    public func allocate() -> Packet? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        let index = Int(free[freeCount])
        return Packet(buffer: slab + index * stride, bufferSize: headroom + dataRoom,
                      handle: UInt(index), headroom: headroom)
    }

    /// Takes a buffer back; releasing one twice, or one of another pool, traps.
    @inlinable
    public func release(_ packet: Packet) {
        precondition(packet.handle < UInt(count) && freeCount < count,
                     "a packet released to a pool it does not belong to, or released twice")
        free[freeCount] = UInt32(truncatingIfNeeded: packet.handle)
        freeCount += 1
    }
}
