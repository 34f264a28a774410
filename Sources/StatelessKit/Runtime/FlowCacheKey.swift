/// What the flow cache knows a packet by: the port it arrived on, how its
/// bytes begin, its IPv4 addresses, protocol and ports. The addresses and
/// ports are kept as they lie in the packet (network byte order, loaded
/// as they are), so that neither a lookup nor a rewrite swaps bytes.
@usableFromInline
struct FlowCacheKey: Equatable, Sendable {
    /// The source and destination addresses, the packet's 8 bytes as they lie.
    @usableFromInline var addresses: UInt64
    /// The source and destination ports, the packet's 4 bytes as they lie
    /// (high half); link type, protocol and arrival port (low half).
    @usableFromInline var rest: UInt64

    @inlinable @inline(__always)
    init(addresses: UInt64, rest: UInt64) {
        self.addresses = addresses
        self.rest = rest
    }

    /// A key that no packet has (its link type byte is never a real one).
    @usableFromInline static let none = FlowCacheKey(addresses: 0, rest: 0xFF << 24)

    /// A multiplicative hash whose top bits pick the bucket: both words
    /// multiplied, folded, multiplied again, so that every bit of the key
    /// reaches the top bits. Keys in network byte order come in strides
    /// (neighbouring hosts differ in their last byte, the high bits of a
    /// loaded word) that a single product would leave in few buckets.
    @inlinable @inline(__always)
    var hash: UInt64 {
        var mixed = addresses &* 0x9E37_79B9_7F4A_7C15 ^ rest &* 0xC2B2_AE3D_27D4_EB4F
        mixed ^= mixed >> 29
        return mixed &* 0xBF58_476D_1CE4_E5B9
    }
}

/// What the flow cache's parse made of a packet.
@usableFromInline
enum FlowCacheParse {
    /// Not a packet the cache knows (not IPv4 TCP or UDP, a fragment, a
    /// VLAN tag, malformed).
    case refused
    /// A TCP packet that opens or closes a connection, or a packet of a flow
    /// the cache may hold that it cannot serve (truncated, a first fragment):
    /// it crosses the graph, and its flow's entry goes.
    case changesState
    /// A packet the cache may serve.
    case servable
}

/// Where the headers of a packet the flow cache can serve are: all that
/// applying a cached rewrite needs, and what ``PacketParser/parse(_:length:linkType:)``
/// would put in the layout's fields of the same names.
@usableFromInline
struct CacheableHeaders: Equatable, Sendable {
    /// Where the IPv4 header starts.
    @usableFromInline var l3Offset: UInt16 = 0
    /// Where the TCP or UDP header starts.
    @usableFromInline var l4Offset: UInt16 = 0
    /// Whether it is UDP (or TCP).
    @usableFromInline var isUDP = false

    @inlinable
    init() {}
}

extension PacketParser {
    /// Parses a packet the flow cache can serve: an Ethernet frame without
    /// VLAN tags (or a raw datagram) holding an IPv4 datagram that is not a
    /// fragment, carrying UDP or TCP without SYN, FIN or RST, exactly as
    /// far as ``parse(_:length:linkType:)`` would accept it. Fills `headers`
    /// and `key` from the headers; the packet's layout is left alone (the
    /// graph parses the packets the cache does not serve). A TCP packet with
    /// SYN, FIN or RST, and a TCP or UDP packet the cache cannot serve whose
    /// ports it can read (truncated, or a first fragment), gets its key but
    /// is ``FlowCacheParse/changesState``: it crosses the graph, and its
    /// flow's entry goes, so that no later packet overtakes it. Any other
    /// packet is ``FlowCacheParse/refused`` (with `headers` and `key`
    /// unspecified) and takes the graph as usual.
    @inlinable @inline(__always)
    static func parseCacheable(_ data: UnsafeMutableRawPointer, length: Int, linkType: LinkType, port: UInt16,
                               headers: inout CacheableHeaders, key: inout FlowCacheKey) -> FlowCacheParse {
        let l3: Int
        if linkType == .ethernet {
            guard length >= 34, data.loadBigEndian(12, as: UInt16.self) == EtherType.ipv4 else { return .refused }
            l3 = 14
        } else {
            guard length >= 20 else { return .refused }
            l3 = 0
        }
        let first = data.loadByte(l3)
        if first == 0x45 {
            // Version 4, no options: nearly every packet, and a header length the compiler knows.
            return parseCacheableIPv4(data, length: length, l3: l3, headerLength: 20, linkType: linkType, port: port,
                                      headers: &headers, key: &key)
        }
        guard first >> 4 == 4, first & 0x0F >= 5 else { return .refused }
        return parseCacheableIPv4(data, length: length, l3: l3, headerLength: Int(first & 0x0F) &* 4, linkType: linkType,
                                  port: port, headers: &headers, key: &key)
    }

