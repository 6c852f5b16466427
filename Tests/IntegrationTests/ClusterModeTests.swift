import Foundation
import SSEHistory
import SSERedis
import SSEWire
import SeededRandom
import Testing

/// The broker against a real Redis Cluster (`redis+cluster://` seeds), started by the tests:
/// delivery through classic pub/sub (cluster-wide), history in one slot of the cluster
/// (`?history=shared`; the default, positions per channel, is `ClusterPerChannelTests`').
@Suite("Redis Cluster mode", .serialized, .timeLimit(.minutes(3)))
struct ClusterModeTests {
    static func event(_ data: String, _ id: String) -> String { "data:\(data)\nid:\(id)\n\n" }

    /// Classic subscribers of `channel` summed over every live node (each counts only its own).
    static func subscribers(_ cluster: RedisClusterProcess, _ channel: String) async throws -> Int {
        var total = 0
        for port in cluster.livePorts {
            let reply = try await cluster.command(port: port, "PUBSUB", "NUMSUB", channel)
            total += reply.elements?.last?.int ?? 0
        }
        return total
    }

    static func waitForSubscribers(_ cluster: RedisClusterProcess, _ channel: String, count: Int) async throws {
        try await eventually(timeout: .seconds(15), "\(count) subscribers of \(channel)") {
            try await subscribers(cluster, channel) >= count
        }
    }

