import Foundation
import SSEHistory
import SSERedis
import SSEWire
import Testing

/// Sharded pub/sub on a real Redis Cluster: each node `SSUBSCRIBE`s every channel on the shard
/// serving its slot (beside its classic subscription), follows slot migrations and failovers.
@Suite("Redis Cluster sharded pub/sub", .serialized, .timeLimit(.minutes(3)))
struct ShardedPubSubTests {
    /// Sharded subscribers of `channel` on the node at `port`.
    static func shardSubscribers(_ cluster: RedisClusterProcess, _ channel: String, port: Int) async throws -> Int {
        let reply = try await cluster.command(port: port, "PUBSUB", "SHARDNUMSUB", channel)
        return reply.elements?.last?.int ?? 0
    }

    /// Waits until the master serving `channel` has `count` sharded subscribers of it.
    @discardableResult
    static func waitForShardSubscribers(_ cluster: RedisClusterProcess, _ channel: String, count: Int) async throws -> Int {
        var master = 0
        try await eventually(timeout: .seconds(20), "\(count) sharded subscribers of \(channel)") {
            master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
            return try await shardSubscribers(cluster, channel, port: master) == count
        }
        return master
    }

    /// `SPUBLISH` of a Flask-SSE payload on the master serving `channel`; its receivers there.
    @discardableResult
    static func spublish(_ cluster: RedisClusterProcess, _ channel: String, _ data: String) async throws -> Int {
        let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
        let payload = FlaskSSEMessage(data: .string(data)).redisPayload
        let reply = try await RedisClusterProcess.command(port: master, password: nil, [Array("SPUBLISH".utf8), Array(channel.utf8), payload])
        guard let receivers = reply.int else { throw TestFailure("SPUBLISH answered \(reply)") }
        return receivers
    }

    @Test("SPUBLISH on each channel's shard reaches single- and multi-channel streams on two nodes once; classic PUBLISH and POST /publish arrive once too")
    func shardedDelivery() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "sharded")
            let nodeA = try await ClusterModeTests.node(cluster)
            let nodeB = try await ClusterModeTests.node(cluster)
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let single = try await nodeA.stream(channels[0])
            let multi = try await StreamClient.open(port: nodeB.port, "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&"))
            for channel in channels {
                try await Self.waitForShardSubscribers(cluster, channel, count: channel == channels[0] ? 2 : 1)
                try await ClusterModeTests.waitForSubscribers(cluster, channel, count: channel == channels[0] ? 2 : 1)
            }
            var expected: [String] = []
            for (index, channel) in channels.enumerated() {
                #expect(try await Self.spublish(cluster, channel, "s\(index)") == (index == 0 ? 2 : 1))
                expected.append("data:s\(index)\n\n")
                #expect(try await multi.waitForEvents(expected.count) == expected)
                let id = try await HistoryTests.publish(nodeA, channel, "p\(index)")
                expected.append(ClusterModeTests.event("p\(index)", id))
                #expect(try await multi.waitForEvents(expected.count) == expected)
            }
            #expect(try await single.waitForEvents(2).count == 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try multi.events() == expected, "nothing twice")
            #expect(try single.events().count == 2)
            await single.close()
            await multi.close()
        }
    }

    @Test("a channel's slot migrated while streaming: the node follows the shard's sunsubscribe to the new master, where SPUBLISH reaches the stream; history events arrive once throughout")
    func followsMigration() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await ClusterModeTests.node(cluster)
            defer { Task { await node.shutdown() } }
            let channel = "wandering"
            let client = try await node.stream(channel)
            let source = try await Self.waitForShardSubscribers(cluster, channel, count: 1)
            try await ClusterModeTests.waitForSubscribers(cluster, channel, count: 1)
            var expected: [String] = []
            #expect(try await Self.spublish(cluster, channel, "before") == 1)
            expected.append("data:before\n\n")
            #expect(try await client.waitForEvents(1) == expected)
            let slot = ClusterSlot.slot(of: channel)
            guard let target = try await cluster.masterPorts().first(where: { $0 != source }) else { throw TestFailure("no other master") }
            try await cluster.migrateSlot(slot, to: target)
            #expect(try await Self.waitForShardSubscribers(cluster, channel, count: 1) == target)
            #expect(try await Self.shardSubscribers(cluster, channel, port: source) == 0)
            #expect(try await Self.spublish(cluster, channel, "after") == 1)
            expected.append("data:after\n\n")
            let id = try await HistoryTests.publish(node, channel, "history")
            expected.append(ClusterModeTests.event("history", id))
            #expect(try await client.waitForEvents(expected.count) == expected)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try client.events() == expected, "nothing twice")
            await client.close()
        }
    }

    @Test("a failover of a channel's shard (CLUSTER FAILOVER on its replica): SPUBLISH on the promoted replica reaches the stream once")
    func followsFailover() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            let node = try await ClusterModeTests.node(cluster)
            defer { Task { await node.shutdown() } }
            let channel = "promoted"
            let client = try await node.stream(channel)
            let master = try await Self.waitForShardSubscribers(cluster, channel, count: 1)
            let replica = try await cluster.replicaPort(of: master)
            try await cluster.failover(replicaPort: replica)
            #expect(try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel)) == replica)
            // Redis 7.0 keeps sharded subscribers of a master that became a replica, and a shard's
            // replicas deliver its messages too: the subscription stays on the old master until the
            // node's next topology read moves it; either way each event arrives once.
            _ = try await Self.spublish(cluster, channel, "after failover")
            #expect(try await client.waitForEvents(1) == ["data:after failover\n\n"])
            let held = try await Self.shardSubscribers(cluster, channel, port: master) + Self.shardSubscribers(cluster, channel, port: replica)
            #expect(held == 1)
            await client.close()
        }
    }

    @Test("pubsub=classic holds no sharded subscription: SPUBLISH reaches no stream, PUBLISH does")
    func classicOnly() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await BrokerNode(redis: try RedisConfiguration(url: cluster.url + "?pubsub=classic")) { configuration in
                configuration.subscriber.probeIntervalMilliseconds = 0
            }
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("plain")
            try await ClusterModeTests.waitForSubscribers(cluster, "plain", count: 1)
            try await Task.sleep(for: .milliseconds(300))
            for port in cluster.ports { #expect(try await Self.shardSubscribers(cluster, "plain", port: port) == 0) }
            #expect(try await Self.spublish(cluster, "plain", "unseen") == 0)
            let id = try await HistoryTests.publish(node, "plain", "seen")
            #expect(try await client.waitForEvents(1) == [ClusterModeTests.event("seen", id)])
            await client.close()
        }
    }
}

