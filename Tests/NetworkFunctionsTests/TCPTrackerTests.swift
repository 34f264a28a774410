import NetworkFunctions
import Testing

/// The TCP tracking behaviours that Linux's conntrack tests, VPP's stateful
/// ACL tests and suricata's firewall tests check, on the tracker alone.
@Suite("TCP connection tracking")
struct TCPTrackerTests {
    typealias S = TCPTracker.Segment
    static let client: UInt32 = 1_000, server: UInt32 = 50_000

    /// A connection through its handshake: client ISN 1000, server ISN 50000.
    func established() throws -> TCPTracker {
        var tracker = try #require(TCPTracker.start(S(seq: Self.client, syn: true), loose: false))
        #expect(tracker.state == .synSent && tracker.timeout == 120)
        #expect(tracker.track(S(seq: Self.server, ack: Self.client + 1, syn: true, ack: true), reply: true) == .valid)
        #expect(tracker.state == .synReceived && tracker.timeout == 60, "an incomplete handshake: the short timeout")
        #expect(tracker.track(S(seq: Self.client + 1, ack: Self.server + 1, ack: true), reply: false) == .valid)
        #expect(tracker.state == .established && tracker.timeout == 432_000, "complete: the long one")
        return tracker
    }

    @Test("the handshake, data both ways, and FIN both ways with the short timeout again")
    func lifecycle() throws {
        var t = try established()
        #expect(t.track(S(seq: 1001, ack: 50001, ack: true, payload: 500), reply: false) == .valid)
        #expect(t.track(S(seq: 50001, ack: 1501, ack: true, payload: 1000), reply: true) == .valid)
        #expect(t.track(S(seq: 1501, ack: 51001, ack: true, fin: true), reply: false) == .valid)
        #expect(t.state == .finWait && t.timeout == 120)
        #expect(t.track(S(seq: 51001, ack: 1502, ack: true, fin: true), reply: true) == .valid)
        #expect(t.state == .lastAck && t.timeout == 30)
        #expect(t.track(S(seq: 1502, ack: 51002, ack: true), reply: false) == .valid)
        #expect(t.state == .timeWait)
    }

    @Test("out-of-window data is invalid; a retransmission below the window's lower edge passes")
    func windows() throws {
        var t = try established()
        #expect(t.track(S(seq: 1001, ack: 50001, ack: true, payload: 1000), reply: false) == .valid)
        #expect(t.track(S(seq: 50001, ack: 2001, ack: true), reply: true) == .valid)
        // The same data again, all of it already acknowledged: it passes (dropping it stalls connections).
        #expect(t.track(S(seq: 1001, ack: 50001, ack: true, payload: 1000), reply: false) == .valid)
        // Far beyond what the server's window allows.
        guard case .invalid = t.track(S(seq: 2001 + 200_000, ack: 50001, ack: true, payload: 100), reply: false) else {
            Issue.record("out-of-window data passed")
            return
        }
        // Acknowledging data the client never sent.
        guard case .invalid = t.track(S(seq: 50001, ack: 900_000, ack: true), reply: true) else {
            Issue.record("an ACK of unsent data passed")
            return
        }
        #expect(t.state == .established)
    }

    @Test("a RST: outside the window or not exact, invalid and the connection stays; exact, it closes; closing, any in the window")
    func resets() throws {
        var t = try established()
        #expect(t.track(S(seq: 50001, ack: 1001, ack: true, payload: 100), reply: true) == .valid)
        // The client acknowledged nothing from the server yet beyond 50001; the server expects client seq 1001.
        guard case .invalid = t.track(S(seq: 1001 + 300_000, rst: true), reply: false) else {
            Issue.record("an out-of-window RST passed"); return
        }
        guard case .invalid = t.track(S(seq: 1001 + 10, rst: true), reply: false) else {
            Issue.record("an inexact RST passed"); return
        }
        #expect(t.state == .established, "an inexact RST leaves the connection established")
        #expect(t.track(S(seq: 1001, rst: true), reply: false) == .valid)
        #expect(t.state == .close && t.timeout == 10)
        // Once closing, an inexact RST in the window is accepted.
        var closing = try established()
        #expect(closing.track(S(seq: 1001, ack: 50001, ack: true, fin: true), reply: false) == .valid)
        #expect(closing.track(S(seq: 50001 + 7, rst: true), reply: true) == .valid)
        #expect(closing.state == .close)
    }

    @Test("a new SYN on an established connection: ignored; the challenge ACK passes; the RST and the new SYN open afresh")
    func challengeACK() throws {
        var t = try established()
        #expect(t.track(S(seq: 77_777, syn: true), reply: false) == .ignored)
        #expect(t.state == .established)
        // The server answers with its current ACK (the challenge ACK).
        #expect(t.track(S(seq: 50001, ack: 1001, ack: true), reply: true) == .valid)
        // The client, whose old connection is gone, resets at exactly that ACK...
        #expect(t.track(S(seq: 1001, rst: true), reply: false) == .valid)
        #expect(t.state == .close)
        // ...and its SYN opens a new connection.
        #expect(t.track(S(seq: 77_777, syn: true), reply: false) == .valid)
        #expect(t.state == .synSent)
        #expect(t.track(S(seq: 90_000, ack: 77_778, syn: true, ack: true), reply: true) == .valid)
    }

    @Test("a stale SYN-ACK with the wrong acknowledgement is invalid; the right one is accepted")
    func staleSynAck() throws {
        var t = try #require(TCPTracker.start(S(seq: 1000, syn: true), loose: false))
        // One acknowledging an older SYN (below this one's), and one acknowledging beyond it.
        for stale in [UInt32(900), 4242] {
            guard case .invalid = t.track(S(seq: 50000, ack: stale, syn: true, ack: true), reply: true) else {
                Issue.record("a stale SYN-ACK (ack \(stale)) passed"); return
            }
        }
        #expect(t.state == .synSent)
        #expect(t.track(S(seq: 60000, ack: 1001, syn: true, ack: true), reply: true) == .valid)
        #expect(t.track(S(seq: 1001, ack: 60001, ack: true), reply: false) == .valid)
        #expect(t.state == .established)
    }

    @Test("simultaneous open and a split handshake are tracked")
    func simultaneousOpen() throws {
        var t = try #require(TCPTracker.start(S(seq: 1000, syn: true), loose: false))
        #expect(t.track(S(seq: 50000, syn: true), reply: true) == .valid)
        #expect(t.state == .synSent2)
        #expect(t.track(S(seq: 1000, ack: 50001, syn: true, ack: true), reply: false) == .valid)
        #expect(t.state == .synReceived)
        #expect(t.track(S(seq: 50001, ack: 1001, ack: true), reply: true) == .valid)
        #expect(t.track(S(seq: 1001, ack: 50001, ack: true, payload: 10), reply: false) == .valid)
        #expect(t.state == .established)
    }

    @Test("a connection picked up midway is refused by default and tracked with loose pickup")
    func pickup() throws {
        let midway = S(seq: 5000, ack: 9000, ack: true, payload: 100)
        #expect(TCPTracker.start(midway, loose: false) == nil)
        var t = try #require(TCPTracker.start(midway, loose: true))
        #expect(t.state == .established)
        #expect(t.track(S(seq: 9000, ack: 5100, ack: true, payload: 50), reply: true) == .valid)
        #expect(t.track(S(seq: 5100, ack: 9050, ack: true), reply: false) == .valid)
        #expect(TCPTracker.start(S(seq: 1, rst: true), loose: true) == nil, "a RST never starts one")
    }
}