    /// `count` channel names whose slots are served by `count` different masters.
    static func channelsOnDistinctShards(_ cluster: RedisClusterProcess, count: Int, prefix: String) async throws -> [String] {
        var byMaster: [Int: String] = [:]
        var index = 0
        while byMaster.count < count, index < 1000 {
            let name = "\(prefix)\(index)"
            let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: name))
            if byMaster[master] == nil { byMaster[master] = name }
            index += 1
        }
        guard byMaster.count == count else { throw TestFailure("no channels on \(count) shards") }
        return byMaster.values.sorted()
    }

    static func node(_ cluster: RedisClusterProcess) async throws -> BrokerNode {
        try await BrokerNode(redis: try RedisConfiguration(url: cluster.url(adding: "history=shared"))) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
        }
    }

    @Test("our key-slot rule agrees with CLUSTER KEYSLOT on 400 random keys, hash tags and raw bytes included")
    func slotsAgree() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            var random = SeededGenerator(seed: 20_261_203, shard: 0)
            let alphabet = Array("ab{}{}xyz{".utf8) + [0, 0xC3, 0xA9, 0xFF]
            for _ in 0..<400 {
                let length = Int.random(in: 0...24, using: &random)
                let key = (0..<length).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] }
                let reply = try await RedisClusterProcess.command(
                    port: cluster.ports[0], password: nil, [Array("CLUSTER".utf8), Array("KEYSLOT".utf8), key]
                )
                #expect(reply.int == ClusterSlot.slot(of: key), "key \(key)")
            }
        }
    }

    @Test("two nodes on a 3-master cluster: single- and multi-channel streams over all three shards get POST /publish (history on) and classic PUBLISH on any node once, in order; a stream resumes on the other node with Last-Event-ID")
    func deliveryAndResume() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await Self.channelsOnDistinctShards(cluster, count: 3, prefix: "shard")
            let nodeA = try await Self.node(cluster)
            let nodeB = try await Self.node(cluster)
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let single = try await nodeA.stream(channels[0])
            let multi = try await StreamClient.open(port: nodeB.port, "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&"))
            for channel in channels { try await Self.waitForSubscribers(cluster, channel, count: channel == channels[0] ? 2 : 1) }
            var ids: [String] = []
            var expectedMulti: [String] = []
            var expectedSingle: [String] = []
            for round in 0..<4 {
                for (index, channel) in channels.enumerated() {
                    let data = "r\(round)c\(index)"
                    let id = try await HistoryTests.publish(round % 2 == 0 ? nodeA : nodeB, channel, data)
                    ids.append(id)
                    expectedMulti.append(Self.event(data, id))
                    if index == 0 { expectedSingle.append(Self.event(data, id)) }
                }
            }
            // A raw Flask-SSE payload by classic PUBLISH on a node that serves none of the slots.
            let raw = FlaskSSEMessage(data: .string("raw"), id: .string("raw-1"))
            // (Its answer counts the receivers on that node alone: Redis Cluster forwards the rest.)
            _ = try await RedisClusterProcess.command(
                port: cluster.ports[2], password: nil, [Array("PUBLISH".utf8), Array(channels[1].utf8), raw.redisPayload]
            )
            expectedMulti.append("data:raw\nid:raw-1\n\n")
            #expect(try await single.waitForEvents(expectedSingle.count) == expectedSingle)
            let gotMulti = try await multi.waitForEvents(expectedMulti.count)
            #expect(gotMulti == expectedMulti, "\(gotMulti.suffix(3)) vs \(expectedMulti.suffix(3))")
            // History ids are in one order for the whole cluster: a multi-channel stream resumes
            // on the other node from the id of its fourth event.
            await multi.close()
            var missed: [String] = []
            for (index, channel) in channels.enumerated() {
                let id = try await HistoryTests.publish(nodeB, channel, "missed\(index)")
                missed.append(Self.event("missed\(index)", id))
            }
            let resumed = try await StreamClient.open(
                port: nodeA.port, "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&"), headers: ["Last-Event-ID": ids[3]]
            )
            let replay = Array(expectedMulti[4..<12]) + missed
            #expect(try await resumed.waitForEvents(replay.count) == replay)
            // Every history key of the cluster is in history's one slot.
            let slot = HistoryConfiguration.clusterSlot
            let owner = try await cluster.masterPort(forSlot: slot)
            let inSlot = try await cluster.command(port: owner, "CLUSTER", "COUNTKEYSINSLOT", String(slot))
            let total = try await cluster.command(port: owner, "DBSIZE")
            #expect(inSlot.int == total.int && (inSlot.int ?? 0) >= 5, "\(inSlot) of \(total)")
            await single.close()
            await resumed.close()
        }
    }

    @Test("the real Flask-SSE publishing through redis-py's RedisCluster reaches broker streams, byte for byte")
    func flaskThroughRedisCluster() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("interop")
            try await Self.waitForSubscribers(cluster, "interop", count: 1)
            try await FlaskSSEInteropTests.expectPublishes(
                of: "flask_sse_cluster_publish.py", "redis://127.0.0.1:\(cluster.ports[1])", channel: "interop", reach: client
            )
        }
    }

    /// Publishes `count` events one after another through `node`, each retried on a refusal
    /// (a client would); returns the ids in order.
    static func publishAll(_ node: BrokerNode, _ channel: String, _ range: Range<Int>) async throws -> [String] {
        var ids: [String] = []
        for index in range {
            ids.append(try await HistoryTests.publish(node, channel, "e\(index)"))
        }
        return ids
    }

    @Test("history's slot migrated to another master while publishing: every publish is answered, every event reaches the stream once, in order, and a resume after it is exact")
    func slotMigration() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("moving")
            try await Self.waitForSubscribers(cluster, "moving", count: 1)
            let slot = HistoryConfiguration.clusterSlot
            let source = try await cluster.masterPort(forSlot: slot)
            guard let target = try await cluster.masterPorts().first(where: { $0 != source }) else { throw TestFailure("no other master") }
            async let publishing = Self.publishAll(node, "moving", 0..<150)
            try await Task.sleep(for: .milliseconds(150))
            try await cluster.migrateSlot(slot, to: target)
            let ids = try await publishing
            #expect(try await cluster.masterPort(forSlot: slot) == target)
            let expected = ids.enumerated().map { Self.event("e\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count) == expected)
            #expect(Set(ids).count == ids.count)
            let more = try await Self.publishAll(node, "moving", 150..<155)
            let resumed = try await StreamClient.open(port: node.port, "/stream?channel=moving", headers: ["Last-Event-ID": ids[99]])
            let replay = Array(expected[100...]) + more.enumerated().map { Self.event("e\(150 + $0.offset)", $0.element) }
            #expect(try await resumed.waitForEvents(replay.count) == replay)
            await client.close()
            await resumed.close()
        }
    }

    @Test("a failover of history's master (CLUSTER FAILOVER on its replica) while publishing: every publish is answered and every event arrives once, in order")
    func failover() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("failing")
            try await Self.waitForSubscribers(cluster, "failing", count: 1)
            let master = try await cluster.masterPort(forSlot: HistoryConfiguration.clusterSlot)
            let replica = try await cluster.replicaPort(of: master)
            async let publishing = Self.publishAll(node, "failing", 0..<150)
            try await Task.sleep(for: .milliseconds(150))
            try await cluster.failover(replicaPort: replica)
            let ids = try await publishing
            #expect(try await cluster.masterPort(forSlot: HistoryConfiguration.clusterSlot) == replica)
            let expected = ids.enumerated().map { Self.event("e\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count) == expected)
            await client.close()
        }
    }
}
