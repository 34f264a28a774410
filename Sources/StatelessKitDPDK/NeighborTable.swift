import Atomics
import StatelessKit
import Synchronization

/// The Ethernet addresses of the neighbours each port has learned by ARP,
/// shared by every worker of a process. Workers read their own copy
/// (``LinkLayer``) and take a new one only when the table changed, so the
/// lock is taken when ARP traffic arrives, never per packet.
public final class NeighborTable: Sendable {
    private let entries = Mutex<[UInt64: EthernetAddress]>([:])
    private let changes = ManagedAtomic<Int>(0)

    public init() {}

    /// The key of `address` on DPDK port `port`.
    @inline(__always)
    static func key(port: UInt16, _ address: IPv4Address) -> UInt64 { UInt64(port) << 32 | UInt64(address.value) }

    /// Records that `address` on `port` is at `ethernet`.
    public func learn(port: UInt16, _ address: IPv4Address, at ethernet: EthernetAddress) {
        let changed = entries.withLock { entries in
            let key = Self.key(port: port, address)
            guard entries[key] != ethernet else { return false }
            entries[key] = ethernet
            return true
        }
        if changed { changes.wrappingIncrement(ordering: .releasing) }
    }

    /// How many times the table changed: a worker's copy is current while
    /// this stays the same.
    var version: Int { changes.load(ordering: .acquiring) }

    /// A copy of every entry.
    func snapshot() -> [UInt64: EthernetAddress] { entries.withLock { $0 } }

    /// The number of neighbours learned.
    public var count: Int { entries.withLock { $0.count } }
}
