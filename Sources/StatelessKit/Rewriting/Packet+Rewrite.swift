/// In-place rewrites of addresses, ports and ICMP identifiers, with every
/// checksum that covers the changed bytes updated incrementally (RFC 1624):
/// the IPv4 header checksum, the TCP/UDP/ICMPv6 checksum through the
/// pseudo-header, and for an ICMP error, the quoted header's checksums and the
/// outer ICMP checksum over them.
///
/// Each returns `false`, changing nothing, when the packet has no such field
/// (an IPv6 address asked of an IPv4 packet, a port of a non-first fragment).
/// A UDP checksum of zero (none, over IPv4) stays zero.
///
/// Rewriting a field and writing its old value back restores the packet's
/// bytes exactly, with one exception that no packet with a correct checksum
/// has: a wrong checksum field holding 0xFFFF or 0x0000 may come back as the
/// other, since one's complement's two zeros are indistinguishable to the
/// RFC 1624 update.
extension Packet {
    /// Sets the IPv4 address at `endpoint`.
    @inlinable
    @discardableResult
    public func setIPv4Address(_ new: IPv4Address, at endpoint: Endpoint) -> Bool {
        guard layout.network == .ipv4 else { return false }
        let l3 = Int(layout.l3Offset)
        let field = l3 + (endpoint == .source ? 12 : 16)
        let old = data.loadBigEndian(field, as: UInt32.self)
        data.storeBigEndian(new.value, at: field)
        updateChecksum(at: l3 + 10) { InternetChecksum.updated($0, old: old, new: new.value) }
        if let checksum = pseudoHeaderChecksumOffset {
            updateTransportChecksum(at: checksum) { InternetChecksum.updated($0, old: old, new: new.value) }
        }
        return true
    }

    /// Sets the IPv6 address at `endpoint`.
    @inlinable
    @discardableResult
    public func setIPv6Address(_ new: IPv6Address, at endpoint: Endpoint) -> Bool {
        guard layout.network == .ipv6 else { return false }
        let field = Int(layout.l3Offset) + (endpoint == .source ? 8 : 24)
        let old = IPv6Address(high: data.loadBigEndian(field, as: UInt64.self),
                              low: data.loadBigEndian(field + 8, as: UInt64.self))
        data.storeBigEndian(new.high, at: field)
        data.storeBigEndian(new.low, at: field + 8)
        if let checksum = pseudoHeaderChecksumOffset {
            updateTransportChecksum(at: checksum) { InternetChecksum.updated($0, old: old, new: new) }
        }
        return true
    }

    /// Sets the TCP or UDP port at `endpoint`.
    @inlinable
    @discardableResult
    public func setPort(_ new: UInt16, at endpoint: Endpoint) -> Bool {
        guard layout.hasPorts else { return false }
        let l4 = Int(layout.l4Offset)
        let field = l4 + (endpoint == .source ? 0 : 2)
        let old = data.loadBigEndian(field, as: UInt16.self)
        data.storeBigEndian(new, at: field)
        updateTransportChecksum(at: l4 + (layout.transport == .tcp ? 16 : 6)) {
            InternetChecksum.updated($0, old: old, new: new)
        }
        return true
    }

    /// Sets the identifier of an ICMP or ICMPv6 query.
    @inlinable
    @discardableResult
    public func setICMPIdentifier(_ new: UInt16) -> Bool {
        guard layout.icmp == .query else { return false }
        let l4 = Int(layout.l4Offset)
        let old = data.loadBigEndian(l4 + 4, as: UInt16.self)
        data.storeBigEndian(new, at: l4 + 4)
        updateChecksum(at: l4 + 2) { InternetChecksum.updated($0, old: old, new: new) }
        if layout.transport == .icmpv4 && data.loadBigEndian(l4 + 2, as: UInt16.self) == 0 {
            fixAllZeroICMPChecksum()
        }
        return true
    }

    /// An ICMP message with no pseudo-header whose every word is zero (an
    /// echo reply with identifier, sequence and payload all zero) sums to +0,
    /// so its checksum is 0xFFFF; the incremental update cannot tell that
    /// from the -0 sum that gives 0x0000, so look.
    @usableFromInline
    func fixAllZeroICMPChecksum() {
        let l4 = Int(layout.l4Offset)
        let message = UnsafeRawBufferPointer(start: data + l4, count: Int(layout.l3End) - l4)
        if message.allSatisfy({ $0 == 0 }) { data.storeBigEndian(UInt16(0xFFFF), at: l4 + 2) }
    }

    /// Sets the IPv4 address at `endpoint` of the packet an ICMP error quotes.
    @inlinable
    @discardableResult
    public func setQuotedIPv4Address(_ new: IPv4Address, at endpoint: Endpoint) -> Bool {
        guard let quote = layout.quote, quote.network == .ipv4 else { return false }
        let q = Int(quote.l3Offset)
        let field = q + (endpoint == .source ? 12 : 16)
        let old = data.loadBigEndian(field, as: UInt32.self)
        writeQuotedWord(UInt16(truncatingIfNeeded: new.value >> 16), at: field)
        writeQuotedWord(UInt16(truncatingIfNeeded: new.value), at: field + 2)
        let headerChecksum = data.loadBigEndian(q + 10, as: UInt16.self)
        writeQuotedWord(InternetChecksum.updated(headerChecksum, old: old, new: new.value), at: q + 10)
        if let checksum = quotedPseudoHeaderChecksumOffset(quote) {
            updateQuotedTransportChecksum(at: checksum, udp: quote.transport == .udp) {
                InternetChecksum.updated($0, old: old, new: new.value)
            }
        }
        return true
    }

