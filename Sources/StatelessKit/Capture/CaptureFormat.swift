/// The byte order of a capture file's headers.
public enum CaptureByteOrder: Sendable {
    /// Little-endian (as written on x86 and most ARM hosts).
    case littleEndian
    /// Big-endian.
    case bigEndian
}

/// The header of a classic pcap file: everything needed to write the same
/// file back byte for byte.
public struct PcapFileHeader: Hashable, Sendable {
    /// The byte order of every header in the file.
    public var byteOrder: CaptureByteOrder
    /// Whether timestamps are in nanoseconds (magic 0xA1B23C4D) rather than
    /// microseconds (0xA1B2C3D4).
    public var nanosecondTimestamps: Bool
    /// The format version (2.4 today).
    public var versionMajor: UInt16
    /// The format's minor version.
    public var versionMinor: UInt16
    /// The (always zero in practice) time zone correction.
    public var thisZone: Int32
    /// The (always zero in practice) timestamp accuracy.
    public var sigFigs: UInt32
    /// The largest number of bytes kept of each packet.
    public var snapLength: UInt32
    /// The link-layer header type, as the file holds it (LINKTYPE_*, with
    /// any FCS bits in the upper bits).
    public var linkTypeField: UInt32

    /// A header for a new file.
    public init(linkType: CaptureLinkType, snapLength: UInt32 = 262_144, nanosecondTimestamps: Bool = false,
                byteOrder: CaptureByteOrder = .littleEndian) {
        self.byteOrder = byteOrder
        self.nanosecondTimestamps = nanosecondTimestamps
        versionMajor = 2
        versionMinor = 4
        thisZone = 0
        sigFigs = 0
        self.snapLength = snapLength
        linkTypeField = UInt32(linkType.rawValue)
    }

    /// The link type.
    public var linkType: CaptureLinkType? { CaptureLinkType(rawValue: UInt16(truncatingIfNeeded: linkTypeField)) }
}

/// The link-layer header types StatelessKit reads and writes (the numbers
/// of tcpdump.org's LINKTYPE_* list).
public enum CaptureLinkType: UInt16, Sendable {
    /// Ethernet.
    case ethernet = 1
    /// Raw IP, version from the first nibble.
    case rawIP = 101
    /// DLT_RAW as some systems number it.
    case rawIPBSD = 12
    /// DLT_RAW as OpenBSD numbers it.
    case rawIPOpenBSD = 14
    /// Raw IPv4.
    case ipv4 = 228
    /// Raw IPv6.
    case ipv6 = 229

    /// How the packets' bytes begin.
    public var packetLinkType: LinkType { self == .ethernet ? .ethernet : .rawIP }
}

/// What kind of capture file a reader has open.
public enum CaptureFormat: Hashable, Sendable {
    /// Classic pcap, with its header.
    case pcap(PcapFileHeader)
    /// pcapng.
    case pcapng
}

/// One packet record of a capture, as a view into the reader's buffer that
/// stays valid until the reader's next call.
public struct CaptureRecord {
    /// When the packet was captured.
    public var timestamp: Timestamp
    /// The packet's length on the wire.
    public var originalLength: Int
    /// The bytes captured (no more than the snapshot length).
    public var bytes: UnsafeRawBufferPointer
    /// How the bytes begin.
    public var linkType: CaptureLinkType
    /// Where the record starts in the file.
    public var fileOffset: UInt64
}
