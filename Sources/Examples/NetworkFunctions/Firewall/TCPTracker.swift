import StatelessKit

/// A TCP connection as the firewall tracks it, in the spirit of Linux's
/// conntrack: a state machine over the segments' flags, and each side's
/// sequence window, so that a segment outside what the other side could
/// accept is invalid. A value: the firewall keeps it in the store.
public struct TCPTracker: Sendable, Equatable {
    /// Where the connection is.
    public enum State: UInt8, Sendable {
        case none, synSent, synReceived, established, finWait, closeWait, lastAck, timeWait, close
        /// Both sides sent a SYN (simultaneous open, or a split handshake).
        case synSent2
    }

    /// What one side has sent and may send.
    public struct Side: Sendable, Equatable {
        /// The highest sequence number sent, plus its length.
        public var end: UInt32 = 0
        /// The highest sequence number the other side's window allows.
        public var maxEnd: UInt32 = 0
        /// The largest window the other side offered (scaled).
        public var maxWindow: UInt32 = 0
        /// The highest acknowledgement this side sent, once it sent one.
        public var maxAck: UInt32? = nil
        /// The window scale it announced, when both sides did.
        public var scale: UInt8 = 0
        /// Whether it announced window scaling.
        public var announcedScale = false
    }

    /// A segment, as tracking needs it.
    public struct Segment: Sendable {
        /// The sequence number.
        public var seq: UInt32
        /// The acknowledgement number.
        public var ack: UInt32
        /// The window field, unscaled.
        public var window: UInt16
        /// The flags.
        public var syn = false, ackFlag = false, fin = false, rst = false
        /// The payload's length in bytes.
        public var payload: Int = 0
        /// The window scale option, on a SYN.
        public var windowScale: UInt8? = nil

        /// A segment.
        public init(seq: UInt32, ack: UInt32 = 0, window: UInt16 = 65535, syn: Bool = false, ack ackFlag: Bool = false,
                    fin: Bool = false, rst: Bool = false, payload: Int = 0, windowScale: UInt8? = nil) {
            self.seq = seq
            self.ack = ack
            self.window = window
            self.syn = syn
            self.ackFlag = ackFlag
            self.fin = fin
            self.rst = rst
            self.payload = payload
            self.windowScale = windowScale
        }

        /// The sequence number after the segment.
        var end: UInt32 { seq &+ UInt32(payload) &+ (syn ? 1 : 0) &+ (fin ? 1 : 0) }
    }

    /// What tracking made of a segment.
    public enum Verdict: Equatable, Sendable {
        /// It fits the connection (the state may have moved).
        case valid
        /// It fits, but tracking ignores it (a new SYN on an established
        /// connection, a retransmitted SYN-ACK): it passes, nothing changes.
        case ignored
        /// It fits no state of the connection, or lies outside the window.
        case invalid(InvalidReason)
    }

    /// Why a segment is invalid; the firewall counts drops under
    /// `firewall.invalid.<reason>`.
    public enum InvalidReason: String, Sendable, CaseIterable, CustomStringConvertible {
        case rstWithoutConnection, synAckFromInitiator, dataBeforeHandshake, noACK, synFromResponder, noConnection
        case synOpensNothing, rstNotExact, beyondWindow, belowWindow, ackOfUnsentData, ackBelowWindow, staleSynAck

        public var description: String {
            switch self {
            case .rstWithoutConnection: "a RST for no connection"
            case .synAckFromInitiator: "a SYN-ACK from the side that opened the connection"
            case .dataBeforeHandshake: "data before the handshake completed"
            case .noACK: "a segment without ACK on an open connection"
            case .synFromResponder: "a SYN from the side that answered"
            case .noConnection: "no connection"
            case .synOpensNothing: "a SYN that opens nothing"
            case .rstNotExact: "a RST not at the exact next sequence number"
            case .beyondWindow: "beyond the receiver's window"
            case .belowWindow: "below the window (acknowledged long ago)"
            case .ackOfUnsentData: "acknowledges data not yet sent"
            case .ackBelowWindow: "acknowledges far below the window"
            case .staleSynAck: "a SYN-ACK that does not acknowledge the SYN"
            }
        }
    }

