import Foundation

/// dpdk-testpmd forwarding on a virtual device, for a benchmark's ratio:
/// run for a few seconds in its own process, on one forwarding lcore as the
/// benchmark's one worker, its per-second receive rate read from its
/// statistics. `io` moves mbufs without touching them; `macswap` swaps each
/// packet's Ethernet addresses, so it reads and writes every packet.
enum TestPMD {
    /// testpmd's median receive rate in Mpps over `seconds` (at least 3) on
    /// `device` (a net_ring port starts with a burst sent, to circulate), or
    /// why it could not be measured.
    /// `packed`: testpmd's mbufs from its `xbuf` pool (`--mp-alloc=xbuf`):
    /// the mbuf headers packed in their pool, their data buffers in memory
    /// of their own, so that no mbuf gets a 4 KB page of its own, as this
    /// package's pool packs its mbufs without hugepages (testpmd's default
    /// pool there gives each mbuf a page, and every header the same L1 set).
    static func forwarding(_ mode: String = "io", device: BenchDevice, seconds: Double,
                           packed: Bool = false) -> Result<Double, TestPMDError> {
        guard let path = ["/usr/bin/dpdk-testpmd", "/usr/local/bin/dpdk-testpmd"]
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return .failure(TestPMDError(description: "dpdk-testpmd is not installed (apt-get install dpdk-dev)"))
        }
        let process = Process()
        // Line-buffered (coreutils' stdbuf): testpmd's statistics must reach
        // the pipe as printed, since it is stopped with SIGKILL (below),
        // which would lose what stdio still buffers.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/stdbuf")
        process.arguments = ["-oL", path, "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--file-prefix=testpmd-\(getpid())",
                             "-l", "0-1", "--vdev=\(device.device)", "--log-level=lib.eal:error", "--",
                             "--forward-mode=\(mode)", "--stats-period=1", "--total-num-mbufs=8192"]
            + (device == .ring ? ["--tx-first"] : []) + (packed ? ["--mp-alloc=xbuf"] : [])
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch { return .failure(TestPMDError(description: "dpdk-testpmd: \(error)")) }
        Thread.sleep(forTimeInterval: max(3, seconds) + 2)
        // SIGKILL: a parent that blocks signals (a test runner's thread)
        // passes the block on, and testpmd would never see a SIGTERM. It
        // runs without hugepages or shared files: nothing is left behind.
        kill(process.processIdentifier, SIGKILL)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let rates = text.split(separator: "\n").compactMap { line -> Double? in
            guard line.contains("Rx-pps:"), let value = line.split(separator: " ").dropFirst().first.flatMap({ Double($0) }),
                  value > 0 else { return nil }
            return value / 1e6
        }.sorted()
        guard !rates.isEmpty else {
            let last = text.split(separator: "\n").suffix(3).joined(separator: " / ")
            return .failure(TestPMDError(description: "dpdk-testpmd reported no rate (it said: \(last.isEmpty ? "nothing" : last))"))
        }
        return .success(rates[rates.count / 2])
    }
}

/// Why testpmd's rate is missing.
struct TestPMDError: Error, CustomStringConvertible {
    let description: String
}
