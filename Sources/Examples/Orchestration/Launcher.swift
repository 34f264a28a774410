import Foundation

/// Starts and stops NF instances for a controller.
public protocol InstanceLauncher: AnyObject {
    /// Starts the instance of slot `name`.
    func launch(_ name: String) throws
    /// Stops it (asks, then forces).
    func stop(_ name: String)
    /// The slots whose process has ended since it was launched.
    func ended() -> Set<String>
}

/// Launches each instance as a shell command of its slot (`exec`ed, so that
/// the process the controller signals is the instance's own), its output to
/// a log file of its own. Stopping sends SIGTERM and, after `grace`
/// seconds, SIGKILL.
public final class ShellLauncher: InstanceLauncher, @unchecked Sendable {
    /// Each slot's command, and the folder of the instances' logs.
    public let commands: [String: String]
    public let logs: URL?
    public let grace: Double
    private let lock = NSLock()
    private var processes: [String: Process] = [:]
    private var endedNames: Set<String> = []

    public init(commands: [String: String], logs: URL? = nil, grace: Double = 1) {
        self.commands = commands
        self.logs = logs
        self.grace = grace
    }

    public func launch(_ name: String) throws {
        guard let command = commands[name] else { throw SteeringError("no command to start instance \(name)") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "exec " + command]
        process.standardInput = FileHandle.nullDevice
        var log: FileHandle? = nil
        if let logs {
            let path = logs.appendingPathComponent("\(name).log").path
            if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            handle.seekToEndOfFile()
            process.standardOutput = handle
            process.standardError = handle
            log = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
        }
        process.terminationHandler = { [weak self] _ in
            guard let self else { return }
            self.lock.withLock {
                if self.processes[name] === process {
                    self.processes[name] = nil
                    self.endedNames.insert(name)
                }
            }
        }
        try process.run()
        // The child has its own copy of the log's descriptor.
        try? log?.close()
        lock.withLock {
            processes[name] = process
            endedNames.remove(name)
        }
    }

    public func stop(_ name: String) {
        guard let process = lock.withLock({ processes.removeValue(forKey: name) }) else { return }
        let pid = process.processIdentifier
        kill(pid, SIGTERM)
        let grace = grace
        DispatchQueue.global().asyncAfter(deadline: .now() + grace) {
            if process.isRunning { kill(pid, SIGKILL) }
        }
    }

    public func ended() -> Set<String> {
        lock.withLock {
            let names = endedNames
            endedNames.removeAll()
            return names
        }
    }

    /// Stops every instance it started.
    public func stopAll() {
        for name in lock.withLock({ Array(processes.keys) }) { stop(name) }
    }
}
