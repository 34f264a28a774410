/// How a packet's bytes begin.
public enum LinkType: UInt8, Sendable {
    /// An Ethernet II frame (destination MAC first).
    case ethernet
    /// An IPv4 or IPv6 datagram with no link-layer header.
    case rawIP
}

/// A packet: a view over a buffer that a ``PacketPool`` owns.
///
/// A `Packet` does not own its bytes and never copies them: copying the
/// struct copies the view, and a rewrite through any copy changes the one
/// buffer. The buffer goes back to its pool when the runtime frees the
/// packet, exactly once.
///
/// Between the buffer's start and the packet's data is headroom, so that a
/// header can be pushed in front of the packet without a copy
/// (``prepend(_:)``).
///
/// After ``parse()`` succeeds, ``layout`` tells where each header starts,
/// and the typed accessors (``ipv4Address(_:)``, ``port(_:)``, ...) and
/// rewrites (``setIPv4Address(_:at:)``, ...) read and change fields with
/// their checksums kept right.
public struct Packet {
    // Stored properties largest first, so that a packet has no padding.

    /// The start of the buffer (the start of the headroom).
    public let buffer: UnsafeMutableRawPointer
    /// The owning pool's name for the buffer (an index, or an mbuf address).
    public let handle: UInt
    /// When the packet arrived.
    public var timestamp: Timestamp
    /// The buffer's size in bytes, headroom included.
    public let bufferSize: Int32
    /// Where the packet's data starts, from the start of the buffer.
    @inlinable public var dataOffset: Int32 { storedDataOffset }
    /// The number of bytes present (the captured length).
    @inlinable public var length: Int32 { storedLength }
    @usableFromInline var storedDataOffset: Int32
    @usableFromInline var storedLength: Int32
    /// The packet's length on the wire; more than ``length`` when a capture
    /// cut the packet short.
    public var originalLength: Int32
    /// Where the headers are; valid after ``parse()`` succeeded.
    public var layout: PacketLayout
    /// The port the packet arrived on or leaves by.
    public var port: UInt16
    /// How the packet's bytes begin.
    public var linkType: LinkType

    /// A packet over `bufferSize` bytes at `buffer`, with `headroom` bytes
    /// before its data and no data yet. Pools call this; NF code gets
    /// packets from the runtime.
    @inlinable
    public init(buffer: UnsafeMutableRawPointer, bufferSize: Int, handle: UInt, headroom: Int) {
        self.init(buffer: buffer, bufferSize: bufferSize, handle: handle, dataOffset: headroom, length: 0,
                  port: 0, timestamp: .zero)
    }

    /// A packet over `bufferSize` bytes at `buffer` whose `length` bytes of
    /// data start `dataOffset` bytes in, arrived on `port` at `timestamp`,
    /// not parsed yet: a pool's view of a buffer a device filled.
    @inlinable
    public init(buffer: UnsafeMutableRawPointer, bufferSize: Int, handle: UInt, dataOffset: Int, length: Int,
                port: UInt16, timestamp: Timestamp) {
        precondition(dataOffset >= 0 && length >= 0 && dataOffset &+ length <= bufferSize && bufferSize <= Int(Int32.max),
                     "a packet's data lies inside its buffer")
        self.buffer = buffer
        self.bufferSize = Int32(truncatingIfNeeded: bufferSize)
        self.handle = handle
        self.storedDataOffset = Int32(truncatingIfNeeded: dataOffset)
        self.storedLength = Int32(truncatingIfNeeded: length)
        self.originalLength = storedLength
        self.timestamp = timestamp
        self.port = port
        self.linkType = .ethernet
        self.layout = PacketLayout()
    }

    /// The first byte of the packet.
    @inlinable
    public var data: UnsafeMutableRawPointer { buffer + Int(dataOffset) }

    /// The packet's bytes.
    @inlinable
    public var bytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: data, count: Int(length))
    }

    /// Bytes free in front of the packet.
    @inlinable
    public var headroom: Int { Int(dataOffset) }

    /// Bytes free after the packet.
    @inlinable
    public var tailroom: Int { Int(bufferSize - dataOffset - length) }

    /// Replaces the packet's bytes with a copy of `source`, keeping the
    /// headroom. Returns `false`, changing nothing, when they do not fit.
    @inlinable
    public mutating func setBytes(_ source: UnsafeRawBufferPointer) -> Bool {
        guard source.count <= Int(bufferSize - dataOffset) else { return false }
        if let base = source.baseAddress { data.copyMemory(from: base, byteCount: source.count) }
        storedLength = Int32(source.count)
        originalLength = length
        return true
    }

    /// Changes the length, growing into the tailroom or trimming the end.
    /// Returns `false`, changing nothing, when `newLength` does not fit.
    @inlinable
    public mutating func setLength(_ newLength: Int) -> Bool {
        guard newLength >= 0, newLength <= Int(bufferSize - dataOffset) else { return false }
        storedLength = Int32(newLength)
        return true
    }

    /// Grows the packet at its front by `count` bytes of headroom and returns
    /// the new first byte, or `nil` when the headroom is too small. The
    /// layout is stale afterwards: parse again.
    @inlinable
    public mutating func prepend(_ count: Int) -> UnsafeMutableRawPointer? {
        guard count >= 0, count <= Int(dataOffset) else { return nil }
        storedDataOffset -= Int32(count)
        storedLength += Int32(count)
        originalLength += Int32(count)
        return data
    }

    /// Removes `count` bytes from the packet's front, or returns `false` when
    /// it is shorter. The layout is stale afterwards: parse again.
    @inlinable
    public mutating func removeFirst(_ count: Int) -> Bool {
        guard count >= 0, count <= Int(length) else { return false }
        storedDataOffset += Int32(count)
        storedLength -= Int32(count)
        originalLength = max(0, originalLength - Int32(count))
        return true
    }
}
