import StatelessKit

/// A set of IPv4 and IPv6 prefixes, laid out to test a packet's address
/// per packet: IPv4 prefixes as network and mask words in a buffer of
/// their own, so that a test walks plain words and counts no references.
final class PrefixSet: @unchecked Sendable {
    /// The IPv4 prefixes, network then mask, each a word.
    private let v4: UnsafeMutableBufferPointer<UInt32>
    private let v4Count: Int
    private let v6: [IPPrefix]

    /// A set of `prefixes`.
    init(_ prefixes: [IPPrefix]) {
        let ipv4 = prefixes.filter { $0.address.isIPv4 }
        v4 = .allocate(capacity: max(1, ipv4.count * 2))
        for (i, prefix) in ipv4.enumerated() {
            let mask: UInt32 = prefix.length == 0 ? 0 : ~0 << UInt32(32 - prefix.length)
            v4[2 * i] = prefix.address.ipv4!.value & mask
            v4[2 * i + 1] = mask
        }
        v4Count = ipv4.count
        v6 = prefixes.filter { !$0.address.isIPv4 }
    }

    deinit { v4.deallocate() }

    /// Whether `packet`'s address at `end` lies in one of the prefixes.
    @inline(__always)
    func contains(_ packet: Packet, _ end: Endpoint) -> Bool {
        if let address = packet.ipv4Address(end) {
            for i in 0..<v4Count where address.value & v4[2 * i + 1] == v4[2 * i] { return true }
            return false
        }
        let address = packet.address(end)
        return v6.contains { $0.contains(address) }
    }
}
