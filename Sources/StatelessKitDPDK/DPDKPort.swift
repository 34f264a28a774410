import CDPDKShim
import StatelessKit

/// A DPDK Ethernet port, started with its queues. Each worker owns one
/// receive and one transmit queue of every port it uses, through a
/// ``DPDKQueue``; the port itself only holds what all of them share.
public final class DPDKPort: @unchecked Sendable {
    /// The port's DPDK number.
    public let id: UInt16
    /// The pool its receive queues fill packets from.
    public let pool: MbufPool
    /// Its receive and transmit queues.
    public let rxQueues: Int
    public let txQueues: Int
    /// Whether RSS spreads flows over the receive queues (by addresses and
    /// ports); without it, a device with several queues spreads packets its
    /// own way (af_packet by the kernel's flow hash, null and ring by
    /// queue).
    public let rss: Bool
    /// The port's Ethernet address.
    public let macAddress: EthernetAddress
    private var started = true

    /// Configures port `id` with `rxQueues` receive and `txQueues` transmit
    /// queues of `ringSize` descriptors (receive buffers from `pool`),
    /// starts it and makes it promiscuous. The EAL must be running.
    public init(id: UInt16, rxQueues: Int = 1, txQueues: Int = 1, ringSize: Int = 1024, pool: MbufPool) throws(DPDKError) {
        var rss: Int32 = 0
        let rc = sk_eth_port_start(id, UInt16(rxQueues), UInt16(txQueues), UInt16(ringSize), pool.pool, &rss)
        guard rc == 0 else {
            throw DPDKError(operation: "starting port \(id) with \(rxQueues) receive and \(txQueues) transmit queue(s)", code: -rc)
        }
        var address = EthernetAddress()
        withUnsafeMutableBytes(of: &address.bytes) { _ = sk_eth_macaddr(id, $0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        self.id = id
        self.pool = pool
        self.rxQueues = rxQueues
        self.txQueues = txQueues
        self.rss = rss != 0
        macAddress = address
    }

    deinit {
        if started { _ = sk_eth_port_stop(id) }
    }

    /// The port's totals as DPDK counts them, by name (`received`, `sent`,
    /// `missed`: received packets the port dropped, its ring full;
    /// `receiveErrors`, `sendErrors`, `noBuffer`: receive buffers it could
    /// not get), then each queue's (`queueN.received`, `queueN.sent`,
    /// `queueN.errors`) where the device keeps them; empty once the port is
    /// stopped.
    public var statistics: [String: Int] {
        guard started else { return [:] }
        var stats = sk_port_stats()
        guard sk_eth_stats(id, &stats) == 0 else { return [:] }
        var named = ["received": Int(stats.ipackets), "sent": Int(stats.opackets), "missed": Int(stats.imissed),
                     "receiveErrors": Int(stats.ierrors), "sendErrors": Int(stats.oerrors), "noBuffer": Int(stats.rx_nombuf)]
        for queue in 0..<max(rxQueues, txQueues) {
            var perQueue = sk_queue_stats()
            guard sk_eth_queue_stats(id, UInt16(queue), &perQueue) == 0 else { break }
            named["queue\(queue).received"] = Int(perQueue.ipackets)
            named["queue\(queue).sent"] = Int(perQueue.opackets)
            named["queue\(queue).errors"] = Int(perQueue.errors)
        }
        return named
    }

    /// Whether the port's link is up (a memif port's once its peer has
    /// connected, an af_packet or tap port's while its interface is up).
    public var isLinkUp: Bool { sk_eth_link_up(id) == 1 }

    /// Stops and closes the port.
    public func stop() throws(DPDKError) {
        guard started else { return }
        started = false
        let rc = sk_eth_port_stop(id)
        guard rc == 0 else { throw DPDKError(operation: "stopping port \(id)", code: -rc) }
    }
}

/// One worker's receive and transmit queue of a port: bursts of packets in,
/// as views over the mbufs the port filled, and out, the mbufs handed to the
/// port as they are (no copy either way). One thread uses it at a time.
public final class DPDKQueue {
    /// The port.
    public let port: DPDKPort
    /// The queue number (the same for receiving and sending).
    public let queue: UInt16
    @usableFromInline let mbufs: UnsafeMutablePointer<OpaquePointer?>
    @usableFromInline let fields = MbufFields()
    let burst = 256

    /// Queue `queue` of `port`.
    public init(port: DPDKPort, queue: Int) {
        precondition(queue < max(port.rxQueues, port.txQueues), "queue \(queue) of port \(port.id) was not set up")
        self.port = port
        self.queue = UInt16(queue)
        mbufs = .allocate(capacity: burst)
        mbufs.initialize(repeating: nil, count: burst)
    }

    deinit { mbufs.deallocate() }

    /// Receives a burst into `batch`'s free room (at most `limit` packets),
    /// each packet marked as arriving on the graph's port `graphPort` at
    /// `time`; returns how many came. A packet of several segments (larger than a buffer) is freed and
    /// counted in `dropped`.
    @inline(__always)
    public func receive(into batch: PacketBatch, as graphPort: UInt16, at time: Timestamp, limit: Int = .max,
                        dropped: inout Int) -> Int {
        let count = receiveBurst(limit: min(batch.capacity - batch.count, limit))
        makePackets(count, into: batch, as: graphPort, at: time, dropped: &dropped)
        return count
    }

    /// Receives a burst of at most `limit` mbufs into the queue's array
    /// (where ``write(_:from:length:)``, ``InPlacePath`` and
    /// ``makePackets(_:into:as:at:dropped:)`` find them); returns how many
    /// came.
    @inline(__always)
    public func receiveBurst(limit: Int) -> Int {
        let room = min(burst, limit)
        guard room > 0 else { return 0 }
        return Int(sk_rx_burst(port.id, queue, mbufs, UInt16(room)))
    }

    /// Writes `length` bytes from `source` as the last burst's frame
    /// `index`, as a NIC fills a frame (a benchmark stands in for one).
    @inlinable @inline(__always)
    public func write(_ index: Int, from source: UnsafeRawPointer, length: Int) {
        fields.write(mbufs[index].unsafelyUnwrapped, from: source, length: length)
    }

    /// Sends the first `count` mbufs of the queue's array as they are (a
    /// burst received and forwarded untouched); returns how many the port took.
    @inline(__always)
    public func sendReceived(_ count: Int) -> Int {
        transmit(mbufs, count: count)
    }

    /// Appends packets over the first `count` mbufs of the queue's array to
    /// `batch`, each arriving on the graph's port `graphPort` at `time`;
    /// one of several segments is freed and counted in `dropped`.
    @inline(__always)
    public func makePackets(_ count: Int, into batch: PacketBatch, as graphPort: UInt16, at time: Timestamp,
                     dropped: inout Int) {
        let fields = self.fields, mbufs = self.mbufs
        for i in 0..<count {
            let mbuf = mbufs[i].unsafelyUnwrapped  // rte_eth_rx_burst filled the first `count`
            guard fields.segments(of: mbuf) == 1 else {
                sk_pktmbuf_free(mbuf)
                dropped += 1
                continue
            }
            batch.append(fields.packet(over: mbuf, port: graphPort, at: time))
        }
    }

    /// Sends the `count` mbufs at `mbufs` as they are; frees those the port
    /// would not take (its ring full). Returns how many were sent.
    @inline(__always)
    func transmit(_ mbufs: UnsafeMutablePointer<OpaquePointer?>, count: Int) -> Int {
        let taken = Int(sk_tx_burst(port.id, queue, mbufs, UInt16(count)))
        if taken < count { sk_pktmbuf_free_bulk(mbufs + taken, UInt32(count - taken)) }
        return taken
    }

    /// Sends `batch`'s packets and empties it; the packets the port would
    /// not take (its ring full) are freed. Returns how many were sent.
    @inline(__always)
    @discardableResult
    public func send(_ batch: PacketBatch) -> Int {
        var sent = 0
        var start = 0
        while start < batch.count {
            let count = min(batch.count - start, burst)
            let fields = self.fields, mbufs = self.mbufs
            for i in 0..<count { mbufs[i] = fields.mbuf(of: batch[start &+ i]) }
            sent += transmit(mbufs, count: count)
            start += count
        }
        batch.removeAll()
        return sent
    }
}
