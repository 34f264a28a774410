/// Writes Redis commands in RESP into a buffer that is reused from request
/// to request: a session's pipeline is built here and handed to hiredis in
/// one piece.
struct RESPWriter {
    private(set) var bytes: UnsafeMutableRawPointer
    private(set) var count = 0
    private var capacity: Int

    init(capacity: Int = 16_384) {
        self.capacity = capacity
        bytes = .allocate(byteCount: capacity, alignment: 8)
    }

    func deallocate() { bytes.deallocate() }

    mutating func reset() { count = 0 }

    private mutating func reserve(_ needed: Int) {
        guard count + needed > capacity else { return }
        let larger = max(capacity * 2, count + needed)
        let grown = UnsafeMutableRawPointer.allocate(byteCount: larger, alignment: 8)
        grown.copyMemory(from: bytes, byteCount: count)
        bytes.deallocate()
        bytes = grown
        capacity = larger
    }

    private mutating func raw(_ pointer: UnsafeRawPointer, _ length: Int) {
        reserve(length)
        (bytes + count).copyMemory(from: pointer, byteCount: length)
        count += length
    }

    private mutating func byte(_ value: UInt8) {
        reserve(1)
        bytes.storeBytes(of: value, toByteOffset: count, as: UInt8.self)
        count += 1
    }

    /// Writes a decimal number.
    private mutating func decimal(_ value: Int) {
        reserve(21)
        var value = value
        if value < 0 {
            byte(UInt8(ascii: "-"))
            value = -value
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        let length = withUnsafeMutableBytes(of: &digits) { buffer -> Int in
            var n = 0
            repeat {
                buffer[23 - n] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
                n += 1
            } while value > 0
            return n
        }
        withUnsafeBytes(of: digits) { raw(UnsafeRawPointer($0.baseAddress! + 24 - length), length) }
    }

    private mutating func crlf() {
        byte(13)
        byte(10)
    }

    /// Starts a command of `arguments` arguments.
    mutating func command(_ arguments: Int) {
        byte(UInt8(ascii: "*"))
        decimal(arguments)
        crlf()
    }

    /// An argument of `length` bytes, from two parts (a prefix and a key).
    mutating func argument(_ first: UnsafeRawPointer, _ firstLength: Int, _ second: UnsafeRawPointer? = nil,
                           _ secondLength: Int = 0) {
        let length = firstLength + secondLength
        reserve(length + 24)
        var at = bytes + count
        at.storeBytes(of: UInt8(ascii: "$"), as: UInt8.self)
        at += 1
        if length < 10 {
            at.storeBytes(of: UInt8(ascii: "0") + UInt8(length), as: UInt8.self)
            at += 1
        } else if length < 100 {
            at.storeBytes(of: UInt8(ascii: "0") + UInt8(length / 10), as: UInt8.self)
            at.storeBytes(of: UInt8(ascii: "0") + UInt8(length % 10), toByteOffset: 1, as: UInt8.self)
            at += 2
        } else {
            count = at - bytes
            decimal(length)
            at = bytes + count
        }
        at.storeBytes(of: 0x0A0D, as: UInt16.self)
        at += 2
        at.copyMemory(from: first, byteCount: firstLength)
        at += firstLength
        if let second {
            at.copyMemory(from: second, byteCount: secondLength)
            at += secondLength
        }
        at.storeBytes(of: 0x0A0D, as: UInt16.self)
        count = at + 2 - bytes
    }

    /// An argument of static text.
    mutating func argument(_ text: StaticString) {
        argument(UnsafeRawPointer(text.utf8Start), text.utf8CodeUnitCount)
    }

    /// An argument of bytes.
    mutating func argument(_ value: [UInt8]) {
        value.withUnsafeBytes { argument($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, $0.count) }
    }

    /// An argument of a prefix's bytes and `key`.
    mutating func argument(_ prefix: [UInt8], _ key: UnsafeRawPointer, _ keyLength: Int) {
        prefix.withUnsafeBytes { argument($0.baseAddress!, $0.count, key, keyLength) }
    }

    /// A decimal argument.
    mutating func argument(_ value: Int) {
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        var n = 0
        var rest = value.magnitude
        withUnsafeMutableBytes(of: &digits) { buffer in
            repeat {
                buffer[23 - n] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
                n += 1
            } while rest > 0
            if value < 0 {
                buffer[23 - n] = UInt8(ascii: "-")
                n += 1
            }
        }
        withUnsafeBytes(of: digits) { argument($0.baseAddress! + 24 - n, n) }
    }

    /// An 8-byte deadline argument.
    mutating func deadline(_ nanoseconds: Int64) {
        var encoded: UInt64 = 0
        withUnsafeMutableBytes(of: &encoded) { RedisLayout.encodeDeadline(nanoseconds, to: $0.baseAddress!) }
        withUnsafeBytes(of: encoded) { argument($0.baseAddress!, 8) }
    }
}
