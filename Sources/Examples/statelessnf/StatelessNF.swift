import ArgumentParser
import Logging

@main
struct StatelessNF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "statelessnf",
        abstract: "Runs, replays and measures stateless network functions built with StatelessKit.",
        subcommands: [RunCommand.self, ReplayCommand.self, GraphCommand.self, DemoCommand.self, Bench.self, Dissect.self]
    )

    static func bootstrapLogging() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
    }
}