    /// No connection yet (``start(_:loose:)`` opens one).
    public init() {}

    /// No connection: what connections of other protocols hold.
    public static let none = TCPTracker()

    public private(set) var state = State.none
    /// Whether windows are checked liberally (a connection picked up
    /// midway): only RSTs are refused for where they fall.
    public private(set) var liberal = false
    /// The initiator's side (0) and the responder's (1).
    public private(set) var sides = (Side(), Side())
    public static func == (a: TCPTracker, b: TCPTracker) -> Bool {
        a.state == b.state && a.liberal == b.liberal && a.sides.0 == b.sides.0 && a.sides.1 == b.sides.1
    }

    /// A connection opened by `segment` (a SYN), or, with `loose`, picked
    /// up midway from any segment but a RST; `nil` when it cannot start one.
    public static func start(_ segment: Segment, loose: Bool) -> TCPTracker? {
        var tracker = TCPTracker()
        if segment.syn && !segment.ackFlag && !segment.rst {
            tracker.state = .synSent
            tracker.sides.0 = Side(end: segment.end, maxEnd: segment.end, maxWindow: max(UInt32(segment.window), 1),
                                   scale: segment.windowScale ?? 0, announcedScale: segment.windowScale != nil)
            return tracker
        }
        guard loose, !segment.rst, !segment.syn else { return nil }
        // Picked up midway: trust what this segment shows of both sides,
        // and check windows liberally, as Linux does.
        tracker.state = .established
        tracker.liberal = true
        let window = max(UInt32(segment.window), 1)
        tracker.sides.0 = Side(end: segment.end, maxEnd: segment.end &+ window, maxWindow: window,
                               maxAck: segment.ackFlag ? segment.ack : nil)
        tracker.sides.1 = Side(end: segment.ack, maxEnd: segment.ack, maxWindow: 1)
        return tracker
    }

    /// How long the connection lives idle in its state, by Linux's
    /// defaults (``FirewallTimeouts`` makes them configurable).
    public var timeout: Double { FirewallTimeouts().tcp(state) }

    /// Tracks a segment sent by the initiator (`reply` false) or the
    /// responder.
    public mutating func track(_ segment: Segment, reply: Bool) -> Verdict {
        let direction = reply ? 1 : 0
        switch transition(segment, reply: reply) {
        case .invalid(let reason):
            return .invalid(reason)
        case .ignore:
            return .ignored
        case .reopen:
            // A new connection on the same endpoints, after the old one closed.
            guard let fresh = Self.start(segment, loose: false) else { return .invalid(.synOpensNothing) }
            self = fresh
            return .valid
        case .move(let newState):
            if segment.rst {
                guard rstAcceptable(segment, direction: direction) else {
                    return .invalid(.rstNotExact)
                }
                state = newState
                return .valid
            }
            if let reason = window(segment, direction: direction) { return .invalid(reason) }
            state = newState
            return .valid
        }
    }

    enum Transition { case move(State), ignore, reopen, invalid(InvalidReason) }

