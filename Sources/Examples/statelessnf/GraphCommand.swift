import ArgumentParser
import NetworkFunctions
import StatelessKit

/// `statelessnf graph`: prints an NF's processing graph.
struct GraphCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "graph", abstract: "Print a network function's processing graph as text or Graphviz DOT.")

    enum Format: String, ExpressibleByArgument { case text, dot }

    @Argument(help: "The network function: \(NFKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var nf: NFKind

    @Option(help: "text or dot.")
    var format: Format = .text

    @OptionGroup var nat: NATOptions
    @OptionGroup(title: "Load balancer options") var lb: LBOptions
    @OptionGroup(title: "Firewall options") var firewall: FirewallOptions

    func run() throws {
        // Without a configuration, an example one: the graph is the same.
        let graph = try SelectedNF(nf, nat: nat, lb: lb, firewall: firewall, example: true).graph
        print(format == .dot ? graph.dot : graph.description)
    }
}
