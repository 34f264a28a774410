/// A batch of packets with a fixed capacity, allocated once and reused.
///
/// The runtime moves packets through a graph a batch at a time; node code
/// sees one packet at a time. Appending, indexing and emptying cost no
/// allocation.
public final class PacketBatch {
    /// The most packets the batch holds.
    public let capacity: Int
    /// The packets held now.
    @inlinable public var count: Int { storedCount }
    @exclusivity(unchecked) @usableFromInline var storedCount: Int
    @exclusivity(unchecked) @usableFromInline var storage: UnsafeMutablePointer<Packet>

    /// An empty batch that holds up to `capacity` packets.
    public init(capacity: Int) {
        precondition(capacity > 0, "a batch holds at least one packet")
        self.capacity = capacity
        storedCount = 0
        storage = .allocate(capacity: capacity)
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    /// Whether the batch holds no packet.
    @inlinable
    public var isEmpty: Bool { count == 0 }

    /// Whether the batch is at its capacity.
    @inlinable
    public var isFull: Bool { count == capacity }

    /// The packet at `index`.
    @inlinable
    public subscript(index: Int) -> Packet {
        get {
            precondition(index >= 0 && index < count, "batch index out of range")
            return storage[index]
        }
        _modify {
            precondition(index >= 0 && index < count, "batch index out of range")
            yield &storage[index]
        }
    }

    /// Adds a packet; returns `false`, adding nothing, when the batch is full.
    @inlinable
    @discardableResult
    public func append(_ packet: Packet) -> Bool {
        guard count < capacity else { return false }
        (storage + count).initialize(to: packet)
        storedCount &+= 1
        return true
    }

    /// Keeps the first `count` packets and forgets the rest (their buffers
    /// are the caller's to release).
    @inlinable
    public func truncate(to count: Int) {
        precondition(count >= 0 && count <= self.count, "truncating a batch beyond its count")
        (storage + count).deinitialize(count: self.count - count)
        storedCount = count
    }

    /// Exchanges the batch's packets with the `count` packets at `other`, a
    /// buffer of ``capacity`` packets, without copying either: the runtime
    /// moves whole batches this way. What the batch held is then at `other`.
    @inlinable
    func exchange(_ other: inout UnsafeMutablePointer<Packet>, count: Int) {
        precondition(count >= 0 && count <= capacity, "exchanging more packets than a batch holds")
        swap(&storage, &other)
        storedCount = count
    }

    /// Forgets every packet (their buffers are the caller's to release).
    @inlinable
    public func removeAll() {
        storage.deinitialize(count: count)
        storedCount = 0
    }
}
