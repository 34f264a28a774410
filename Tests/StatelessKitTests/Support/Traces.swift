import Foundation
import StatelessKit

/// The real captures in `../shared/traces` (or `$STATELESSKIT_SHARED/traces`).
/// Tests that read them are skipped, saying so, when the folder is absent.
enum Traces {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let directory: URL = {
        if let shared = ProcessInfo.processInfo.environment["STATELESSKIT_SHARED"], !shared.isEmpty {
            return URL(fileURLWithPath: shared).appendingPathComponent("traces")
        }
        return repositoryRoot.deletingLastPathComponent().appendingPathComponent("shared/traces")
    }()

    static var available: Bool { FileManager.default.fileExists(atPath: directory.path) }

    static let skipNote: Comment = "skipped: ../shared/traces is absent (set STATELESSKIT_SHARED to the shared folder)"

    /// Every capture, as "project/file.pcap".
    static var all: [String] {
        guard let projects = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        return projects.sorted().flatMap { project -> [String] in
            let files = (try? FileManager.default.contentsOfDirectory(
                atPath: directory.appendingPathComponent(project).path)) ?? []
            return files.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { "\(project)/\($0)" }
        }
    }

    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static let fixtures = repositoryRoot.appendingPathComponent("Tests/StatelessKitTests/Fixtures")
}

import Testing

/// Holds a capture's packets in pooled buffers.
final class LoadedTrace {
    let pool: BufferPool
    var packets: [Packet] = []

    init(path: String) throws {
        let reader = try CaptureReader(path: path)
        pool = BufferPool(count: 8192, dataRoom: reader.suggestedDataRoom)
        while var packet = pool.allocate() {
            guard try reader.next(into: &packet) else {
                pool.release(packet)
                break
            }
            packets.append(packet)
        }
    }

    deinit { packets.forEach(pool.release) }
}

/// A packet in a buffer of its own, from bytes.
final class TestPacket {
    let pool: BufferPool
    var packet: Packet

    init(_ bytes: [UInt8], linkType: LinkType = .ethernet) {
        pool = BufferPool(count: 1, dataRoom: max(bytes.count, 64))
        packet = pool.allocate()!
        packet.linkType = linkType
        _ = bytes.withUnsafeBytes { packet.setBytes($0) }
    }

    deinit { pool.release(packet) }

    var bytes: [UInt8] { Array(packet.bytes) }

    func parse() throws(ParseError) -> Packet {
        try packet.parse()
        return packet
    }
}
