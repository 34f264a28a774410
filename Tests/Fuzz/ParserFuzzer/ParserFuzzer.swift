// A coverage-guided fuzz target for the packet parser (libFuzzer).
//
// `make fuzz` builds it with -sanitize=fuzzer,address and -DFUZZING and runs
// it for a bounded time; without FUZZING it is a plain program that replays
// inputs given as files (a crash the fuzzer saved, say).
//
// Each input is parsed as an Ethernet frame and as a raw IP packet, from a
// buffer of exactly its size, so that AddressSanitizer catches any read past
// the packet. What parses is also checksummed, keyed, rewritten and restored,
// which must give back the same bytes.
import FuzzDriver
import StatelessKit

enum ParserFuzzing {
    static func run(_ data: UnsafeRawBufferPointer) {
        // An exact-size copy: the sanitizer sees any read past its end.
        let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: max(data.count, 1), alignment: 8)
        defer { copy.deallocate() }
        if let base = data.baseAddress { copy.baseAddress!.copyMemory(from: base, byteCount: data.count) }
        var packet = Packet(buffer: copy.baseAddress!, bufferSize: data.count, handle: 0, headroom: 0)
        _ = packet.setLength(data.count)
        for linkType in [LinkType.ethernet, .rawIP] {
            packet.linkType = linkType
            guard (try? packet.parse()) != nil else { continue }
            _ = packet.verifyChecksums()
            let key = packet.flowKey
            _ = key?.symmetricHash()
            _ = packet.quotedFlowKey
            let original = Array(UnsafeRawBufferPointer(packet.bytes))
            rewriteAndRestore(packet)
            let restored = Array(UnsafeRawBufferPointer(packet.bytes))
            guard sameButNegativeZero(original, restored) else {
                fatalError("rewrite and restore changed the packet")
            }
        }
    }

    /// Whether `restored` equals `original`, but that a checksum field may
    /// come back holding the other of one's complement's two zeros (0x0000
    /// for 0xFFFF or the reverse): RFC 1624's update cannot tell them apart,
    /// and only a packet whose checksum was already wrong can tell.
    static func sameButNegativeZero(_ original: [UInt8], _ restored: [UInt8]) -> Bool {
        func isZero(_ bytes: [UInt8], _ i: Int) -> Bool {
            bytes[i] == bytes[i + 1] && (bytes[i] == 0 || bytes[i] == 0xFF)
        }
        var i = 0
        while i < original.count {
            if original[i] != restored[i] {
                let start = i > 0 && isZero(original, i - 1) && isZero(restored, i - 1) ? i - 1 : i
                guard start + 1 < original.count, isZero(original, start), isZero(restored, start) else { return false }
                i = start + 2
                continue
            }
            i += 1
        }
        return true
    }

    static func rewriteAndRestore(_ packet: Packet) {
        for end in [Endpoint.source, .destination] {
            if let v4 = packet.ipv4Address(end) {
                packet.setIPv4Address(IPv4Address(~v4.value), at: end)
                packet.setIPv4Address(v4, at: end)
            } else if packet.layout.network == .ipv6 {
                let v6 = packet.address(end).ipv6
                packet.setIPv6Address(IPv6Address(high: ~v6.high, low: v6.low), at: end)
                packet.setIPv6Address(v6, at: end)
            }
            let port = packet.port(end)
            if packet.setPort(port &+ 1, at: end) { packet.setPort(port, at: end) }
            if let quoted = packet.quotedAddress(end) {
                if let v4 = quoted.ipv4 {
                    packet.setQuotedIPv4Address(IPv4Address(v4.value &+ 1), at: end)
                    packet.setQuotedIPv4Address(v4, at: end)
                } else {
                    packet.setQuotedIPv6Address(IPv6Address(high: quoted.high, low: ~quoted.low), at: end)
                    packet.setQuotedIPv6Address(quoted.ipv6, at: end)
                }
            }
            if let port = packet.quotedPort(end) {
                packet.setQuotedPort(~port, at: end)
                packet.setQuotedPort(port, at: end)
            }
        }
        if let identifier = packet.icmpIdentifier {
            packet.setICMPIdentifier(~identifier)
            packet.setICMPIdentifier(identifier)
        }
        if let identifier = packet.quotedICMPIdentifier {
            packet.setQuotedICMPIdentifier(~identifier)
            packet.setQuotedICMPIdentifier(identifier)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func parserFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    ParserFuzzing.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
@_cdecl("ParserFuzzer_main")
func fuzzerMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    runFuzzer(argc, argv, parserFuzzerTestOneInput)
}
#else
@main
struct ReplayInputs {
    static func main() throws { try replayInputs(parserFuzzerTestOneInput) }
}
#endif
