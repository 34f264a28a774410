import Foundation
import StatelessKit

/// How long tracked connections live without traffic, in seconds: Linux's
/// conntrack defaults, each configurable.
public struct FirewallTimeouts: Codable, Sendable, Equatable {
    /// TCP, a SYN sent and not answered (`nf_conntrack_tcp_timeout_syn_sent`).
    public var tcpSynSent: Double = 120
    /// TCP, the SYN answered, the handshake not complete.
    public var tcpSynReceived: Double = 60
    /// TCP, the handshake complete: 5 days.
    public var tcpEstablished: Double = 432_000
    /// TCP, a FIN sent.
    public var tcpFinWait: Double = 120
    /// TCP, the FIN acknowledged, the other side still open.
    public var tcpCloseWait: Double = 60
    /// TCP, a FIN both ways, the last not acknowledged.
    public var tcpLastAck: Double = 30
    /// TCP, closed both ways.
    public var tcpTimeWait: Double = 120
    /// TCP, reset.
    public var tcpClose: Double = 10
    /// UDP, traffic one way only.
    public var udpUnreplied: Double = 30
    /// UDP, traffic both ways (`nf_conntrack_udp_timeout_stream`).
    public var udpReplied: Double = 120
    /// ICMP and ICMPv6 echo.
    public var icmp: Double = 30
    /// Other protocols (GRE, ESP, SCTP, ...).
    public var other: Double = 600
    /// The entry that lets a datagram's later fragments follow its first.
    public var fragment: Double = 30

    /// Linux's defaults.
    public init() {}

    /// The timeout of a TCP connection in `state`.
    public func tcp(_ state: TCPTracker.State) -> Double {
        switch state {
        case .synSent, .synSent2: tcpSynSent
        case .synReceived: tcpSynReceived
        case .established: tcpEstablished
        case .finWait: tcpFinWait
        case .closeWait: tcpCloseWait
        case .lastAck: tcpLastAck
        case .timeWait: tcpTimeWait
        case .close, .none: tcpClose
        }
    }

    /// The timeouts by the names the config file uses.
    var named: [(String, Double)] {
        [("tcpSynSent", tcpSynSent), ("tcpSynReceived", tcpSynReceived), ("tcpEstablished", tcpEstablished),
         ("tcpFinWait", tcpFinWait), ("tcpCloseWait", tcpCloseWait), ("tcpLastAck", tcpLastAck),
         ("tcpTimeWait", tcpTimeWait), ("tcpClose", tcpClose), ("udpUnreplied", udpUnreplied),
         ("udpReplied", udpReplied), ("icmp", icmp), ("other", other), ("fragment", fragment)]
    }

    enum CodingKeys: String, CodingKey {
        case tcpSynSent, tcpSynReceived, tcpEstablished, tcpFinWait, tcpCloseWait, tcpLastAck, tcpTimeWait, tcpClose
        case udpUnreplied, udpReplied, icmp, other, fragment
    }

    /// Decodes timeouts; absent ones keep Linux's defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value(_ key: CodingKeys, _ fallback: Double) throws -> Double {
            try c.decodeIfPresent(Double.self, forKey: key) ?? fallback
        }
        tcpSynSent = try value(.tcpSynSent, tcpSynSent)
        tcpSynReceived = try value(.tcpSynReceived, tcpSynReceived)
        tcpEstablished = try value(.tcpEstablished, tcpEstablished)
        tcpFinWait = try value(.tcpFinWait, tcpFinWait)
        tcpCloseWait = try value(.tcpCloseWait, tcpCloseWait)
        tcpLastAck = try value(.tcpLastAck, tcpLastAck)
        tcpTimeWait = try value(.tcpTimeWait, tcpTimeWait)
        tcpClose = try value(.tcpClose, tcpClose)
        udpUnreplied = try value(.udpUnreplied, udpUnreplied)
        udpReplied = try value(.udpReplied, udpReplied)
        icmp = try value(.icmp, icmp)
        other = try value(.other, other)
        fragment = try value(.fragment, fragment)
    }
}

