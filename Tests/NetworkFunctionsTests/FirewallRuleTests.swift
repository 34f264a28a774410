import NetworkFunctions
import StatelessKit
import Testing

@Suite("Firewall rule files")
struct FirewallRuleTests {
    static let example = """
        # The web server takes new connections; replies and related errors pass.
        policy in drop
        policy out accept
        accept in proto tcp to 10.0.0.5 dport 22,80,443 state new
        accept state established,related
        accept in proto icmp type echo-request state new
        accept in proto udp from 192.0.2.0/24,2001:db8::/32 sport 53 dport 1024-65535
        drop out to 198.51.100.0/24        # nothing to that network
        drop state invalid
        """

    func facts(_ direction: FirewallDirection = .inbound, from source: String = "203.0.113.9", to destination: String = "10.0.0.5",
               proto: UInt8 = IPProtocol.tcp, sport: UInt16? = 40000, dport: UInt16? = 80, type: UInt8? = nil,
               state: ConnectionState = .new) -> PacketFacts {
        PacketFacts(direction: direction, source: IPAddress(source)!, destination: IPAddress(destination)!, ipProtocol: proto,
                    sourcePort: sport, destinationPort: dport, icmpType: type, state: state)
    }

    @Test("first match wins; each direction falls to its policy")
    func decisions() throws {
        let rules = try FirewallRuleSet.parse(Self.example, file: "web.rules")
        #expect(rules.rules.count == 6 && rules.inboundPolicy == .drop && rules.outboundPolicy == .accept)
        #expect(rules.decide(facts()) == (.accept, 4))
        #expect(rules.decide(facts(dport: 8080)).0 == .drop, "no rule: the inbound policy")
        #expect(rules.decide(facts(dport: 8080, state: .established)) == (.accept, 5))
        #expect(rules.decide(facts(to: "10.0.0.6")).line == 0)
        #expect(rules.decide(facts(proto: IPProtocol.icmp, sport: nil, dport: nil, type: 8)) == (.accept, 6))
        #expect(rules.decide(facts(proto: IPProtocol.icmp, sport: nil, dport: nil, type: 0)).0 == .drop)
        #expect(rules.decide(facts(from: "2001:db8::53", to: "2001:db8:1::5", proto: IPProtocol.udp, sport: 53, dport: 5353))
                == (.accept, 7))
        #expect(rules.decide(facts(from: "192.0.2.1", proto: IPProtocol.udp, sport: 53, dport: 80)).0 == .drop,
                "80 lies outside 1024-65535")
        #expect(rules.decide(facts(.outbound, from: "10.0.0.5", to: "198.51.100.1")) == (.drop, 8))
        #expect(rules.decide(facts(.outbound, from: "10.0.0.5", to: "8.8.8.8")) == (.accept, 0))
        #expect(rules.decide(facts(.outbound, from: "10.0.0.5", to: "8.8.8.8", state: .invalid)) == (.drop, 9))
    }

    @Test("a syntax error names the file, the line and what was expected")
    func syntaxErrors() {
        func problem(_ text: String) -> String {
            do {
                _ = try FirewallRuleSet.parse(text, file: "fw.rules")
                return "accepted"
            } catch {
                return error.description
            }
        }
        #expect(problem("accept\n\nallow in") == "fw.rules:3: expected 'accept', 'drop' or 'policy', found 'allow'")
        #expect(problem("policy sideways drop") == "fw.rules:1: expected 'in' or 'out' after 'policy'")
        #expect(problem("policy in maybe") == "fw.rules:1: expected 'accept' or 'drop' after 'policy in'")
        #expect(problem("accept from 10.0.0.0/33") == "fw.rules:1: expected a prefix after 'from', found '10.0.0.0/33'")
        #expect(problem("accept proto tcp dport 80-20") == "fw.rules:1: expected ports (22, 80,443 or 1024-65535) after 'dport', found '80-20'")
        #expect(problem("accept dport 80") == "fw.rules:1: ports need 'proto tcp' or 'proto udp' in the same rule")
        #expect(problem("accept state new,sideways") == "fw.rules:1: expected a state (new, established, related, invalid) after 'state', found 'sideways'")
        #expect(problem("accept proto") == "fw.rules:1: expected a protocol (tcp, udp, icmp, icmpv6 or a number) after 'proto'")
        #expect(problem("drop in colour red") == "fw.rules:1: expected in, out, iport, from, to, proto, sport, dport, type or state, found 'colour'")
        #expect(problem("accept type echo-request") == "fw.rules:1: 'type' needs 'proto icmp' or 'proto icmpv6' in the same rule")
        #expect(problem("# only a comment\n\n") == "accepted")
    }
}
