import StatelessKit
import Testing

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("percentiles to the microsecond, the tail beyond 10 ms by its maximum, merged across workers")
    func percentiles() {
        var first = LatencyHistogram()
        #expect(first.percentile(0.5) == 0, "no packet")
        for microseconds in 1...100 { first.record(nanoseconds: Int64(microseconds) * 1000 - 500) }
        #expect(first.count == 100)
        #expect(first.percentile(0.5) == 50 && first.percentile(0.99) == 99 && first.percentile(1) == 100)
        var second = LatencyHistogram()
        second.record(nanoseconds: 25_000_000)
        second.record(nanoseconds: -5)
        first.merge(second)
        #expect(first.count == 102 && first.maximum == 25_000_000)
        #expect(first.percentile(1) == 25_000, "beyond the range: the maximum")
        #expect(first.percentile(0.01) <= 1, "a negative time counts as 0")
    }
}
