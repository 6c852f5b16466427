import Testing

@testable import SSERedis

/// The command router's client cap against a burst before the first topology (from a review of
/// the first per-channel commit).
@Suite("Cluster routing: the client cap and a master that joins later")
struct ClusterRoutingCapTests {
    typealias Machine = ClusterRoutingStateMachine

    typealias Fixtures = ClusterRoutingStateMachineTests
    static let a = Fixtures.a
    static let b = Fixtures.b
    static let c = Fixtures.c

    static func topology(_ ranges: [(ClosedRange<Int>, SentinelAddress)]) -> ClusterTopology {
        Fixtures.topology(ranges)
    }

    /// The representative a route picks.
    static func representative(_ action: Machine.Action) -> Int? {
        guard case .client(let representative, _) = action.route else { return nil }
        return representative
    }

    @Test("clients made while no topology was known (a burst at start) do not use up the cap: a master added later still gets a client of its own")
    func representativesMadeBeforeTheTopologyDoNotStarveANewMaster() {
        var now = ContinuousClock.now
        var machine = Machine(maximumClients: 4, retryInterval: .milliseconds(500))
        _ = machine.start(now: now)
        // Commands on four slots of two masters arrive before the first CLUSTER SLOTS answer:
        // one client takes them all (it made a client each, and the cap was reached).
        for slot in [10, 20, 30, 40] { _ = machine.route(slot: slot, now: now) }
        #expect(machine.representatives == [10])
        _ = machine.topologyRead(Self.topology([(0...8191, Self.a), (8192...16383, Self.b)]), now: now)
        // Later a third master takes slots 12000...16383 (scale out), and the router learns it
        // from a read of the topology.
        now = now.advanced(by: .seconds(60))
        _ = machine.route(slot: 100, now: now)
        _ = machine.topologyRead(Self.topology([(0...8191, Self.a), (8192...11999, Self.b), (12000...16383, Self.c)]), now: now)
        #expect(machine.master(forSlot: 13000) == Self.c)
        // A command on 13000, and the -MOVED to c it gets from wherever it went, twice (the
        // router's resends).
        var picks: [Int?] = []
        for _ in 0...ClusterCommandRouter.maximumResends {
            let action = machine.route(slot: 13000, now: now)
            picks.append(Self.representative(action))
            _ = machine.moved(slot: 13000, to: Self.c, now: now)
        }
        // Every pick must be a client on c; each of 10...40 follows its own slot's master (a or b).
        let onC = picks.map { pick in pick.map { machine.master(forSlot: $0) == Self.c } ?? false }
        #expect(onC.contains(true), "routes for slot 13000 (served by c) went to representatives \(picks), all on a or b")
    }
}
