/// An interface described by a pcapng Interface Description Block.
struct PcapngInterface {
    var linkType: CaptureLinkType
    var snapLength: UInt32
    /// Timestamp units per second are 10^decimalExponent, or 2^binaryExponent.
    var decimalExponent: Int? = 6
    var binaryExponent: Int? = nil
    var offsetSeconds: Int64 = 0

    func timestamp(_ ticks: UInt64) -> Timestamp {
        var nanoseconds: Int64
        if let binaryExponent {
            let whole = ticks >> UInt64(binaryExponent)
            let fraction = ticks & ((1 << UInt64(binaryExponent)) &- 1)
            // fraction × 10^9 / 2^exponent, through a 128-bit product.
            let product = fraction.multipliedFullWidth(by: 1_000_000_000)
            let scaled = binaryExponent == 0
                ? 0 : product.high << UInt64(64 - binaryExponent) | product.low >> UInt64(binaryExponent)
            nanoseconds = Int64(truncatingIfNeeded: whole &* 1_000_000_000 &+ scaled)
        } else {
            let exponent = decimalExponent ?? 6
            if exponent <= 9 {
                var scale: UInt64 = 1
                for _ in 0..<(9 - exponent) { scale *= 10 }
                nanoseconds = Int64(truncatingIfNeeded: ticks &* scale)
            } else {
                var scale: UInt64 = 1
                for _ in 0..<min(exponent - 9, 19) { scale *= 10 }
                nanoseconds = Int64(truncatingIfNeeded: ticks / scale)
            }
        }
        return Timestamp(nanoseconds: nanoseconds &+ offsetSeconds &* 1_000_000_000)
    }
}

/// pcapng block types this reader acts on; every other block is skipped.
enum PcapngBlock {
    static let sectionHeader: UInt32 = 0x0A0D_0D0A
    static let interfaceDescription: UInt32 = 1
    static let obsoletePacket: UInt32 = 2
    static let simplePacket: UInt32 = 3
    static let enhancedPacket: UInt32 = 6
}

