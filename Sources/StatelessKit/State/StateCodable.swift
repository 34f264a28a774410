/// A value with a compact, fixed-size binary encoding: what state tables
/// hold and what travels to and from a store, in the embedded store's slots
/// and in Redis alike.
public protocol StateCodable: Sendable, Equatable {
    /// The encoding's size in bytes; the same for every value.
    static var encodedSize: Int { get }
    /// Writes the encoding's ``encodedSize`` bytes at `pointer`.
    func encode(to pointer: UnsafeMutableRawPointer)
    /// Reads a value from ``encodedSize`` bytes at `pointer`.
    init(decoding pointer: UnsafeRawPointer)
}

extension UInt16: StateCodable {
    public static var encodedSize: Int { 2 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: bigEndian, as: UInt16.self)
    }
    @inlinable public init(decoding pointer: UnsafeRawPointer) {
        self.init(bigEndian: pointer.loadUnaligned(as: UInt16.self))
    }
}

extension UInt32: StateCodable {
    public static var encodedSize: Int { 4 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: bigEndian, as: UInt32.self)
    }
    @inlinable public init(decoding pointer: UnsafeRawPointer) {
        self.init(bigEndian: pointer.loadUnaligned(as: UInt32.self))
    }
}

extension UInt64: StateCodable {
    public static var encodedSize: Int { 8 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: bigEndian, as: UInt64.self)
    }
    @inlinable public init(decoding pointer: UnsafeRawPointer) {
        self.init(bigEndian: pointer.loadUnaligned(as: UInt64.self))
    }
}

extension IPv4Address: StateCodable {
    public static var encodedSize: Int { 4 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) { value.encode(to: pointer) }
    @inlinable public init(decoding pointer: UnsafeRawPointer) { self.init(UInt32(decoding: pointer)) }
}

extension IPAddress: StateCodable {
    public static var encodedSize: Int { 16 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) {
        high.encode(to: pointer)
        low.encode(to: pointer + 8)
    }
    @inlinable public init(decoding pointer: UnsafeRawPointer) {
        self.init(high: UInt64(decoding: pointer), low: UInt64(decoding: pointer + 8))
    }
}

extension FlowKey: StateCodable {
    /// Addresses (16 + 16), ports (2 + 2), protocol (1), VLANs (4).
    public static var encodedSize: Int { 41 }
    @inlinable public func encode(to pointer: UnsafeMutableRawPointer) {
        source.encode(to: pointer)
        destination.encode(to: pointer + 16)
        sourcePort.encode(to: pointer + 32)
        destinationPort.encode(to: pointer + 34)
        pointer.storeBytes(of: ipProtocol, toByteOffset: 36, as: UInt8.self)
        vlans.rawValue.encode(to: pointer + 37)
    }
    @inlinable public init(decoding pointer: UnsafeRawPointer) {
        var vlans = VLANStack()
        vlans.rawValue = UInt32(decoding: pointer + 37)
        self.init(source: IPAddress(decoding: pointer), destination: IPAddress(decoding: pointer + 16),
                  sourcePort: UInt16(decoding: pointer + 32), destinationPort: UInt16(decoding: pointer + 34),
                  ipProtocol: pointer.load(fromByteOffset: 36, as: UInt8.self), vlans: vlans)
    }
}