/// A stateful firewall's configuration, from flags or a YAML or JSON file.
///
/// ```yaml
/// rules: /etc/statelessnf/firewall.rules
/// internal: [10.0.0.0/8, 2001:db8:1::/48]
/// loosePickup: false
/// timeouts: { tcpEstablished: 86400, udpReplied: 180 }
/// capacity: 1000000
/// ```
public struct FirewallConfig: Codable, Sendable, Equatable {
    /// The rule file (Documentation/Firewall.md has its syntax).
    public var rules: String = ""
    /// Prefixes whose hosts are inside, IPv4 or IPv6 (by default the
    /// RFC 1918 ranges and fc00::/7). With one port, a packet from one of
    /// them is outbound; with two, the port a packet arrives on decides.
    public var `internal`: [String] = IPPrefix.privateIPv4.map(\.description) + ["fc00::/7"]
    /// Whether a TCP connection seen first midway (no SYN) is picked up
    /// (Linux's `nf_conntrack_tcp_loose`); off by default: such a packet is
    /// invalid.
    public var loosePickup: Bool = false
    /// Idle timeouts.
    public var timeouts = FirewallTimeouts()
    /// The most connections tracked at once; when full, new connections are
    /// dropped (and counted) and tracked ones carry on.
    public var capacity: Int = 1 << 20
    /// The port facing the inside when the firewall has two; `nil` with one.
    public var insidePort: UInt16? = nil
    /// The port facing the outside when the firewall has two (or the only port).
    public var outsidePort: UInt16 = 0
    /// The deployment's name in the store.
    public var namespace: String = "fw"

    /// The defaults (a rule file must still be given).
    public init() {}

    enum CodingKeys: String, CodingKey {
        case rules, `internal`, loosePickup, timeouts, capacity, insidePort, outsidePort, namespace
    }

    /// Decodes a configuration; absent fields keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let defaults = FirewallConfig()
        rules = try c.decodeIfPresent(String.self, forKey: .rules) ?? ""
        `internal` = try c.decodeIfPresent([String].self, forKey: .internal) ?? defaults.internal
        loosePickup = try c.decodeIfPresent(Bool.self, forKey: .loosePickup) ?? false
        timeouts = try c.decodeIfPresent(FirewallTimeouts.self, forKey: .timeouts) ?? defaults.timeouts
        capacity = try c.decodeIfPresent(Int.self, forKey: .capacity) ?? defaults.capacity
        insidePort = try c.decodeIfPresent(UInt16.self, forKey: .insidePort)
        outsidePort = try c.decodeIfPresent(UInt16.self, forKey: .outsidePort) ?? 0
        namespace = try c.decodeIfPresent(String.self, forKey: .namespace) ?? defaults.namespace
    }

    /// The configuration checked, with its rule file read and parsed (or
    /// `ruleSet`, when given, instead of the file); the first problem found
    /// names its field, or the rule file's line.
    public func resolved(ruleSet: FirewallRuleSet? = nil) throws -> ResolvedFirewallConfig {
        let parsedRules: FirewallRuleSet
        if let ruleSet {
            parsedRules = ruleSet
        } else {
            guard !rules.isEmpty else { throw ConfigError(field: "rules", "give a rule file (--rules FILE)") }
            guard let text = try? String(contentsOfFile: rules, encoding: .utf8) else {
                throw ConfigError(field: "rules", "cannot read \(rules)")
            }
            parsedRules = try FirewallRuleSet.parse(text, file: rules)
        }
        var prefixes: [IPPrefix] = []
        for text in `internal` {
            guard let prefix = IPPrefix(text) else {
                throw ConfigError(field: "internal", "\"\(text)\" is not a prefix such as 10.0.0.0/8 or fc00::/7")
            }
            prefixes.append(prefix)
        }
        try ConfigChecks.timeouts(timeouts.named)
        guard capacity > 0 else { throw ConfigError(field: "capacity", "must be above zero") }
        if let insidePort, insidePort == outsidePort {
            throw ConfigError(field: "insidePort", "the inside and outside ports must differ")
        }
        try ConfigChecks.namespace(namespace)
        return ResolvedFirewallConfig(rules: parsedRules, internalPrefixes: prefixes, loosePickup: loosePickup,
                                      timeouts: timeouts, capacity: capacity, insidePort: insidePort,
                                      outsidePort: outsidePort, namespace: namespace)
    }
}

/// A checked firewall configuration.
public struct ResolvedFirewallConfig: Sendable {
    /// The rules and policies.
    public let rules: FirewallRuleSet
    /// The inside prefixes.
    public let internalPrefixes: [IPPrefix]
    /// Whether connections seen first midway are picked up.
    public let loosePickup: Bool
    /// Idle timeouts.
    public let timeouts: FirewallTimeouts
    /// The most connections at once.
    public let capacity: Int
    /// The inside port with two ports; `nil` with one.
    public let insidePort: UInt16?
    /// The outside (or only) port.
    public let outsidePort: UInt16
    /// The deployment's name in the store.
    public let namespace: String
}
