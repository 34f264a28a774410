import StatelessKit

/// Why the firewall found a packet invalid; each is counted as
/// `firewall.invalid.<name>`.
public enum InvalidPacket: Error, Equatable, Sendable, CustomStringConvertible {
    /// TCP tracking refused the segment.
    case tcp(TCPTracker.InvalidReason)
    /// A packet that cannot open a connection (an echo reply, a TCP
    /// segment without SYN when loose pickup is off) and belongs to none.
    case noConnection
    /// An ICMP error about no tracked connection.
    case unrelatedError
    /// An ICMP echo reply from the side that sent the request, or a request from the side that answered.
    case wrongEchoDirection

    /// Every counter invalid packets are counted under.
    static let counterNames: [String] = {
        let all = [InvalidPacket.noConnection, .unrelatedError, .wrongEchoDirection]
            + TCPTracker.InvalidReason.allCases.map { InvalidPacket.tcp($0) }
        var names: [String] = []
        for name in all.map({ "\($0.counter)" }) where !names.contains(name) { names.append(name) }
        return names
    }()

    /// The counter it is counted under.
    var counter: StaticString {
        switch self {
        case .noConnection: "firewall.invalid.noConnection"
        case .unrelatedError: "firewall.invalid.unrelatedError"
        case .wrongEchoDirection: "firewall.invalid.wrongEchoDirection"
        case .tcp(let reason):
            switch reason {
            case .rstWithoutConnection: "firewall.invalid.rstWithoutConnection"
            case .synAckFromInitiator: "firewall.invalid.synAckFromInitiator"
            case .dataBeforeHandshake: "firewall.invalid.dataBeforeHandshake"
            case .noACK: "firewall.invalid.noACK"
            case .synFromResponder: "firewall.invalid.synFromResponder"
            case .noConnection: "firewall.invalid.noConnection"
            case .synOpensNothing: "firewall.invalid.synOpensNothing"
            case .rstNotExact: "firewall.invalid.rstNotExact"
            case .beyondWindow: "firewall.invalid.beyondWindow"
            case .belowWindow: "firewall.invalid.belowWindow"
            case .ackOfUnsentData: "firewall.invalid.ackOfUnsentData"
            case .ackBelowWindow: "firewall.invalid.ackBelowWindow"
            case .staleSynAck: "firewall.invalid.staleSynAck"
            }
        }
    }

    public var description: String {
        switch self {
        case .tcp(let reason): "\(reason)"
        case .noConnection: "no connection, and the packet cannot open one"
        case .unrelatedError: "an ICMP error about no tracked connection"
        case .wrongEchoDirection: "an echo message from the wrong side"
        }
    }
}

/// What tracking made of a packet of a known connection.
enum Tracked: Equatable {
    /// It belongs to the connection (which may have moved on).
    case established
    /// It opens a new connection on the endpoints of a closed one.
    case reopened
    case invalid(InvalidPacket)
}

/// Connection tracking for each protocol: which packets open a connection,
/// and what a packet does to one, in the spirit of Linux's conntrack.
enum ConnectionTracking {
    /// The connection key of `packet`, or `nil` for packets that belong to
    /// no connection of their own (ICMP errors and other ICMP messages, and
    /// fragments without their transport header).
    @inline(__always)
    static func key(of packet: Packet) -> ConnectionKey? {
        let layout = packet.layout
        let ipProtocol = layout.ipProtocol
        switch layout.transport {
        case .tcp, .udp:
            return ConnectionKey(ipProtocol, packet.address(.source), packet.address(.destination),
                                 packet.port(.source), packet.port(.destination))
        case .icmpv4, .icmpv6:
            guard layout.icmp == .query, let identifier = packet.icmpIdentifier else { return nil }
            return ConnectionKey(ipProtocol, packet.address(.source), packet.address(.destination), identifier, identifier)
        case .other:
            return ConnectionKey(ipProtocol, packet.address(.source), packet.address(.destination), 0, 0)
        case .none, .fragment:
            return nil
        }
    }

