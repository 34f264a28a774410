import NetworkFunctions
import Testing

@Suite("Failover scenario (statelessnf demo)")
struct FailoverScenarioTests {
    @Test("with a shared store every flow keeps its mapping and nothing is lost; with state per instance the moved flows break")
    func sharedAgainstSeparate() throws {
        let shared = try FailoverScenario.run(flows: 600, rounds: 6, shareStore: true)
        #expect(shared.flows == 600)
        #expect(shared.movedFlows > 200 && shared.movedFlows < 400, "about half the flows were on B")
        #expect(shared.keptMapping == 600 && shared.changedMapping == 0)
        #expect(shared.packetsDelivered == shared.packetsSent)
        #expect(shared.lostForLackOfState == 0 && shared.deliveredToWrongHost == 0 && shared.otherDrops.isEmpty)

        let separate = try FailoverScenario.run(flows: 600, rounds: 6, shareStore: false)
        #expect(separate.movedFlows == shared.movedFlows, "the same flows move")
        #expect(separate.changedMapping == separate.movedFlows, "every moved flow got a new mapping")
        // Each moved flow loses its reply in each round after the failure.
        #expect(separate.lostForLackOfState == separate.movedFlows * 3)
        #expect(separate.packetsDelivered == separate.packetsSent - separate.lostForLackOfState)
    }
}
