// A coverage-guided fuzz target for the capture reader (libFuzzer): each
// input is written to a file (on tmpfs) and read as a capture (pcap or
// pcapng) to its end or to its first error; every packet read is parsed. A corrupt file must give a
// CaptureError, never a crash or a read outside the reader's buffer.
//
// `make fuzz` builds it with -sanitize=fuzzer,address and -DFUZZING; without
// FUZZING it replays inputs given as files.
#if canImport(Glibc)
import Glibc
#endif
import FuzzDriver
import StatelessKit

enum CaptureFuzzing {
    /// The input's file, on tmpfs where there is one.
    static let path: String = {
        atexit { unlink(CaptureFuzzing.path) }
        return (access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp") + "/statelesskit-capture-fuzz-\(getpid())"
    }()

    static func run(_ data: UnsafeRawBufferPointer) {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatalError("cannot create \(path): \(errno)") }
        var written = 0
        while written < data.count {
            let n = write(fd, data.baseAddress! + written, data.count - written)
            guard n > 0 else { fatalError("write failed: \(errno)") }
            written += n
        }
        close(fd)
        guard let reader = try? CaptureReader(path: path) else { return }
        let pool = BufferPool(count: 1, dataRoom: CaptureReader.maximumRecordLength)
        var packet = pool.allocate()!
        defer { pool.release(packet) }
        var records = 0
        while records < 10_000, (try? reader.next(into: &packet)) == true {
            records += 1
            if (try? packet.parse()) != nil {
                _ = packet.verifyChecksums()
                _ = packet.flowKey
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func captureFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    CaptureFuzzing.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
@_cdecl("CaptureFuzzer_main")
func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, captureFuzzerTestOneInput)
}
#else
@main
struct ReplayInputs {
    static func main() throws { try replayInputs(captureFuzzerTestOneInput) }
}
#endif
