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
    /// freed. The calling thread keeps the CPUs it may run on (the EAL pins
    /// it to the main lcore; it is given them back, so that the process that
    /// embeds the EAL is not confined to the main lcore's CPUs).
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
    /// as a worker that owns queues must be (mempool caches serve lcores),
    /// and pins it: to `cpu`, as a DPDK lcore is, or else (`nil`) to every
    /// CPU the process could run on before ``start(arguments:)``. Call
    /// ``unregisterThread()`` before the thread ends. Throws, and leaves the
    /// thread unregistered, for a CPU it may not run on.
    public static func registerThread(cpu: Int? = nil) throws(DPDKError) {
        guard sk_thread_register(Int32(clamping: cpu ?? -1)) == 0 else {
            throw DPDKError(operation: cpu.map { "rte_thread_register on CPU \($0)" } ?? "rte_thread_register", code: sk_errno())
        }
    }

    /// The CPUs the process could run on before ``start(arguments:)``, in
    /// ascending order (empty before it).
    public static var processCPUs: [Int] { cpus(sk_process_cpus) }

    /// The CPU the calling thread is running on, as the kernel reports it
    /// (`nil` if it cannot say).
    public static var currentCPU: Int? {
        let cpu = sk_current_cpu()
        return cpu >= 0 ? Int(cpu) : nil
    }

    /// The CPUs of the EAL's main lcore, as its `-l` gave them.
    public static var mainLcoreCPUs: [Int] { cpus(sk_main_lcore_cpus) }

    /// Where `workers` workers go by default: one CPU each, in order, from the
    /// process's CPUs that are not the main lcore's, as DPDK places its
    /// worker lcores (so that a worker keeps its core and its caches); `nil`
    /// when there are not that many, and each worker is then free to run on
    /// any of the process's CPUs (``registerThread(cpu:)`` with `nil`).
    public static func defaultWorkerCPUs(workers: Int) -> [Int]? {
        workerCPUs(workers: workers, process: processCPUs, main: mainLcoreCPUs)
    }

    /// ``defaultWorkerCPUs(workers:)`` for a process that may run on
    /// `process` with its main lcore on `main`.
    public static func workerCPUs(workers: Int, process: [Int], main: [Int]) -> [Int]? {
        let free = process.filter { !main.contains($0) }
        return workers > 0 && free.count >= workers ? Array(free.prefix(workers)) : nil
    }

    static func cpus(_ list: (UnsafeMutablePointer<Int32>?, Int32) -> Int32) -> [Int] {
        var buffer = [Int32](repeating: 0, count: 1024)
        let count = buffer.withUnsafeMutableBufferPointer { list($0.baseAddress, Int32($0.count)) }
        return buffer.prefix(Int(count)).map(Int.init)
    }

    /// Gives the calling thread's lcore id back.
    public static func unregisterThread() { sk_thread_unregister() }

    /// The number of Ethernet ports DPDK found (virtual devices included).
    public static var portCount: Int { Int(sk_eth_dev_count_avail()) }
}
