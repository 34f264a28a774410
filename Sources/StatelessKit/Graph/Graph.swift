/// Where a node's output goes: another node, a port, or a drop.
public protocol Destination {
    /// The destination, resolved.
    var target: GraphTarget { get }
}

/// A resolved destination.
public enum GraphTarget: Hashable, Sendable {
    /// The node at this index of the graph.
    case node(Int)
    /// Out of the graph by this port.
    case port(UInt16)
    /// Dropped and counted under this reason.
    case drop(String)
}

/// A node added to a ``GraphBuilder``: route its outputs with
/// `GraphBuilder.route`, and route other nodes' outputs to it.
public struct NodeHandle<N>: Destination {
    /// The node's index in the graph.
    public let index: Int
    public var target: GraphTarget { .node(index) }

    @usableFromInline init(index: Int) { self.index = index }
}

/// A port or a drop, as a destination.
public struct Terminal: Destination {
    /// The port or drop.
    public let target: GraphTarget
}

/// A problem with a graph's wiring that the compiler could not catch.
public struct GraphError: Error, CustomStringConvertible, Sendable {
    /// What is wrong.
    public let description: String
}

/// Builds a graph: add nodes, route each node's outputs with an exhaustive
/// `switch`, and say where packets enter.
///
/// ```swift
/// let graph = try Graph("filter") { g in
///     let parse = g.add(ParseNode())
///     let web = g.add(PortClassifier(ports: [80, 443]))
///     g.entry(parse)
///     g.route(parse) { switch $0 {
///         case .parsed: web
///         case .unsupported, .malformed: g.drop("unparsed")
///     } }
///     g.route(web) { switch $0 {
///         case .match: g.port(1)
///         case .other: g.drop("not web")
///     } }
/// }
/// ```
///
/// A subgraph is a function that adds nodes to a builder and returns its
/// entry, so a piece of graph is reused by calling it.
public final class GraphBuilder {
    @usableFromInline var nodes: [GraphNodeFactory] = []
    @usableFromInline var routes: [[GraphTarget]?] = []
    var entryTarget: GraphTarget? = nil

    init() {}

    /// Adds a node.
    @inlinable
    @discardableResult
    public func add<N: Node>(_ node: N) -> NodeHandle<N> {
        nodes.append(GraphNodeFactory(name: node.name, outputs: N.Output.allCases.map { "\($0)" },
                                      isStateful: false) { _, _ in .plain(node) })
        routes.append(nil)
        return NodeHandle(index: nodes.count - 1)
    }

    /// Adds a node that uses state tables.
    @inlinable
    @discardableResult
    public func add<N: StatefulNode>(_ node: N) -> NodeHandle<N> {
        nodes.append(GraphNodeFactory(name: node.name, outputs: N.Output.allCases.map { "\($0)" },
                                      isStateful: true) { slots, capacity in
            .stateful(node, slots: slots, capacity: capacity)
        })
        routes.append(nil)
        return NodeHandle(index: nodes.count - 1)
    }

    /// Routes every output of `node`: `destination` is called once for each
    /// case, when the graph is built, never per packet.
    @inlinable
    public func route<N: Node>(_ node: NodeHandle<N>, _ destination: (N.Output) -> any Destination) {
        routes[node.index] = Self.table(N.Output.self, destination)
    }

    /// Routes every output of a stateful `node`.
    @inlinable
    public func route<N: StatefulNode>(_ node: NodeHandle<N>, _ destination: (N.Output) -> any Destination) {
        routes[node.index] = Self.table(N.Output.self, destination)
    }

    @inlinable
    static func table<O: NodeOutput>(_: O.Type, _ destination: (O) -> any Destination) -> [GraphTarget] {
        let width = Int(O.allCases.map(\.rawValue).max() ?? 0) + 1
        var table = [GraphTarget](repeating: .drop("unrouted"), count: width)
        for output in O.allCases { table[Int(output.rawValue)] = destination(output).target }
        return table
    }

    /// Where packets enter the graph.
    public func entry(_ destination: any Destination) {
        entryTarget = destination.target
    }

    /// Out of the graph by `port`.
    public func port(_ port: UInt16) -> Terminal { Terminal(target: .port(port)) }

    /// Dropped, counted under `reason`.
    public func drop(_ reason: String) -> Terminal { Terminal(target: .drop(reason)) }
}

/// Makes a node's program; each worker gets programs of its own.
@usableFromInline
struct GraphNodeFactory {
    let name: String
    let outputs: [String]
    let isStateful: Bool
    /// Makes the program for a worker with this many slots of this capacity.
    let make: (Int, Int) -> NodeProgram

    @usableFromInline
    init(name: String, outputs: [String], isStateful: Bool, make: @escaping (Int, Int) -> NodeProgram) {
        self.name = name
        self.outputs = outputs
        self.isStateful = isStateful
        self.make = make
    }
}