    /// The key of the connection the packet an ICMP error quotes belongs to,
    /// or `nil` when the quote says too little.
    static func quotedKey(of packet: Packet) -> ConnectionKey? {
        guard let quote = packet.layout.quote, let source = packet.quotedAddress(.source),
              let destination = packet.quotedAddress(.destination) else { return nil }
        switch quote.transport {
        case .tcp, .udp:
            guard let sourcePort = packet.quotedPort(.source), let destinationPort = packet.quotedPort(.destination)
            else { return nil }
            return ConnectionKey(quote.ipProtocol, source, destination, sourcePort, destinationPort)
        case .icmpv4, .icmpv6:
            guard let identifier = packet.quotedICMPIdentifier else { return nil }
            return ConnectionKey(quote.ipProtocol, source, destination, identifier, identifier)
        default:
            return ConnectionKey(quote.ipProtocol, source, destination, 0, 0)
        }
    }

    /// The connection `packet` opens, or why it cannot open one.
    static func open(_ packet: borrowing Packet, key: ConnectionKey, loose: Bool) -> Result<TrackedConnection, InvalidPacket> {
        switch packet.layout.transport {
        case .tcp:
            let segment = TCPTracker.Segment(packet)
            guard let tracker = TCPTracker.start(segment, loose: loose) else {
                return .failure(segment.rst ? .tcp(.rstWithoutConnection) : .noConnection)
            }
            return .success(TrackedConnection(key: key, tcp: tracker))
        case .icmpv4, .icmpv6:
            guard ICMPTypes.isRequest(packet.icmpType!, isIPv6: packet.layout.network == .ipv6) else {
                return .failure(.noConnection)
            }
            return .success(TrackedConnection(key: key))
        default:
            return .success(TrackedConnection(key: key))
        }
    }

    /// What `packet`, whose key is `key`, does to `connection`.
    @inline(__always)
    static func track(_ packet: borrowing Packet, key: ConnectionKey, _ connection: inout TrackedConnection) -> Tracked {
        let reply = connection.isReply(key)
        switch packet.layout.transport {
        case .tcp:
            let before = connection.tcp.state
            switch connection.tcp.track(TCPTracker.Segment(packet), reply: reply) {
            case .invalid(let reason):
                return .invalid(.tcp(reason))
            case .ignored:
                return .established
            case .valid:
                if reply { connection.replied = true }
                let reopened = (before == .timeWait || before == .close) && connection.tcp.state == .synSent
                if reopened { connection = TrackedConnection(key: key, tcp: connection.tcp) }
                return reopened ? .reopened : .established
            }
        case .icmpv4, .icmpv6:
            let request = ICMPTypes.isRequest(packet.icmpType!, isIPv6: packet.layout.network == .ipv6)
            guard request != reply else { return .invalid(.wrongEchoDirection) }
            if reply { connection.replied = true }
            return .established
        default:
            if reply { connection.replied = true }
            return .established
        }
    }
}

extension TCPTracker.Segment {
    /// The segment `packet` carries (a TCP packet): numbers, flags, window,
    /// payload length, and on a SYN the window scale option.
    @inline(__always)
    init(_ packet: borrowing Packet) {
        let flags = packet.tcpFlags!
        self.init(seq: packet.tcpSequenceNumber!, ack: packet.tcpAcknowledgementNumber!, window: packet.tcpWindow!,
                  syn: flags & 0x02 != 0, ack: flags & 0x10 != 0, fin: flags & 0x01 != 0, rst: flags & 0x04 != 0,
                  payload: packet.tcpPayloadLength!)
        if syn { windowScale = Self.windowScale(packet) }
    }

    /// The window scale option of a SYN, if it has one (shifts above 14
    /// count as 14, as RFC 7323 says).
    static func windowScale(_ packet: borrowing Packet) -> UInt8? {
        let start = Int(packet.layout.l4Offset)
        let headerEnd = min(start + Int(packet.data.load(fromByteOffset: start + 12, as: UInt8.self) >> 4) * 4, Int(packet.layout.l3End))
        var offset = start + 20
        while offset < headerEnd {
            let kind = packet.data.load(fromByteOffset: offset, as: UInt8.self)
            if kind == 0 { break }
            if kind == 1 { offset += 1; continue }
            guard offset + 1 < headerEnd else { break }
            let length = Int(packet.data.load(fromByteOffset: offset + 1, as: UInt8.self))
            guard length >= 2, offset + length <= headerEnd else { break }
            if kind == 3 && length == 3 { return min(packet.data.load(fromByteOffset: offset + 2, as: UInt8.self), 14) }
            offset += length
        }
        return nil
    }
}
