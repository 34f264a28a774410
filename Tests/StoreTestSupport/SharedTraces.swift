import Foundation
import Testing

/// The shared captures (`../shared/traces`, or `$STATELESSKIT_SHARED/traces`),
/// for the NF and DPDK tests.
public enum SharedTraces {
    public static let directory: URL = {
        if let shared = ProcessInfo.processInfo.environment["STATELESSKIT_SHARED"], !shared.isEmpty {
            return URL(fileURLWithPath: shared).appendingPathComponent("traces")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/traces")
    }()
    public static var available: Bool { FileManager.default.fileExists(atPath: directory.path) }
    public static let skipNote: Comment = "skipped: ../shared/traces is absent (set STATELESSKIT_SHARED to the shared folder)"
    public static var all: [String] {
        guard let projects = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return projects.sorted().flatMap { project -> [String] in
            ((try? FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent(project).path)) ?? [])
                .filter { $0.hasSuffix(".pcap") }.sorted().map { "\(project)/\($0)" }
        }
    }
    public static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
}
