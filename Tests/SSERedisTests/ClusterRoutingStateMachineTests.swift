@testable import SSERedis
import Testing

@Suite("Cluster routing: which client serves a slot, when the topology is read")
struct ClusterRoutingStateMachineTests {
    typealias Machine = ClusterRoutingStateMachine

    static let a = SentinelAddress(host: "127.0.0.1", port: 7000)
    static let b = SentinelAddress(host: "127.0.0.1", port: 7001)
    static let c = SentinelAddress(host: "127.0.0.1", port: 7002)

    /// Three masters: 0-5460 on a, 5461-10922 on b, 10923-16383 on c.
    static let threeMasters = topology([(0...5460, a), (5461...10922, b), (10923...16383, c)])

    static func topology(_ ranges: [(ClosedRange<Int>, SentinelAddress)]) -> ClusterTopology {
        let reply = RedisReply.array(ranges.map { range, master in
            .array([
                .integer(Int64(range.lowerBound)), .integer(Int64(range.upperBound)),
                .array([.bulkString(Array(master.host.utf8)), .integer(Int64(master.port)), .bulkString(Array("id".utf8))]),
            ])
        })
        switch ClusterTopology.decode(slots: reply, askedHost: "seed") {
        case .success(let topology): return topology
        case .failure(let error): preconditionFailure("test topology: \(error)")
        }
    }

    static func client(_ representative: Int, create: Bool = false) -> Machine.Route {
        .client(representative: representative, create: create)
    }

    /// A machine whose first read has completed with `topology`, at `now`.
    static func machine(_ topology: ClusterTopology = threeMasters, maximumClients: Int = 64, now: ContinuousClock.Instant) -> Machine {
        var machine = Machine(maximumClients: maximumClients, retryInterval: .milliseconds(500))
        _ = machine.start(now: now)
        _ = machine.topologyRead(topology, now: now)
        return machine
    }

    @Test("without a topology: one client, made for the first slot asked for and taking every other slot (a -MOVED then tells where they go); one read at start, no second while it is in flight")
    func withoutTopology() {
        let now = ContinuousClock.now
        var machine = Machine(maximumClients: 64, retryInterval: .milliseconds(500))
        let started = machine.start(now: now)
        #expect(started)
        let first = machine.route(slot: 100, now: now)
        #expect(first == Machine.Action(route: Self.client(100, create: true), startTopologyRead: false))
        let again = machine.route(slot: 100, now: now.advanced(by: .seconds(1)))
        #expect(again == Machine.Action(route: Self.client(100), startTopologyRead: false))
        let other = machine.route(slot: 200, now: now)
        #expect(other.route == Self.client(100))
        #expect(machine.representatives == [100])
        #expect(machine.isReading)
    }

