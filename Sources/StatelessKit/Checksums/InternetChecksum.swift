/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
public enum InternetChecksum {
    /// The one's-complement sum of `count` bytes at `data`, folded to 16
    /// bits, in network byte order as a number (not yet complemented). An odd
    /// last byte is padded with zero.
    @inlinable
    public static func sum(_ data: UnsafeRawPointer, count: Int, initial: UInt32 = 0) -> UInt32 {
        var accumulator: UInt64 = 0
        var i = 0
        // Sum 64-bit little-endian loads; the one's-complement sum is the same
        // in any byte order up to a final swap.
        while i + 8 <= count {
            let (partial, overflow) = accumulator.addingReportingOverflow(
                UInt64(littleEndian: data.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            accumulator = partial &+ (overflow ? 1 : 0)
            i += 8
        }
        var tail: UInt64 = 0
        while i + 2 <= count {
            tail &+= UInt64(UInt16(littleEndian: data.loadUnaligned(fromByteOffset: i, as: UInt16.self)))
            i += 2
        }
        if i < count {
            tail &+= UInt64(data.load(fromByteOffset: i, as: UInt8.self))
        }
        let (total, overflow) = accumulator.addingReportingOverflow(tail)
        accumulator = total &+ (overflow ? 1 : 0)
        var folded = (accumulator >> 32) &+ (accumulator & 0xFFFF_FFFF)
        folded = (folded >> 32) &+ (folded & 0xFFFF_FFFF)
        folded = (folded >> 16) &+ (folded & 0xFFFF)
        folded = (folded >> 16) &+ (folded & 0xFFFF)
        folded = (folded >> 16) &+ (folded & 0xFFFF)
        let bigEndian = UInt16(truncatingIfNeeded: folded).byteSwapped
        return fold(UInt32(bigEndian) &+ initial)
    }

    /// Folds a 32-bit one's-complement accumulator to 16 bits.
    @inlinable
    public static func fold(_ value: UInt32) -> UInt32 {
        var v = (value >> 16) &+ (value & 0xFFFF)
        v = (v >> 16) &+ (v & 0xFFFF)
        return v
    }

    /// The checksum of `count` bytes: the complement of their sum.
    @inlinable
    public static func checksum(_ data: UnsafeRawPointer, count: Int, initial: UInt32 = 0) -> UInt16 {
        ~UInt16(truncatingIfNeeded: sum(data, count: count, initial: initial))
    }

    /// The checksum after one 16-bit word covered by it changes from `old` to
    /// `new` (RFC 1624, equation 3: HC' = ~(~HC + ~m + m')).
    @inlinable
    public static func updated(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        updated(checksum, adding: change(from: old, to: new))
    }

    /// The checksum after the sum it covers grows by `sum` (a ``change(from:to:)``,
    /// or several added up): HC' = ~(~HC + sum).
    @inlinable
    public static func updated(_ checksum: UInt16, adding sum: UInt32) -> UInt16 {
        ~UInt16(truncatingIfNeeded: fold(UInt32(~checksum) &+ sum))
    }

    /// ``updated(_:adding:)`` for a sum already folded to 16 bits (as a
    /// flow cache entry keeps it), which one fold keeps within 16 bits. Byte
    /// order does not matter, as long as both are in the same.
    @inlinable @inline(__always)
    static func updated(_ checksum: UInt16, addingFolded sum: UInt16) -> UInt16 {
        let total = UInt32(~checksum) &+ UInt32(sum)
        return ~UInt16(truncatingIfNeeded: (total & 0xFFFF) &+ (total >> 16))
    }

    /// What a 16-bit word changing from `old` to `new` adds to the one's
    /// complement sum over it (~m + m', folded).
    @inlinable
    public static func change(from old: UInt16, to new: UInt16) -> UInt32 {
        fold(UInt32(~old) &+ UInt32(new))
    }

    /// What a 32-bit value (an IPv4 address, two ports) changing from `old`
    /// to `new` adds to the one's complement sum over it, folded.
    @inlinable
    public static func change(from old: UInt32, to new: UInt32) -> UInt32 {
        fold(UInt32(~UInt16(truncatingIfNeeded: old >> 16)) &+ UInt32(~UInt16(truncatingIfNeeded: old))
             &+ (new >> 16) &+ (new & 0xFFFF))
    }

    /// The checksum after a 32-bit value covered by it (an IPv4 address)
    /// changes from `old` to `new`.
    @inlinable
    public static func updated(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        updated(checksum, adding: change(from: old, to: new))
    }

    /// The checksum after a 128-bit value covered by it (an IPv6 address)
    /// changes from `old` to `new`.
    @inlinable
    public static func updated(_ checksum: UInt16, old: IPv6Address, new: IPv6Address) -> UInt16 {
        var sum = UInt32(~checksum)
        for shift in stride(from: 48, through: 0, by: -16) {
            sum &+= UInt32(~UInt16(truncatingIfNeeded: old.high >> UInt64(shift)))
            sum &+= UInt32(~UInt16(truncatingIfNeeded: old.low >> UInt64(shift)))
            sum &+= UInt32(UInt16(truncatingIfNeeded: new.high >> UInt64(shift)))
            sum &+= UInt32(UInt16(truncatingIfNeeded: new.low >> UInt64(shift)))
            sum = fold(sum)
        }
        return ~UInt16(truncatingIfNeeded: fold(sum))
    }

    /// The one's-complement sum of the TCP/UDP/ICMPv6 pseudo-header of an
    /// IPv4 datagram.
    @inlinable
    public static func pseudoHeaderSum(ipv4 header: UnsafeRawPointer, protocol: UInt8,
                                       length: Int) -> UInt32 {
        var sum = sum(header + 12, count: 8)
        sum &+= UInt32(`protocol`) &+ UInt32(length)
        return fold(sum)
    }

    /// The one's-complement sum of the pseudo-header of an IPv6 datagram.
    @inlinable
    public static func pseudoHeaderSum(ipv6 header: UnsafeRawPointer, protocol: UInt8,
                                       length: Int) -> UInt32 {
        var sum = sum(header + 8, count: 32)
        sum &+= UInt32(`protocol`) &+ UInt32(length >> 16) &+ UInt32(length & 0xFFFF)
        return fold(sum)
    }
}
