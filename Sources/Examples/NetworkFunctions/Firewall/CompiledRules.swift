import StatelessKit

/// A rule set laid out for matching per packet: each rule's matches as
/// plain values and ranges into flat buffers of prefixes, ports and ICMP
/// types, so that deciding a packet copies nothing and counts no references.
public final class CompiledRules: @unchecked Sendable {
    struct Rule {
        var action: FirewallAction
        var direction: FirewallDirection?
        var inputPort: UInt16?
        var ipProtocol: UInt8?
        /// Bits of the states matched (``CompiledRules/bit(_:)``).
        var states: UInt8
        var sources: Range<Int>, destinations: Range<Int>
        var sourcePorts: Range<Int>, destinationPorts: Range<Int>
        var icmpTypes: Range<Int>
        var line: Int
    }

    let rules: UnsafeMutableBufferPointer<Rule>
    let prefixes: UnsafeMutableBufferPointer<IPPrefix>
    let ports: UnsafeMutableBufferPointer<ClosedRange<UInt16>>
    let types: UnsafeMutableBufferPointer<UInt8>
    let inboundPolicy: FirewallAction
    let outboundPolicy: FirewallAction

    /// `set`, laid out.
    public init(_ set: FirewallRuleSet) {
        var prefixList: [IPPrefix] = [], portList: [ClosedRange<UInt16>] = [], typeList: [UInt8] = []
        func place<T>(_ items: [T], in list: inout [T]) -> Range<Int> {
            list += items
            return (list.count - items.count)..<list.count
        }
        let laidOut = set.rules.map { rule in
            Rule(action: rule.action, direction: rule.direction, inputPort: rule.inputPort, ipProtocol: rule.ipProtocol,
                 // A rule that names no state matches every state but invalid.
                 states: rule.states.isEmpty ? ~Self.bit(.invalid) : rule.states.reduce(0) { $0 | Self.bit($1) },
                 sources: place(rule.sources, in: &prefixList), destinations: place(rule.destinations, in: &prefixList),
                 sourcePorts: place(rule.sourcePorts, in: &portList),
                 destinationPorts: place(rule.destinationPorts, in: &portList),
                 icmpTypes: place(rule.icmpTypes, in: &typeList), line: rule.line)
        }
        func buffer<T>(_ items: [T]) -> UnsafeMutableBufferPointer<T> {
            let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(items.count, 1))
            _ = buffer.initialize(from: items)
            return buffer
        }
        rules = buffer(laidOut)
        prefixes = buffer(prefixList)
        ports = buffer(portList)
        types = buffer(typeList)
        inboundPolicy = set.inboundPolicy
        outboundPolicy = set.outboundPolicy
        count = laidOut.count
        // A state whose first rule matches on the state alone is decided by
        // that rule, whatever the packet (typically `accept state
        // established,related` at the top: the established path then looks
        // at no other field).
        var constant: [(FirewallAction, line: Int)?] = []
        for state in [ConnectionState.new, .established, .related, .invalid] {
            let first = laidOut.first { $0.states & Self.bit(state) != 0 }
            constant.append(first.flatMap { rule in
                rule.direction == nil && rule.inputPort == nil && rule.ipProtocol == nil && rule.sources.isEmpty
                    && rule.destinations.isEmpty && rule.sourcePorts.isEmpty && rule.destinationPorts.isEmpty
                    && rule.icmpTypes.isEmpty ? (rule.action, rule.line) : nil
            })
        }
        constantVerdicts = (constant[0], constant[1], constant[2], constant[3])
    }

    let count: Int
    /// The verdict of each state (new, established, related, invalid) when
    /// its first rule looks at nothing else.
    let constantVerdicts: ((FirewallAction, line: Int)?, (FirewallAction, line: Int)?, (FirewallAction, line: Int)?,
                           (FirewallAction, line: Int)?)

    /// The verdict every packet in `state` gets, when it does not depend on
    /// the packet.
    @inline(__always)
    public func constantVerdict(_ state: ConnectionState) -> (FirewallAction, line: Int)? {
        switch state {
        case .new: constantVerdicts.0
        case .established: constantVerdicts.1
        case .related: constantVerdicts.2
        case .invalid: constantVerdicts.3
        }
    }

    deinit {
        rules.deallocate()
        prefixes.deallocate()
        ports.deallocate()
        types.deallocate()
    }

    @inline(__always)
    static func bit(_ state: ConnectionState) -> UInt8 {
        switch state {
        case .new: 1
        case .established: 2
        case .related: 4
        case .invalid: 8
        }
    }

    /// The first matching rule's action and line, or the direction's
    /// policy and line 0.
    @inline(__always)
    public func decide(_ facts: PacketFacts) -> (FirewallAction, line: Int) {
        if let verdict = constantVerdict(facts.state) { return verdict }
        let state = Self.bit(facts.state)
        for index in 0..<count where matches(rules[index], facts, state) {
            return (rules[index].action, rules[index].line)
        }
        return (facts.direction == .inbound ? inboundPolicy : outboundPolicy, 0)
    }

    @inline(__always)
    func matches(_ rule: Rule, _ facts: PacketFacts, _ state: UInt8) -> Bool {
        if rule.states & state == 0 { return false }
        if let direction = rule.direction, direction != facts.direction { return false }
        if let inputPort = rule.inputPort, inputPort != facts.inputPort { return false }
        if let ipProtocol = rule.ipProtocol, ipProtocol != facts.ipProtocol { return false }
        if !rule.sources.isEmpty && !rule.sources.contains(where: { prefixes[$0].contains(facts.source) }) { return false }
        if !rule.destinations.isEmpty && !rule.destinations.contains(where: { prefixes[$0].contains(facts.destination) }) {
            return false
        }
        if !rule.sourcePorts.isEmpty {
            guard let port = facts.sourcePort, rule.sourcePorts.contains(where: { ports[$0].contains(port) }) else { return false }
        }
        if !rule.destinationPorts.isEmpty {
            guard let port = facts.destinationPort, rule.destinationPorts.contains(where: { ports[$0].contains(port) }) else {
                return false
            }
        }
        if !rule.icmpTypes.isEmpty {
            guard let type = facts.icmpType, rule.icmpTypes.contains(where: { types[$0] == type }) else { return false }
        }
        return true
    }
}
