/// Named counters kept by a worker: packets per node output, drops by reason,
/// and whatever nodes count. Names are static strings, so counting allocates
/// nothing after a counter's first use.
public final class Counters {
    @usableFromInline var indices: [String: Int] = [:]
    /// Counter indices by the address of a static string's text, so that
    /// counting by a literal name neither allocates nor hashes the text.
    @usableFromInline var literals: [UInt: Int] = [:]
    @usableFromInline var names: [String] = []
    @exclusivity(unchecked) @usableFromInline var values: [Int] = []

    /// No counters yet.
    public init() {}

    /// The index of the counter `name`, created at zero if new.
    @inlinable
    public func index(of name: String) -> Int {
        if let index = indices[name] { return index }
        indices[name] = names.count
        names.append(name)
        values.append(0)
        return names.count - 1
    }

    /// Adds `amount` to the counter at `index`.
    @inlinable
    public func add(at index: Int, _ amount: Int = 1) {
        values[index] &+= amount
    }

    /// Adds `amount` to the counter `name`.
    @inlinable
    public func add(_ name: StaticString, _ amount: Int = 1) {
        let key = UInt(bitPattern: name.utf8Start)
        if let index = literals[key] {
            add(at: index, amount)
        } else {
            let index = index(of: name.description)
            literals[key] = index
            add(at: index, amount)
        }
    }

    /// The value of `name` (zero if never counted).
    public subscript(name: String) -> Int {
        indices[name].map { values[$0] } ?? 0
    }

    /// Every counter, by name.
    public var all: [String: Int] {
        Dictionary(uniqueKeysWithValues: zip(names, values))
    }
}
