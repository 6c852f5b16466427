@testable import SSERedis
import Testing

@Suite("CLUSTER SLOTS decoding")
struct ClusterTopologyTests {
    static func node(_ host: String, _ port: Int64, _ id: String = "id") -> RedisReply {
        .array([.bulkString(Array(host.utf8)), .integer(port), .bulkString(Array(id.utf8)), .array([])])
    }

    static func range(_ start: Int64, _ end: Int64, _ nodes: RedisReply...) -> RedisReply {
        .array([.integer(start), .integer(end)] + nodes)
    }

    @Test("three masters with replicas: every slot's master, shards in reply order")
    func threeMasters() throws {
        let reply = RedisReply.array([
            Self.range(0, 5460, Self.node("127.0.0.1", 7000), Self.node("127.0.0.1", 7003)),
            Self.range(5461, 10922, Self.node("127.0.0.1", 7001)),
            Self.range(10923, 16383, Self.node("", 7002), Self.node("?", 7005), Self.node("10.0.0.9", 7004)),
            Self.range(100, 100, Self.node("127.0.0.1", 7000)),
        ])
        // The last range overlaps the first: refused as a whole.
        #expect(throws: ClusterTopologyError.self) { try ClusterTopology.decode(slots: reply, askedHost: "seed").get() }
        guard case .array(var ranges) = reply else { return }
        ranges.removeLast()
        let topology = try ClusterTopology.decode(slots: .array(ranges), askedHost: "seed").get()
        #expect(topology.shards.count == 3)
        #expect(topology.unservedSlotCount == 0)
        #expect(topology.master(forSlot: 0) == SentinelAddress(host: "127.0.0.1", port: 7000))
        #expect(topology.master(forSlot: 5461) == SentinelAddress(host: "127.0.0.1", port: 7001))
        // An empty host is the host asked; an unknown endpoint (`?`) is left out.
        #expect(topology.master(forSlot: 16383) == SentinelAddress(host: "seed", port: 7002))
        #expect(topology.shards[2].replicas == [SentinelAddress(host: "10.0.0.9", port: 7004)])
        #expect(topology.shards[0].replicas == [SentinelAddress(host: "127.0.0.1", port: 7003)])
        #expect(topology.master(forSlot: 16384) == nil)
        #expect(topology.master(forSlot: -1) == nil)
    }

    @Test("a null host is the host asked; a malformed replica entry is skipped, not the reply")
    func lenient() throws {
        let topology = try ClusterTopology.decode(
            slots: .array([
                .array([.integer(0), .integer(9), .array([.null, .integer(7000), .bulkString(Array("id".utf8))]), Self.node("bad host", 1), .integer(3)]),
            ]),
            askedHost: "seed"
        ).get()
        #expect(topology.master(forSlot: 5) == SentinelAddress(host: "seed", port: 7000))
        #expect(topology.shards[0].replicas.isEmpty)
    }

    @Test("a master with several ranges is one shard; unserved slots have no master")
    func gaps() throws {
        let topology = try ClusterTopology.decode(
            slots: .array([Self.range(0, 9, Self.node("a", 1)), Self.range(20, 29, Self.node("a", 1))]),
            askedHost: "seed"
        ).get()
        #expect(topology.shards.count == 1)
        #expect(topology.shards[0].slots == [0...9, 20...29])
        #expect(topology.master(forSlot: 15) == nil)
        #expect(topology.unservedSlotCount == ClusterSlot.count - 20)
        #expect(try ClusterTopology.decode(slots: .array([]), askedHost: "seed").get().unservedSlotCount == ClusterSlot.count)
    }

    @Test("hostile replies are refused with a reason", arguments: [
        RedisReply.error("ERR This instance has cluster support disabled"),
        .bulkString(Array("x".utf8)),
        .array([.array([.integer(0), .integer(16384), ClusterTopologyTests.node("a", 1)])]),
        .array([.array([.integer(-1), .integer(3), ClusterTopologyTests.node("a", 1)])]),
        .array([.array([.integer(9), .integer(3), ClusterTopologyTests.node("a", 1)])]),
        .array([.array([.integer(0), .integer(3)])]),
        .array([.array([.integer(0), .integer(3), ClusterTopologyTests.node("a b", 1)])]),
        .array([.array([.integer(0), .integer(3), .array([.integer(7), .integer(1)])])]),
        .array([.array([.integer(0), .integer(3), ClusterTopologyTests.node("a", 0)])]),
        .array([.array([.integer(0), .integer(3), ClusterTopologyTests.node("a", 65536)])]),
        .array([.array([.integer(0), .integer(3), ClusterTopologyTests.node(String(repeating: "h", count: 256), 1)])]),
        .array([.array([.integer(0), .integer(3), .array([.integer(1), .integer(2)])])]),
        .array([.array([.integer(0), .integer(3)] + Array(repeating: ClusterTopologyTests.node("a", 1), count: 65))]),
        .array(Array(repeating: .array([.integer(0), .integer(16383), ClusterTopologyTests.node("a", 1)]), count: 2)),
    ])
    func hostile(_ reply: RedisReply) {
        #expect(throws: ClusterTopologyError.self) { try ClusterTopology.decode(slots: reply, askedHost: "seed").get() }
    }
}

@Suite("-MOVED targets")
struct MovedTargetTests {
    @Test("a -MOVED reply's address is followed only when it is a plain host and a valid port", arguments: [
        ("MOVED 866 127.0.0.1:7001", SentinelAddress(host: "127.0.0.1", port: 7001)),
        ("MOVED 866 redis-2.internal:6379", SentinelAddress(host: "redis-2.internal", port: 6379)),
        ("MOVED 866 ::1:7001", SentinelAddress(host: "::1", port: 7001)),
        ("MOVED 866 127.0.0.1:0", nil),
        ("MOVED 866 127.0.0.1:99999", nil),
        ("MOVED 866 bad/host:7001", nil),
        ("MOVED 866", nil),
        ("MOVED 866 a:1 extra", nil),
    ])
    func targets(_ text: String, _ expected: SentinelAddress?) {
        #expect(RedisCommandClient.movedTarget(text) == expected)
    }
}
