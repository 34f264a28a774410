import ArgumentParser
import Foundation
import Logging
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import Yams

/// The network functions `statelessnf` runs.
enum NFKind: String, ExpressibleByArgument, CaseIterable {
    case nat, lb, firewall
}

/// The NAT's options, as flags or in a config file; flags win.
struct NATOptions: ParsableArguments {
    @Option(help: "A YAML or JSON config file (see Documentation/RunningExamples.md).")
    var config: String?

    @Option(help: "Internal prefixes, comma-separated (default: the RFC 1918 ranges).")
    var `internal`: String?

    @Option(help: "External IPv4 addresses, comma-separated.")
    var external: String?

    @Option(help: "External ports to hand out, LO-HI (default 1024-65535).")
    var ports: String?

    /// The configuration: the file's, then the flags over it, checked;
    /// with the given ports when a command decides them.
    func natConfig(insidePort: UInt16? = nil, outsidePort: UInt16? = nil) throws -> ResolvedNATConfig {
        var config = NATConfig()
        if let path = self.config {
            config = try ConfigFile.load(path, as: NATConfig.self)
        }
        if let `internal` { config.internal = Self.list(`internal`) }
        if let external { config.external = Self.list(external) }
        if let ports { config.ports = ports }
        if let insidePort { config.insidePort = insidePort }
        if let outsidePort { config.outsidePort = outsidePort }
        do {
            return try config.resolved()
        } catch {
            throw ValidationError("NAT configuration: \(error)")
        }
    }

    static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

}

/// A YAML or JSON config file, read and decoded; errors name the file and the field.
enum ConfigFile {
    static func load<Config: Decodable>(_ path: String, as type: Config.Type) throws -> Config {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the config file \(path)")
        }
        do {
            if path.hasSuffix(".json") { return try JSONDecoder().decode(Config.self, from: data) }
            return try YAMLDecoder().decode(Config.self, from: data)
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            throw ValidationError("\(path): \(field): \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            throw ValidationError("\(path): \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription) \(context.underlyingError.map { "\($0)" } ?? "")")
        } catch {
            throw ValidationError("\(path): \(error)")
        }
    }
}

/// The load balancer's options, as flags or in the config file (`--config`);
/// flags win.
struct LBOptions: ParsableArguments {
    @Option(help: "A VIP, ADDR:PORT[/tcp|udp] (one by flags; several in the config file).")
    var vip: String?

    @Option(help: "A backend of the VIP, ADDR:PORT[@WEIGHT] (weight 0 drains it); repeat for each.")
    var backend: [String] = []

    @Option(help: "dnat (the default) or fullnat.")
    var mode: String?

    @Option(help: "Full-NAT: the balancer's own source addresses, comma-separated.")
    var source: String?

    /// The configuration: the file's, then the flags over it, checked.
    func lbConfig(file: String?, ports: String?, clientPort: UInt16? = nil, backendPort: UInt16? = nil) throws
        -> ResolvedLBConfig {
        var config = LBConfig()
        if let file { config = try ConfigFile.load(file, as: LBConfig.self) }
        if let vip { config.vips = [LBVIPConfig(vip: vip, backends: backend)] }
        else if !backend.isEmpty { throw ValidationError("--backend needs a --vip to belong to") }
        if let mode { config.mode = mode }
        if let source { config.sourceAddresses = NATOptions.list(source) }
        if let ports { config.ports = ports }
        if let clientPort { config.clientPort = clientPort }
        if let backendPort { config.backendPort = backendPort }
        do {
            return try config.resolved()
        } catch {
            throw ValidationError("load balancer configuration: \(error)")
        }
    }
}

/// The firewall's options, as flags or in the config file (`--config`);
/// flags win. Its internal prefixes come from `--internal`.
struct FirewallOptions: ParsableArguments {
    @Option(help: "The firewall's rule file (Documentation/Firewall.md).")
    var rules: String?

