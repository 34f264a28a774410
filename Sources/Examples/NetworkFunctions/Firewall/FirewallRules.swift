import StatelessKit

/// A connection's state as a rule sees it (nftables' `ct state`).
public enum ConnectionState: String, Sendable, CaseIterable {
    /// The first packet of a connection the firewall has not seen.
    case new
    /// A packet of a tracked connection.
    case established
    /// An ICMP error about a tracked connection.
    case related
    /// A packet that fits no connection's state (out of window, a stray RST...).
    case invalid
}

/// Which way a packet crosses the firewall.
public enum FirewallDirection: String, Sendable {
    /// From the outside in.
    case inbound = "in"
    /// From the inside out.
    case outbound = "out"
}

/// What a rule does with a packet.
public enum FirewallAction: String, Sendable {
    case accept, drop
}

/// One rule: every match it has must hold; the first rule that matches
/// decides.
public struct FirewallRule: Sendable, Equatable {
    /// What it does.
    public var action: FirewallAction
    /// The direction it applies to, if any.
    public var direction: FirewallDirection? = nil
    /// The input port it applies to, if any.
    public var inputPort: UInt16? = nil
    /// Source prefixes (any of them), if any.
    public var sources: [IPPrefix] = []
    /// Destination prefixes, if any.
    public var destinations: [IPPrefix] = []
    /// The IP protocol, if any.
    public var ipProtocol: UInt8? = nil
    /// Source port ranges, if any.
    public var sourcePorts: [ClosedRange<UInt16>] = []
    /// Destination port ranges, if any.
    public var destinationPorts: [ClosedRange<UInt16>] = []
    /// ICMP or ICMPv6 types, if any.
    public var icmpTypes: [UInt8] = []
    /// Connection states (any of them); none means new, established or
    /// related: a rule must name `invalid` to match invalid packets.
    public var states: [ConnectionState] = []
    /// The line it came from.
    public var line: Int = 0
}

/// What rules look at in a packet.
public struct PacketFacts: Sendable {
    /// Which way the packet crosses.
    public var direction: FirewallDirection
    /// The port it arrived on.
    public var inputPort: UInt16
    /// Its source address.
    public var source: IPAddress
    /// Its destination address.
    public var destination: IPAddress
    /// Its IP protocol.
    public var ipProtocol: UInt8
    /// Its TCP or UDP source port, if it has ports.
    public var sourcePort: UInt16?
    /// Its destination port, if it has ports.
    public var destinationPort: UInt16?
    /// Its ICMP or ICMPv6 type, if it is ICMP.
    public var icmpType: UInt8?
    /// Its connection state.
    public var state: ConnectionState

    /// The facts of a packet.
    public init(direction: FirewallDirection, inputPort: UInt16 = 0, source: IPAddress, destination: IPAddress,
                ipProtocol: UInt8, sourcePort: UInt16? = nil, destinationPort: UInt16? = nil, icmpType: UInt8? = nil,
                state: ConnectionState) {
        self.direction = direction
        self.inputPort = inputPort
        self.source = source
        self.destination = destination
        self.ipProtocol = ipProtocol
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.icmpType = icmpType
        self.state = state
    }
}

/// An ordered rule list and a default policy per direction.
public struct FirewallRuleSet: Sendable, Equatable {
    /// The rules, in order.
    public var rules: [FirewallRule] = []
    /// What happens to an inbound packet no rule matches.
    public var inboundPolicy = FirewallAction.drop
    /// What happens to an outbound packet no rule matches.
    public var outboundPolicy = FirewallAction.accept

    /// No rules: inbound dropped, outbound accepted.
    public init() {}

    /// The first matching rule's action (and its line), or the direction's
    /// policy (line 0). For tools and tests: the firewall compiles its rules
    /// once (``CompiledRules``) and decides with them.
    public func decide(_ facts: PacketFacts) -> (FirewallAction, line: Int) {
        CompiledRules(self).decide(facts)
    }