    /// ``parseCacheable(_:length:linkType:port:headers:key:)`` from the IPv4
    /// header at `l3`, `headerLength` bytes long (at least 20).
    @inlinable @inline(__always)
    static func parseCacheableIPv4(_ data: UnsafeMutableRawPointer, length: Int, l3: Int, headerLength: Int,
                                   linkType: LinkType, port: UInt16, headers: inout CacheableHeaders,
                                   key: inout FlowCacheKey) -> FlowCacheParse {
        let totalLength = Int(data.loadBigEndian(l3 &+ 2, as: UInt16.self))
        let flags = data.loadBigEndian(l3 &+ 6, as: UInt16.self)
        let ipProtocol = data.loadByte(l3 &+ 9)
        let l4 = l3 &+ headerLength
        let isUDP = ipProtocol == IPProtocol.udp
        guard isUDP || ipProtocol == IPProtocol.tcp else { return .refused }
        guard totalLength >= headerLength, length >= l3 &+ totalLength, flags & 0x3FFF == 0 else {
            // Truncated, or a first fragment: a packet of its flow that the
            // cache cannot serve. Where its ports can be read, its flow's
            // entry goes, so that later packets do not overtake it.
            guard flags & 0x1FFF == 0, length >= l4 &+ 4 else { return .refused }
            key = Self.cacheKey(data, l3: l3, l4: l4, ipProtocol: ipProtocol, linkType: linkType, port: port)
            return .changesState
        }
        let available = totalLength &- headerLength
        if isUDP {
            // Its length: at least its header, at most what the datagram holds.
            guard available >= 8,
                  UInt(truncatingIfNeeded: Int(data.loadBigEndian(l4 &+ 4, as: UInt16.self)) &- 8)
                    <= UInt(truncatingIfNeeded: available &- 8) else { return .refused }
        } else {
            guard available >= 20 else { return .refused }
            let tcpHeaderLength = Int(data.loadByte(l4 &+ 12) >> 4) &* 4
            guard tcpHeaderLength >= 20, tcpHeaderLength <= available else { return .refused }
        }
        headers.l3Offset = UInt16(truncatingIfNeeded: l3)
        headers.l4Offset = UInt16(truncatingIfNeeded: l4)
        headers.isUDP = isUDP
        key = Self.cacheKey(data, l3: l3, l4: l4, ipProtocol: ipProtocol, linkType: linkType, port: port)
        return !isUDP && data.loadByte(l4 &+ 13) & 0x07 != 0 ? .changesState : .servable
    }

    /// The flow cache's key of the IPv4 TCP or UDP packet at `data`, whose
    /// headers start at `l3` and `l4`.
    @inlinable @inline(__always)
    static func cacheKey(_ data: UnsafeMutableRawPointer, l3: Int, l4: Int, ipProtocol: UInt8, linkType: LinkType,
                         port: UInt16) -> FlowCacheKey {
        FlowCacheKey(addresses: data.loadUnaligned(fromByteOffset: l3 &+ 12, as: UInt64.self),
                     rest: UInt64(data.loadUnaligned(fromByteOffset: l4, as: UInt32.self)) << 32
                         | UInt64(ipProtocol) << 16 | UInt64(linkType.rawValue) << 24 | UInt64(port))
    }
}