    @Flag(help: "Pick up TCP connections seen first midway (no SYN) instead of refusing them as invalid.")
    var loosePickup = false

    /// The configuration: the file's, then the flags over it, checked, with
    /// the rule file read.
    /// `example` stands in for the rule file when there is none (for
    /// commands that only need some firewall, such as `graph`).
    func firewallConfig(file: String?, internal: String?, insidePort: UInt16? = nil, outsidePort: UInt16? = nil,
                        example: Bool = false) throws -> ResolvedFirewallConfig {
        var config = FirewallConfig()
        if let file { config = try ConfigFile.load(file, as: FirewallConfig.self) }
        if let rules { config.rules = rules }
        if loosePickup { config.loosePickup = true }
        if let `internal` { config.internal = NATOptions.list(`internal`) }
        if let insidePort { config.insidePort = insidePort }
        if let outsidePort { config.outsidePort = outsidePort }
        do {
            let stand = example && config.rules.isEmpty
                ? try FirewallRuleSet.parse("accept state established,related\naccept out state new\n") : nil
            return try config.resolved(ruleSet: stand)
        } catch let error as RuleSyntaxError {
            throw ValidationError("firewall rules: \(error)")
        } catch {
            throw ValidationError("firewall configuration: \(error)")
        }
    }
}

/// The NF a command runs, built from its options.
struct SelectedNF {
    let graph: Graph
    let schema: StateSchema
    /// The port a capture's packets arrive on.
    let inputPort: UInt16
    /// What each output port is, for summaries.
    let portNames: [UInt16: String]
    /// Reads the config file again and applies what may change while the
    /// NF runs (the load balancer's backends); `nil` when nothing can.
    let reload: (@Sendable () throws -> String)?

    /// The graph ports of the two-port form: packets from the inside (the
    /// NAT's and the firewall's internal hosts, the load balancer's
    /// backends) arrive on, and leave for the inside by, port 1; the
    /// outside's (the internet, the load balancer's clients) port 2.
    static let insideGraphPort: UInt16 = 1
    static let outsideGraphPort: UInt16 = 2

    /// The NF of `kind`; with `twoPorts`, its sides are graph ports
    /// ``insideGraphPort`` and ``outsideGraphPort`` instead of one port
    /// where the addresses tell the sides apart.
    init(_ kind: NFKind, nat: NATOptions, lb: LBOptions, firewall: FirewallOptions, example: Bool = false,
         twoPorts: Bool = false) throws {
        let (inside, outside) = twoPorts ? (Self.insideGraphPort, Self.outsideGraphPort) : (nil, nil)
        switch kind {
        case .nat:
            var options = nat
            if example && options.external == nil && options.config == nil { options.external = "203.0.113.1" }
            let function = NAT(try options.natConfig(insidePort: inside, outsidePort: outside))
            graph = try function.graph()
            schema = function.state.schema
            inputPort = function.insidePort
            portNames = Dictionary([(function.outsidePort, "outside"), (function.insidePort, "inside")],
                                   uniquingKeysWith: { a, b in a == b ? a : "\(b)/\(a)" })
            reload = nil
        case .lb:
            var options = lb
            if example && options.vip == nil && nat.config == nil {
                options.vip = "10.0.0.10:80/tcp"
                options.backend = ["192.168.1.1:8080", "192.168.1.2:8080"]
            }
            let function = LoadBalancer(try options.lbConfig(file: nat.config, ports: nat.ports, clientPort: outside,
                                                             backendPort: inside))
            graph = try function.graph()
            schema = function.state.schema
            inputPort = function.clientPort
            portNames = Dictionary([(function.backendPort, "backends"), (function.clientPort, "clients")],
                                   uniquingKeysWith: { a, b in a == b ? a : "\(b)/\(a)" })
            if let file = nat.config {
                let ports = nat.ports
                let flags = options
                reload = {
                    let config = try flags.lbConfig(file: file, ports: ports, clientPort: outside, backendPort: inside)
                    try function.backends.reload(config)
                    return config.services.map { service in
                        "\(service.vip): " + service.backends.map { "\($0.endpoint)@\($0.weight)" }.joined(separator: ", ")
                    }.joined(separator: "; ")
                }
            } else {
                reload = nil
            }
        case .firewall:
            let function = Firewall(try firewall.firewallConfig(file: nat.config, internal: nat.internal, insidePort: inside,
                                                                outsidePort: outside, example: example))
            graph = try function.graph()
            schema = function.state.schema
            inputPort = function.insidePort
            portNames = Dictionary([(function.outsidePort, "outside"), (function.insidePort, "inside")],
                                   uniquingKeysWith: { a, b in a == b ? a : "\(b)/\(a)" })
            let (file, prefixes, flags) = (nat.config, nat.internal, firewall)
            reload = {
                // The rule file (and the config file's rules field) read again;
                // the prefixes, timeouts and capacity stay as started.
                let rules = try flags.firewallConfig(file: file, internal: prefixes, insidePort: inside, outsidePort: outside).rules
                function.reload(rules)
                return "\(rules.rules.count) rules, policy in \(rules.inboundPolicy.rawValue), out \(rules.outboundPolicy.rawValue)"
            }
        }
    }
}

