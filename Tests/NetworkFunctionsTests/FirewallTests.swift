import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// The behaviours Linux's conntrack tests, VPP's stateful ACL tests and
/// suricata's firewall tests check, each through the whole firewall graph,
/// on the embedded store and on Redis.
@Suite("Stateful firewall")
struct FirewallTests {
    let p = TCPPeers()

    /// Opens a connection (SYN, SYN-ACK, ACK: client 1000, server 5000) and
    /// checks that each step passes.
    func handshake(_ fw: FirewallRig, client: UInt32 = 1000, server: UInt32 = 5000, peers: TCPPeers? = nil,
                   sourceLocation: SourceLocation = #_sourceLocation) {
        let p = peers ?? self.p
        #expect(fw.send(p.segment(fromClient: true, seq: client, flags: .syn), outbound: true) == "pass",
                sourceLocation: sourceLocation)
        #expect(fw.send(p.segment(fromClient: false, seq: server, ack: client + 1, flags: [.syn, .ack]), outbound: false)
                == "pass", sourceLocation: sourceLocation)
        #expect(fw.send(p.segment(fromClient: true, seq: client + 1, ack: server + 1, flags: .ack), outbound: true) == "pass",
                sourceLocation: sourceLocation)
    }

    @Test("a RST outside the window or not exact is invalid and the connection stays; exact, it closes; closing, any in the window",
          arguments: StoreKind.available)
    func resets(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        handshake(fw)
        #expect(fw.send(p.segment(fromClient: false, seq: 5001 + 300_000, flags: .rst), outbound: false) == "drop invalid/rstNotExact")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001 + 10, flags: .rst), outbound: false) == "drop invalid/rstNotExact")
        // Still established: data both ways passes.
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: [.ack, .psh], payload: 10), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1011, flags: .ack), outbound: false) == "pass")
        // The exact RST (at what the client acknowledged) closes it.
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, flags: .rst), outbound: false) == "pass")

        // Closing (a FIN sent): an inexact RST inside the window is accepted.
        var q = p
        q.client.port = 40001
        handshake(fw, peers: q)
        #expect(fw.send(q.segment(fromClient: true, seq: 1001, ack: 5001, flags: [.fin, .ack]), outbound: true) == "pass")
        #expect(fw.send(q.segment(fromClient: false, seq: 5001 + 100, flags: .rst), outbound: false) == "pass")
    }

    @Test("retransmitted data below the window passes; out-of-window data is dropped even when a rule accepts the port",
          arguments: StoreKind.available)
    func windows(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind, rules: """
            accept proto tcp dport 80
            accept proto tcp sport 80
            """)
        handshake(fw)
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 100), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1101, flags: .ack), outbound: false) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1101, ack: 5001, flags: .ack, payload: 100), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1201, flags: .ack), outbound: false) == "pass")
        // Data the server acknowledged already, sent again: it passes.
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 100), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1201 + 200_000, ack: 5001, flags: .ack, payload: 100), outbound: true)
                == "drop invalid/beyondWindow")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1201 + 900_000, flags: .ack), outbound: false)
                == "drop invalid/ackOfUnsentData")
        // The connection goes on.
        #expect(fw.send(p.segment(fromClient: true, seq: 1201, ack: 5001, flags: .ack, payload: 100), outbound: true) == "pass")
    }

    @Test("a new SYN on an established connection: its challenge ACK passes, then the RST and the new SYN open afresh",
          arguments: StoreKind.available)
    func challengeACK(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        handshake(fw)
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 50), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1051, flags: .ack), outbound: false) == "pass")
        // The client restarted and opens again on the same ports.
        #expect(fw.send(p.segment(fromClient: true, seq: 90_000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1051, flags: .ack), outbound: false) == "pass",
                "the challenge ACK")
        #expect(fw.send(p.segment(fromClient: true, seq: 1051, flags: .rst), outbound: true) == "pass", "the client's RST")
        handshake(fw, client: 90_000, server: 70_000)
        #expect(fw.invalidCounts().allSatisfy { $0 == 0 }, "no invalid drops")
        #expect(fw.harness.runner.counters["firewall.connectionsOpened"] == 1, "the reopened connection reuses its entry")
    }

    @Test("a stale SYN-ACK with a wrong acknowledgement is invalid; the correct one that follows is accepted",
          arguments: StoreKind.available)
    func staleSynAck(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        #expect(fw.send(p.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 4000, ack: 77_777, flags: [.syn, .ack]), outbound: false)
                == "drop invalid/staleSynAck")
        #expect(fw.send(p.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1001, flags: .ack, payload: 10), outbound: false) == "pass")
    }

    @Test("simultaneous open: both SYNs, both SYN-ACKs, then data, all tracked", arguments: StoreKind.available)
    func simultaneousOpen(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        #expect(fw.send(p.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5000, flags: .syn), outbound: false) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1000, ack: 5001, flags: [.syn, .ack]), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 20), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: false, seq: 5001, ack: 1021, flags: .ack, payload: 20), outbound: false) == "pass")
        #expect(fw.invalidCounts().allSatisfy { $0 == 0 })
    }

    @Test("a connection picked up midway is refused by default and accepted with loose pickup", arguments: StoreKind.available)
    func loosePickup(_ kind: StoreKind) throws {
        let midway = p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 100)
        let reply = p.segment(fromClient: false, seq: 5001, ack: 1101, flags: .ack, payload: 1000)
        let strict = try FirewallRig(kind)
        #expect(strict.send(midway, outbound: true) == "drop invalid/noConnection")
        #expect(strict.send(reply, outbound: false) == "drop invalid/noConnection")
        let loose = try FirewallRig(kind, loose: true)
        #expect(loose.send(midway, outbound: true) == "pass")
        #expect(loose.send(reply, outbound: false) == "pass")
        #expect(loose.send(p.segment(fromClient: false, seq: 5001 + 300_000, flags: .rst), outbound: false)
                == "drop invalid/rstNotExact", "RSTs are still checked")
        #expect(loose.send(p.segment(fromClient: false, seq: 5001, flags: .rst), outbound: false) == "pass",
                "at what the client acknowledged")
    }

    @Test("timeouts: an unanswered SYN and an incomplete handshake get the short ones, an established connection the long one, a FIN the short one again",
          arguments: StoreKind.available)
    func tcpTimeouts(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        var q = p
        // Unanswered SYN: SYN_SENT lives 120 s.
        q.client.port = 41000
        #expect(fw.send(q.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        fw.advance(110)
        #expect(fw.send(q.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        q.client.port = 41001
        #expect(fw.send(q.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        fw.advance(130)
        #expect(fw.send(q.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false)
                == "drop invalid/noConnection", "the SYN timed out")
        // Incomplete handshake: SYN_RECV lives 60 s.
        q.client.port = 41002
        #expect(fw.send(q.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(q.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        fw.advance(70)
        #expect(fw.send(q.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack), outbound: true)
                == "drop invalid/noConnection", "the handshake timed out")
        // Complete: ESTABLISHED lives 5 days.
        q.client.port = 41003
        handshake(fw, peers: q)
        fw.advance(86_400)
        #expect(fw.send(q.segment(fromClient: false, seq: 5001, ack: 1001, flags: .ack, payload: 5), outbound: false) == "pass")
        // After a FIN: FIN_WAIT lives 120 s.
        #expect(fw.send(q.segment(fromClient: true, seq: 1001, ack: 5006, flags: [.fin, .ack]), outbound: true) == "pass")
        fw.advance(130)
        #expect(fw.send(q.segment(fromClient: false, seq: 5006, ack: 1002, flags: .ack), outbound: false)
                == "drop invalid/noConnection", "closing timed out")
    }

    @Test("configured timeouts: an idle connection behind an active one expires and is swept", arguments: StoreKind.available)
    func idleBehindActive(_ kind: StoreKind) throws {
        var timeouts = FirewallTimeouts()
        timeouts.tcpEstablished = 100
        let fw = try FirewallRig(kind, capacity: 64, timeouts: timeouts)
        var idle = p, active = p
        idle.client.port = 42000
        active.client.port = 42001
        handshake(fw, peers: idle)
        handshake(fw, peers: active)
        var swept = 0
        for step in 0..<6 {
            swept += fw.advance(50)
            #expect(fw.send(active.segment(fromClient: true, seq: 1001 + UInt32(step), ack: 5001, flags: .ack, payload: 1),
                            outbound: true) == "pass")
        }
        #expect(swept >= 1, "the idle connection was swept")
        #expect(fw.send(idle.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack), outbound: true) == "drop invalid/noConnection")
        #expect(fw.send(active.segment(fromClient: false, seq: 5001, ack: 1007, flags: .ack), outbound: false) == "pass")
    }

    func udp(_ fromClient: Bool, clientPort: UInt16 = 5000) -> [UInt8] {
        let client = IPv4Address(10, 0, 0, 1), server = IPv4Address(198, 51, 100, 53)
        let builder = fromClient ? PacketBuilder().ipv4(source: client, destination: server)
                                 : PacketBuilder().ipv4(source: server, destination: client)
        return fromClient ? builder.udp(source: clientPort, destination: 53, payload: [1])
                          : builder.udp(source: 53, destination: clientPort, payload: [2])
    }

    @Test("UDP: unreplied 30 s, replied 120 s; replies pass, unsolicited datagrams meet the policy", arguments: StoreKind.available)
    func udpTracking(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        #expect(fw.send(udp(false, clientPort: 6000), outbound: false) == "drop policy", "unsolicited")
        #expect(fw.send(udp(true), outbound: true) == "pass")
        fw.advance(35)
        #expect(fw.send(udp(false), outbound: false) == "drop policy", "unreplied: gone after 30 s")
        #expect(fw.send(udp(true, clientPort: 5001), outbound: true) == "pass")
        fw.advance(20)
        #expect(fw.send(udp(false, clientPort: 5001), outbound: false) == "pass")
        fw.advance(100)
        #expect(fw.send(udp(false, clientPort: 5001), outbound: false) == "pass", "replied: 120 s")
        fw.advance(125)
        #expect(fw.send(udp(false, clientPort: 5001), outbound: false) == "drop policy")
    }

    @Test("ICMP echo is tracked by identifier; an ICMP error about a tracked flow is related, about none invalid",
          arguments: StoreKind.available)
    func icmp(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        let host = IPv4Address(10, 0, 0, 1), remote = IPv4Address(203, 0, 113, 9)
        func echo(request: Bool, id: UInt16) -> [UInt8] {
            (request ? PacketBuilder().ipv4(source: host, destination: remote) : PacketBuilder().ipv4(source: remote, destination: host))
                .icmpEcho(request: request, identifier: id)
        }
        #expect(fw.send(echo(request: true, id: 7), outbound: true) == "pass")
        #expect(fw.send(echo(request: false, id: 7), outbound: false) == "pass")
        #expect(fw.send(echo(request: false, id: 8), outbound: false) == "drop invalid/noConnection", "another identifier")
        #expect(fw.send(PacketBuilder().ipv4(source: remote, destination: host).icmpEcho(request: true, identifier: 9),
                        outbound: false) == "drop policy", "a request from outside")
        fw.advance(35)
        #expect(fw.send(echo(request: false, id: 7), outbound: false) == "drop invalid/noConnection", "30 s later")

        // Errors: about a datagram the host sent (related), about nothing (invalid).
        #expect(fw.send(udp(true), outbound: true) == "pass")
        let sent = PacketBuilder(rawIP: true).ipv4(source: host, destination: IPv4Address(198, 51, 100, 53))
            .udp(source: 5000, destination: 53, payload: [1])
        let router = IPv4Address(192, 0, 2, 1)
        let unreachable = PacketBuilder().ipv4(source: router, destination: host).icmpError(type: 3, code: 3, quoting: sent)
        #expect(fw.send(unreachable, outbound: false) == "pass", "related")
        let other = PacketBuilder(rawIP: true).ipv4(source: host, destination: IPv4Address(198, 51, 100, 54))
            .udp(source: 5000, destination: 53, payload: [1])
        #expect(fw.send(PacketBuilder().ipv4(source: router, destination: host).icmpError(type: 3, code: 3, quoting: other),
                        outbound: false) == "drop invalid/unrelatedError")
    }

    @Test("IPv6: a TCP connection and ICMPv6 echo tracked as over IPv4", arguments: StoreKind.available)
    func ipv6(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        let client = IPv6Address("2001:db8:1::10")!, server = IPv6Address("2001:db8:2::80")!
        func tcp(_ fromClient: Bool, seq: UInt32, ack: UInt32 = 0, flags: PacketBuilder.TCPFlags, payload: Int = 0) -> [UInt8] {
            (fromClient ? PacketBuilder().ipv6(source: client, destination: server) : PacketBuilder().ipv6(source: server, destination: client))
                .tcp(source: fromClient ? 40000 : 443, destination: fromClient ? 443 : 40000, sequence: seq,
                     acknowledgement: ack, flags: flags, payload: [UInt8](repeating: 1, count: payload))
        }
        #expect(fw.send(tcp(false, seq: 1, flags: .syn), outbound: false) == "drop policy")
        #expect(fw.send(tcp(true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(tcp(false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        #expect(fw.send(tcp(true, seq: 1001, ack: 5001, flags: .ack, payload: 100), outbound: true) == "pass")
        #expect(fw.send(tcp(false, seq: 5001 + 500_000, ack: 1101, flags: .ack, payload: 10), outbound: false) == "drop invalid/beyondWindow")
        #expect(fw.send(tcp(false, seq: 5001, ack: 1101, flags: .ack, payload: 10), outbound: false) == "pass")
        #expect(fw.send(PacketBuilder().ipv6(source: client, destination: server).icmpEcho(request: true, identifier: 3), outbound: true) == "pass")
        #expect(fw.send(PacketBuilder().ipv6(source: server, destination: client).icmpEcho(request: false, identifier: 3), outbound: false) == "pass")
    }

    @Test("the table's capacity: when full, new connections are dropped and counted, tracked ones carry on",
          arguments: StoreKind.available)
    func capacity(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind, capacity: 2)
        #expect(fw.send(udp(true, clientPort: 1), outbound: true) == "pass")
        #expect(fw.send(udp(true, clientPort: 2), outbound: true) == "pass")
        #expect(fw.send(udp(true, clientPort: 3), outbound: true) == "drop tableFull")
        #expect(fw.harness.runner.counters["firewall.tableFull"] == 1)
        #expect(fw.send(udp(false, clientPort: 1), outbound: false) == "pass")
        #expect(fw.send(udp(false, clientPort: 2), outbound: false) == "pass")
        #expect(fw.send(udp(true, clientPort: 1), outbound: true) == "pass")
        // Once one expires, a new one fits.
        fw.advance(200)
        #expect(fw.send(udp(true, clientPort: 3), outbound: true) == "pass")
    }

    @Test("rules: first match wins, by direction, port and state; drops by rule and by policy are told apart",
          arguments: StoreKind.available)
    func rules(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind, rules: """
            accept state established,related
            drop in proto tcp dport 23
            accept in proto tcp to 10.0.0.0/8 dport 22,80 state new
            accept out state new
            policy in drop
            """)
        var ssh = p
        ssh.client = (IPv4Address(198, 51, 100, 7), 50000)   // the client is outside here
        ssh.server = (IPv4Address(10, 0, 0, 5), 22)
        #expect(fw.send(ssh.segment(fromClient: true, seq: 1, flags: .syn), outbound: false) == "pass")
        #expect(fw.send(ssh.segment(fromClient: false, seq: 9, ack: 2, flags: [.syn, .ack]), outbound: true) == "pass")
        ssh.server.port = 23
        #expect(fw.send(ssh.segment(fromClient: true, seq: 1, flags: .syn), outbound: false) == "drop rule")
        ssh.server.port = 25
        #expect(fw.send(ssh.segment(fromClient: true, seq: 1, flags: .syn), outbound: false) == "drop policy")
    }

    @Test("two packets of a new flow in one batch open one connection", arguments: StoreKind.available)
    func sameBatch(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        #expect(fw.send([udp(true), udp(true)], outbound: true) == ["pass", "pass"])
        #expect(fw.harness.runner.counters["firewall.connectionsOpened"] == 1)
    }

    @Test("two instances sharing the store: a connection opened through one passes its replies through the other",
          arguments: StoreKind.available)
    func asymmetricPaths(_ kind: StoreKind) throws {
        let a = try FirewallRig(kind)
        let b = try FirewallRig(kind, sharing: a)
        #expect(a.send(p.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(b.send(p.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "pass")
        #expect(a.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack, payload: 10), outbound: true) == "pass")
        #expect(b.send(p.segment(fromClient: false, seq: 5001 + 400_000, ack: 1011, flags: .ack, payload: 10), outbound: false)
                == "drop invalid/beyondWindow", "the window the other instance tracked")
        #expect(b.send(p.segment(fromClient: false, seq: 5001, ack: 1011, flags: .ack), outbound: false) == "pass")
        #expect(b.send(udp(false), outbound: false) == "drop policy")
    }
}
