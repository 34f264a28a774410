@testable import StatelessKit
import Testing

/// The flow cache's table on its own: keys as they lie in packets (network
/// byte order) must still spread over the buckets, or flows would evict one
/// another and take the graph again; and an entry's rewrite must be the
/// graph's.
struct FlowCacheTableTests {
    /// What the cache's parse makes of `frame`, an Ethernet frame arrived on port 0.
    static func parsed(_ frame: [UInt8]) -> (parse: FlowCacheParse, headers: CacheableHeaders, key: FlowCacheKey) {
        var bytes = frame
        var headers = CacheableHeaders()
        var key = FlowCacheKey.none
        let parse = bytes.withUnsafeMutableBytes {
            PacketParser.parseCacheable($0.baseAddress!, length: $0.count, linkType: .ethernet, port: 0,
                                        headers: &headers, key: &key)
        }
        return (parse, headers, key)
    }

    /// The key of a UDP packet from `source`:`sourcePort` to `destination`:53.
    func key(source: UInt32, sourcePort: UInt16, destination: UInt32 = 0xC633_6401) -> FlowCacheKey {
        let result = Self.parsed(PacketBuilder().ipv4(source: IPv4Address(source), destination: IPv4Address(destination))
            .udp(source: sourcePort, destination: 53))
        precondition(result.parse == .servable)
        return result.key
    }

    /// An entry for `key` that leaves its addresses and ports as they are.
    func entry(_ key: FlowCacheKey, output: Int) -> FlowCache.Entry {
        FlowCache.makeEntry(key, addresses: key.addresses, ports: UInt32(truncatingIfNeeded: key.rest >> 32),
                            output: output, lease: .max, firstBatch: 0)
    }

    @Test("10,000 flows of neighbouring hosts, ports and destinations all stay in a 65,536-entry cache", arguments: [
        // As `statelessnf bench` makes them: 4 ports a host, hosts in a row.
        (hosts: 2_500, ports: 4, destinations: 1),
        // One host, many source ports (a client behind the NAT).
        (hosts: 1, ports: 10_000, destinations: 1),
        // Many hosts, one port each.
        (hosts: 10_000, ports: 1, destinations: 1),
        // One host's 100 ports to each of 100 servers.
        (hosts: 1, ports: 100, destinations: 100),
    ])
    func spread(hosts: Int, ports: Int, destinations: Int) {
        let cache = FlowCache(capacity: 65_536)
        var keys: [FlowCacheKey] = []
        for destination in 0..<destinations {
            for host in 0..<hosts {
                for port in 0..<ports {
                    keys.append(key(source: 0x0A00_0001 + UInt32(host), sourcePort: UInt16(10_000 + port),
                                    destination: 0xC633_6401 + UInt32(destination)))
                }
            }
        }
        for (n, key) in keys.enumerated() { cache.install(key, entry(key, output: n % 2), hash: key.hash, now: 0) }
        let buckets = cache.buckets
        let missing = keys.filter { buckets.entry(for: $0, hash: $0.hash) == nil }.count
        // With one bucket a key, 10,000 uniformly random keys in 16,384
        // buckets of 4 would overflow about 7 times, and a hash that kept the
        // keys' strides hundreds to thousands of times; with a second bucket
        // to go to, none is evicted.
        #expect(missing == 0, "\(missing) of \(keys.count) flows evicted by others in their bucket")
    }

    @Test("a key whose first bucket is full goes to its second, is found there, replaced in place and removed")
    func secondBucket() {
        // 16 buckets of 4: pick keys whose first bucket is bucket 0 and whose
        // second is another, fill bucket 0, and place one more.
        let cache = FlowCache(capacity: 64)
        let buckets = cache.buckets
        var crowd: [FlowCacheKey] = []
        var port: UInt16 = 1
        while crowd.count < 5 {
            let candidate = key(source: 0x0A00_0001, sourcePort: port)
            port += 1
            if buckets.index(candidate.hash) == 0 && buckets.alternate(candidate.hash) != 0 { crowd.append(candidate) }
        }
        func install(_ key: FlowCacheKey, output: Int) {
            cache.install(key, entry(key, output: output), hash: key.hash, now: 0)
        }
        for (n, key) in crowd.enumerated() { install(key, output: n) }
        let last = crowd[4]
        let found = buckets.entry(for: last, hash: last.hash)
        #expect(found != nil && found!.pointee.output == 4, "the fifth key, in its second bucket")
        #expect(buckets.entry(for: last, in: buckets.index(last.hash)) == nil)
        #expect(crowd.allSatisfy { buckets.entry(for: $0, hash: $0.hash) != nil }, "no key evicted")
        install(last, output: 9)
        #expect(buckets.entry(for: last, hash: last.hash)?.pointee.output == 9, "replaced where it was")
        cache.remove(last, hash: last.hash)
        #expect(buckets.entry(for: last, hash: last.hash) == nil)
        #expect(crowd.prefix(4).allSatisfy { buckets.entry(for: $0, hash: $0.hash) != nil }, "the others stay")
    }

    @Test("an entry rewrites a packet as the graph's field-by-field rewrites do, UDP zero checksum kept")
    func rewrite() throws {
        for zeroChecksum in [false, true] {
            var frame = PacketBuilder().ipv4(source: IPv4Address(10, 0, 0, 7), destination: IPv4Address(198, 51, 100, 1))
                .udp(source: 4_000, destination: 53, payload: [1, 2, 3, 4, 5], zeroChecksum: zeroChecksum)
            var expected = frame
            let before = Self.parsed(frame)
            try expected.withUnsafeMutableBytes { bytes in
                var packet = Packet(buffer: bytes.baseAddress!, bufferSize: bytes.count, handle: 0, headroom: 0)
                _ = packet.setLength(bytes.count)
                try packet.parse()
                #expect(packet.setIPv4Address(IPv4Address(203, 0, 113, 9), at: .source))
                #expect(packet.setPort(61_000, at: .source))
            }
            let after = Self.parsed(expected).key
            let entry = FlowCache.makeEntry(before.key, addresses: after.addresses, ports: UInt32(truncatingIfNeeded: after.rest >> 32),
                                            output: 0, lease: .max, firstBatch: 0)
            frame.withUnsafeMutableBytes { bytes in
                var packet = Packet(buffer: bytes.baseAddress!, bufferSize: bytes.count, handle: 0, headroom: 0)
                _ = packet.setLength(bytes.count)
                entry.rewrite(packet.data, at: before.headers)
            }
            #expect(frame == expected, "zero UDP checksum: \(zeroChecksum)")
        }
    }
}
