import ArgumentParser

/// `statelessnf bench`: measurements that belong in Documentation/Performance.md.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure StatelessKit's components.",
        subcommands: [BenchParser.self, BenchNAT.self, BenchLB.self, BenchFirewall.self])
}
