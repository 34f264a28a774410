import StatelessKit

/// One worker's Ethernet and ARP handling on the ports that have a
/// ``PortNetwork``: ARP frames arriving are answered (a request for the
/// port's address becomes the reply in its own mbuf) or learned from and
/// never reach the graph; frames leaving get the port's address as source
/// and their next hop's as destination. A frame whose next hop is not known
/// yet is held (up to ``heldLimit`` frames, for up to a second) while ARP
/// asks, as a kernel holds packets on an unresolved neighbour.
public final class LinkLayer {
    /// The networks of the ports that have one, by DPDK port number.
    public let networks: [UInt16: PortNetwork]
    /// The neighbours learned by every worker.
    public let neighbors: NeighborTable
    /// Frames held at most while their next hop is resolved.
    public let heldLimit = 256
    /// What the layer did, by name (`arpAnswered`, `arpLearned`, `arpAsked`,
    /// `held`, and drops: `noNeighbor` (no ARP reply within a second, or
    /// too many held), `noRoute` (off the prefix, no gateway), `notIPv4`).
    public private(set) var counters: [String: Int] = [:]

    private var known: [UInt64: EthernetAddress] = [:]
    private var knownVersion = -1
    private var asked: [UInt64: Timestamp] = [:]
    private var held: [(queue: DPDKQueue, key: UInt64, since: Timestamp, packet: Packet)] = []
    private var lastKey = UInt64.max
    private var lastAddress = EthernetAddress()
    private let outgoing = PacketBatch(capacity: 64)

    /// A layer for the ports in `networks`, learning into `neighbors`.
    public init(networks: [UInt16: PortNetwork], neighbors: NeighborTable) {
        self.networks = networks
        self.neighbors = neighbors
    }

    /// Takes the ARP frames out of `batch` from index `start` on (packets
    /// just received on `queue`), answering and learning from them; the
    /// other packets stay, in order. Held frames whose neighbour has become
    /// known are sent.
    public func receive(_ batch: PacketBatch, from start: Int, on queue: DPDKQueue, now: Timestamp) {
        if !held.isEmpty { releaseHeld(now: now) }
        guard let network = networks[queue.port.id] else { return }
        var kept = start
        for index in start..<batch.count {
            let packet = batch[index]
            if Self.isARP(packet) {
                handleARP(packet, network: network, on: queue)
            } else {
                if kept != index { batch[kept] = packet }
                kept += 1
            }
        }
        if kept < batch.count { batch.truncate(to: kept) }
        if !outgoing.isEmpty { queue.send(outgoing) }
    }

    /// Writes the Ethernet addresses of the frames in `batch`, which leave
    /// by `queue`'s port; frames it cannot send yet are taken out (held, or
    /// freed and counted).
    @inline(__always)
    public func prepare(_ batch: PacketBatch, for queue: DPDKQueue, now: Timestamp) {
        let port = queue.port.id
        guard let network = networks[port] else { return }
        if neighbors.version != knownVersion { refresh() }
        let source = queue.port.macAddress
        var kept = 0
        for index in 0..<batch.count {
            let packet = batch[index]
            guard let destination = Self.ipv4Destination(packet) else {
                drop(packet, queue, "notIPv4")
                continue
            }
            guard let hop = network.nextHop(destination) else {
                drop(packet, queue, "noRoute")
                continue
            }
            let key = NeighborTable.key(port: port, hop)
            if key != lastKey {
                guard let address = known[key] else {
                    hold(packet, key: key, hop: hop, network: network, queue: queue, now: now)
                    continue
                }
                lastKey = key
                lastAddress = address
            }
            lastAddress.store(to: packet.data)
            source.store(to: packet.data + 6)
            if kept != index { batch[kept] = packet }
            kept += 1
        }
        if kept < batch.count { batch.truncate(to: kept) }
        if !outgoing.isEmpty { queue.send(outgoing) }
    }

    // MARK: ARP

    static let arpType: UInt16 = 0x0806
    static let ipv4Type: UInt16 = 0x0800

