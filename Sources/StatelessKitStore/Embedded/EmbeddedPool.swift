import StatelessKit

/// An embedded pool: a stack of fixed-size items under a lock.
final class EmbeddedPool: @unchecked Sendable {
    let description: PoolDescription
    let lock = ShardLock()
    var items: [UInt8]
    var count: Int

    init(_ description: PoolDescription) {
        self.description = description
        items = description.items.flatMap { $0 }
        count = description.items.count
    }

    deinit { lock.destroy() }

    /// Takes an item into the request's results.
    func take(_ request: StateRequest) -> StateResult {
        lock.lock()
        defer { lock.unlock() }
        guard count > 0 else { return StateResult(status: .missing) }
        count -= 1
        let size = description.itemSize
        let offset = items.withUnsafeBytes { request.storeResult($0.baseAddress! + count * size, count: size) }
        return StateResult(status: .ok, value: offset)
    }

    /// Puts an item back.
    func give(_ item: UnsafeRawPointer) {
        lock.lock()
        defer { lock.unlock() }
        let size = description.itemSize
        if count * size == items.count {
            items.append(contentsOf: UnsafeRawBufferPointer(start: item, count: size))
        } else {
            items.withUnsafeMutableBytes { ($0.baseAddress! + count * size).copyMemory(from: item, byteCount: size) }
        }
        count += 1
    }

    /// Items free now.
    var available: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
