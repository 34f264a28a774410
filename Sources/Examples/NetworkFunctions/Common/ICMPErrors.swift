import StatelessKit

/// Rewrites an ICMP error about a translated flow: the outer address at
/// `outer` and the quoted endpoint at `quoted` become `endpoint`'s, every
/// checksum kept right (the quoted header's, the quoted transport's where
/// it can be, and the outer ICMP checksum).
func translateError(_ packet: Packet, to endpoint: NATEndpoint, outer: Endpoint, quoted: Endpoint) {
    packet.setIPv4Address(endpoint.address, at: outer)
    translateQuoted(packet, to: endpoint, at: quoted)
}

/// Rewrites the endpoint at `end` of the packet an ICMP error quotes: its
/// address, and its port (or, for an ICMP query, its identifier).
func translateQuoted(_ packet: Packet, to endpoint: NATEndpoint, at end: Endpoint) {
    packet.setQuotedIPv4Address(endpoint.address, at: end)
    if packet.layout.quote!.icmp == .query {
        packet.setQuotedICMPIdentifier(endpoint.port)
    } else {
        packet.setQuotedPort(endpoint.port, at: end)
    }
}