    @inline(__always)
    static func load16(_ pointer: UnsafeMutableRawPointer, _ offset: Int) -> UInt16 {
        UInt16(bigEndian: pointer.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inline(__always)
    static func isARP(_ packet: Packet) -> Bool {
        packet.length >= 42 && load16(packet.data, 12) == arpType
    }

    /// The IPv4 destination of an Ethernet frame (one VLAN tag allowed).
    @inline(__always)
    static func ipv4Destination(_ packet: Packet) -> IPv4Address? {
        let data = packet.data
        let length = Int(packet.length)
        guard length >= 34 else { return nil }
        var type = load16(data, 12)
        var offset = 14
        if type == 0x8100 {
            guard length >= 38 else { return nil }
            type = load16(data, 16)
            offset = 18
        }
        guard type == ipv4Type else { return nil }
        return IPv4Address(UInt32(bigEndian: data.loadUnaligned(fromByteOffset: offset + 16, as: UInt32.self)))
    }

    /// Learns the sender of an ARP frame and, for a request for the port's
    /// address, turns the frame into the reply; otherwise frees it.
    func handleARP(_ packet: Packet, network: PortNetwork, on queue: DPDKQueue) {
        let data = packet.data
        // Ethernet and IPv4 addresses only.
        guard Self.load16(data, 14) == 1, Self.load16(data, 16) == Self.ipv4Type,
              data.load(fromByteOffset: 18, as: UInt8.self) == 6, data.load(fromByteOffset: 19, as: UInt8.self) == 4 else {
            drop(packet, queue, "arpIgnored")
            return
        }
        let operation = Self.load16(data, 20)
        let senderEthernet = EthernetAddress(at: data + 22)
        let sender = IPv4Address(UInt32(bigEndian: data.loadUnaligned(fromByteOffset: 28, as: UInt32.self)))
        let target = IPv4Address(UInt32(bigEndian: data.loadUnaligned(fromByteOffset: 38, as: UInt32.self)))
        if sender.value != 0 && network.isLocal(sender) {
            neighbors.learn(port: queue.port.id, sender, at: senderEthernet)
            counters["arpLearned", default: 0] += 1
        }
        guard operation == 1, target == network.address else {
            queue.port.pool.release(packet)
            return
        }
        // The request becomes the reply.
        let own = queue.port.macAddress
        senderEthernet.store(to: data)
        own.store(to: data + 6)
        data.storeBytes(of: UInt16(2).bigEndian, toByteOffset: 20, as: UInt16.self)
        senderEthernet.store(to: data + 32)
        data.storeBytes(of: sender.value.bigEndian, toByteOffset: 38, as: UInt32.self)
        own.store(to: data + 22)
        data.storeBytes(of: network.address.value.bigEndian, toByteOffset: 28, as: UInt32.self)
        send(packet, queue)
        counters["arpAnswered", default: 0] += 1
    }

    /// Broadcasts an ARP request for `hop` from the port, at most once a
    /// second per neighbour.
    func ask(_ hop: IPv4Address, key: UInt64, network: PortNetwork, queue: DPDKQueue, now: Timestamp) {
        if let last = asked[key], now.nanoseconds - last.nanoseconds < 1_000_000_000 { return }
        asked[key] = now
        guard var request = queue.port.pool.allocate(), request.setLength(60) else { return }
        let data = request.data
        data.initializeMemory(as: UInt8.self, repeating: 0, count: 60)
        EthernetAddress.broadcast.store(to: data)
        queue.port.macAddress.store(to: data + 6)
        data.storeBytes(of: Self.arpType.bigEndian, toByteOffset: 12, as: UInt16.self)
        data.storeBytes(of: UInt16(1).bigEndian, toByteOffset: 14, as: UInt16.self)
        data.storeBytes(of: Self.ipv4Type.bigEndian, toByteOffset: 16, as: UInt16.self)
        data.storeBytes(of: UInt8(6), toByteOffset: 18, as: UInt8.self)
        data.storeBytes(of: UInt8(4), toByteOffset: 19, as: UInt8.self)
        data.storeBytes(of: UInt16(1).bigEndian, toByteOffset: 20, as: UInt16.self)
        queue.port.macAddress.store(to: data + 22)
        data.storeBytes(of: network.address.value.bigEndian, toByteOffset: 28, as: UInt32.self)
        data.storeBytes(of: hop.value.bigEndian, toByteOffset: 38, as: UInt32.self)
        send(request, queue)
        counters["arpAsked", default: 0] += 1
    }

    // MARK: Held frames

    func hold(_ packet: Packet, key: UInt64, hop: IPv4Address, network: PortNetwork, queue: DPDKQueue, now: Timestamp) {
        ask(hop, key: key, network: network, queue: queue, now: now)
        guard held.count < heldLimit else {
            drop(packet, queue, "noNeighbor")
            return
        }
        held.append((queue, key, now, packet))
        counters["held", default: 0] += 1
    }

    /// Sends the held frames whose neighbour is known now; frees those that
    /// waited a second.
    func releaseHeld(now: Timestamp) {
        if neighbors.version != knownVersion { refresh() }
        var waiting: [(queue: DPDKQueue, key: UInt64, since: Timestamp, packet: Packet)] = []
        for entry in held {
            if let address = known[entry.key] {
                address.store(to: entry.packet.data)
                entry.queue.port.macAddress.store(to: entry.packet.data + 6)
                outgoing.append(entry.packet)
                entry.queue.send(outgoing)
            } else if now.nanoseconds - entry.since.nanoseconds > 1_000_000_000 {
                drop(entry.packet, entry.queue, "noNeighbor")
            } else {
                waiting.append(entry)
            }
        }
        held = waiting
    }

    /// Frees every held frame (at the end of a run).
    public func discardHeld() {
        for entry in held { drop(entry.packet, entry.queue, "noNeighbor") }
        held.removeAll()
    }

    // MARK: Helpers

    func refresh() {
        knownVersion = neighbors.version
        known = neighbors.snapshot()
        lastKey = .max
    }

    func drop(_ packet: Packet, _ queue: DPDKQueue, _ reason: String) {
        queue.port.pool.release(packet)
        counters[reason, default: 0] += 1
    }

    func send(_ packet: Packet, _ queue: DPDKQueue) {
        outgoing.append(packet)
        if outgoing.isFull { queue.send(outgoing) }
    }
}
