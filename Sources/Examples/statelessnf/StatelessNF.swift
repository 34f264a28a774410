import ArgumentParser
import Logging

@main
struct StatelessNF: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "statelessnf",
        abstract: "Runs, replays and measures stateless network functions built with StatelessKit.",
        subcommands: [RunCommand.self, ReplayCommand.self, GraphCommand.self, DemoCommand.self, Bench.self, InspectCommand.self, Dissect.self,
                      ControllerCommand.self]
    )

    /// Sets up logging (to standard error), then parses and runs the command.
    static func main() {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// The command's logger: progress and problems, on standard error.
let log = Logger(label: "statelessnf")
