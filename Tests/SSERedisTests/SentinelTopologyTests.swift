@testable import SSERedis
import Synchronization
import Testing

@Suite("Sentinel topology: one master per generation")
struct SentinelTopologyTests {
    static let a = SentinelAddress(host: "10.0.0.1", port: 6379)
    static let b = SentinelAddress(host: "10.0.0.2", port: 6379)
    static let endpoint = SentinelEndpoint(sentinels: [SentinelAddress(host: "s1"), SentinelAddress(host: "s2"), SentinelAddress(host: "s3")], masterName: "mymaster")

    @Test("connections of one generation reach one master: a resolve that finds another starts a new generation")
    func oneMasterPerGeneration() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        #expect(topology.resolved(Self.a, in: 0) == 0)
        #expect(topology.resolved(Self.a, in: 0) == 0)
        #expect(topology.resolved(Self.b, in: 0) == 1)
        #expect(topology.generation == 1)
        // A resolve that began before the change keeps its old stamp (it is stale at once).
        #expect(topology.resolved(Self.a, in: 0) == 0)
        #expect(topology.resolved(Self.b, in: 1) == 1)
    }

    @Test("invalidate moves on only from the current generation, so a pipelined batch of -READONLY replies moves it once")
    func invalidate() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        #expect(topology.invalidate(0))
        #expect(!topology.invalidate(0))
        #expect(topology.generation == 1)
    }

    @Test("an announcement starts a generation whose resolves try the announced master; the same news again moves nothing")
    func announce() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        _ = topology.resolved(Self.a, in: 0)
        #expect(!topology.announce(Self.a), "connections already use it")
        #expect(topology.announce(Self.b))
        #expect(topology.generation == 1)
        #expect(topology.announced(in: 1) == Self.b)
        #expect(topology.announced(in: 0) == nil)
        #expect(!topology.announce(Self.b), "the leader's late +switch-master")
        #expect(topology.generation == 1)
        _ = topology.resolved(Self.b, in: 1)
        #expect(topology.announced(in: 1) == nil, "once a connection reached the master, resolves ask the sentinels again")
        topology.check(master: Self.b)
        #expect(topology.generation == 1)
        topology.check(master: Self.a)
        #expect(topology.generation == 2)
        #expect(topology.announced(in: 2) == nil)
    }

    @Test("an announced master that could not be used is not tried again in its generation")
    func forgetAnnounced() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        #expect(topology.announce(Self.b))
        topology.forgetAnnounced(in: 0)
        #expect(topology.announced(in: 1) == Self.b, "an older generation's failure changes nothing")
        topology.forgetAnnounced(in: 1)
        #expect(topology.announced(in: 1) == nil)
    }

    @Test("the sentinel that answered moves to the front")
    func promote() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        topology.promote(SentinelAddress(host: "s3"))
        #expect(topology.sentinelsInOrder.map(\.host) == ["s3", "s1", "s2"])
        topology.promote(SentinelAddress(host: "s3"))
        topology.promote(SentinelAddress(host: "unknown"))
        #expect(topology.sentinelsInOrder.map(\.host) == ["s3", "s1", "s2"])
    }

    @Test("a stamp goes stale when the generation moves on")
    func stamp() {
        let topology = SentinelTopology(endpoint: Self.endpoint)
        let stamp = SentinelTopology.Stamp(topology: topology, generation: topology.resolved(Self.a, in: 0), master: Self.a)
        #expect(!stamp.isStale)
        #expect(topology.announce(Self.b))
        #expect(stamp.isStale)
    }
}
