import CDPDKShim
import StatelessKit

/// A DPDK Ethernet port, started with its queues: bursts of packets in,
/// as views over the mbufs the port filled, and out, the mbufs handed to the
/// port as they are (no copy either way). One thread uses it at a time.
public final class DPDKPort: @unchecked Sendable {
    /// The port's DPDK number.
    public let id: UInt16
    /// The pool its receive queues fill packets from.
    public let pool: MbufPool
    private let mbufs: UnsafeMutablePointer<OpaquePointer?>
    private let burst = 256
    private var started = true

    /// Configures port `id` with `rxQueues` receive and `txQueues` transmit
    /// queues of `ringSize` descriptors (receive buffers from `pool`) and
    /// starts it. The EAL must be running.
    public init(id: UInt16, rxQueues: Int = 1, txQueues: Int = 1, ringSize: Int = 1024, pool: MbufPool) throws(DPDKError) {
        let rc = sk_eth_port_start(id, UInt16(rxQueues), UInt16(txQueues), UInt16(ringSize), pool.pool)
        guard rc == 0 else { throw DPDKError(operation: "starting port \(id)", code: -rc) }
        self.id = id
        self.pool = pool
        mbufs = .allocate(capacity: burst)
        mbufs.initialize(repeating: nil, count: burst)
    }

    deinit {
        if started { _ = sk_eth_port_stop(id) }
        mbufs.deallocate()
    }

    /// The port's totals as DPDK counts them, by name (`received`, `sent`,
    /// `missed`: received packets the port dropped, its ring full;
    /// `receiveErrors`, `sendErrors`, `noBuffer`: receive buffers it could
    /// not get); empty once the port is stopped.
    public var statistics: [String: Int] {
        guard started else { return [:] }
        var stats = sk_port_stats()
        guard sk_eth_stats(id, &stats) == 0 else { return [:] }
        return ["received": Int(stats.ipackets), "sent": Int(stats.opackets), "missed": Int(stats.imissed),
                "receiveErrors": Int(stats.ierrors), "sendErrors": Int(stats.oerrors), "noBuffer": Int(stats.rx_nombuf)]
    }

    /// Stops and closes the port.
    public func stop() throws(DPDKError) {
        guard started else { return }
        started = false
        let rc = sk_eth_port_stop(id)
        guard rc == 0 else { throw DPDKError(operation: "stopping port \(id)", code: -rc) }
    }

    /// Receives a burst from `queue` into `batch`'s free room, each packet
    /// marked as arriving on the graph's port `graphPort` at `time`; returns
    /// how many came. A packet of several segments (larger than a buffer) is
    /// freed and counted in `dropped`.
    @inline(__always)
    public func receive(queue: UInt16 = 0, into batch: PacketBatch, as graphPort: UInt16, at time: Timestamp,
                        dropped: inout Int) -> Int {
        let room = min(batch.capacity - batch.count, burst)
        guard room > 0 else { return 0 }
        let count = Int(sk_rx_burst(id, queue, mbufs, UInt16(room)))
        for i in 0..<count {
            let mbuf = mbufs[i]!
            guard sk_mbuf_nb_segs(mbuf) == 1 else {
                sk_pktmbuf_free(mbuf)
                dropped += 1
                continue
            }
            var packet = MbufPool.packet(over: mbuf)
            packet.port = graphPort
            packet.timestamp = time
            _ = batch.append(packet)
        }
        return count
    }

    /// Sends `batch`'s packets on `queue` and empties it; the packets the
    /// port would not take (its ring full) are freed. Returns how many were
    /// sent.
    @inline(__always)
    @discardableResult
    public func send(_ batch: PacketBatch, queue: UInt16 = 0) -> Int {
        var sent = 0
        var start = 0
        while start < batch.count {
            let count = min(batch.count - start, burst)
            for i in 0..<count { mbufs[i] = MbufPool.mbuf(of: batch[start + i]) }
            let taken = Int(sk_tx_burst(id, queue, mbufs, UInt16(count)))
            if taken < count { sk_pktmbuf_free_bulk(mbufs + taken, UInt32(count - taken)) }
            sent += taken
            start += count
        }
        batch.removeAll()
        return sent
    }
}