    /// Parses a rule file (Documentation/Firewall.md has the syntax); an
    /// error names the file, the line, and what was expected.
    public static func parse(_ text: String, file: String = "rules") throws(RuleSyntaxError) -> FirewallRuleSet {
        var set = FirewallRuleSet()
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = index + 1
            let content = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            var words = content.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).map(String.init)[...]
            guard let first = words.popFirst() else { continue }
            func fail(_ message: String) -> RuleSyntaxError { RuleSyntaxError(file: file, line: line, message: message) }
            if first == "policy" {
                guard let way = words.popFirst(), let direction = FirewallDirection(rawValue: way) else {
                    throw fail("expected 'in' or 'out' after 'policy'")
                }
                guard let what = words.popFirst(), let action = FirewallAction(rawValue: what) else {
                    throw fail("expected 'accept' or 'drop' after 'policy \(way)'")
                }
                guard words.isEmpty else { throw fail("unexpected '\(words.first!)' after the policy") }
                if direction == .inbound { set.inboundPolicy = action } else { set.outboundPolicy = action }
                continue
            }
            guard let action = FirewallAction(rawValue: first) else {
                throw fail("expected 'accept', 'drop' or 'policy', found '\(first)'")
            }
            var rule = FirewallRule(action: action, line: line)
            var typeNames: [Substring] = []
            while let word = words.popFirst() {
                func value(_ what: String) throws(RuleSyntaxError) -> String {
                    guard let next = words.popFirst() else { throw fail("expected \(what) after '\(word)'") }
                    return next
                }
                func list(_ what: String) throws(RuleSyntaxError) -> [Substring] {
                    try value(what).split(separator: ",", omittingEmptySubsequences: false)
                }
                switch word {
                case "in": rule.direction = .inbound
                case "out": rule.direction = .outbound
                case "iport":
                    guard let port = UInt16(try value("an input port number")) else { throw fail("expected an input port number after 'iport'") }
                    rule.inputPort = port
                case "from", "to":
                    var prefixes: [IPPrefix] = []
                    for text in try list("a prefix (10.0.0.0/8, 2001:db8::/32 or an address)") {
                        // A bare address is a prefix of one address.
                        guard let prefix = IPPrefix(text) ?? IPPrefix(text.contains(":") ? "\(text)/128" : "\(text)/32") else {
                            throw fail("expected a prefix after '\(word)', found '\(text)'")
                        }
                        prefixes.append(prefix)
                    }
                    if word == "from" { rule.sources = prefixes } else { rule.destinations = prefixes }
                case "proto":
                    let name = try value("a protocol (tcp, udp, icmp, icmpv6 or a number)")
                    guard let number = ["tcp": IPProtocol.tcp, "udp": IPProtocol.udp, "icmp": IPProtocol.icmp,
                                        "icmpv6": IPProtocol.icmpv6][name] ?? UInt8(name) else {
                        throw fail("expected a protocol (tcp, udp, icmp, icmpv6 or a number) after 'proto', found '\(name)'")
                    }
                    rule.ipProtocol = number
                case "sport", "dport", "port":
                    var ranges: [ClosedRange<UInt16>] = []
                    for text in try list("ports (22, 80,443 or 1024-65535)") {
                        let bounds = text.split(separator: "-", omittingEmptySubsequences: false).map { UInt16($0) }
                        guard (1...2).contains(bounds.count), let low = bounds[0], let high = bounds.last!, low <= high else {
                            throw fail("expected ports (22, 80,443 or 1024-65535) after '\(word)', found '\(text)'")
                        }
                        ranges.append(low...high)
                    }
                    if word == "sport" { rule.sourcePorts = ranges } else { rule.destinationPorts = ranges }
                case "type":
                    typeNames += try list("an ICMP type (echo-request, echo-reply, destination-unreachable, time-exceeded or a number)")
                case "state":
                    for text in try list("states (new, established, related, invalid)") {
                        guard let state = ConnectionState(rawValue: String(text)) else {
                            throw fail("expected a state (new, established, related, invalid) after 'state', found '\(text)'")
                        }
                        rule.states.append(state)
                    }
                default:
                    throw fail("expected in, out, iport, from, to, proto, sport, dport, type or state, found '\(word)'")
                }
            }
            if (!rule.sourcePorts.isEmpty || !rule.destinationPorts.isEmpty),
               rule.ipProtocol != IPProtocol.tcp && rule.ipProtocol != IPProtocol.udp {
                throw fail("ports need 'proto tcp' or 'proto udp' in the same rule")
            }
            if !typeNames.isEmpty {
                guard rule.ipProtocol == IPProtocol.icmp || rule.ipProtocol == IPProtocol.icmpv6 else {
                    throw fail("'type' needs 'proto icmp' or 'proto icmpv6' in the same rule")
                }
                let names = rule.ipProtocol == IPProtocol.icmp ? Self.icmpTypes : Self.icmpv6Types
                for text in typeNames {
                    guard let type = names[String(text)] ?? UInt8(text) else {
                        throw fail("expected an ICMP type (\(names.keys.sorted().joined(separator: ", ")) or a number) after 'type', found '\(text)'")
                    }
                    rule.icmpTypes.append(type)
                }
            }
            set.rules.append(rule)
        }
        return set
    }

    static let icmpTypes: [String: UInt8] = [
        "echo-reply": 0, "destination-unreachable": 3, "echo-request": 8, "time-exceeded": 11,
        "parameter-problem": 12,
    ]
    static let icmpv6Types: [String: UInt8] = [
        "destination-unreachable": 1, "packet-too-big": 2, "time-exceeded": 3, "parameter-problem": 4,
        "echo-request": 128, "echo-reply": 129, "router-solicitation": 133, "router-advertisement": 134,
        "neighbor-solicitation": 135, "neighbor-advertisement": 136,
    ]
}

/// A rule file that cannot be read: where, and what was expected.
public struct RuleSyntaxError: Error, CustomStringConvertible, Sendable {
    /// The rule file's name.
    public let file: String
    /// The line, from 1.
    public let line: Int
    /// What was expected there.
    public let message: String

    public var description: String { "\(file):\(line): \(message)" }
}
