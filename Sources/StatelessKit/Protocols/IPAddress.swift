/// An IPv4 address, held as a host-order 32-bit value.
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The address as a number: `10.0.0.1` is `0x0A00_0001`.
    public var value: UInt32

    /// An address from its numeric value.
    @inlinable
    public init(_ value: UInt32) { self.value = value }

    /// An address from its four octets, most significant first.
    @inlinable
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation (`192.0.2.1`); `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        var result: UInt32 = 0
        var octets = 0
        for part in text.split(separator: ".", omittingEmptySubsequences: false) {
            guard octets < 4, (1...3).contains(part.count), part.allSatisfy(\.isASCII),
                  let octet = UInt8(part) else { return nil }
            result = result << 8 | UInt32(octet)
            octets += 1
        }
        guard octets == 4 else { return nil }
        value = result
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
}

/// An IPv6 address, held as two host-order 64-bit halves.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The first (most significant) 64 bits.
    public var high: UInt64
    /// The last 64 bits.
    public var low: UInt64

    /// An address from its two halves.
    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses RFC 4291 text (`2001:db8::1`, `::ffff:192.0.2.1`); `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        var groups: [UInt16] = []
        var gap: Int? = nil
        var rest = Substring(text)
        if rest.hasPrefix("::") {
            gap = 0
            rest = rest.dropFirst(2)
        }
        while !rest.isEmpty {
            let end = rest.firstIndex(of: ":") ?? rest.endIndex
            let part = rest[..<end]
            if part.contains("."), end == rest.endIndex, let v4 = IPv4Address(part) {
                groups.append(UInt16(v4.value >> 16))
                groups.append(UInt16(v4.value & 0xFFFF))
                rest = rest[end...]
                break
            }
            guard (1...4).contains(part.count), let group = UInt16(part, radix: 16) else { return nil }
            groups.append(group)
            rest = rest[end...]
            if rest.hasPrefix("::") {
                guard gap == nil else { return nil }
                gap = groups.count
                rest = rest.dropFirst(2)
            } else if rest.hasPrefix(":") {
                rest = rest.dropFirst()
                if rest.isEmpty { return nil }
            }
        }
        if let gap {
            guard groups.count < 8 else { return nil }
            groups.insert(contentsOf: repeatElement(0, count: 8 - groups.count), at: gap)
        }
        guard groups.count == 8 else { return nil }
        high = groups[0..<4].reduce(0) { $0 << 16 | UInt64($1) }
        low = groups[4..<8].reduce(0) { $0 << 16 | UInt64($1) }
    }

    /// The eight 16-bit groups, most significant first.
    public var groups: [UInt16] {
        (0..<8).map { i in UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> (48 - 16 * (i % 4))) }
    }

    /// RFC 5952 text: lower case, the longest run of two or more zero groups
    /// shortened to `::`.
    public var description: String {
        let g = groups
        var bestStart = -1, bestLength = 1, i = 0
        while i < 8 {
            if g[i] == 0 {
                var j = i
                while j < 8 && g[j] == 0 { j += 1 }
                if j - i > bestLength { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(g[$0], radix: 16) }.joined(separator: ":")
        }
        if bestStart < 0 { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}

/// An IPv4 or IPv6 address in one 128-bit form: an IPv4 address is held as
/// its IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), so that the two families
/// never compare equal and a flow key has one fixed layout.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The first 64 bits (zero for IPv4).
    public var high: UInt64
    /// The last 64 bits (`0x0000_FFFF_aabb_ccdd` for IPv4).
    public var low: UInt64

    @usableFromInline static let v4Prefix: UInt64 = 0x0000_FFFF_0000_0000

    /// The unspecified address `::`, used where a key has no address.
    public static let zero = IPAddress(high: 0, low: 0)

    @inlinable
    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// An IPv4 address.
    @inlinable
    public init(_ v4: IPv4Address) {
        high = 0
        low = Self.v4Prefix | UInt64(v4.value)
    }

    /// An IPv6 address.
    @inlinable
    public init(_ v6: IPv6Address) {
        high = v6.high
        low = v6.low
    }

    /// Parses IPv4 or IPv6 text.
    public init?(_ text: some StringProtocol) {
        if let v4 = IPv4Address(text) {
            self.init(v4)
        } else if let v6 = IPv6Address(text) {
            self.init(v6)
        } else {
            return nil
        }
    }

    /// Whether this is an IPv4 address.
    @inlinable
    public var isIPv4: Bool { high == 0 && low & 0xFFFF_FFFF_0000_0000 == Self.v4Prefix }

    /// The IPv4 address, or `nil` for IPv6.
    @inlinable
    public var ipv4: IPv4Address? { isIPv4 ? IPv4Address(UInt32(truncatingIfNeeded: low)) : nil }

    /// The address as IPv6 (IPv4 as its mapped form).
    @inlinable
    public var ipv6: IPv6Address { IPv6Address(high: high, low: low) }

    public var description: String { ipv4?.description ?? ipv6.description }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }
}