/// A network function's processing graph, checked: every node's outputs are
/// routed, packets have an entry, and there is no cycle.
///
/// A graph is a description: each worker's ``GraphRunner`` gets copies of
/// its node values of its own, so one graph serves every worker thread.
public struct Graph: CustomStringConvertible, @unchecked Sendable {
    /// The graph's name.
    public let name: String
    let nodes: [GraphNodeFactory]
    let routes: [[GraphTarget]]
    /// Where packets enter.
    public let entry: GraphTarget
    /// Node indices in an order where every node comes after those that
    /// send to it.
    @usableFromInline let order: [Int]

    /// Builds and checks a graph.
    public init(_ name: String, _ build: (GraphBuilder) throws -> Void) throws {
        let builder = GraphBuilder()
        try build(builder)
        self.name = name
        nodes = builder.nodes
        guard let entry = builder.entryTarget else {
            throw GraphError(description: "graph \(name): no entry; call entry(_:) with the first node")
        }
        self.entry = entry
        var routes: [[GraphTarget]] = []
        for (index, table) in builder.routes.enumerated() {
            guard let table else {
                throw GraphError(description: "graph \(name): the outputs of node \(index) (\(nodes[index].name)) are not routed; call route(_:_:) for it")
            }
            routes.append(table)
        }
        self.routes = routes
        order = try Self.topologicalOrder(name: name, nodes: nodes, routes: routes, entry: entry)
    }

    static func topologicalOrder(name: String, nodes: [GraphNodeFactory], routes: [[GraphTarget]],
                                 entry: GraphTarget) throws -> [Int] {
        var incoming = [Int](repeating: 0, count: nodes.count)
        for table in routes {
            for case .node(let next) in Set(table) { incoming[next] += 1 }
        }
        var ready = (0..<nodes.count).filter { incoming[$0] == 0 }
        var order: [Int] = []
        while let node = ready.popLast() {
            order.append(node)
            for case .node(let next) in Set(routes[node]) {
                incoming[next] -= 1
                if incoming[next] == 0 { ready.append(next) }
            }
        }
        guard order.count == nodes.count else {
            let cycle = (0..<nodes.count).filter { incoming[$0] > 0 }.map { nodes[$0].name }
            throw GraphError(description: "graph \(name): a cycle through \(cycle.joined(separator: ", ")); a graph runs each batch through each node once")
        }
        return order
    }

    /// The node names, in graph order.
    public var nodeNames: [String] { nodes.map(\.name) }

    /// Every drop reason the graph can count.
    public var dropReasons: [String] {
        var reasons: [String] = []
        for table in routes {
            for case .drop(let reason) in table where !reasons.contains(reason) { reasons.append(reason) }
        }
        return reasons
    }

    /// The graph as text: each node with its outputs and where they go.
    public var description: String {
        func show(_ target: GraphTarget) -> String {
            switch target {
            case .node(let index): return "\(nodes[index].name)#\(index)"
            case .port(let port): return "port \(port)"
            case .drop(let reason): return "drop(\(reason))"
            }
        }
        var lines = ["graph \(name): entry -> \(show(entry))"]
        for index in order {
            let node = nodes[index]
            lines.append("  \(node.name)#\(index)\(node.isStateful ? " [state]" : "")")
            for (output, target) in zip(node.outputs, routes[index]) {
                lines.append("    .\(output) -> \(show(target))")
            }
        }
        return lines.joined(separator: "\n")
    }

    /// The graph in Graphviz DOT.
    public var dot: String {
        func id(_ target: GraphTarget) -> String {
            switch target {
            case .node(let index): return "n\(index)"
            case .port(let port): return "port\(port)"
            case .drop(let reason): return "\"drop \(reason)\""
            }
        }
        var lines = ["digraph \"\(name)\" {", "  rankdir=LR;", "  entry [shape=point];"]
        var terminals: Set<GraphTarget> = []
        for (index, node) in nodes.enumerated() {
            lines.append("  n\(index) [label=\"\(node.name)\", shape=\(node.isStateful ? "box3d" : "box")];")
            for target in routes[index] {
                if case .node = target { continue }
                terminals.insert(target)
            }
        }
        for terminal in terminals.sorted(by: { id($0) < id($1) }) {
            switch terminal {
            case .port(let port): lines.append("  port\(port) [label=\"port \(port)\", shape=doublecircle];")
            case .drop(let reason): lines.append("  \(id(terminal)) [label=\"drop: \(reason)\", shape=octagon];")
            case .node: break
            }
        }
        lines.append("  entry -> \(id(entry));")
        for index in order {
            for (output, target) in zip(nodes[index].outputs, routes[index]) {
                lines.append("  n\(index) -> \(id(target)) [label=\"\(output)\"];")
            }
        }
        lines.append("}")
        return lines.joined(separator: "\n")
    }
}
