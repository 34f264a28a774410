import Atomics
import StatelessKit

/// A DPDK port's receive queue as a runtime's packet source: each packet
/// arrives on the graph's port `graphPort`, stamped with the wall clock.
/// Live, a burst of nothing is not the end: the source ends when ``stop()``
/// is called (on SIGINT or SIGTERM) or, reading a capture through net_pcap,
/// once the capture's `expected` packets have come.
public final class DPDKSource: PacketSource {
    /// The port.
    public let port: DPDKPort
    let queue: UInt16
    let graphPort: UInt16
    let expected: Int?
    private let stopped = ManagedAtomic<Bool>(false)
    /// Packets received.
    public private(set) var received = 0
    /// Packets dropped on receipt (several segments).
    public private(set) var dropped = 0

    /// A source reading `queue` of `port`; with `expected`, it ends after
    /// that many packets (the records of a net_pcap input's file).
    public init(port: DPDKPort, queue: UInt16 = 0, graphPort: UInt16, expected: Int? = nil) {
        self.port = port
        self.queue = queue
        self.graphPort = graphPort
        self.expected = expected
    }

    /// Ends the source: the run drains what is in flight and returns.
    /// Safe from any thread.
    public func stop() { stopped.store(true, ordering: .releasing) }

    public var isExhausted: Bool {
        stopped.load(ordering: .acquiring) || expected.map { received + dropped >= $0 } ?? false
    }

    public func read(into batch: PacketBatch, from pool: any PacketPool) throws -> Int {
        guard !isExhausted else { return 0 }
        let count = port.receive(queue: queue, into: batch, as: graphPort, at: Timestamp.wallClock(), dropped: &dropped)
        received += count
        return count
    }
}

/// DPDK ports as a runtime's packet sink: the packets leaving by each graph
/// port go out of its DPDK port, their mbufs handed on as they are.
public final class DPDKSink: PacketSink {
    let ports: [UInt16: DPDKPort]
    /// Packets sent, and packets the ports would not take (their rings
    /// full) or that left by a graph port with no DPDK port, by graph port.
    public private(set) var sent: [UInt16: Int] = [:]
    public private(set) var unsent: [UInt16: Int] = [:]

    /// A sink sending what leaves by each graph port out of its DPDK port.
    public init(ports: [UInt16: DPDKPort]) {
        self.ports = ports
    }

    public func write(_ batch: PacketBatch, port: UInt16) throws {
        guard let out = ports[port] else {
            unsent[port, default: 0] += batch.count
            return
        }
        let count = batch.count
        let taken = out.send(batch)
        sent[port, default: 0] += taken
        if taken < count { unsent[port, default: 0] += count - taken }
    }

    public func close() throws {
        for port in ports.values { try port.stop() }
    }
}
