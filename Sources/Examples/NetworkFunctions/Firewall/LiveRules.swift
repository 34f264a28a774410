import Atomics

/// The rules a running firewall decides by, replaceable while packets flow
/// (a reloaded rule file): every packet reads the current set with one
/// atomic load and no reference counting. A replaced set stays allocated
/// (a packet may still be deciding by it); reloads are rare and sets small.
public final class LiveRules: @unchecked Sendable {
    private let pointer: UnsafeAtomic<UnsafeMutableRawPointer>
    private var versions: [CompiledRules]
    private let lock = ManagedAtomic<Bool>(false)

    /// Rules starting as `rules`.
    public init(_ rules: CompiledRules) {
        versions = [rules]
        pointer = .create(Unmanaged.passUnretained(rules).toOpaque())
    }

    deinit { pointer.destroy() }

    /// Replaces the rules: packets decided from now on use `rules`.
    public func replace(_ rules: CompiledRules) {
        while !lock.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {}
        versions.append(rules)
        pointer.store(Unmanaged.passUnretained(rules).toOpaque(), ordering: .releasing)
        lock.store(false, ordering: .releasing)
    }

    /// Calls `body` with the current rules.
    @inline(__always)
    func withCurrent<R>(_ body: (CompiledRules) -> R) -> R {
        Unmanaged<CompiledRules>.fromOpaque(pointer.load(ordering: .acquiring))._withUnsafeGuaranteedRef(body)
    }
}