    /// The state machine: what a segment's flags do in each state, each way.
    func transition(_ segment: Segment, reply: Bool) -> Transition {
        if segment.rst { return state == .none ? .invalid(.rstWithoutConnection) : .move(.close) }
        let synAck = segment.syn && segment.ackFlag
        if !reply {
            switch (state, segment.syn, synAck, segment.fin) {
            case (.synSent, true, false, _): return .move(.synSent)                // the SYN again
            case (.synSent2, true, false, _): return .move(.synSent2)
            case (.synSent2, _, true, _): return .move(.synReceived)              // simultaneous open
            case (.timeWait, true, false, _), (.close, true, false, _): return .reopen
            case (_, true, false, _): return .ignore                                 // a new SYN mid-connection
            case (_, _, true, _): return .invalid(.synAckFromInitiator)
            case (.synSent, _, _, _), (.synSent2, _, _, _):
                return .invalid(.dataBeforeHandshake)
            case (.synReceived, _, _, true), (.established, _, _, true): return .move(.finWait)
            case (.finWait, _, _, true), (.closeWait, _, _, true), (.lastAck, _, _, true): return .move(.lastAck)
            case (.timeWait, _, _, _): return .move(.timeWait)
            case (.close, _, _, _): return .move(.close)
            case (.synReceived, _, _, false): return segment.ackFlag ? .move(.established) : .invalid(.noACK)
            case (.established, _, _, false): return segment.ackFlag ? .move(.established) : .invalid(.noACK)
            case (.finWait, _, _, false), (.closeWait, _, _, false): return .move(.closeWait)
            case (.lastAck, _, _, false): return .move(.timeWait)
            case (.none, _, _, _): return .invalid(.noConnection)
            }
        }
        switch (state, segment.syn, synAck, segment.fin) {
        case (.synSent, true, false, _), (.synSent2, true, false, _): return .move(.synSent2)  // both sides open
        case (.synSent, _, true, _), (.synSent2, _, true, _): return .move(.synReceived)
        case (.synSent, _, _, _): return .ignore
        case (_, true, true, _): return .ignore                                     // a SYN-ACK again
        case (_, true, false, _): return .invalid(.synFromResponder)
        case (.synSent2, _, _, _): return .ignore
        case (.synReceived, _, _, true), (.established, _, _, true): return .move(.finWait)
        case (.finWait, _, _, true), (.closeWait, _, _, true), (.lastAck, _, _, true): return .move(.lastAck)
        case (.timeWait, _, _, _): return .move(.timeWait)
        case (.close, _, _, _): return .move(.close)
        case (.synReceived, _, _, false): return .move(.synReceived)
        case (.established, _, _, false): return segment.ackFlag ? .move(.established) : .invalid(.noACK)
        case (.finWait, _, _, false), (.closeWait, _, _, false): return .move(.closeWait)
        case (.lastAck, _, _, false): return .move(.timeWait)
        case (.none, _, _, _): return .invalid(.noConnection)
        }
    }

    /// Whether a RST may close the connection: at exactly the sequence
    /// number the other side acknowledged last (an attacker must guess
    /// it), or anywhere in the window once the connection is closing.
    func rstAcceptable(_ segment: Segment, direction: Int) -> Bool {
        let receiver = direction == 0 ? sides.1 : sides.0
        let sender = direction == 0 ? sides.0 : sides.1
        guard let expected = receiver.maxAck else {
            // Nothing acknowledged yet (a refused SYN): the RST answers the SYN.
            return state == .synSent ? segment.ackFlag && segment.ack == sender.end || segment.seq == sender.end
                                     : Self.before(segment.seq, sender.maxEnd &+ 1)
        }
        if Self.before(segment.seq, expected) { return false }
        switch state {
        case .established, .synReceived: return segment.seq == expected
        default: return Self.before(segment.seq, sender.maxEnd &+ 1)
        }
    }

