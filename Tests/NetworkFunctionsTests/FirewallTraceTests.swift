import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

/// The shared captures played through the firewall (`FirewallReplay`, as
/// `statelessnf replay firewall` does), with each packet's expected verdict
/// written out: runs of frames as `FIRST-LAST DIRECTION VERDICT`.
@Suite("Firewall replay of the real captures", .enabled(if: SharedTraces.available, SharedTraces.skipNote))
struct FirewallTraceTests {
    /// An edge firewall: replies and related errors in, new connections out,
    /// neighbour discovery both ways, nothing else.
    static let rules = """
        accept state established,related
        accept proto icmpv6 type neighbor-solicitation,neighbor-advertisement,router-solicitation,router-advertisement
        accept out state new
        policy in drop
        policy out drop
        """

    static func replay(_ trace: String, internal prefixes: [String], rules: String = rules, loose: Bool = false,
                       timeouts: FirewallTimeouts = FirewallTimeouts(), capacity: Int = 1 << 16, on kind: StoreKind = .embedded,
                       before: [(frame: [UInt8], linkType: LinkType)] = []) throws -> FirewallReplay {
        var config = FirewallConfig()
        config.namespace = "fw-replay-\(UUID())"
        config.internal = prefixes
        config.loosePickup = loose
        config.timeouts = timeouts
        config.capacity = capacity
        config.insidePort = 1
        config.outsidePort = 2
        let firewall = Firewall(try config.resolved(ruleSet: try FirewallRuleSet.parse(rules)))
        let replay = try FirewallReplay(firewall: firewall, session: try kind.make().makeSession(for: firewall.state.schema))
        let reader = try CaptureReader(path: SharedTraces.path(trace))
        var first = true
        while let record = try reader.next() {
            if first {
                for (frame, linkType) in before { _ = replay.play(frame, at: record.timestamp, linkType: linkType) }
                first = false
            }
            _ = replay.play(Array(record.bytes), at: record.timestamp, linkType: record.linkType.packetLinkType)
        }
        return replay
    }

    /// The verdicts as runs: `1-3 out pass`, `4 in drop invalid/beyondWindow`.
    static func runs(_ verdicts: [FirewallReplay.Verdict], dropsOnly: Bool = false) -> [String] {
        var runs: [(first: Int, last: Int, text: String)] = []
        for verdict in verdicts where !(dropsOnly && verdict.passed) {
            let text = "\(verdict.direction ?? "-") \(verdict.passed ? "pass" : "drop \(verdict.reason ?? "?")")"
            if let last = runs.last, last.text == text, last.last == verdict.frame - 1 {
                runs[runs.count - 1].last = verdict.frame
            } else {
                runs.append((verdict.frame, verdict.frame, text))
            }
        }
        return runs.map { $0.first == $0.last ? "\($0.first) \($0.text)" : "\($0.first)-\($0.last) \($0.text)" }
    }

    /// Checks a replay's drops (every frame not listed passed) and how many passed.
    static func expect(_ replay: FirewallReplay, drops: [String], passed: Int, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(runs(replay.verdicts, dropsOnly: true) == drops, sourceLocation: sourceLocation)
        #expect(replay.verdicts.filter(\.passed).count == passed, sourceLocation: sourceLocation)
    }

