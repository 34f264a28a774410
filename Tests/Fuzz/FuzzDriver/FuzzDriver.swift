// What the fuzz targets share: handing `main` to libFuzzer's driver when
// built with -DFUZZING (SwiftPM names an executable's entry point after its
// module, so libFuzzer's own `main` is not used), and replaying saved inputs
// otherwise.
import Foundation

/// A fuzz target's per-input function, as libFuzzer calls it.
public typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

#if FUZZING
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback) -> Int32

/// Runs libFuzzer with the process's arguments and `callback`.
public func runFuzzer(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                      _ callback: FuzzCallback) -> Int32 {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, callback)
}
#endif

/// Runs `callback` on each file named on the command line (a crash the
/// fuzzer saved, say), and says so.
public func replayInputs(_ callback: FuzzCallback) throws {
    let paths = CommandLine.arguments.dropFirst()
    for path in paths {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        _ = data.withUnsafeBytes { callback($0.bindMemory(to: UInt8.self).baseAddress, $0.count) }
    }
    print("replayed \(paths.count) inputs without a fault")
}
