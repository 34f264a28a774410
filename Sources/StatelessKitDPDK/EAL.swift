#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CDPDKShim

/// An error DPDK reported, with its `rte_errno` or negative errno.
public struct DPDKError: Error, CustomStringConvertible, Sendable {
    /// What was being done.
    public var operation: String
    /// The error number.
    public var code: Int32

    public var description: String {
        "\(operation) failed: \(String(cString: sk_strerror(code))) (\(code))"
    }
}

/// DPDK's Environment Abstraction Layer: started once per process, before any
/// port or pool, and stopped once at the end.
public enum EAL {
    /// Arguments that work on a machine without hugepages or NICs: no
    /// hugepages, 256 MiB of memory, no PCI scan, no shared configuration
    /// and a file prefix of this process's own, on lcore 0.
    public static func defaultArguments(prefix: String = "statelessnf-\(getpid())") -> [String] {
        ["--no-huge", "-m", "256", "--no-pci", "--no-shconf", "--file-prefix=\(prefix)", "-l", "0",
         "--log-level=lib.eal:error"]
    }

    /// Starts the EAL with `arguments` (without the program name). DPDK keeps
    /// the strings for the life of the process, so they are copied and never
    /// freed.
    public static func start(arguments: [String]) throws(DPDKError) {
        var argv: [UnsafeMutablePointer<CChar>?] = (["statelessnf"] + arguments).map { strdup($0) }
        let parsed = argv.withUnsafeMutableBufferPointer { buffer in
            sk_eal_init(Int32(buffer.count), buffer.baseAddress)
        }
        guard parsed >= 0 else { throw DPDKError(operation: "rte_eal_init", code: sk_errno()) }
    }

    /// Releases what the EAL holds. No DPDK call may follow.
    public static func stop() throws(DPDKError) {
        let rc = sk_eal_cleanup()
        guard rc == 0 else { throw DPDKError(operation: "rte_eal_cleanup", code: -rc) }
    }

    /// Makes the calling thread an EAL thread with an lcore id of its own,
    /// as a worker that owns queues must be (mempool caches serve lcores).
    /// Call ``unregisterThread()`` before the thread ends.
    public static func registerThread() throws(DPDKError) {
        guard sk_thread_register() == 0 else { throw DPDKError(operation: "rte_thread_register", code: sk_errno()) }
    }

    /// Gives the calling thread's lcore id back.
    public static func unregisterThread() { sk_thread_unregister() }

    /// The number of Ethernet ports DPDK found (virtual devices included).
    public static var portCount: Int { Int(sk_eth_dev_count_avail()) }
}
