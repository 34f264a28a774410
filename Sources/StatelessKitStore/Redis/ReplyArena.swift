import CHiredisShim

/// Where a pipelined connection's replies are built: hiredis's reader calls
/// these functions instead of allocating a `redisReply` per element, and
/// each reply is laid out in buffers reused from reply to reply (a reply is
/// valid until the next one is read). A reply of a batch's `MGET` so costs
/// no allocation, however many keys it has.
final class ReplyArena {
    /// A reply or an element of one.
    struct Node {
        /// `REDIS_REPLY_*`.
        var type: Int32
        /// An array's element count.
        var elements: Int32
        /// An integer's value.
        var integer: Int64
        /// A string's bytes' offset, or an array's first slot in `children`.
        var offset: Int
        /// A string's length.
        var length: Int
    }

    @exclusivity(unchecked) private(set) var nodes: UnsafeMutablePointer<Node>
    @exclusivity(unchecked) private var nodeCount = 0
    @exclusivity(unchecked) private var nodeCapacity = 256
    @exclusivity(unchecked) private(set) var bytes: UnsafeMutableRawPointer
    @exclusivity(unchecked) private var byteCount = 0
    @exclusivity(unchecked) private var byteCapacity = 16_384
    @exclusivity(unchecked) private(set) var children: UnsafeMutablePointer<Int32>
    @exclusivity(unchecked) private var childCount = 0
    @exclusivity(unchecked) private var childCapacity = 256

    init() {
        nodes = .allocate(capacity: nodeCapacity)
        bytes = .allocate(byteCount: byteCapacity, alignment: 8)
        children = .allocate(capacity: childCapacity)
    }

    deinit {
        nodes.deallocate()
        bytes.deallocate()
        children.deallocate()
    }

    /// The functions to give hiredis's reader, with an arena as its
    /// private data (allocated once, for the life of the process).
    nonisolated(unsafe) static let functions: UnsafeMutablePointer<redisReplyObjectFunctions> = {
        let pointer = UnsafeMutablePointer<redisReplyObjectFunctions>.allocate(capacity: 1)
        pointer.initialize(to: table)
        return pointer
    }()

    nonisolated(unsafe) private static let table = redisReplyObjectFunctions(
        createString: { task, string, length in
            arena(task).add(task!, Node(type: task!.pointee.type, elements: 0, integer: 0, offset: 0, length: length),
                            string: string)
        },
        createArray: { task, elements in
            arena(task).add(task!, Node(type: REDIS_REPLY_ARRAY, elements: Int32(elements), integer: 0, offset: 0, length: 0))
        },
        createInteger: { task, value in
            arena(task).add(task!, Node(type: REDIS_REPLY_INTEGER, elements: 0, integer: value, offset: 0, length: 0))
        },
        createNil: { task in
            arena(task).add(task!, Node(type: REDIS_REPLY_NIL, elements: 0, integer: 0, offset: 0, length: 0))
        },
        freeObject: { _ in })

    private static func arena(_ task: UnsafePointer<redisReadTask>?) -> ReplyArena {
        Unmanaged<ReplyArena>.fromOpaque(task!.pointee.privdata!).takeUnretainedValue()
    }

    /// Adds a node; returns the object hiredis keeps for it (its index + 1).
    private func add(_ task: UnsafePointer<redisReadTask>, _ node: Node, string: UnsafeMutablePointer<CChar>? = nil)
        -> UnsafeMutableRawPointer? {
        if task.pointee.parent == nil {
            // A new reply: the one before it has been handled.
            nodeCount = 0
            byteCount = 0
            childCount = 0
        }
        if nodeCount == nodeCapacity { grow(&nodes, &nodeCapacity, nodeCount) }
        var node = node
        if let string {
            if byteCount + node.length > byteCapacity {
                let larger = max(byteCapacity * 2, byteCount + node.length)
                let grown = UnsafeMutableRawPointer.allocate(byteCount: larger, alignment: 8)
                grown.copyMemory(from: bytes, byteCount: byteCount)
                bytes.deallocate()
                bytes = grown
                byteCapacity = larger
            }
            (bytes + byteCount).copyMemory(from: string, byteCount: node.length)
            node.offset = byteCount
            byteCount += node.length
        } else if node.type == REDIS_REPLY_ARRAY {
            let count = max(Int(node.elements), 0)
            while childCount + count > childCapacity { grow(&children, &childCapacity, childCount) }
            node.offset = childCount
            childCount += count
        }
        let index = nodeCount
        nodes[index] = node
        nodeCount += 1
        if let parent = task.pointee.parent, let object = parent.pointee.obj {
            let parentIndex = Int(bitPattern: object) - 1
            children[nodes[parentIndex].offset + Int(task.pointee.idx)] = Int32(index)
        }
        return UnsafeMutableRawPointer(bitPattern: index + 1)
    }

    private func grow<T>(_ buffer: inout UnsafeMutablePointer<T>, _ capacity: inout Int, _ used: Int) {
        let grown = UnsafeMutablePointer<T>.allocate(capacity: capacity * 2)
        grown.moveInitialize(from: buffer, count: used)
        buffer.deallocate()
        buffer = grown
        capacity *= 2
    }

    // MARK: Reading a reply

    /// The node hiredis handed back as `object`.
    @inline(__always)
    func node(_ object: UnsafeMutableRawPointer) -> Int { Int(bitPattern: object) - 1 }

    @inline(__always)
    func type(_ node: Int) -> Int32 { nodes[node].type }

    @inline(__always)
    func elements(_ node: Int) -> Int { Int(nodes[node].elements) }

    @inline(__always)
    func element(_ node: Int, _ index: Int) -> Int { Int(children[nodes[node].offset + index]) }

    @inline(__always)
    func integer(_ node: Int) -> Int64 { nodes[node].integer }

    /// A string's bytes and length.
    @inline(__always)
    func string(_ node: Int) -> (UnsafeRawPointer, Int) {
        (UnsafeRawPointer(bytes + nodes[node].offset), nodes[node].length)
    }

    /// A string node's text.
    func text(_ node: Int) -> String {
        let (pointer, length) = string(node)
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    /// A node as a ``RedisReply``, for messages.
    func reply(_ node: Int) -> RedisReply {
        switch type(node) {
        case REDIS_REPLY_STATUS: return .status(text(node))
        case REDIS_REPLY_ERROR: return .error(text(node))
        case REDIS_REPLY_STRING:
            let (pointer, length) = string(node)
            return .bulk(Array(UnsafeRawBufferPointer(start: pointer, count: length)))
        case REDIS_REPLY_INTEGER: return .integer(integer(node))
        case REDIS_REPLY_ARRAY: return .array((0..<elements(node)).map { reply(element(node, $0)) })
        default: return .null
        }
    }
}