    /// Sets the IPv6 address at `endpoint` of the packet an ICMPv6 error quotes.
    @inlinable
    @discardableResult
    public func setQuotedIPv6Address(_ new: IPv6Address, at endpoint: Endpoint) -> Bool {
        guard let quote = layout.quote, quote.network == .ipv6 else { return false }
        let field = Int(quote.l3Offset) + (endpoint == .source ? 8 : 24)
        let old = IPv6Address(high: data.loadBigEndian(field, as: UInt64.self),
                              low: data.loadBigEndian(field + 8, as: UInt64.self))
        for (i, group) in new.groups.enumerated() {
            writeQuotedWord(group, at: field + 2 * i)
        }
        if let checksum = quotedPseudoHeaderChecksumOffset(quote) {
            updateQuotedTransportChecksum(at: checksum, udp: quote.transport == .udp) {
                InternetChecksum.updated($0, old: old, new: new)
            }
        }
        return true
    }

    /// Sets the TCP or UDP port at `endpoint` of the packet an ICMP error quotes.
    @inlinable
    @discardableResult
    public func setQuotedPort(_ new: UInt16, at endpoint: Endpoint) -> Bool {
        guard let quote = layout.quote, quote.transport == .tcp || quote.transport == .udp else { return false }
        let l4 = Int(quote.l4Offset)
        let field = l4 + (endpoint == .source ? 0 : 2)
        let old = data.loadBigEndian(field, as: UInt16.self)
        writeQuotedWord(new, at: field)
        updateQuotedTransportChecksum(at: l4 + (quote.transport == .tcp ? 16 : 6), udp: quote.transport == .udp) {
            InternetChecksum.updated($0, old: old, new: new)
        }
        return true
    }

    /// Sets the identifier of the ICMP query an ICMP error quotes.
    @inlinable
    @discardableResult
    public func setQuotedICMPIdentifier(_ new: UInt16) -> Bool {
        guard let quote = layout.quote, quote.icmp == .query else { return false }
        let l4 = Int(quote.l4Offset)
        let old = data.loadBigEndian(l4 + 4, as: UInt16.self)
        writeQuotedWord(new, at: l4 + 4)
        updateQuotedTransportChecksum(at: l4 + 2, udp: false) { InternetChecksum.updated($0, old: old, new: new) }
        return true
    }

    // MARK: - Checksum plumbing

    /// Where the transport checksum that covers the pseudo-header is, when
    /// this packet carries one (TCP, UDP, ICMPv6; not a non-first fragment).
    @inlinable
    var pseudoHeaderChecksumOffset: Int? {
        let l4 = Int(layout.l4Offset)
        switch layout.transport {
        case .tcp: return l4 + 16
        case .udp: return l4 + 6
        case .icmpv6: return l4 + 2
        default: return nil
        }
    }

    /// The same, inside a quote, when the quote reaches the checksum field.
    @inlinable
    func quotedPseudoHeaderChecksumOffset(_ quote: QuotedPacket) -> Int? {
        let offset: Int
        switch quote.transport {
        case .tcp: offset = 16
        case .udp: offset = 6
        case .icmpv6: offset = 2
        default: return nil
        }
        return offset + 2 <= quote.transportBytes ? Int(quote.l4Offset) + offset : nil
    }

    @inlinable
    func updateChecksum(at offset: Int, _ update: (UInt16) -> UInt16) {
        data.storeBigEndian(update(data.loadBigEndian(offset, as: UInt16.self)), at: offset)
    }

    /// Updates the outer transport checksum; a zero UDP checksum means none
    /// and stays zero, and a UDP checksum never becomes zero.
    @inlinable
    func updateTransportChecksum(at offset: Int, _ update: (UInt16) -> UInt16) {
        let old = data.loadBigEndian(offset, as: UInt16.self)
        if let new = Self.updatedTransportChecksum(old, udp: layout.transport == .udp, update) {
            data.storeBigEndian(new, at: offset)
        }
    }

    /// The TCP or UDP checksum `old` updated by `update`, or `nil` when it
    /// stays as it is: a zero UDP checksum means none and stays zero, and a
    /// UDP checksum never becomes zero (it is sent as all ones). Zero and
    /// all ones read the same in either byte order, so this holds for a
    /// checksum loaded as it lies.
    @inlinable @inline(__always)
    static func updatedTransportChecksum(_ old: UInt16, udp: Bool, _ update: (UInt16) -> UInt16) -> UInt16? {
        if udp && old == 0 { return nil }
        let new = update(old)
        return udp && new == 0 ? 0xFFFF : new
    }

    /// Writes a 16-bit word inside an ICMP error's message and updates the
    /// ICMP checksum, which covers it.
    @inlinable
    func writeQuotedWord(_ new: UInt16, at offset: Int) {
        let old = data.loadBigEndian(offset, as: UInt16.self)
        guard old != new else { return }
        data.storeBigEndian(new, at: offset)
        updateChecksum(at: Int(layout.l4Offset) + 2) { InternetChecksum.updated($0, old: old, new: new) }
    }

    /// Updates a checksum inside a quote, if the quote reaches it, through
    /// ``writeQuotedWord(_:at:)``.
    @inlinable
    func updateQuotedTransportChecksum(at offset: Int, udp: Bool, _ update: (UInt16) -> UInt16) {
        guard let quote = layout.quote, offset + 2 <= Int(quote.end) else { return }
        if let new = Self.updatedTransportChecksum(data.loadBigEndian(offset, as: UInt16.self), udp: udp, update) {
            writeQuotedWord(new, at: offset)
        }
    }
}
