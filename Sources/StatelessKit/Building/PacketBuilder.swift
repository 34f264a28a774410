/// Builds packets byte by byte, with every length and checksum right (or
/// deliberately wrong), for tests and generated traffic: a Swift stand-in
/// for scapy.
///
/// ```swift
/// let frame = PacketBuilder(vlans: [10])
///     .ipv4(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(192, 0, 2, 1))
///     .tcp(source: 40000, destination: 80, flags: .syn)
/// ```
public struct PacketBuilder: Sendable {
    /// TCP flag bits.
    public struct TCPFlags: OptionSet, Sendable {
        /// The flags byte.
        public let rawValue: UInt8
        /// Flags from the flags byte.
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// FIN: no more data from the sender.
        public static let fin = TCPFlags(rawValue: 0x01)
        /// SYN: synchronise sequence numbers.
        public static let syn = TCPFlags(rawValue: 0x02)
        /// RST: reset the connection.
        public static let rst = TCPFlags(rawValue: 0x04)
        /// PSH: push.
        public static let psh = TCPFlags(rawValue: 0x08)
        /// ACK: the acknowledgement number is valid.
        public static let ack = TCPFlags(rawValue: 0x10)
    }

    /// An IPv6 extension header to insert before the transport header.
    public enum IPv6Extension: Sendable {
        /// Hop-by-hop options, padded to 8 bytes.
        case hopByHop
        /// Destination options, padded to 8 bytes.
        case destinationOptions
        /// A fragment header.
        case fragment(offset: Int, moreFragments: Bool, identification: UInt32)
    }

