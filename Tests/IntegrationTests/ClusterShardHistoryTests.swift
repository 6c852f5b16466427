import Foundation
import Logging
import Synchronization
import SSEHistory
import SSERedis
import SSEWire
import Testing

/// History on the shards (`historyOnShards`, `pubsub=sharded`) on a real Redis Cluster, against
/// the gaps and readiness problems a review found (each test says how it failed before the fix).
@Suite("Redis Cluster: history on the shards, gaps and readiness", .serialized, .timeLimit(.minutes(3)))
struct ClusterShardHistoryTests {
    /// The `data:` of each event, in arrival order.
    static func datas(_ events: [String]) -> [String] {
        events.compactMap { event in
            event.split(separator: "\n").first(where: { $0.hasPrefix("data:") }).map { String($0.dropFirst(5)) }
        }
    }

    /// Waits up to `timeout` for `count` events; returns what arrived either way.
    static func events(_ client: StreamClient, _ count: Int, timeout: Duration) async throws -> [String] {
        _ = try? await client.waitForEvents(count, timeout: timeout)
        return try client.events()
    }

    /// POST /publish in the background (it waits while the master is paused).
    static func publishLater(_ node: BrokerNode, _ channel: String, _ data: String) -> Task<String, any Error> {
        Task { try await HistoryTests.publish(node, channel, data) }
    }

    @Test("a shard link comes back and Redis sends its SSUBSCRIBE confirmation and the next SPUBLISH in one write: the catch-up still replays what was published while the link was down (fails: the live event reaches the loop before the catch-up, whose start is then past the gap)")
    func resubscribedCatchUpAfterLiveEvent() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.resubscribeRace(cluster) }
    }

    static func resubscribeRace(_ cluster: RedisClusterProcess) async throws {
        let node = try await BrokerNode(redis: try RedisConfiguration(url: cluster.url)) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
            // The shard link's first retry comes 750-1500 ms after it is lost.
            configuration.subscriber.backoffBaseMilliseconds = 1500
            configuration.subscriber.backoffCapMilliseconds = 3000
            configuration.subscriber.pingIntervalMilliseconds = 5000
        }
        defer { Task { await node.shutdown() } }
        let channel = "gapped"
        let client = try await node.stream(channel)
        let master = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1)
        var expected: [String] = []
        _ = try await HistoryTests.publish(node, channel, "e0")
        expected.append("e0")
        _ = try await client.waitForEvents(1)
        // The node's sharded link to the channel's master goes (the classic link too if it is there).
        _ = try await cluster.command(port: master, "CLIENT", "KILL", "TYPE", "pubsub")
        // Published while the link is down: only history has them.
        for data in ["e1", "e2"] {
            _ = try await HistoryTests.publish(node, channel, data)
            expected.append(data)
        }
        // Hold every command on the master: the node's new SSUBSCRIBE (sent 750-1500 ms after the
        // loss) and then the publish of e3 queue, and Redis answers both in one write.
        let paused = try await cluster.command(port: master, "CLIENT", "PAUSE", "2600", "ALL")
        #expect(paused == .status("OK"))
        try await Task.sleep(for: .milliseconds(1900))
        let live = publishLater(node, channel, "e3")
        expected.append("e3")
        _ = try await live.value
        let got = datas(try await events(client, expected.count, timeout: .seconds(10)))
        #expect(got == expected, "the gap (e1, e2) must be caught up from history")
        await client.close()
    }

    @Test("pubsub=sharded: one stream on a channel the shard will not take (an ACL without it) does not take the whole node out of /readyz (fails: the channel has no shard, so the subscription counts as down)")
    func shardedOnlyReadinessWithUnservableChannel() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.unservableChannel(cluster) }
    }

    /// /readyz answers over `duration`, every 100 ms.
    static func readiness(_ node: BrokerNode, over duration: Duration) async throws -> [Int] {
        var statuses: [Int] = []
        let end = ContinuousClock.now.advanced(by: duration)
        while ContinuousClock.now < end {
            statuses.append(try await node.request("GET", "/readyz").status)
            try await Task.sleep(for: .milliseconds(100))
        }
        return statuses
    }

    static func unservableChannel(_ cluster: RedisClusterProcess) async throws {
        for port in cluster.ports {
            let reply = try await cluster.command(port: port, "ACL", "SETUSER", "limited", "on", ">pw", "~*", "resetchannels", "&ok:*", "+@all")
            #expect(reply == .status("OK"), "port \(port): \(reply)")
        }
        let seeds = cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let node = try await BrokerNode(redis: try RedisConfiguration(url: "redis+cluster://limited:pw@\(seeds)?pubsub=sharded")) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
        }
        defer { Task { await node.shutdown() } }
        let allowed = try await node.stream("ok:a")
        _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, "ok:a", count: 1)
        try await ClusterPerChannelTests.waitReady(node)
        // Anyone may open a stream of any channel: this one the shards refuse.
        let denied = try await node.stream("nope")
        let statuses = try await readiness(node, over: .seconds(4))
        #expect(statuses.allSatisfy { $0 == 200 }, "/readyz answers: \(statuses)")
        // The allowed channel still delivers.
        _ = try await HistoryTests.publish(node, "ok:a", "still")
        #expect(datas(try await events(allowed, 1, timeout: .seconds(5))) == ["still"])
        await denied.close()
        await allowed.close()
    }
    @Test("the cluster default (history per channel, pubsub=both) with an ACL user without ssubscribe, as stage 2 supported: its streams are told the channel is refused (subscription-refused) and /readyz counts it, rather than silently getting nothing (fails: POST /publish answers 200, the stream gets nothing live, /readyz is 200)")
    func aclWithoutShardedSubscribeUnderTheNewDefault() async throws {
        try await withRedisCluster(masters: 3) { cluster in try await Self.noSharedSubscribe(cluster) }
    }

    static func noSharedSubscribe(_ cluster: RedisClusterProcess) async throws {
        for port in cluster.ports {
            let reply = try await cluster.command(port: port, "ACL", "SETUSER", "classic", "on", ">pw", "~*", "&*", "+@all", "-ssubscribe")
            #expect(reply == .status("OK"), "port \(port): \(reply)")
        }
        let seeds = cluster.seedPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",")
        let node = try await BrokerNode(redis: try RedisConfiguration(url: "redis+cluster://classic:pw@\(seeds)")) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
        }
        defer { Task { await node.shutdown() } }
        let client = try await node.stream("limited")
        // History travels by SPUBLISH, which this user may not subscribe to: the stream is told
        // (`subscription-refused`, as for a classic refusal) instead of silently getting nothing,
        // and /readyz counts the refused channel.
        let told = try await events(client, 1, timeout: .seconds(15))
        #expect(told.first?.hasPrefix("event:subscription-refused") == true, "\(told)")
        let ready = try await node.request("GET", "/readyz")
        #expect(ready.bodyText.contains("refusedChannels"), "\(ready.status) \(ready.bodyText)")
        await client.close()
    }

}
