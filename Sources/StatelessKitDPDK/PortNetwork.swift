import StatelessKit

/// How a DPDK port takes part in its IPv4 network, as a router's interface
/// does: it answers ARP for its address, reaches hosts inside its prefix
/// directly and everything else through its gateway, and writes each
/// leaving frame's Ethernet addresses (its own as the source, the next
/// hop's as the destination). A port with no network passes frames with the
/// Ethernet addresses they came with.
public struct PortNetwork: Sendable, Equatable, CustomStringConvertible {
    /// The port's address.
    public var address: IPv4Address
    /// The length of the prefix the port is on.
    public var prefixLength: Int
    /// The router beyond the prefix, if any.
    public var gateway: IPv4Address?

    /// A port at `address` on a prefix of `prefixLength` bits, with an
    /// optional `gateway` (which must be inside the prefix).
    public init(address: IPv4Address, prefixLength: Int, gateway: IPv4Address? = nil) {
        self.address = address
        self.prefixLength = prefixLength
        self.gateway = gateway
    }

    /// Parses `ADDRESS/LENGTH[,gateway=ADDRESS]` (`10.0.0.1/24,gateway=10.0.0.254`);
    /// the error says what is wrong.
    public static func parse(_ text: some StringProtocol) throws(PortNetworkError) -> PortNetwork {
        let parts = text.split(separator: ",")
        guard let first = parts.first else { throw PortNetworkError("\(text): give ADDRESS/LENGTH[,gateway=ADDRESS]") }
        let pieces = first.split(separator: "/")
        guard pieces.count == 2, let address = IPv4Address(pieces[0]), let length = Int(pieces[1]), (1...32).contains(length) else {
            throw PortNetworkError("\(first): an IPv4 address and a prefix length 1-32, such as 10.0.0.1/24")
        }
        var network = PortNetwork(address: address, prefixLength: length)
        for option in parts.dropFirst() {
            guard option.hasPrefix("gateway="), let gateway = IPv4Address(option.dropFirst(8)) else {
                throw PortNetworkError("\(option): the only option is gateway=ADDRESS")
            }
            guard network.isLocal(gateway), gateway != address else {
                throw PortNetworkError("gateway \(gateway) is not another address of \(address)/\(length)")
            }
            network.gateway = gateway
        }
        return network
    }

    /// Whether `host` is on the port's prefix.
    @inline(__always)
    public func isLocal(_ host: IPv4Address) -> Bool {
        let mask: UInt32 = ~0 << UInt32(32 - prefixLength)
        return host.value & mask == address.value & mask
    }

    /// The neighbour a packet for `destination` goes to: itself when it is on
    /// the prefix, else the gateway (`nil` when there is none).
    @inline(__always)
    public func nextHop(_ destination: IPv4Address) -> IPv4Address? {
        isLocal(destination) ? destination : gateway
    }

    public var description: String {
        "\(address)/\(prefixLength)" + (gateway.map { ",gateway=\($0)" } ?? "")
    }
}

/// A port network that does not parse.
public struct PortNetworkError: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}
