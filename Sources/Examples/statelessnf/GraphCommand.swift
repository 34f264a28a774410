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

    func run() throws {
        let graph: Graph
        switch nf {
        case .nat:
            var options = nat
            if options.external == nil && options.config == nil { options.external = "203.0.113.1" }
            graph = try NAT(try options.natConfig()).graph()
        }
        print(format == .dot ? graph.dot : graph.description)
    }
}
