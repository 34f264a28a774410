import Atomics
#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The lock of one shard of the embedded store: a test-and-test-and-set
/// spin lock that yields the processor after a few hundred spins. A shard's
/// critical sections are a handful of memory accesses, so an uncontended
/// lock and unlock cost two atomic operations and no call into the kernel.
///
/// A value holding a pointer to its atomic: copies share the lock, and the
/// owner calls ``destroy()`` once.
struct ShardLock: @unchecked Sendable {
    private let held = UnsafeAtomic<Bool>.create(false)

    /// Frees the lock's memory; no copy may be used afterwards.
    func destroy() { held.destroy() }

    @inline(__always) func lock() {
        if held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return }
        var spins = 0
        while true {
            while held.load(ordering: .relaxed) {
                spins += 1
                if spins & 255 == 0 { sched_yield() }
            }
            if held.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged { return }
        }
    }

    @inline(__always) func unlock() {
        held.store(false, ordering: .releasing)
    }
}
