/// A point in time in nanoseconds since the Unix epoch: a packet's arrival
/// time, taken from the wall clock when live and from the capture in a replay.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Nanoseconds since 1970-01-01T00:00:00Z.
    public var nanoseconds: Int64

    /// A timestamp from nanoseconds since the epoch.
    @inlinable
    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    /// A timestamp from whole seconds and the nanoseconds within the second.
    @inlinable
    public init(seconds: Int64, nanoseconds: Int64) {
        self.nanoseconds = seconds &* 1_000_000_000 &+ nanoseconds
    }

    /// The epoch itself.
    @inlinable public static var zero: Timestamp { Timestamp(nanoseconds: 0) }

    /// Whole seconds since the epoch (rounded down).
    @inlinable
    public var seconds: Int64 { nanoseconds.dividedFloor(by: 1_000_000_000) }

    /// The nanoseconds within the second, 0 to 999,999,999.
    @inlinable
    public var nanosecondsOfSecond: Int64 { nanoseconds - seconds * 1_000_000_000 }

    public var description: String {
        let fraction = String(nanosecondsOfSecond)
        return "\(seconds).\(String(repeating: "0", count: 9 - fraction.count))\(fraction)"
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.nanoseconds < rhs.nanoseconds }
}

extension Int64 {
    @inlinable
    func dividedFloor(by divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor < 0) ? q - 1 : q
    }
}
