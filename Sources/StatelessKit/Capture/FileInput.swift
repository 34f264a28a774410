import SystemPackage

/// A file read front to back through one buffer that holds at least the
/// current record, so that a capture of any size streams in bounded memory.
final class FileInput {
    let path: String
    let descriptor: FileDescriptor
    private var buffer: UnsafeMutableRawBufferPointer
    /// The unread bytes are buffer[start..<end].
    private var start = 0
    private var end = 0
    private var atEndOfFile = false
    /// The file offset of buffer[start].
    private(set) var offset: UInt64 = 0

    static let chunk = 1 << 20

    init(path: String) throws(CaptureError) {
        self.path = path
        do {
            descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
        } catch {
            throw CaptureError(path: path, offset: nil, kind: .cannotOpen, detail: "cannot open: \(error)")
        }
        buffer = .allocate(byteCount: Self.chunk, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        try? descriptor.close()
    }

    /// The unread bytes.
    var available: Int { end - start }

    /// The buffer's size.
    var capacity: Int { buffer.count }

    /// The next unread byte.
    var pointer: UnsafeRawPointer { UnsafeRawPointer(buffer.baseAddress! + start) }

    /// Makes `count` bytes available; returns how many are (fewer only at the
    /// end of the file).
    func fill(_ count: Int) throws(CaptureError) -> Int {
        if available >= count || atEndOfFile { return available }
        if start + count > buffer.count {
            if count > buffer.count {
                let larger = UnsafeMutableRawBufferPointer.allocate(
                    byteCount: (count + Self.chunk - 1) / Self.chunk * Self.chunk, alignment: 16)
                larger.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: available)
                buffer.deallocate()
                buffer = larger
            } else {
                buffer.baseAddress!.copyMemory(from: buffer.baseAddress! + start, byteCount: available)
            }
            end = available
            start = 0
        }
        while available < count && !atEndOfFile {
            let room = UnsafeMutableRawBufferPointer(rebasing: buffer[end...])
            let read: Int
            do {
                read = try descriptor.read(into: room)
            } catch {
                throw CaptureError(path: path, offset: offset + UInt64(available), kind: .cannotRead,
                                   detail: "read failed: \(error)")
            }
            if read == 0 { atEndOfFile = true }
            end += read
        }
        return available
    }

    /// Makes exactly `count` bytes available or throws, naming `what` was cut short.
    func require(_ count: Int, _ what: String) throws(CaptureError) {
        let have = try fill(count)
        guard have >= count else {
            throw CaptureError(path: path, offset: offset, kind: .truncated,
                               detail: "the file ends inside \(what) (\(have) of \(count) bytes present)")
        }
    }

    /// Consumes `count` available bytes.
    func skip(_ count: Int) {
        precondition(count <= available)
        start += count
        offset += UInt64(count)
    }
}