    @Test("with a topology: slots of one master share the first client made for it; three masters, three clients")
    func sharedPerMaster() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        var routes: [Machine.Route] = []
        for slot in [10, 20, 6000, 5460, 16383, 7000, 10923] { routes.append(machine.route(slot: slot, now: now).route) }
        #expect(routes == [
            Self.client(10, create: true), Self.client(10), Self.client(6000, create: true), Self.client(10),
            Self.client(16383, create: true), Self.client(6000), Self.client(16383),
        ])
        #expect(machine.representatives == [10, 6000, 16383])
    }

    @Test("a slot that is itself a representative keeps its own client, even when another client shares its master")
    func ownClientFirst() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        _ = machine.route(slot: 10, now: now)
        _ = machine.route(slot: 6000, now: now)
        // Slot 6000 moves to a's master, which client 10 already serves.
        _ = machine.topologyRead(Self.topology([(0...6000, Self.a), (6001...10922, Self.b), (10923...16383, Self.c)]), now: now.advanced(by: .seconds(1)))
        let own = machine.route(slot: 6000, now: now)
        let shared = machine.route(slot: 30, now: now)
        #expect(own.route == Self.client(6000))
        #expect(shared.route == Self.client(10))
    }

    @Test("past maximumClients a slot of a master without a client goes to the nearest representative")
    func clientBound() {
        let now = ContinuousClock.now
        var machine = Self.machine(maximumClients: 2, now: now)
        _ = machine.route(slot: 100, now: now)
        _ = machine.route(slot: 6000, now: now)
        let onC = machine.route(slot: 12000, now: now)
        let keyless = machine.route(slot: nil, now: now)
        #expect(onC.route == Self.client(6000))
        #expect(keyless.route == Self.client(100))
        #expect(machine.representatives == [100, 6000])
    }

    @Test("a command without a key goes to the first client, or makes one for slot 0")
    func keyless() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        let first = machine.route(slot: nil, now: now)
        let second = machine.route(slot: nil, now: now)
        #expect(first.route == Self.client(0, create: true))
        #expect(second.route == Self.client(0))
    }

    @Test("a -MOVED is followed at once: the slot goes to the client of its new master, or a new client routed to it")
    func movedOverride() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        _ = machine.route(slot: 10, now: now)
        _ = machine.route(slot: 6000, now: now)
        // Slot 20 (on a) moved to b, which has a client: that one.
        let readAfterMove = machine.moved(slot: 20, to: Self.b, now: now.advanced(by: .milliseconds(200)))
        #expect(readAfterMove)
        let twenty = machine.route(slot: 20, now: now)
        #expect(twenty.route == Self.client(6000))
        #expect(machine.master(forSlot: 20) == Self.b)
        // Slot 30 moved to a node the topology does not know yet: a client routed to 30.
        let d = SentinelAddress(host: "127.0.0.1", port: 7009)
        _ = machine.moved(slot: 30, to: d, now: now)
        let thirty = machine.route(slot: 30, now: now)
        #expect(thirty.route == Self.client(30, create: true))
        // Other slots of a stay where they were.
        let forty = machine.route(slot: 40, now: now)
        #expect(forty.route == Self.client(10))
    }

    @Test("a read drops the overrides recorded before it started, keeps those recorded while it ran")
    func overridesClearedByLaterRead() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        _ = machine.moved(slot: 20, to: Self.b, now: now.advanced(by: .milliseconds(200)))
        #expect(machine.isReading)
        _ = machine.moved(slot: 21, to: Self.c, now: now.advanced(by: .milliseconds(210)))
        // The read in flight (started before slot 21 moved) ends: 20 is dropped, 21 kept.
        let moved = Self.topology([(0...19, Self.a), (20...20, Self.b), (21...5460, Self.a), (5461...10922, Self.b), (10923...16383, Self.c)])
        let again = machine.topologyRead(moved, now: now.advanced(by: .milliseconds(220)))
        #expect(!again, "wanted again, but within 100 ms of the last start")
        #expect(machine.overrideCount == 1)
        #expect(machine.master(forSlot: 20) == Self.b)
        #expect(machine.master(forSlot: 21) == Self.c)
        // The next route after 100 ms starts the read wanted by the second MOVED; its end drops 21.
        let next = machine.route(slot: 5, now: now.advanced(by: .milliseconds(320)))
        #expect(next.startTopologyRead)
        _ = machine.topologyRead(moved, now: now.advanced(by: .milliseconds(330)))
        #expect(machine.overrideCount == 0)
        #expect(machine.master(forSlot: 21) == Self.a)
    }

    @Test("overrides are bounded: the oldest goes first")
    func overrideBound() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        for slot in 0..<(Machine.maximumOverrides + 10) { _ = machine.moved(slot: slot, to: Self.c, now: now) }
        #expect(machine.overrideCount == Machine.maximumOverrides)
        #expect(machine.master(forSlot: 0) == Self.a, "the oldest was dropped")
        #expect(machine.master(forSlot: Machine.maximumOverrides + 9) == Self.c)
    }

    @Test("reads: one in flight, at most one per 100 ms, after a failure one per retry interval, and every 30 s while commands flow")
    func readSchedule() {
        let start = ContinuousClock.now
        func at(_ milliseconds: Int) -> ContinuousClock.Instant { start.advanced(by: .milliseconds(milliseconds)) }
        var machine = Machine(maximumClients: 64, retryInterval: .milliseconds(500))
        var starts: [Bool] = []
        starts.append(machine.start(now: at(0)))
        starts.append(machine.moved(slot: 1, to: Self.a, now: at(10)))  // one in flight
        starts.append(machine.topologyRead(Self.threeMasters, now: at(50)))  // wanted, but within 100 ms
        starts.append(machine.route(slot: 1, now: at(90)).startTopologyRead)
        starts.append(machine.route(slot: 1, now: at(100)).startTopologyRead)  // the wanted read, 100 ms after the last
        starts.append(machine.topologyRead(Self.threeMasters, now: at(120)))
        starts.append(machine.route(slot: 1, now: at(10_000)).startTopologyRead)  // nothing wanted
        starts.append(machine.route(slot: 1, now: at(30_100)).startTopologyRead)  // 30 s after the last start
        // A failed read is retried after the retry interval, not 100 ms.
        starts.append(machine.topologyRead(nil, now: at(30_150)))
        starts.append(machine.route(slot: 1, now: at(30_300)).startTopologyRead)
        starts.append(machine.route(slot: 1, now: at(30_600)).startTopologyRead)
        #expect(starts == [true, false, false, false, true, false, false, true, false, false, true])
        #expect(machine.topology == Self.threeMasters, "a failed read keeps the last topology")
    }

    @Test("a -MOVED naming no usable address records nothing but wants a read")
    func unreadableRedirection() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        let soon = machine.redirectionUnreadable(now: now.advanced(by: .milliseconds(50)))
        let later = machine.route(slot: 1, now: now.advanced(by: .milliseconds(100)))
        #expect(!soon, "within 100 ms of the last read")
        #expect(later.startTopologyRead)
        #expect(machine.overrideCount == 0)
    }

    @Test("a slot no master serves: its own client, and a read is wanted")
    func unservedSlot() {
        let now = ContinuousClock.now
        var machine = Self.machine(Self.topology([(0...100, Self.a)]), now: now)
        let route = machine.route(slot: 200, now: now.advanced(by: .milliseconds(150)))
        #expect(route == Machine.Action(route: Self.client(200, create: true), startTopologyRead: true))
    }

    @Test("stopped: every route refused, no read starts")
    func stopped() {
        let now = ContinuousClock.now
        var machine = Self.machine(now: now)
        machine.stop()
        let route = machine.route(slot: 1, now: now.advanced(by: .seconds(60)))
        #expect(route == Machine.Action(route: .refused, startTopologyRead: false))
        let read = machine.moved(slot: 1, to: Self.b, now: now.advanced(by: .seconds(60)))
        #expect(!read)
    }
}

