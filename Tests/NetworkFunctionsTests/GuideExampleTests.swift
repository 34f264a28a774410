// The example of Documentation/WritingAnNF.md, compiled and tested here so
// that the guide stays true.
import Foundation
import StatelessKit
import StatelessKitStore
import StoreTestSupport
import Testing

// MARK: The NF

/// Lets packets from the outside in only on flows the inside opened.
struct ReturnTrafficOnly {
    let schema = StateSchema(namespace: "return-only-\(UUID())")
    let flows: StateTable<FlowKey, UInt64>
    let timeout: Int64 = 60_000_000_000  // 60 s idle

    init() {
        // One entry per flow, found from either direction: the key is the
        // flow key in canonical order, so both directions compute the same one.
        flows = schema.table("flows", key: FlowKey.self, value: UInt64.self, capacity: 100_000)
    }

    func graph(inside: UInt16, outside: UInt16) throws -> Graph {
        try Graph("return-only") { g in
            let parse = g.add(ParseNode())
            let track = g.add(Track(flows: flows, timeout: timeout, inside: inside))
            g.entry(parse)
            g.route(parse) { $0 == .ip ? track as any Destination : g.drop("not ip") }
            g.route(track) { switch $0 {
                case .toOutside: g.port(outside)
                case .toInside: g.port(inside)
                case .unsolicited: g.drop("unsolicited")
            } }
        }
    }
}

/// Outbound packets open (or refresh) their flow; inbound ones need it.
struct Track: StatefulNode {
    enum Output: UInt8, NodeOutput { case toOutside, toInside, unsolicited }
    struct Scratch {
        var read: Ticket<Entry<UInt64>?>? = nil
    }
    static var emptyScratch: Scratch { Scratch() }
    let flows: StateTable<FlowKey, UInt64>
    let timeout: Int64
    let inside: UInt16

    func start(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
               _ context: inout NodeContext) -> Step<Output> {
        let key = packet.flowKey!.canonical
        let deadline = Timestamp(nanoseconds: state.now.nanoseconds + timeout)
        if packet.port == inside {
            // Opening or refreshing needs no answer: the packet goes on now.
            state.insertIfAbsent(flows, key, UInt64(state.now.nanoseconds), deadline: deadline)
            state.touch(flows, key, deadline: deadline)
            return .done(.toOutside)
        }
        scratch.read = state.read(flows, key)
        return .wait
    }

    func resume(_ packet: inout Packet, _ scratch: inout Scratch, _ state: inout StateAccess,
                _ context: inout NodeContext) -> Step<Output> {
        state[scratch.read!] == nil ? .done(.unsolicited) : .done(.toInside)
    }
}

// MARK: Its tests

@Suite("The guide's example NF")
struct GuideExampleTests {
    let host = IPv4Address(10, 0, 0, 5)
    let server = IPv4Address(192, 0, 2, 80)

    @Test("replies pass, unsolicited packets do not, and flows expire", arguments: StoreKind.available)
    func returnTrafficOnly(_ kind: StoreKind) throws {
        let nf = ReturnTrafficOnly()
        let harness = GraphHarness(graph: try nf.graph(inside: 1, outside: 2),
                                   session: try kind.make().makeSession(for: nf.schema))
        let request = PacketBuilder().ipv4(source: host, destination: server).tcp(source: 5555, destination: 80, flags: .syn)
        let reply = PacketBuilder().ipv4(source: server, destination: host).tcp(source: 80, destination: 5555, flags: [.syn, .ack])

        #expect(harness.send(reply, port: 2).drops == ["unsolicited": 1])
        #expect(harness.send(request, port: 1).packets(on: 2) == [request])
        #expect(harness.send(reply, port: 2).packets(on: 1) == [reply])
        harness.advance(seconds: 61)
        #expect(harness.send(reply, port: 2).drops == ["unsolicited": 1])
    }
}