    /// Checks a segment against both sides' windows and moves them; returns
    /// why it is outside, or `nil`.
    mutating func window(_ segment: Segment, direction: Int) -> InvalidReason? {
        var sender = direction == 0 ? sides.0 : sides.1
        var receiver = direction == 0 ? sides.1 : sides.0
        var end = segment.end
        var seq = segment.seq
        if sender.maxWindow == 0 {
            // This side's first segment (the answer to a SYN): its window starts here.
            sender.end = end
            sender.maxEnd = end
            sender.maxWindow = max(UInt32(segment.window), 1)
            sender.announcedScale = segment.windowScale != nil
            sender.scale = segment.windowScale ?? 0
            if !(sender.announcedScale && receiver.announcedScale) {
                sender.scale = 0
                receiver.scale = 0
            }
        }
        if segment.syn && segment.ackFlag && segment.ack != receiver.end {
            return .staleSynAck
        }
        let ack = segment.ackFlag ? segment.ack : receiver.end
        if seq == end && !segment.rst {
            // A bare ACK: it carries nothing to place in the window.
            seq = sender.end
            end = sender.end
        }
        let maxAckWindow = max(sender.maxWindow, 66_000)
        // A connection picked up midway is checked liberally (its window
        // scale is unknown): the windows move, nothing is refused.
        if !liberal {
            guard Self.before(seq, sender.maxEnd &+ 1) else { return .beyondWindow }
            guard Self.after(end, sender.end &- receiver.maxWindow &- 1) else { return .belowWindow }
            guard Self.before(ack, receiver.end &+ 1) else { return .ackOfUnsentData }
            guard Self.after(ack, receiver.end &- maxAckWindow &- 1) else { return .ackBelowWindow }
        }
        let window = segment.syn ? UInt32(segment.window) : UInt32(segment.window) << UInt32(sender.scale)
        sender.maxWindow = max(sender.maxWindow, window)
        if Self.after(end, sender.end) { sender.end = end }
        if segment.ackFlag {
            if let previous = sender.maxAck { if Self.after(ack, previous) { sender.maxAck = ack } } else { sender.maxAck = ack }
        }
        if receiver.maxWindow != 0 && Self.after(end, sender.maxEnd) { receiver.maxWindow &+= end &- sender.maxEnd }
        if Self.after(ack &+ window, receiver.maxEnd &- 1) { receiver.maxEnd = ack &+ max(window, 1) }
        if direction == 0 { sides = (sender, receiver) } else { sides = (receiver, sender) }
        return nil
    }

    /// Sequence-number order, modulo 2^32.
    static func before(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: a &- b) < 0 }
    static func after(_ a: UInt32, _ b: UInt32) -> Bool { Int32(bitPattern: b &- a) < 0 }
}

extension TCPTracker: StateCodable {
    /// The state (1 byte, its high bit the liberal flag), then each side: end, maxEnd, maxWindow, maxAck
    /// (4 bytes each), scale, and flags (maxAck present, scale announced).
    public static var encodedSize: Int { 37 }

    public func encode(to pointer: UnsafeMutableRawPointer) {
        pointer.storeBytes(of: state.rawValue | (liberal ? 0x80 : 0), as: UInt8.self)
        Self.encode(sides.0, to: pointer + 1)
        Self.encode(sides.1, to: pointer + 19)
    }

    public init(decoding pointer: UnsafeRawPointer) {
        let first = pointer.load(as: UInt8.self)
        state = State(rawValue: first & 0x7F) ?? .none
        liberal = first & 0x80 != 0
        sides = (Self.decodeSide(pointer + 1), Self.decodeSide(pointer + 19))
    }

    static func encode(_ side: Side, to pointer: UnsafeMutableRawPointer) {
        side.end.encode(to: pointer)
        side.maxEnd.encode(to: pointer + 4)
        side.maxWindow.encode(to: pointer + 8)
        (side.maxAck ?? 0).encode(to: pointer + 12)
        pointer.storeBytes(of: side.scale, toByteOffset: 16, as: UInt8.self)
        let flags: UInt8 = (side.maxAck != nil ? 1 : 0) | (side.announcedScale ? 2 : 0)
        pointer.storeBytes(of: flags, toByteOffset: 17, as: UInt8.self)
    }

    static func decodeSide(_ pointer: UnsafeRawPointer) -> Side {
        let flags = pointer.load(fromByteOffset: 17, as: UInt8.self)
        return Side(end: UInt32(decoding: pointer), maxEnd: UInt32(decoding: pointer + 4),
                    maxWindow: UInt32(decoding: pointer + 8),
                    maxAck: flags & 1 != 0 ? UInt32(decoding: pointer + 12) : nil,
                    scale: pointer.load(fromByteOffset: 16, as: UInt8.self), announcedScale: flags & 2 != 0)
    }
}
