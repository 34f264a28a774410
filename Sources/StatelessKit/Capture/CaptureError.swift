/// A capture file that cannot be opened, read or written, naming the file
/// and, for a corrupt one, the byte offset where the problem is.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    /// What kind of problem.
    public enum Kind: Sendable {
        /// The file cannot be opened.
        case cannotOpen
        /// Reading failed (an I/O error).
        case cannotRead
        /// Writing failed.
        case cannotWrite
        /// The file starts with no pcap or pcapng magic number.
        case notACapture
        /// A version this reader does not know.
        case unsupportedVersion
        /// A link type other than Ethernet or raw IP.
        case unsupportedLinkType
        /// The file ends inside a header or record.
        case truncated
        /// A record or block length that cannot be right.
        case badLength
        /// A pcapng packet names an interface that was never described.
        case unknownInterface
        /// A packet too large for the buffer it is read into.
        case recordTooLarge
    }

    /// The capture file.
    public var path: String
    /// Where in the file, when the problem is in its contents.
    public var offset: UInt64?
    /// What kind of problem.
    public var kind: Kind
    /// A sentence for a person.
    public var detail: String

    /// An error about `path`.
    public init(path: String, offset: UInt64?, kind: Kind, detail: String) {
        self.path = path
        self.offset = offset
        self.kind = kind
        self.detail = detail
    }

    public var description: String {
        if let offset { return "\(path): at byte \(offset): \(detail)" }
        return "\(path): \(detail)"
    }
}
