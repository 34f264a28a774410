import Foundation
import NetworkFunctions
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

@Suite("Stateful firewall")
struct FirewallTests {
    let p = TCPPeers()

    @Test("debug", arguments: [StoreKind.embedded])
    func debugReorder(_ kind: StoreKind) throws {
        let fw = try FirewallRig(kind)
        #expect(fw.send(p.segment(fromClient: false, seq: 5000, ack: 1001, flags: [.syn, .ack]), outbound: false) == "drop invalid/noConnection")
        #expect(fw.send(p.segment(fromClient: true, seq: 1000, flags: .syn), outbound: true) == "pass")
        #expect(fw.send(p.segment(fromClient: true, seq: 1001, ack: 5001, flags: .ack), outbound: true) == "drop invalid/dataBeforeHandshake")
    }
}
