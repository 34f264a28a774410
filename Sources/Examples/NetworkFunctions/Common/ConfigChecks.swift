import StatelessKit

/// A problem with a configuration: which field, and what is wrong with it.
public struct ConfigError: Error, CustomStringConvertible, Sendable {
    /// The field, as the config file names it.
    public let field: String
    /// What is wrong, and how to fix it.
    public let problem: String

    /// An error about `field`.
    public init(field: String, _ problem: String) {
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(field): \(problem)" }
}

/// Checks that every NF's configuration makes the same way.
enum ConfigChecks {
    /// A port range `LO-HI` (the field `ports`).
    static func portRange(_ text: String, field: String = "ports") throws(ConfigError) -> ClosedRange<UInt16> {
        let bounds = text.split(separator: "-").map { UInt16($0.filter { !$0.isWhitespace }) }
        guard bounds.count == 2, let low = bounds[0], let high = bounds[1], low >= 1, low <= high else {
            throw ConfigError(field: field, "\"\(text)\" is not a range LO-HI with 1 <= LO <= HI <= 65535")
        }
        return low...high
    }

    /// Timeouts in seconds, by name under `timeouts`.
    static func timeouts(_ named: [(String, Double)]) throws(ConfigError) {
        for (name, seconds) in named {
            guard seconds > 0, seconds < 1e7 else {
                throw ConfigError(field: "timeouts.\(name)", "\(seconds) is not a number of seconds above zero")
            }
        }
    }

    /// A deployment's name in the store.
    static func namespace(_ namespace: String) throws(ConfigError) {
        guard !namespace.isEmpty, namespace.allSatisfy({ $0.isLetter || $0.isNumber || "-_.".contains($0) }) else {
            throw ConfigError(field: "namespace", "\"\(namespace)\" must be letters, digits, '-', '_' or '.'")
        }
    }
}
