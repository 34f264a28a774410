/// A 48-bit Ethernet (MAC) address.
public struct EthernetAddress: Hashable, Sendable, CustomStringConvertible {
    /// The six octets, first on the wire first.
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    /// The all-zero address.
    public init() { bytes = (0, 0, 0, 0, 0, 0) }

    /// An address from its six octets.
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, _ e: UInt8, _ f: UInt8) {
        bytes = (a, b, c, d, e, f)
    }

    /// The address stored at `pointer` (six octets).
    @inlinable
    public init(at pointer: UnsafeRawPointer) {
        bytes = (pointer.load(as: UInt8.self), pointer.load(fromByteOffset: 1, as: UInt8.self),
                 pointer.load(fromByteOffset: 2, as: UInt8.self), pointer.load(fromByteOffset: 3, as: UInt8.self),
                 pointer.load(fromByteOffset: 4, as: UInt8.self), pointer.load(fromByteOffset: 5, as: UInt8.self))
    }

    /// The broadcast address, ff:ff:ff:ff:ff:ff.
    public static let broadcast = EthernetAddress(0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)

    /// Writes the six octets at `pointer`.
    @inlinable
    public func store(to pointer: UnsafeMutableRawPointer) {
        withUnsafeBytes(of: bytes) { pointer.copyMemory(from: $0.baseAddress!, byteCount: 6) }
    }

    public static func == (a: Self, b: Self) -> Bool {
        withUnsafeBytes(of: a.bytes) { x in withUnsafeBytes(of: b.bytes) { y in x.elementsEqual(y) } }
    }

    public func hash(into hasher: inout Hasher) {
        withUnsafeBytes(of: bytes) { hasher.combine(bytes: $0) }
    }

    public var description: String {
        withUnsafeBytes(of: bytes) { $0.map { byte in
            let hex = String(byte, radix: 16)
            return hex.count == 1 ? "0" + hex : hex
        }.joined(separator: ":") }
    }
}