extension CaptureReader {
    func nextPcapngRecord() throws(CaptureError) -> CaptureRecord? {
        while true {
            guard try input.fill(12) > 0 else { return nil }
            try input.require(12, "a block header")
            let blockOffset = input.offset
            var type = CaptureReader.load(input.pointer, 0, byteOrder, as: UInt32.self)
            if type == PcapngBlock.sectionHeader {
                let magic = input.pointer.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
                switch magic {
                case 0x1A2B_3C4D: byteOrder = 1.littleEndian == 1 ? .littleEndian : .bigEndian
                case 0x4D3C_2B1A: byteOrder = 1.littleEndian == 1 ? .bigEndian : .littleEndian
                default:
                    throw CaptureError(path: path, offset: blockOffset + 8, kind: .notACapture,
                                       detail: "a pcapng section header with a bad byte-order magic")
                }
                interfaces = []
                type = PcapngBlock.sectionHeader
            }
            let length = Int(CaptureReader.load(input.pointer, 4, byteOrder, as: UInt32.self))
            guard length >= 12, length % 4 == 0, length <= CaptureReader.maximumRecordLength + 4096 else {
                throw CaptureError(path: path, offset: blockOffset + 4, kind: .badLength,
                                   detail: "a pcapng block of type \(type) claims a length of \(length) bytes")
            }
            try input.require(length, "a \(length)-byte pcapng block")
            let block = input.pointer
            let trailer = Int(CaptureReader.load(block, length - 4, byteOrder, as: UInt32.self))
            guard trailer == length else {
                throw CaptureError(path: path, offset: blockOffset + UInt64(length - 4), kind: .badLength,
                                   detail: "a pcapng block's trailing length \(trailer) differs from its leading \(length)")
            }
            let body = block + 8
            let bodyLength = length - 12
            defer { input.skip(length) }
            switch type {
            case PcapngBlock.sectionHeader:
                guard bodyLength >= 16 else { throw badBody(blockOffset, "section header") }
                let major = CaptureReader.load(body, 4, byteOrder, as: UInt16.self)
                guard major == 1 else {
                    throw CaptureError(path: path, offset: blockOffset + 12, kind: .unsupportedVersion,
                                       detail: "pcapng version \(major) is not 1.x")
                }
            case PcapngBlock.interfaceDescription:
                guard bodyLength >= 8 else { throw badBody(blockOffset, "interface description") }
                let code = CaptureReader.load(body, 0, byteOrder, as: UInt16.self)
                guard let linkType = CaptureLinkType(rawValue: code) else {
                    throw CaptureReader.unsupportedLinkType(path, offset: blockOffset + 8, UInt32(code))
                }
                var interface = PcapngInterface(linkType: linkType,
                                                snapLength: CaptureReader.load(body, 4, byteOrder, as: UInt32.self))
                readOptions(body + 8, bodyLength - 8) { code, value in
                    if code == 9, value.count >= 1 {
                        let resolution = Int(value[0])
                        if resolution & 0x80 != 0 {
                            interface.binaryExponent = min(resolution & 0x7F, 63)
                            interface.decimalExponent = nil
                        } else {
                            interface.decimalExponent = resolution
                        }
                    } else if code == 14, value.count >= 8 {
                        let raw = value.loadUnaligned(as: Int64.self)
                        interface.offsetSeconds = byteOrder == .littleEndian ? Int64(littleEndian: raw) : Int64(bigEndian: raw)
                    }
                }
                interfaces.append(interface)
            case PcapngBlock.enhancedPacket, PcapngBlock.obsoletePacket:
                guard bodyLength >= 20 else { throw badBody(blockOffset, "packet") }
                let enhanced = type == PcapngBlock.enhancedPacket
                let interfaceID = enhanced ? Int(CaptureReader.load(body, 0, byteOrder, as: UInt32.self))
                                           : Int(CaptureReader.load(body, 0, byteOrder, as: UInt16.self))
                guard interfaceID < interfaces.count else {
                    throw CaptureError(path: path, offset: blockOffset + 8, kind: .unknownInterface,
                                       detail: "a packet names interface \(interfaceID), but the section describes \(interfaces.count)")
                }
                let ticks = UInt64(CaptureReader.load(body, 4, byteOrder, as: UInt32.self)) << 32
                    | UInt64(CaptureReader.load(body, 8, byteOrder, as: UInt32.self))
                let captured = Int(CaptureReader.load(body, 12, byteOrder, as: UInt32.self))
                let original = Int(CaptureReader.load(body, 16, byteOrder, as: UInt32.self))
                guard captured <= bodyLength - 20 else {
                    throw CaptureError(path: path, offset: blockOffset + 20, kind: .badLength,
                                       detail: "a packet claims \(captured) captured bytes in a block with room for \(bodyLength - 20)")
                }
                let interface = interfaces[interfaceID]
                return CaptureRecord(timestamp: interface.timestamp(ticks), originalLength: original,
                                     bytes: UnsafeRawBufferPointer(start: body + 20, count: captured),
                                     linkType: interface.linkType, fileOffset: blockOffset)
            case PcapngBlock.simplePacket:
                guard bodyLength >= 4 else { throw badBody(blockOffset, "simple packet") }
                guard let interface = interfaces.first else {
                    throw CaptureError(path: path, offset: blockOffset, kind: .unknownInterface,
                                       detail: "a simple packet block comes before any interface description")
                }
                let original = Int(CaptureReader.load(body, 0, byteOrder, as: UInt32.self))
                var captured = min(original, bodyLength - 4)
                if interface.snapLength > 0 { captured = min(captured, Int(interface.snapLength)) }
                return CaptureRecord(timestamp: .zero, originalLength: original,
                                     bytes: UnsafeRawBufferPointer(start: body + 4, count: captured),
                                     linkType: interface.linkType, fileOffset: blockOffset)
            default:
                break
            }
        }
    }

    /// Calls `body` with each option's code and value in an options list.
    func readOptions(_ start: UnsafeRawPointer, _ length: Int, _ body: (UInt16, UnsafeRawBufferPointer) -> Void) {
        var offset = 0
        while offset + 4 <= length {
            let code = CaptureReader.load(start, offset, byteOrder, as: UInt16.self)
            let valueLength = Int(CaptureReader.load(start, offset + 2, byteOrder, as: UInt16.self))
            if code == 0 || offset + 4 + valueLength > length { return }
            body(code, UnsafeRawBufferPointer(start: start + offset + 4, count: valueLength))
            offset += 4 + (valueLength + 3) & ~3
        }
    }

    func badBody(_ offset: UInt64, _ what: String) -> CaptureError {
        CaptureError(path: path, offset: offset, kind: .badLength, detail: "a pcapng \(what) block too short for its fields")
    }
}
