/// A fast 64-bit hash of a short byte string (a table key), in the style of
/// wyhash: 8-byte words folded through 128-bit multiplies.
@inline(__always)
func keyHash(_ bytes: UnsafeRawPointer, _ count: Int, seed: UInt64 = 0x2D35_8DCC_AA6C_78A5) -> UInt64 {
    @inline(__always) func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let product = a.multipliedFullWidth(by: b)
        return product.high ^ product.low
    }
    var h = seed ^ UInt64(count)
    var i = 0
    while i + 8 <= count {
        h = mix(h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self), 0x8BB8_4B93_962E_ACC9)
        i += 8
    }
    var tail: UInt64 = 0
    if i < count {
        if count >= 8 {
            // The last 8 bytes, overlapping words already folded: one load.
            tail = bytes.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        } else {
            var shift: UInt64 = 0
            while i < count {
                tail |= UInt64(bytes.load(fromByteOffset: i, as: UInt8.self)) << shift
                shift += 8
                i += 1
            }
        }
    }
    return mix(h ^ tail, 0x4B33_A62E_D433_D4A3)
}