/// Where state lives: `memory` (the embedded store) or a Redis URL.
struct StoreOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "The state store: memory (the embedded store, the default), redis://[user:password@]host:port[/db] or redis+unix:///path/to/socket[?db=N].",
        discussion: "Redis URLs take options too: ?timeout=500ms&hold=200ms&connect_timeout=1s (Documentation/Redis.md)."))
    var store: String = "memory"

    func validate() throws {
        if store != "memory" { _ = try endpoint() }
    }

    func endpoint() throws -> RedisEndpoint {
        do {
            return try RedisEndpoint(url: store)
        } catch {
            throw ValidationError("--store \(error)")
        }
    }

    func makeStore() throws -> any StateStore {
        if store == "memory" { return EmbeddedStore() }
        let endpoint = try endpoint()
        do {
            return try RedisStore(endpoint, logger: Logger(label: "statelessnf.redis"))
        } catch {
            throw ValidationError("--store: \(error)")
        }
    }
}

/// The runtime's knobs.
struct RuntimeOptions: ParsableArguments {
    @Option(help: "Packets per batch (1-256).")
    var batch: Int = 32

    @Option(name: .customLong("in-flight"),
            help: "Batches in flight per worker while the store answers (1-64; default 4 on the embedded store, 16 on Redis, to cover its round trip).")
    var requestedInFlight: Int?

    @Option(name: .customLong("flow-cache"),
            help: "Flow cache entries per worker (0: none; default \(GraphRunner.defaultFlowCacheEntries), but 0 for bench, which measures the path through the store unless given this). Established flows whose every node allows it skip the graph and the store until their lease ends (a NAT mapping: until its next refresh is due).")
    var requestedFlowCache: Int?

    /// Flow cache entries per worker for a run.
    var flowCache: Int { requestedFlowCache ?? GraphRunner.defaultFlowCacheEntries }

    func validate() throws {
        guard (1...256).contains(batch) else { throw ValidationError("--batch must be 1 to 256, not \(batch)") }
        if let requestedFlowCache, !(0...(1 << 24)).contains(requestedFlowCache) {
            throw ValidationError("--flow-cache must be 0 to 16777216 entries, not \(requestedFlowCache)")
        }
        if let requestedInFlight, !(1...64).contains(requestedInFlight) {
            throw ValidationError("--in-flight must be 1 to 64, not \(requestedInFlight)")
        }
    }

    /// Batches in flight on `store`.
    func inFlight(for store: any StateStore) -> Int {
        requestedInFlight ?? (store is RedisStore ? 16 : 4)
    }
}
