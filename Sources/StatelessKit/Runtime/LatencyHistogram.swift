/// How long packets took, to the microsecond up to 10 ms (longer ones are
/// counted together, with the longest kept): recording is an array
/// increment, so a packet path can record every packet.
public struct LatencyHistogram: Sendable {
    /// The microseconds counted one by one.
    public static let range = 10_000
    private var counts: [Int]
    /// Packets recorded.
    public private(set) var count = 0
    /// The longest, in nanoseconds.
    public private(set) var maximum: Int64 = 0

    public init() { counts = Array(repeating: 0, count: Self.range + 1) }

    /// Records a packet that took `nanoseconds` (negative counts as 0).
    @inlinable @inline(__always)
    public mutating func record(nanoseconds: Int64) {
        record(nanoseconds: nanoseconds, count: 1)
    }

    /// Records `count` packets that each took `nanoseconds` (negative counts as 0).
    @inlinable @inline(__always)
    public mutating func record(nanoseconds: Int64, count: Int) {
        let value = max(nanoseconds, 0)
        increment(Int(min(value / 1000, Int64(Self.range))), value, by: count)
    }

    /// Records each packet of `batch` as taking from its timestamp to `now`
    /// (one access to the histogram for the whole batch).
    @inlinable
    public mutating func record(_ batch: PacketBatch, at now: Timestamp) {
        for index in 0..<batch.count { record(nanoseconds: now.nanoseconds - batch[index].timestamp.nanoseconds) }
    }

    @usableFromInline
    mutating func increment(_ bucket: Int, _ value: Int64, by number: Int) {
        counts[bucket] += number
        count += number
        if value > maximum { maximum = value }
    }

    /// Adds another histogram's packets.
    public mutating func merge(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        maximum = max(maximum, other.maximum)
    }

    /// The latency below which `fraction` (0-1) of the packets fall, in
    /// microseconds (the top of its bucket; the maximum beyond 10 ms); 0
    /// with no packet.
    public func percentile(_ fraction: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = max(1, Int((fraction * Double(count)).rounded(.up)))
        var seen = 0
        for (bucket, number) in counts.enumerated() {
            seen += number
            if seen >= rank { return bucket == Self.range ? Double(maximum) / 1000 : Double(bucket + 1) }
        }
        return Double(maximum) / 1000
    }
}