    /// VLAN ids, outer first; two make a QinQ frame (802.1ad outer tag).
    public var vlans: [UInt16]
    /// Whether to build a raw IP packet with no Ethernet header.
    public var rawIP: Bool
    /// The Ethernet source address.
    public var sourceMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x01]
    /// The Ethernet destination address.
    public var destinationMAC: [UInt8] = [0x02, 0, 0, 0, 0, 0x02]

    var network = NetworkSpec.none

    enum NetworkSpec: Sendable {
        case none
        case ipv4(source: IPv4Address, destination: IPv4Address, ttl: UInt8, identification: UInt16,
                  dontFragment: Bool, fragmentOffset: Int, moreFragments: Bool, options: [UInt8])
        case ipv6(source: IPv6Address, destination: IPv6Address, hopLimit: UInt8, extensions: [IPv6Extension])
    }

    /// A builder for Ethernet frames with `vlans`, or raw IP packets.
    public init(vlans: [UInt16] = [], rawIP: Bool = false) {
        self.vlans = vlans
        self.rawIP = rawIP
    }

    /// The next packets are IPv4.
    public func ipv4(source: IPv4Address, destination: IPv4Address, ttl: UInt8 = 64, identification: UInt16 = 1,
                     dontFragment: Bool = false, fragmentOffset: Int = 0, moreFragments: Bool = false,
                     options: [UInt8] = []) -> PacketBuilder {
        var copy = self
        copy.network = .ipv4(source: source, destination: destination, ttl: ttl, identification: identification,
                             dontFragment: dontFragment, fragmentOffset: fragmentOffset,
                             moreFragments: moreFragments, options: options)
        return copy
    }

    /// The next packets are IPv6.
    public func ipv6(source: IPv6Address, destination: IPv6Address, hopLimit: UInt8 = 64,
                     extensions: [IPv6Extension] = []) -> PacketBuilder {
        var copy = self
        copy.network = .ipv6(source: source, destination: destination, hopLimit: hopLimit, extensions: extensions)
        return copy
    }

    /// A TCP segment.
    public func tcp(source: UInt16, destination: UInt16, sequence: UInt32 = 1000, acknowledgement: UInt32 = 0,
                    flags: TCPFlags = .ack, window: UInt16 = 65535, options: [UInt8] = [],
                    payload: [UInt8] = []) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 20)
        put16(&header, 0, source)
        put16(&header, 2, destination)
        put32(&header, 4, sequence)
        put32(&header, 8, acknowledgement)
        let padded = options + [UInt8](repeating: 0, count: (4 - options.count % 4) % 4)
        header[12] = UInt8((20 + padded.count) / 4) << 4
        header[13] = flags.rawValue
        put16(&header, 14, window)
        return datagram(protocol: IPProtocol.tcp, transport: header + padded + payload, checksumAt: 16)
    }

    /// A UDP datagram.
    public func udp(source: UInt16, destination: UInt16, payload: [UInt8] = [], zeroChecksum: Bool = false) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 8)
        put16(&header, 0, source)
        put16(&header, 2, destination)
        put16(&header, 4, UInt16(8 + payload.count))
        return datagram(protocol: IPProtocol.udp, transport: header + payload, checksumAt: zeroChecksum ? nil : 6)
    }

    /// An ICMP (or, over IPv6, ICMPv6) echo request or reply.
    public func icmpEcho(request: Bool, identifier: UInt16, sequence: UInt16 = 1, payload: [UInt8] = []) -> [UInt8] {
        let v6 = isIPv6
        let type: UInt8 = v6 ? (request ? 128 : 129) : (request ? 8 : 0)
        return icmp(type: type, code: 0, rest: UInt32(identifier) << 16 | UInt32(sequence), body: payload)
    }

    /// An ICMP (or ICMPv6) error that quotes the first `quoteLength` bytes
    /// of `original`, an IP datagram (as from another builder with
    /// `rawIP: true`).
    public func icmpError(type: UInt8, code: UInt8, quoting original: [UInt8], quoteLength: Int? = nil,
                          rest: UInt32 = 0) -> [UInt8] {
        icmp(type: type, code: code, rest: rest, body: Array(original.prefix(quoteLength ?? original.count)))
    }

    /// Any ICMP or ICMPv6 message.
    public func icmp(type: UInt8, code: UInt8, rest: UInt32 = 0, body: [UInt8] = []) -> [UInt8] {
        var header = [UInt8](repeating: 0, count: 8)
        header[0] = type
        header[1] = code
        put32(&header, 4, rest)
        return datagram(protocol: isIPv6 ? IPProtocol.icmpv6 : IPProtocol.icmp, transport: header + body,
                        checksumAt: 2)
    }

    /// A datagram of another protocol (its payload is not looked into).
    public func other(protocol number: UInt8, payload: [UInt8]) -> [UInt8] {
        datagram(protocol: number, transport: payload, checksumAt: nil)
    }

    var isIPv6: Bool {
        if case .ipv6 = network { return true }
        return false
    }

    /// Wraps `transport` in the IP header and the link-layer header, filling
    /// in the transport checksum at `checksumAt` unless it is `nil`.
    func datagram(protocol number: UInt8, transport: [UInt8], checksumAt: Int?) -> [UInt8] {
        var transport = transport
        var ip: [UInt8]
        switch network {
        case .none:
            preconditionFailure("choose ipv4(...) or ipv6(...) before the transport")
        case let .ipv4(source, destination, ttl, identification, dontFragment, fragmentOffset, moreFragments, options):
            let padded = options + [UInt8](repeating: 0, count: (4 - options.count % 4) % 4)
            ip = [UInt8](repeating: 0, count: 20) + padded
            ip[0] = 0x40 | UInt8(ip.count / 4)
            put16(&ip, 2, UInt16(ip.count + transport.count))
            put16(&ip, 4, identification)
            put16(&ip, 6, (dontFragment ? 0x4000 : 0) | (moreFragments ? 0x2000 : 0) | UInt16(fragmentOffset / 8))
            ip[8] = ttl
            ip[9] = number
            put32(&ip, 12, source.value)
            put32(&ip, 16, destination.value)
            put16(&ip, 10, checksum(ip))
            if let at = checksumAt {
                var pseudo = Array(ip[12..<20]) + [0, number]
                pseudo += [UInt8(transport.count >> 8), UInt8(transport.count & 0xFF)]
                let value = number == IPProtocol.icmp ? checksum(transport) : checksum(pseudo + transport)
                put16(&transport, at, value == 0 && number == IPProtocol.udp ? 0xFFFF : value)
            }
        case let .ipv6(source, destination, hopLimit, extensions):
            var headers: [UInt8] = []
            var kinds: [UInt8] = []
            for ext in extensions {
                switch ext {
                case .hopByHop, .destinationOptions:
                    kinds.append({ if case .hopByHop = ext { return IPProtocol.hopByHop } else { return IPProtocol.destinationOptions } }())
                    headers += [0, 0, 1, 4, 0, 0, 0, 0]
                case let .fragment(offset, more, identification):
                    kinds.append(IPProtocol.fragment)
                    var h = [UInt8](repeating: 0, count: 8)
                    put16(&h, 2, UInt16(offset & 0xFFF8) | (more ? 1 : 0))
                    put32(&h, 4, identification)
                    headers += h
                }
            }
            for i in kinds.indices { headers[i * 8] = i + 1 < kinds.count ? kinds[i + 1] : number }
            ip = [UInt8](repeating: 0, count: 40)
            ip[0] = 0x60
            put16(&ip, 4, UInt16(headers.count + transport.count))
            ip[6] = kinds.first ?? number
            ip[7] = hopLimit
            put64(&ip, 8, source.high)
            put64(&ip, 16, source.low)
            put64(&ip, 24, destination.high)
            put64(&ip, 32, destination.low)
            if let at = checksumAt {
                let length = transport.count
                var pseudo = Array(ip[8..<40])
                pseudo += [UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF),
                           UInt8(length & 0xFF), 0, 0, 0, number]
                let value = checksum(pseudo + transport)
                put16(&transport, at, value == 0 && number == IPProtocol.udp ? 0xFFFF : value)
            }
            ip += headers
        }
        if rawIP { return ip + transport }
        var frame = destinationMAC + sourceMAC
        for (i, vlan) in vlans.enumerated() {
            let tpid = i == 0 && vlans.count > 1 ? EtherType.serviceVLAN : EtherType.vlan
            frame += [UInt8(tpid >> 8), UInt8(tpid & 0xFF), UInt8(vlan >> 8 & 0x0F), UInt8(vlan & 0xFF)]
        }
        let type = isIPv6 ? EtherType.ipv6 : EtherType.ipv4
        frame += [UInt8(type >> 8), UInt8(type & 0xFF)]
        return frame + ip + transport
    }

    func checksum(_ bytes: [UInt8]) -> UInt16 {
        bytes.withUnsafeBytes { InternetChecksum.checksum($0.baseAddress!, count: $0.count) }
    }
}

func put16(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt16) {
    bytes[offset] = UInt8(value >> 8)
    bytes[offset + 1] = UInt8(value & 0xFF)
}

func put32(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt32) {
    put16(&bytes, offset, UInt16(value >> 16))
    put16(&bytes, offset + 2, UInt16(value & 0xFFFF))
}

func put64(_ bytes: inout [UInt8], _ offset: Int, _ value: UInt64) {
    put32(&bytes, offset, UInt32(value >> 32))
    put32(&bytes, offset + 4, UInt32(value & 0xFFFF_FFFF))
}