@Suite("-MOVED slots")
struct MovedSlotTests {
    @Test("the slot of a -MOVED reply: decimal, within 0...16383", arguments: [
        ("MOVED 866 127.0.0.1:7001", 866),
        ("MOVED 0 h:1", 0),
        ("MOVED 16383 h:1", 16383),
        ("MOVED 16384 h:1", nil),
        ("MOVED -1 h:1", nil),
        ("MOVED +5 h:1", nil),
        ("MOVED 0x10 h:1", nil),
        ("MOVED 000001 h:1", nil),
        ("MOVED", nil),
        ("ASK 866 127.0.0.1:7001", nil),
    ] as [(String, Int?)])
    func slots(_ text: String, _ expected: Int?) {
        #expect(RedisCommandClient.movedSlot(text) == expected)
    }

    @Test("a client routed to a slot reconnects only on a -MOVED about that slot (or one it cannot read); an unrouted one on any", arguments: [
        ("MOVED 866 127.0.0.1:7001", 866 as Int?, true),
        ("MOVED 867 127.0.0.1:7001", 866, false),
        ("MOVED bad 127.0.0.1:7001", 866, true),
        ("MOVED 867 127.0.0.1:7001", nil, true),
    ] as [(String, Int?, Bool)])
    func follows(_ text: String, _ ownSlot: Int?, _ expected: Bool) {
        #expect(RedisCommandClient.follows(movedReply: text, ownSlot: ownSlot) == expected)
    }
}
