import Foundation
import SSERedis
import SSEWire
import Testing

/// Events that never reach the subscription live, with history positions per channel: each
/// channel's counter counts one per event, so the next event that does arrive shows the skip,
/// and the channel's streams are caught up from history before it.
@Suite("Redis Cluster: live gaps caught up from history", .timeLimit(.minutes(3)))
struct ClusterLiveGapTests {
    static let gaps = "sse_live_gaps_total"

    static func node(_ cluster: RedisClusterProcess, _ pubsub: String) async throws -> BrokerNode {
        try await BrokerNode(redis: try RedisConfiguration(url: cluster.url(adding: pubsub))) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
        }
    }

    /// A 3-master cluster, a `pubsub=sharded` node and a `pubsub=classic` one, and on the sharded
    /// node a single-channel stream of `channel` and a multi-channel stream of it and a channel on
    /// another shard, both subscribed.
    static func withTwoPublishers(
        prefix: String,
        _ body: (_ channel: String, _ sharded: BrokerNode, _ classic: BrokerNode, _ single: StreamClient, _ multi: StreamClient) async throws -> Void
    ) async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 2, prefix: prefix)
            let sharded = try await Self.node(cluster, "pubsub=sharded")
            let classic = try await Self.node(cluster, "pubsub=classic")
            defer { Task { await sharded.shutdown(); await classic.shutdown() } }
            let single = try await sharded.stream(channels[0])
            let multi = try await StreamClient.open(port: sharded.port, "/stream?channel=\(channels[1])&channel=\(channels[0])")
            for channel in channels { _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1) }
            try await body(channels[0], sharded, classic, single, multi)
        }
    }

    static func data(_ events: [String]) -> [String] {
        events.compactMap { event in event.split(separator: "\n").first { $0.hasPrefix("data:") }.map { String($0.dropFirst(5)) } }
    }

    @Test("a publisher on pubsub=classic (its classic PUBLISH never reaches a pubsub=sharded node): the next event that arrives shows the skipped positions, and single- and multi-channel streams get the missed events from history, in order, once, before it")
    func classicPublisherGap() async throws {
        try await Self.withTwoPublishers(prefix: "gap") { channel, sharded, classic, single, multi in
            var ids = [try await HistoryTests.publish(sharded, channel, "e0")]
            #expect(try await single.waitForEvents(1) == [ClusterModeTests.event("e0", ids[0])])
            #expect(try await multi.waitForEvents(1).count == 1)
            // Stored and counted on the channel's master, published classically: nothing reaches the sharded node.
            ids.append(try await HistoryTests.publish(classic, channel, "e1"))
            ids.append(try await HistoryTests.publish(classic, channel, "e2"))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try single.events().count == 1, "no live event from the classic publisher")
            #expect(try await DeliveryProbeTests.metric(Self.gaps, of: sharded) == 0)
            ids.append(try await HistoryTests.publish(sharded, channel, "e3"))
            let expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            #expect(try await single.waitForEvents(4) == expected)
            #expect(Self.data(try await multi.waitForEvents(4)) == ["e0", "e1", "e2", "e3"])
            // Later events arrive live as before, once.
            ids.append(try await HistoryTests.publish(sharded, channel, "e4"))
            #expect(try await single.waitForEvents(5).last == ClusterModeTests.event("e4", ids[4]))
            try await Task.sleep(for: .milliseconds(300))
            #expect(try single.events().count == 5, "nothing twice")
            #expect(Self.data(try multi.events()) == ["e0", "e1", "e2", "e3", "e4"])
            #expect(try await DeliveryProbeTests.metric(Self.gaps, of: sharded) >= 1)
            await single.close()
            await multi.close()
        }
    }

    @Test("a CLUSTER FAILOVER while the node publishes: the sharded subscription is on the promoted master within seconds (the demoted master's sunsubscribe, or the -MOVED the node's publish is told), not at the 30 s topology read, and the stream gets every event once, in order")
    func failoverMovesSubscription() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            let node = try await Self.node(cluster, "pubsub=sharded")
            defer { Task { await node.shutdown() } }
            let channel = "turning"
            let client = try await node.stream(channel)
            let master = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1)
            let replica = try await cluster.replicaPort(of: master)
            var ids = [try await HistoryTests.publish(node, channel, "e0")]
            #expect(try await client.waitForEvents(1).count == 1)
            try await cluster.failover(replicaPort: replica)
            ids += try await ClusterPerChannelTests.publishRetrying(node, channel, 1..<4)
            try await eventually(timeout: .seconds(12), "the node's sharded subscription on the promoted master \(replica)") {
                try await ShardedPubSubTests.shardSubscribers(cluster, channel, port: replica) == 1
            }
            ids += try await ClusterPerChannelTests.publishRetrying(node, channel, 4..<6)
            let expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count, timeout: .seconds(20)) == expected)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try client.events().count == expected.count, "nothing twice")
            await client.close()
        }
    }

    @Test("a gap every other event (a classic publisher and a sharded one taking turns, as fast as they can): every event reaches single- and multi-channel streams once, in order, and the gaps' catch-ups stay few")
    func gapStorm() async throws {
        try await Self.withTwoPublishers(prefix: "storm") { channel, sharded, classic, single, multi in
            var ids: [String] = []
            for index in 0..<40 {
                // Taking turns: the sharded node sees the classic one's events only as gaps.
                ids.append(try await HistoryTests.publish(index % 2 == 0 ? sharded : classic, channel, "e\(index)"))
            }
            ids.append(try await HistoryTests.publish(sharded, channel, "e40"))
            let expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            #expect(try await single.waitForEvents(expected.count, timeout: .seconds(30)) == expected)
            #expect(Self.data(try await multi.waitForEvents(expected.count, timeout: .seconds(30))) == (0...40).map { "e\($0)" })
            try await Task.sleep(for: .milliseconds(300))
            #expect(try single.events().count == expected.count, "nothing twice")
            let gaps = try await DeliveryProbeTests.metric(Self.gaps, of: sharded)
            #expect(gaps >= 1 && gaps <= 20, "one gap per classic event at most: \(gaps)")
            await single.close()
            await multi.close()
        }
    }
}
