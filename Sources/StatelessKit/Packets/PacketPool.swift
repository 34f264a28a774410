/// A source of packet buffers that recycles them.
///
/// ``BufferPool`` is the pure-Swift pool; the DPDK module provides one backed
/// by an `rte_mempool`, whose packets are views over mbufs. A pool is owned
/// by one worker at a time and is not safe to use from two threads at once.
public protocol PacketPool: AnyObject {
    /// The largest packet a buffer holds, headroom excluded.
    var dataRoom: Int { get }
    /// Bytes reserved in front of each packet's data.
    var headroom: Int { get }
    /// Takes a buffer, or returns `nil` when the pool is empty.
    func allocate() -> Packet?
    /// Gives a packet's buffer back. Each packet is released exactly once.
    func release(_ packet: Packet)
}

extension PacketPool {
    /// Releases every packet in `batch` and empties it.
    @inlinable
    public func release(_ batch: PacketBatch) {
        for i in 0..<batch.count { release(batch[i]) }
        batch.removeAll()
    }
}
