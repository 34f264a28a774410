/// A Maglev lookup table (Eisenbud et al., NSDI 2016): each backend fills
/// slots of a prime-sized table in the order of its own permutation, so
/// that a flow's hash picks a backend, the backends' shares follow their
/// weights, and adding or removing one backend moves few flows (which the
/// stored assignments keep where they are anyway).
///
/// Weights: in each round, a backend claims as many slots as its weight, so
/// its share of the table is its weight over the sum.
public struct MaglevTable: Sendable {
    /// The table's size: a prime well above the number of backends.
    public let size: Int
    /// The backend index of each slot; empty when there is no backend.
    let slots: [UInt16]

    /// A table over `backends` (names, which place each backend's
    /// permutation, and weights); those of weight 0 get no slot.
    public init(backends: [(name: String, weight: Int)], size: Int = 65_537) {
        precondition(size > 2 && (2..<Int(Double(size).squareRoot()) + 1).allSatisfy { size % $0 != 0 },
                     "the Maglev table's size must be a prime")
        precondition(backends.count < Int(UInt16.max), "too many backends")
        self.size = size
        let weighted = backends.indices.filter { backends[$0].weight > 0 }
        guard !weighted.isEmpty else {
            slots = []
            return
        }
        var table = [UInt16](repeating: .max, count: size)
        var offsets = [Int](), skips = [Int](), next = [Int](repeating: 0, count: backends.count)
        for backend in backends {
            let bytes = Array(backend.name.utf8)
            offsets.append(Int(Self.hash(bytes, seed: 0x5A17_5EED) % UInt64(size)))
            skips.append(Int(Self.hash(bytes, seed: 0xC0FF_EE11) % UInt64(size - 1)) + 1)
        }
        var filled = 0
        fill: while true {
            for index in weighted {
                for _ in 0..<backends[index].weight {
                    var slot = (offsets[index] + next[index] * skips[index]) % size
                    while table[slot] != .max {
                        next[index] += 1
                        slot = (offsets[index] + next[index] * skips[index]) % size
                    }
                    table[slot] = UInt16(index)
                    next[index] += 1
                    filled += 1
                    if filled == size { break fill }
                }
            }
        }
        slots = table
    }

    /// The backend index for a flow's hash, or `nil` when there is none.
    @inline(__always)
    public func backend(for hash: UInt64) -> Int? {
        slots.isEmpty ? nil : Int(slots[Int(hash % UInt64(size))])
    }

    /// How many slots each backend holds.
    public func shares(backends: Int) -> [Int] {
        var counts = [Int](repeating: 0, count: backends)
        for slot in slots { counts[Int(slot)] += 1 }
        return counts
    }

    /// FNV-1a, then a 64-bit mix: stable across processes and runs.
    static func hash(_ bytes: [UInt8], seed: UInt64) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
        for byte in bytes { h = (h ^ UInt64(byte)) &* 0x100_0000_01B3 }
        h ^= h >> 33
        h = h &* 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        return h
    }
}
