import Foundation
import SSEHistory
import SSERedis
import SSEWire
import Testing

/// History positions per channel on a real cluster, as an attacker and a race would try them
/// (from a review of the first per-channel commit): each test states what the README promises for
/// history and resume. Every node runs `pubsub=classic`, so events travel by classic `PUBLISH`
/// and the cluster bus (late deliveries included); the sharded path is `ClusterPerChannelTests`'.
@Suite("Redis Cluster: per-channel history against races and hostile ids", .serialized, .timeLimit(.minutes(3)))
struct ClusterPerChannelHardeningTests {
    static func node(_ cluster: RedisClusterProcess) async throws -> BrokerNode {
        try await BrokerNode(redis: try RedisConfiguration(url: cluster.url(adding: "pubsub=classic"))) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
            configuration.history.layout = .perChannel
        }
    }

    /// The `data:` values of `events`, in order.
    static func data(_ events: [String]) -> [String] {
        events.compactMap { event in
            event.split(separator: "\n").first(where: { $0.hasPrefix("data:") }).map { String($0.dropFirst(5)) }
        }
    }

    static func id(_ event: String) -> String? {
        event.split(separator: "\n").first(where: { $0.hasPrefix("id:") }).map { String($0.dropFirst(3)) }
    }

    /// Waits until `stream` got an event whose data is `marker`, then a little longer (so any
    /// event that should not be there has had time to arrive), and returns all data values.
    static func dataThrough(_ stream: StreamClient, marker: String) async throws -> [String] {
        try await eventually(timeout: .seconds(15), "an event with data \(marker) (have \((try? data(stream.events())) ?? []))") {
            data(try stream.events()).contains(marker)
        }
        try await Task.sleep(for: .milliseconds(300))
        return data(try stream.events())
    }

    /// Drops every pub/sub connection on every node of the cluster (the node's subscriber
    /// reconnects and catches its streams up from history).
    static func killSubscriptions(_ cluster: RedisClusterProcess) async throws {
        for port in cluster.livePorts {
            _ = try await cluster.command(port: port, "CLIENT", "KILL", "TYPE", "pubsub")
        }
    }

    // MARK: 1. A quiet channel's `-` in a multi-channel id replays the channel's whole history

    @Test("a multi-channel stream opened on a channel with old history, resumed from its own id, gets only what it missed (not the quiet channel's whole history)")
    func quietChannelResumeIsExact() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.quietChannelResume(cluster)
        }
    }

    static func quietChannelResume(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        // Yesterday's news on `rq`, published before the stream existed.
        for index in 0..<3 { _ = try await HistoryTests.publish(node, "rq", "old\(index)") }
        // Let the cluster bus deliver them first (see `catchUpOfQuietChannel`): a late one would
        // pass the new stream's tentative start, which this test is not about.
        try await Task.sleep(for: .milliseconds(500))
        let query = "/stream?channel=ra&channel=rq"
        let stream = try await StreamClient.open(port: node.port, query)
        try await ClusterModeTests.waitForSubscribers(cluster, "ra", count: 1)
        try await ClusterModeTests.waitForSubscribers(cluster, "rq", count: 1)
        _ = try await HistoryTests.publish(node, "ra", "a0")
        let first = try await stream.waitForEvents(1)
        #expect(data(first) == ["a0"])
        let lastEventID = try #require(first.first.flatMap(id))
        await stream.close()
        // The browser reconnects with the id it got; one more event follows on `ra`.
        let resumed = try await StreamClient.open(port: node.port, query, headers: ["Last-Event-ID": lastEventID])
        _ = try await HistoryTests.publish(node, "ra", "a1")
        let got = try await dataThrough(resumed, marker: "a1")
        await resumed.close()
        // The stream never had old0...old2 and did not ask for them: a resume replays only what
        // was published after the id.
        #expect(got == ["a1"], "resumed from \(lastEventID)")
    }

    // MARK: 2. `StreamHub.register` starts a channel one position early

    @Test("a multi-channel stream opened after an event on one of its channels, resumed from its own id, does not get that older event")
    func freshStreamStartIsExact() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.freshStreamStart(cluster)
        }
    }

    static func freshStreamStart(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        // Another stream keeps `sq` subscribed on the node, and sees `before`.
        let watcher = try await node.stream("sq")
        try await ClusterModeTests.waitForSubscribers(cluster, "sq", count: 1)
        _ = try await HistoryTests.publish(node, "sq", "before")
        _ = try await watcher.waitForEvents(1)
        // Well after that, a multi-channel stream opens and gets one event on `sa`.
        let query = "/stream?channel=sa&channel=sq"
        let stream = try await StreamClient.open(port: node.port, query)
        try await ClusterModeTests.waitForSubscribers(cluster, "sa", count: 1)
        try await Task.sleep(for: .milliseconds(200))
        _ = try await HistoryTests.publish(node, "sa", "a0")
        let first = try await stream.waitForEvents(1)
        #expect(data(first) == ["a0"])
        let lastEventID = try #require(first.first.flatMap(id))
        await stream.close()
        let resumed = try await StreamClient.open(port: node.port, query, headers: ["Last-Event-ID": lastEventID])
        _ = try await HistoryTests.publish(node, "sa", "a1")
        let got = try await dataThrough(resumed, marker: "a1")
        await resumed.close()
        await watcher.close()
        // `before` was published (and delivered) before the stream opened.
        #expect(got == ["a1"], "resumed from \(lastEventID)")
    }

    // MARK: 3. A reconnect catch-up replays a quiet channel's whole history

    @Test("after the subscription reconnects, a stream on a channel that had no event since it opened gets what was published meanwhile, not the channel's whole history")
    func catchUpOfQuietChannelIsExact() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.catchUpOfQuietChannel(cluster)
        }
    }

    static func catchUpOfQuietChannel(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        for index in 0..<3 { _ = try await HistoryTests.publish(node, "cq", "old\(index)") }
        // A classic PUBLISH reaches the node subscribing it over the cluster bus, maybe after the
        // stream's subscription is up: a new stream's start is tentative and lets such a late
        // event through (it cannot tell it from one published just after the stream opened, which
        // it must not lose). Let the bus settle, so only the catch-up could bring old events.
        try await Task.sleep(for: .milliseconds(500))
        let stream = try await node.stream("cq")
        try await ClusterModeTests.waitForSubscribers(cluster, "cq", count: 1)
        try await killSubscriptions(cluster)
        _ = try await HistoryTests.publish(node, "cq", "during")
        try await ClusterModeTests.waitForSubscribers(cluster, "cq", count: 1)
        _ = try await HistoryTests.publish(node, "cq", "after")
        let got = try await dataThrough(stream, marker: "after")
        await stream.close()
        #expect(got == ["during", "after"])
    }

    // MARK: 4. Vouching reads per channel on the subscriber thread multiply its stall

    @Test("forged position-shaped ids on channels of a shard whose master is slow to answer scripts do not hold up live delivery on the other shards for seconds")
    func forgedIdsDoNotStallDelivery() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.forgedIdsStall(cluster)
        }
    }

    static func forgedIdsStall(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        let control = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "ctl")
        let slowMaster = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: control[0]))
        // Six channels on the slow master, one control channel on another.
        var slowChannels: [String] = []
        var index = 0
        while slowChannels.count < 6, index < 5000 {
            let name = "fz\(index)"
            if try await cluster.masterPort(forSlot: ClusterSlot.slot(of: name)) == slowMaster { slowChannels.append(name) }
            index += 1
        }
        var fast = ""
        for name in control[1...] where try await cluster.masterPort(forSlot: ClusterSlot.slot(of: name)) != slowMaster {
            fast = name
            break
        }
        let otherPort = try #require(try await cluster.masterPorts().first { $0 != slowMaster })
        let query = "/stream?" + (slowChannels + [fast]).map { "channel=\($0)" }.joined(separator: "&")
        let stream = try await StreamClient.open(port: node.port, query)
        for channel in slowChannels + [fast] { try await ClusterModeTests.waitForSubscribers(cluster, channel, count: 1) }
        // The slow master holds scripts (the counter read is one) for 8 s; pub/sub still flows.
        _ = try await cluster.command(port: slowMaster, "CLIENT", "PAUSE", "8000", "WRITE")
        defer { Task { _ = try? await cluster.command(port: slowMaster, "CLIENT", "UNPAUSE") } }
        // A raw publisher (Flask-SSE's own, or a hostile one) on another master: ids of the form
        // DIGITS-DIGITS, one event per slow channel.
        for channel in slowChannels {
            _ = try await cluster.command(port: otherPort, "PUBLISH", channel, #"{"data": "raw", "id": "2024-06"}"#)
        }
        let start = ContinuousClock.now
        _ = try await HistoryTests.publish(node, fast, "live")
        let got = try await dataThrough(stream, marker: "live")
        let delay = ContinuousClock.now - start
        _ = try await cluster.command(port: slowMaster, "CLIENT", "UNPAUSE")
        await stream.close()
        #expect(got.contains("live"))
        // One Redis in standalone mode would cost at most one counter read (about 1.2 s) here.
        #expect(delay < .milliseconds(2500), "the live event took \(delay)")
    }

    // MARK: 5. A multi-channel replay round is one full page per channel

    @Test("a multi-channel resume reads pages of 128 KB in all (split across the stream's channels), so a round never exceeds the client buffer")
    func replayRoundIsBounded() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.replayRound(cluster)
        }
    }

    static func replayRound(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "pg")
        let names = channels.map { ChannelName($0) }
        let query = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
        let stream = try await StreamClient.open(port: node.port, query)
        for channel in channels { try await ClusterModeTests.waitForSubscribers(cluster, channel, count: 1) }
        _ = try await HistoryTests.publish(node, channels[0], "start")
        let first = try await stream.waitForEvents(1)
        let lastEventID = try #require(first.first.flatMap(id))
        #expect(ChannelPositions(lastEventID, channels: names) != nil)
        await stream.close()
        // 40 events of 4 KB on each channel: 480 KB in all.
        let filler = String(repeating: "x", count: 4096)
        for round in 0..<40 {
            for (index, channel) in channels.enumerated() {
                _ = try await HistoryTests.publish(node, channel, "c\(index)r\(round)\(filler)")
            }
        }
        let resumed = try await StreamClient.open(port: node.port, query, headers: ["Last-Event-ID": lastEventID])
        let events = try await resumed.waitForEvents(120, timeout: .seconds(30))
        await resumed.close()
        // The length of the first run of channel 0's events is what the first round read of it.
        let firstRun = data(events).prefix { $0.hasPrefix("c0r") }.count
        // 128 KB split across 3 channels is about 42 KB per channel: at most 11 events of 4 KB.
        #expect(firstRun <= 11, "the first round read \(firstRun) events (\(firstRun * 4) KB) of one channel alone")
    }

    // MARK: 6. Per-channel counters never expire

    @Test("every key a per-channel publish leaves in Redis expires (nothing grows without bound)")
    func perChannelKeysExpire() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.perChannelKeys(cluster)
        }
    }

    static func perChannelKeys(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        let channel = "user.4711.notifications"
        _ = try await HistoryTests.publish(node, channel, "hello")
        let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
        let keys = try await cluster.command(port: master, "KEYS", "*\(channel)*")
        let names = (keys.elements ?? []).compactMap(\.string)
        #expect(names.count >= 4, "\(names)")
        var forever: [String] = []
        for key in names {
            let ttl = try await cluster.command(port: master, "TTL", key)
            if (ttl.int ?? -1) < 0 { forever.append(key) }
        }
        #expect(forever.isEmpty, "keys that never expire for a channel published once: \(forever)")
    }
}