    @Test("handshake reordering: the SYN-ACK seen before its SYN is invalid; the client's ACKs then come before the handshake completed")
    func handshakeReorder() throws {
        let replay = try Self.replay("zeek/tcp-handshake-reorder.pcap", internal: ["141.142.0.0/16"])
        // The SYN opens the connection; the server's later segments are
        // ignored by tracking (a half-open connection) and pass as its
        // replies; the client's segments, with no SYN-ACK seen, are invalid.
        #expect(Self.runs(replay.verdicts) == [
            "1 in drop invalid/noConnection", "2 out pass", "3-4 out drop invalid/dataBeforeHandshake", "5-9 in pass",
            "10-12 out drop invalid/dataBeforeHandshake", "13 in pass", "14 out drop invalid/dataBeforeHandshake",
        ])
    }

    @Test("FIN retransmission: a FIN before the SYN-ACK is invalid; the FIN-ACK and the server's RST after it pass")
    func finRetransmission() throws {
        let replay = try Self.replay("zeek/tcp-fin-retransmission.pcap", internal: ["10.0.0.0/8"])
        #expect(Self.runs(replay.verdicts) == [
            "1 out pass", "2 out drop invalid/dataBeforeHandshake", "3 in pass", "4 out pass", "5 in pass",
        ])
    }

    @Test("missing SYN: refused by default; picked up with loose pickup, windows checked liberally")
    func missingSYN() throws {
        let strict = try Self.replay("zeek/tcp-missing-syn.pcap", internal: ["141.42.0.0/16"])
        #expect(strict.verdicts.allSatisfy { $0.reason == "invalid/noConnection" }, "\(Self.runs(strict.verdicts))")
        #expect(strict.report.connectionsOpened == 0)
        let loose = try Self.replay("zeek/tcp-missing-syn.pcap", internal: ["141.42.0.0/16"], loose: true)
        // The SYN-ACK cannot start a connection even loosely; the client's ACK does.
        Self.expect(loose, drops: ["1 in drop invalid/noConnection"], passed: 20)
        #expect(loose.report.connectionsOpened == 1)
    }

    @Test("split handshake (SYN, ACK, SYN, SYN-ACK, ACK): tracked through SYN_SENT2, data and RST pass")
    func splitHandshake() throws {
        let replay = try Self.replay("suricata-verify/tcp-split-handshake-5whs.pcap", internal: ["1.1.1.1/32"])
        Self.expect(replay, drops: [], passed: 8)
    }

    @Test("out of window: data 100,000 bytes beyond the window is dropped, even under rules that accept the port")
    func outOfWindow() throws {
        let edge = try Self.replay("suricata-verify/tcp-out-of-window.pcap", internal: ["192.0.2.0/24"])
        #expect(Self.runs(edge.verdicts) == ["1 out pass", "2 in pass", "3 out drop invalid/beyondWindow"])
        let open = try Self.replay("suricata-verify/tcp-out-of-window.pcap", internal: ["192.0.2.0/24"], rules: """
            accept proto tcp dport 80
            accept proto tcp sport 80
            policy out accept
            """)
        #expect(Self.runs(open.verdicts) == ["1 out pass", "2 in pass", "3 out drop invalid/beyondWindow"])
    }

    /// The UDP datagram an ICMP error in `trace` quotes, rebuilt whole.
    static func quotedDatagram(_ trace: String) throws -> (frame: [UInt8], linkType: LinkType) {
        let record = try #require(try CaptureReader(path: SharedTraces.path(trace)).next())
        #expect(record.linkType.packetLinkType == .ethernet)
        let packet = TestFrame(Array(record.bytes))
        let source = try #require(packet.quotedAddress(.source)), destination = try #require(packet.quotedAddress(.destination))
        let builder = source.isIPv4 ? PacketBuilder().ipv4(source: source.ipv4!, destination: destination.ipv4!)
                                    : PacketBuilder().ipv6(source: source.ipv6, destination: destination.ipv6)
        return (builder.udp(source: try #require(packet.quotedPort(.source)),
                            destination: try #require(packet.quotedPort(.destination)), payload: [1, 2, 3]), .ethernet)
    }

    @Test("ICMP errors (IPv4 port unreachable, ICMPv6 packet too big): unrelated alone, related after the datagram they quote")
    func icmpErrors() throws {
        for (trace, inside) in [("zeek/icmp-destunreach-udp.pcap", "192.168.1.1/32"), ("zeek/icmp6-packet-too-big.pcap", "fe80::beef/128")] {
            let alone = try Self.replay(trace, internal: [inside])
            #expect(Self.runs(alone.verdicts) == ["1 in drop invalid/unrelatedError"], "\(trace)")
            let after = try Self.replay(trace, internal: [inside], before: [try Self.quotedDatagram(trace)])
            #expect(Self.runs(after.verdicts) == ["1 out pass", "2 in pass"], "\(trace): the quoted datagram out, its error in")
        }
    }

    @Test("ICMPv6: neighbour discovery passes by its rule, echo both ways, errors about untracked traffic are invalid")
    func icmpv6Mixed() throws {
        let replay = try Self.replay("zeek/icmp6-mixed.pcap", internal: ["3ffe:507::/32"])
        Self.expect(replay, drops: [
            "11-13 out drop invalid/unrelatedError", "14-22 in drop invalid/unrelatedError", "35 out drop invalid/unrelatedError",
        ], passed: 36)
    }

    @Test("IPv6 web traffic caught midway: refused strictly except new connections; all of it passes with loose pickup")
    func ipv6Midstream() throws {
        let strict = try Self.replay("nDPI/http-ipv6.pcap", internal: ["2a00:d40::/32"])
        #expect(strict.verdicts.filter { !$0.passed }.allSatisfy { $0.reason == "invalid/noConnection" })
        #expect(Self.runs(strict.verdicts, dropsOnly: true).prefix(4) == [
            "1 out drop invalid/noConnection", "2 in drop invalid/noConnection", "3-4 out drop invalid/noConnection",
            "6-8 in drop invalid/noConnection",
        ])
        let loose = try Self.replay("nDPI/http-ipv6.pcap", internal: ["2a00:d40::/32"], loose: true)
        Self.expect(loose, drops: [], passed: loose.verdicts.count)
        #expect(loose.verdicts.count == loose.report.packets)
    }

    @Test("IPv6 atomic fragments: tracked like whole packets; a reordered handshake as with IPv4")
    func ipv6AtomicFragments() throws {
        let replay = try Self.replay("zeek/ipv6-http-atomic-frag.pcap", internal: ["2001:db8:1::2/128"])
        Self.expect(replay, drops: [
            "3 in drop invalid/noConnection", "5 out drop invalid/dataBeforeHandshake", "8 out drop invalid/dataBeforeHandshake",
            "10-11 out drop invalid/dataBeforeHandshake",
        ], passed: 33)
    }

    @Test("fragments follow their first: IPv4 and IPv6 datagrams in pieces, a SYN in two fragments, a malformed-fragment attack")
    func fragments() throws {
        Self.expect(try Self.replay("PcapPlusPlus/ip4-fragments.pcap", internal: ["10.118.213.212/32"]), drops: [], passed: 53)
        Self.expect(try Self.replay("PcapPlusPlus/ip6-fragments.pcap", internal: ["fe80::/10"]), drops: [], passed: 36)
        Self.expect(try Self.replay("zeek/fragmented-syn.pcap", internal: ["192.168.1.0/24"]), drops: [], passed: 2)
        // An inbound echo request in 54 fragments: the first is dropped by
        // policy, so every later one is dropped too.
        Self.expect(try Self.replay("suricata-verify/ipv6-malformed-frags-15.pcap", internal: ["fe80::/10"]), drops: [
            "1 in drop policy", "2 in drop invalid/noConnection", "6 in drop policy", "7-59 in drop fragmentWithoutFirst",
            "60 in drop invalid/unrelatedError", "61 in drop policy", "62 in drop invalid/noConnection",
        ], passed: 5)
    }

    @Test("VLANs: a fragmented IPv6 segment in 802.1Q, and ICMP echo in QinQ; tags kept on what passes")
    func vlans() throws {
        let strict = try Self.replay("suricata-verify/frag-vlan-ipv6-tcp.pcap", internal: ["::1/128"])
        #expect(Self.runs(strict.verdicts) == ["1 out drop invalid/noConnection", "2-3 out drop fragmentWithoutFirst"])
        Self.expect(try Self.replay("suricata-verify/frag-vlan-ipv6-tcp.pcap", internal: ["::1/128"], loose: true),
                    drops: [], passed: 3)
        let qinq = try Self.replay("PcapPlusPlus/vlan-qinq-icmp.pcap", internal: ["10.118.10.1/32"])
        // Echo from the inside host and its replies pass; from another host,
        // the requests meet the inbound policy and the replies are invalid; CDP is not IP.
        #expect(Self.runs(qinq.verdicts).count == 21)
        Self.expect(qinq, drops: [
            "11 in drop policy", "12 in drop invalid/noConnection", "13 in drop policy", "14 in drop invalid/noConnection",
            "15 in drop policy", "16 in drop invalid/noConnection", "17 in drop policy", "18 in drop invalid/noConnection",
            "19 in drop policy", "20 in drop invalid/noConnection", "21-26 - drop notIP",
        ], passed: 10)
    }

    @Test("an idle TCP connection behind an active ICMP echo flow still expires")
    func idleBehindActive() throws {
        var timeouts = FirewallTimeouts()
        timeouts.tcpEstablished = 10
        // A small table, so that the replay's bounded sweeps walk all of it.
        let replay = try Self.replay("zeek/tcp-timeout-with-pings.pcap", internal: ["192.168.1.10/32"], timeouts: timeouts,
                                     capacity: 64)
        Self.expect(replay, drops: [], passed: 15)
        #expect(replay.report.entriesExpired >= 1, "the TCP connection, idle for 30 s, was swept")
        let late = PacketBuilder().ipv4(source: IPv4Address(192, 168, 1, 10), destination: IPv4Address(192, 168, 1, 20))
            .tcp(source: 12345, destination: 80, sequence: 1, acknowledgement: 1, flags: .ack)
        let last = replay.verdicts.count
        _ = replay.play(late, at: Timestamp(nanoseconds: Int64.max / 2), linkType: .ethernet)
        #expect(replay.verdicts[last].reason == "invalid/noConnection")
    }

    @Test("Redis gives the same verdicts as the embedded store", .enabled(if: RedisServer.executable != nil, RedisServer.skipNote),
          arguments: SharedTraces.all)
    func sameOnRedis(trace: String) throws {
        let embedded = try Self.replay(trace, internal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"])
        let redis = try Self.replay(trace, internal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"], on: .redis)
        #expect(embedded.verdicts == redis.verdicts, "\(trace)")
        #expect(embedded.report.connectionsOpened == redis.report.connectionsOpened)
    }
}
