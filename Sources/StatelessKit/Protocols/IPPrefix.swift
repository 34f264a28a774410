/// An IPv4 or IPv6 prefix (`10.0.0.0/8`, `fd00::/8`).
public struct IPPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address (host bits zero).
    public let address: IPAddress
    /// The prefix length, 0–32 for IPv4 and 0–128 for IPv6.
    public let length: Int

    /// Parses `ADDRESS/LENGTH`; `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/")
        guard parts.count == 2, let address = IPAddress(parts[0]), let length = Int(parts[1]) else { return nil }
        let bits = address.isIPv4 ? 32 : 128
        guard (0...bits).contains(length) else { return nil }
        self.length = length
        self.address = Self.masked(address, length: address.isIPv4 ? 96 + length : length)
    }

    @usableFromInline
    static func masked(_ address: IPAddress, length: Int) -> IPAddress {
        let highMask: UInt64 = length >= 64 ? .max : (length == 0 ? 0 : ~(UInt64.max >> UInt64(length)))
        let lowMask: UInt64 = length <= 64 ? 0 : (length >= 128 ? .max : ~(UInt64.max >> UInt64(length - 64)))
        return IPAddress(high: address.high & highMask, low: address.low & lowMask)
    }

    /// Whether the IPv4 address `address` lies in the prefix (always false
    /// for an IPv6 prefix).
    @inlinable
    public func contains(_ address: IPv4Address) -> Bool {
        guard self.address.isIPv4 else { return false }
        let mask: UInt32 = length == 0 ? 0 : ~0 << UInt32(32 - length)
        return address.value & mask == UInt32(truncatingIfNeeded: self.address.low)
    }

    /// Whether `address` lies in the prefix.
    @inlinable
    public func contains(_ address: IPAddress) -> Bool {
        guard address.isIPv4 == self.address.isIPv4 else { return false }
        return Self.masked(address, length: address.isIPv4 ? 96 + length : length) == self.address
    }

    /// The RFC 1918 private IPv4 ranges.
    public static let privateIPv4: [IPPrefix] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map { IPPrefix($0)! }

    public var description: String { "\(address)/\(length)" }
}