extension ShardedPubSubTests {
    @Test("a shard master killed (kill -9): once its replica is promoted the channel is subscribed there, never dropped; history events published meanwhile arrive once, in order")
    func survivesMasterCrash() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            let historyMaster = try await cluster.masterPort(forSlot: HistoryConfiguration.clusterSlot)
            var channel = ""
            for index in 0..<1000 where channel.isEmpty {
                let name = "crash\(index)"
                if try await cluster.masterPort(forSlot: ClusterSlot.slot(of: name)) != historyMaster { channel = name }
            }
            let node = try await ClusterModeTests.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream(channel)
            let master = try await Self.waitForShardSubscribers(cluster, channel, count: 1)
            try await ClusterModeTests.waitForSubscribers(cluster, channel, count: 1)
            let replica = try await cluster.replicaPort(of: master)
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await HistoryTests.publish(node, channel, "h\(index)")) }
            try cluster.kill(port: master)
            for index in 5..<10 { ids.append(try await HistoryTests.publish(node, channel, "h\(index)")) }
            let expected = ids.enumerated().map { ClusterModeTests.event("h\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count, timeout: .seconds(30)) == expected)
            try await eventually(timeout: .seconds(30), "the replica promoted and subscribed") {
                (try? await Self.shardSubscribers(cluster, channel, port: replica)) == 1
            }
            #expect(try await Self.spublish(cluster, channel, "on the new master") == 1)
            #expect(try await client.waitForEvents(expected.count + 1).last == "data:on the new master\n\n")
            #expect(try client.events().count == expected.count + 1)
            await client.close()
        }
    }
}

extension ShardedPubSubTests {
    @Test("an ACL user without ssubscribe: the shards' refusals only cost sharded events; streams stay open, classic and history events arrive, /readyz is ready")
    func aclWithoutShardedSubscribe() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            for port in cluster.ports {
                let reply = try await cluster.command(port: port, "ACL", "SETUSER", "classic", "on", ">pw", "~*", "&*", "+@all", "-ssubscribe")
                #expect(reply == .status("OK"), "port \(port): \(reply)")
            }
            let seeds = cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
            let node = try await BrokerNode(redis: try RedisConfiguration(url: "redis+cluster://classic:pw@\(seeds)?history=shared")) { configuration in
                configuration.subscriber.probeIntervalMilliseconds = 0
            }
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("limited")
            try await ClusterModeTests.waitForSubscribers(cluster, "limited", count: 1)
            // The shard refused the SSUBSCRIBE (and keeps refusing on each try): nothing sharded here.
            try await Task.sleep(for: .milliseconds(500))
            for port in cluster.ports { #expect(try await Self.shardSubscribers(cluster, "limited", port: port) == 0) }
            let id = try await HistoryTests.publish(node, "limited", "history")
            #expect(try await client.waitForEvents(1) == [ClusterModeTests.event("history", id)])
            #expect(try await node.request("GET", "/readyz").status == 200)
            #expect(node.server.clientCount(for: "limited") == 1)
            await client.close()
        }
    }
}
