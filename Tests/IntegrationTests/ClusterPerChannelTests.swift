import Foundation
import SSEHistory
import SSEPublisher
import SSERedis
import SSEWire
import Testing

/// History positions per channel on a real Redis Cluster (`HistoryConfiguration.Layout
/// .perChannel`): each channel's counter, stream and last position in the channel's own slot,
/// so its publish script runs on the shard serving it; a multi-channel stream's id carries one
/// position per channel.
@Suite("Redis Cluster: history positions per channel", .serialized, .timeLimit(.minutes(3)))
struct ClusterPerChannelTests {
    static func node(_ cluster: RedisClusterProcess) async throws -> BrokerNode {
        try await BrokerNode(redis: try RedisConfiguration(url: cluster.url)) { configuration in
            configuration.subscriber.probeIntervalMilliseconds = 0
        }
    }

    /// The default on a cluster: no layout set, the URL's `history=per-channel` decides.
    static var perChannel: HistoryConfiguration { .default }

    /// `SPUBLISH` calls `port` has served (`INFO commandstats`).
    static func spublishCalls(_ cluster: RedisClusterProcess, port: Int) async throws -> Int {
        let info = try await cluster.command(port: port, "INFO", "commandstats").string ?? ""
        guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_spublish:") }),
            let calls = line.split(separator: ",").first?.split(separator: "=").last.flatMap({ Int($0) })
        else { return 0 }
        return calls
    }

    /// Publishes `range` one after another through `node`, each retried while the publish is
    /// refused as a client would (a master that is down answers 503 until its replica takes over).
    static func publishRetrying(_ node: BrokerNode, _ channel: String, _ range: Range<Int>) async throws -> [String] {
        var ids: [String] = []
        for index in range {
            var attempt = 0
            while true {
                do {
                    ids.append(try await HistoryTests.publish(node, channel, "e\(index)"))
                    break
                } catch where attempt < 200 {
                    attempt += 1
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }
        return ids
    }

    /// The data of each event of `events` (raw framing), by channel index (`…c<INDEX>` or
    /// `missed<INDEX>` data), in arrival order.
    static func byChannel(_ events: [String]) -> [Int: [String]] {
        var grouped: [Int: [String]] = [:]
        for event in events {
            guard let data = event.split(separator: "\n").first(where: { $0.hasPrefix("data:") })?.dropFirst(5), let last = data.last,
                let index = Int(String(last))
            else { continue }
            grouped[index, default: []].append(String(data))
        }
        return grouped
    }

    static func id(_ event: String) -> String? {
        event.split(separator: "\n").first(where: { $0.hasPrefix("id:") }).map { String($0.dropFirst(3)) }
    }

    @Test("two nodes, channels on three shards: ids count per channel, each master holds only its channels' keys, single- and multi-channel streams get every event once, and each resumes exactly on the other node (the multi-channel one from its id of one position per channel)")
    func deliveryAndResume() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "pc")
            let names = channels.map { ChannelName($0) }
            let nodeA = try await Self.node(cluster)
            let nodeB = try await Self.node(cluster)
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let single = try await nodeA.stream(channels[0])
            let query = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
            let multi = try await StreamClient.open(port: nodeB.port, query)
            for channel in channels { try await ClusterModeTests.waitForSubscribers(cluster, channel, count: channel == channels[0] ? 2 : 1) }
            var ids: [[String]] = [[], [], []]
            var published: [[String]] = [[], [], []]
            for round in 0..<4 {
                for (index, channel) in channels.enumerated() {
                    let data = "r\(round)c\(index)"
                    ids[index].append(try await HistoryTests.publish(round % 2 == 0 ? nodeA : nodeB, channel, data))
                    published[index].append(data)
                }
            }
            // Each channel counts on its own: 1, 2, 3, 4 in one epoch of its own.
            for index in 0..<3 {
                let positions = ids[index].compactMap(HistoryPosition.init)
                #expect(positions.map(\.sequence) == [1, 2, 3, 4], "\(ids[index])")
                #expect(Set(positions.map(\.epoch)).count == 1)
            }
            let singleEvents = try await single.waitForEvents(4)
            #expect(singleEvents == (0..<4).map { ClusterModeTests.event(published[0][$0], ids[0][$0]) })
            let multiEvents = try await multi.waitForEvents(12)
            #expect(multiEvents.count == 12)
            #expect(Self.byChannel(multiEvents) == [0: published[0], 1: published[1], 2: published[2]])
            // The multi-channel stream's ids carry every channel's position.
            let fourth = try #require(Self.id(multiEvents[3]))
            let vector = try #require(ChannelPositions(fourth, channels: names), "\(fourth)")
            #expect(vector.isComplete)
            let last = try #require(Self.id(multiEvents[11]).flatMap { ChannelPositions($0, channels: names) })
            for index in 0..<3 { #expect(last.position(of: names[index])?.description == ids[index][3]) }
            // Every channel's keys are on the master serving its slot; none in the shared slot.
            for channel in channels {
                let slot = ClusterSlot.slot(of: channel)
                let owner = try await cluster.masterPort(forSlot: slot)
                let keys = try await cluster.command(port: owner, "CLUSTER", "COUNTKEYSINSLOT", String(slot))
                #expect((keys.int ?? 0) >= 4, "\(channel): \(keys)")
            }
            let shared = HistoryConfiguration.clusterSlot
            let sharedKeys = try await cluster.command(port: try await cluster.masterPort(forSlot: shared), "CLUSTER", "COUNTKEYSINSLOT", String(shared))
            #expect(sharedKeys.int == 0)
            // Resumes on the other node while more was published.
            await multi.close()
            await single.close()
            var missed: [[String]] = [[], [], []]
            for (index, channel) in channels.enumerated() {
                _ = try await HistoryTests.publish(nodeB, channel, "missed\(index)")
                missed[index].append("missed\(index)")
            }
            let resumed = try await StreamClient.open(port: nodeA.port, query, headers: ["Last-Event-ID": fourth])
            var expected: [Int: [String]] = [:]
            for index in 0..<3 {
                let had = Int(vector.position(of: names[index])?.sequence ?? 0)
                expected[index] = Array(published[index][had...]) + missed[index]
            }
            let replayed = try await resumed.waitForEvents(expected.values.reduce(0) { $0 + $1.count })
            #expect(Self.byChannel(replayed) == expected)
            let singleResumed = try await StreamClient.open(port: nodeB.port, "/stream?channel=\(channels[0])", headers: ["Last-Event-ID": ids[0][1]])
            let singleReplay = try await singleResumed.waitForEvents(3)
            #expect(singleReplay.map { Self.byChannel([$0])[0]?.first } == [published[0][2], published[0][3], "missed0"])
            await resumed.close()
            await singleResumed.close()
        }
    }

    @Test("SSEPublisher with positions per channel: consecutive ids per channel, one batch call per channel on its shard, events on the streams")
    func publisher() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "pub")
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream(channels[1])
            try await ClusterModeTests.waitForSubscribers(cluster, channels[1], count: 1)
            let publisher = SSEPublisher(redis: try RedisConfiguration(url: cluster.url), history: Self.perChannel)
            defer { publisher.shutdown() }
            for channel in channels {
                let batch = try await publisher.publish((0..<5).map { FlaskSSEMessage(data: .string("b\($0)")) }, channel: channel)
                let sequences = batch.compactMap { $0.id.flatMap(HistoryPosition.init)?.sequence }
                #expect(sequences == [1, 2, 3, 4, 5], "\(channel)")
            }
            let single = try #require(try await publisher.publish(data: "one", channel: channels[1]).id)
            #expect(HistoryPosition(single)?.sequence == 6)
            let events = try await client.waitForEvents(6)
            #expect(events.map { Self.id($0).flatMap(HistoryPosition.init)?.sequence } == [1, 2, 3, 4, 5, 6])
            await client.close()
        }
    }

    @Test("one channel's slot migrated while publishing on it: every publish is answered, the stream gets every event once, in order, and a resume after it is exact")
    func migration() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("moving")
            try await ClusterModeTests.waitForSubscribers(cluster, "moving", count: 1)
            let slot = ClusterSlot.slot(of: "moving")
            let source = try await cluster.masterPort(forSlot: slot)
            guard let target = try await cluster.masterPorts().first(where: { $0 != source }) else { throw TestFailure("no other master") }
            async let publishing = ClusterModeTests.publishAll(node, "moving", 0..<150)
            try await Task.sleep(for: .milliseconds(150))
            try await cluster.migrateSlot(slot, to: target)
            let ids = try await publishing
            #expect(try await cluster.masterPort(forSlot: slot) == target)
            #expect(ids.compactMap { HistoryPosition($0)?.sequence } == Array(1...150))
            let expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count) == expected)
            let more = try await ClusterModeTests.publishAll(node, "moving", 150..<155)
            let resumed = try await StreamClient.open(port: node.port, "/stream?channel=moving", headers: ["Last-Event-ID": ids[99]])
            let replay = Array(expected[100...]) + more.enumerated().map { ClusterModeTests.event("e\(150 + $0.offset)", $0.element) }
            #expect(try await resumed.waitForEvents(replay.count) == replay)
            await client.close()
            await resumed.close()
        }
    }

    @Test("the publish script SPUBLISHes on the channel's own master: only that master serves SPUBLISH calls, and no classic PUBLISH carries history")
    func shardedPublish() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "sp")
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream(channels[0])
            try await ShardedPubSubTests.waitForShardSubscribers(cluster, channels[0], count: 1)
            let owner = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channels[0]))
            var before: [Int: Int] = [:]
            for port in try await cluster.masterPorts() { before[port] = try await Self.spublishCalls(cluster, port: port) }
            let ids = try await ClusterModeTests.publishAll(node, channels[0], 0..<5)
            #expect(try await client.waitForEvents(5) == ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) })
            for port in try await cluster.masterPorts() {
                let calls = try await Self.spublishCalls(cluster, port: port) - (before[port] ?? 0)
                #expect(calls == (port == owner ? 5 : 0), "master \(port)")
            }
            // Nobody subscribed classically receives them: the classic count of the channel is
            // the node's own classic link, and a classic PUBLISH from the script would reach it twice.
            #expect(try client.events().count == 5)
            await client.close()
        }
    }

    @Test("history on the shards: a CLUSTER FAILOVER of a channel's master while publishing, and a kill -9 of it: every acknowledged event reaches the stream once, in order, caught up from history across the gap", arguments: ["pubsub=both", "pubsub=sharded"])
    func failoverAndCrash(_ pubsub: String) async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            let node = try await BrokerNode(redis: try RedisConfiguration(url: cluster.url(adding: pubsub))) { configuration in
                configuration.subscriber.probeIntervalMilliseconds = 0
            }
            defer { Task { await node.shutdown() } }
            let channel = "turning"
            let client = try await node.stream(channel)
            try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1)
            let slot = ClusterSlot.slot(of: channel)
            let master = try await cluster.masterPort(forSlot: slot)
            let replica = try await cluster.replicaPort(of: master)
            async let publishing = Self.publishRetrying(node, channel, 0..<100)
            try await Task.sleep(for: .milliseconds(100))
            try await cluster.failover(replicaPort: replica)
            var ids = try await publishing
            #expect(try await cluster.masterPort(forSlot: slot) == replica)
            var expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            #expect(try await client.waitForEvents(expected.count, timeout: .seconds(30)) == expected)
            // Now the promoted master dies; its old master (a replica again) takes over.
            try cluster.kill(port: replica)
            ids += try await Self.publishRetrying(node, channel, 100..<110)
            expected = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
            let got = try await client.waitForEvents(expected.count, timeout: .seconds(40))
            #expect(got == expected, "\(got.suffix(3)) vs \(expected.suffix(3))")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try client.events().count == expected.count, "nothing twice")
            await client.close()
        }
    }

    @Test("pubsub=sharded: no classic subscription anywhere; POST /publish and SPUBLISH reach single- and multi-channel streams on two nodes once, a classic PUBLISH reaches none, /readyz is ready, and a multi-channel stream resumes on the other node")
    func shardedOnly() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "so")
            let names = channels.map { ChannelName($0) }
            let url = cluster.url(adding: "pubsub=sharded")
            let nodeA = try await BrokerNode(redis: try RedisConfiguration(url: url))
            let nodeB = try await BrokerNode(redis: try RedisConfiguration(url: url))
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let single = try await nodeA.stream(channels[1])
            let query = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
            let multi = try await StreamClient.open(port: nodeB.port, query)
            for channel in channels {
                _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: channel == channels[1] ? 2 : 1)
            }
            try await Self.waitReady(nodeA)
            try await Self.waitReady(nodeB)
            for channel in channels { #expect(try await ClusterModeTests.subscribers(cluster, channel) == 0, "no classic subscription of \(channel)") }
            var published: [[String]] = [[], [], []]
            for (index, channel) in channels.enumerated() {
                _ = try await HistoryTests.publish(index % 2 == 0 ? nodeA : nodeB, channel, "post\(index)")
                published[index].append("post\(index)")
                #expect(try await ShardedPubSubTests.spublish(cluster, channel, "raw\(index)") == (index == 1 ? 2 : 1))
                published[index].append("raw\(index)")
                _ = try await RedisClusterProcess.command(
                    port: cluster.ports[0], password: nil, [Array("PUBLISH".utf8), Array(channel.utf8), Array("classic\(index)".utf8)]
                )
            }
            let got = try await multi.waitForEvents(6)
            #expect(Self.byChannelOrRaw(got) == [0: published[0], 1: published[1], 2: published[2]])
            #expect(try await single.waitForEvents(2).count == 2)
            try await Task.sleep(for: .milliseconds(300))
            #expect(try multi.events().count == 6, "no classic event, nothing twice")
            #expect(try single.events().count == 2)
            // The last history id (the POST on channel 2 came before its raw SPUBLISH, which has no id).
            let lastID = try #require(got.compactMap(Self.id).last { ChannelPositions($0, channels: names) != nil })
            await multi.close()
            for (index, channel) in channels.enumerated() { _ = try await HistoryTests.publish(nodeB, channel, "missed\(index)") }
            let resumed = try await StreamClient.open(port: nodeA.port, query, headers: ["Last-Event-ID": lastID])
            let replay = try await resumed.waitForEvents(3)
            #expect(Set(Self.byChannelOrRaw(replay).values.flatMap { $0 }) == ["missed0", "missed1", "missed2"])
            await single.close()
            await resumed.close()
        }
    }

    static func waitReady(_ node: BrokerNode) async throws {
        try await eventually(timeout: .seconds(15), "/readyz 200") { try await node.request("GET", "/readyz").status == 200 }
    }

    /// `byChannel` for data that ends in the channel's index (`post0`, `raw1`, `missed2`).
    static func byChannelOrRaw(_ events: [String]) -> [Int: [String]] {
        byChannel(events)
    }

    @Test("the real Flask-SSE publishing through redis-py's RedisCluster reaches streams of a node with history per channel (its classic PUBLISH, byte for byte)")
    func flaskThroughRedisCluster() async throws {
        try await withRedisCluster(masters: 3) { cluster in
            let node = try await Self.node(cluster)
            defer { Task { await node.shutdown() } }
            let client = try await node.stream("interop")
            try await ClusterModeTests.waitForSubscribers(cluster, "interop", count: 1)
            try await FlaskSSEInteropTests.expectPublishes(
                of: "flask_sse_cluster_publish.py", "redis://127.0.0.1:\(cluster.ports[1])", channel: "interop", reach: client
            )
        }
    }

    @Test("over TLS with a password (rediss+cluster://): history per channel on three shards, POST /publish on two nodes, each master holding its channels' keys, and a multi-channel resume on the other node")
    func overTLS() async throws {
        try await ClusterTLSTests.withTLSCluster { cluster in
            let channels = try await ClusterModeTests.channelsOnDistinctShards(cluster, count: 3, prefix: "tpc")
            let names = channels.map { ChannelName($0) }
            let nodeA = try await Self.node(cluster)
            let nodeB = try await Self.node(cluster)
            defer { Task { await nodeA.shutdown(); await nodeB.shutdown() } }
            let query = "/stream?" + channels.map { "channel=\($0)" }.joined(separator: "&")
            let multi = try await StreamClient.open(port: nodeB.port, query)
            for channel in channels { _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1) }
            var published: [Int: [String]] = [:]
            for round in 0..<2 {
                for (index, channel) in channels.enumerated() {
                    _ = try await HistoryTests.publish(round == 0 ? nodeA : nodeB, channel, "r\(round)c\(index)")
                    published[index, default: []].append("r\(round)c\(index)")
                }
            }
            let got = try await multi.waitForEvents(6)
            #expect(Self.byChannel(got) == published)
            for channel in channels {
                let slot = ClusterSlot.slot(of: channel)
                let keys = try await cluster.command(port: try await cluster.masterPort(forSlot: slot), "CLUSTER", "COUNTKEYSINSLOT", String(slot))
                #expect((keys.int ?? 0) >= 4, "\(channel): \(keys)")
            }
            let lastID = try #require(got.last.flatMap(Self.id))
            #expect(ChannelPositions(lastID, channels: names)?.isComplete == true)
            await multi.close()
            for (index, channel) in channels.enumerated() { _ = try await HistoryTests.publish(nodeB, channel, "missed\(index)") }
            let resumed = try await StreamClient.open(port: nodeA.port, query, headers: ["Last-Event-ID": lastID])
            let replay = try await resumed.waitForEvents(3)
            #expect(Self.byChannel(replay) == [0: ["missed0"], 1: ["missed1"], 2: ["missed2"]])
            await resumed.close()
        }
    }

    @Test("a replica promoted without the last writes (Redis lost events): the channel's counter starts a new epoch, nothing is issued twice, live streams keep every event, and a resume from a lost id is told `lost`")
    func promotedReplicaLostEvents() async throws {
        try await withRedisCluster(masters: 3, replicasPerMaster: 1) { cluster in
            try await Self.lostEvents(cluster)
        }
    }

    static func lostEvents(_ cluster: RedisClusterProcess) async throws {
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        let channel = "lossy"
        let live = try await node.stream(channel)
        _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1)
        let master = try await cluster.masterPort(forSlot: ClusterSlot.slot(of: channel))
        let replica = try await cluster.replicaPort(of: master)
        guard let replicaPID = cluster.pid(port: replica) else { throw TestFailure("no pid for the replica \(replica)") }
        var ids = try await publishRetrying(node, channel, 0..<5)
        try await eventually(timeout: .seconds(10), "the replica has the first five") {
            let info = try await cluster.command(port: replica, "INFO", "replication").string ?? ""
            let masterInfo = try await cluster.command(port: master, "INFO", "replication").string ?? ""
            func offset(_ text: String, _ key: String) -> String? {
                text.split(whereSeparator: \.isNewline).first { $0.hasPrefix(key) }.map { String($0.dropFirst(key.count)) }
            }
            return offset(info, "slave_repl_offset:") == offset(masterInfo, "master_repl_offset:")
        }
        // The replica stops taking the stream (stopped, its link cut): five more are answered and
        // delivered, then the master dies with them.
        Foundation.kill(replicaPID, SIGSTOP)
        _ = try await cluster.command(port: master, "CLIENT", "KILL", "TYPE", "replica")
        ids += try await publishRetrying(node, channel, 5..<10)
        let firstTen = ids.enumerated().map { ClusterModeTests.event("e\($0.offset)", $0.element) }
        #expect(try await live.waitForEvents(10) == firstTen)
        try cluster.kill(port: master)
        Foundation.kill(replicaPID, SIGCONT)
        let after = try await publishRetrying(node, channel, 10..<13)
        let positions = after.compactMap(HistoryPosition.init)
        let lostFrom = try #require(HistoryPosition(ids[9]))
        #expect(positions.count == 3 && positions.allSatisfy { $0.epoch > lostFrom.epoch }, "a new epoch after the loss: \(after) vs \(ids[9])")
        #expect(Set(after).isDisjoint(with: ids), "no id issued twice")
        let liveEvents = try await live.waitForEvents(13, timeout: .seconds(30))
        #expect(Array(liveEvents.prefix(10)) == firstTen)
        #expect(Array(liveEvents.suffix(3)) == after.enumerated().map { ClusterModeTests.event("e\(10 + $0.offset)", $0.element) })
        try await Task.sleep(for: .milliseconds(300))
        let allLive = try live.events()
        #expect(allLive.count == 13 && !allLive.contains { $0.hasPrefix("event:history-gap") }, "the live stream lost nothing: \(allLive.suffix(4))")
        // A client that had only up to e7 resumes: e8 and e9 are gone with the old master.
        let resumed = try await StreamClient.open(port: node.port, "/stream?channel=\(channel)", headers: ["Last-Event-ID": ids[7]])
        let replay = try await resumed.waitForEvents(4)
        #expect(replay[0].hasPrefix("event:history-gap\n") && replay[0].contains(#"": "lost""#), "\(replay)")
        #expect(Array(replay.suffix(3)) == after.enumerated().map { ClusterModeTests.event("e\(10 + $0.offset)", $0.element) })
        await live.close()
        await resumed.close()
    }

    @Test("channel names that hold braces (a{b}c, {}x, }{, {{x}}): every key of each lands in the channel's own slot on its master, and a multi-channel stream of them resumes exactly", arguments: [["room{42}chat", "{}x", "}{", "{{x}}"]])
    func bracedNames(_ channels: [String]) async throws {
        try await withRedisCluster(masters: 3) { cluster in
            try await Self.braced(cluster, channels)
        }
    }

    static func braced(_ cluster: RedisClusterProcess, _ channels: [String]) async throws {
        let names = channels.map { ChannelName($0) }
        let node = try await Self.node(cluster)
        defer { Task { await node.shutdown() } }
        let encoded = channels.map { $0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0 }
        let query = "/stream?" + encoded.map { "channel=\($0)" }.joined(separator: "&")
        let stream = try await StreamClient.open(port: node.port, query)
        for channel in channels { _ = try await ShardedPubSubTests.waitForShardSubscribers(cluster, channel, count: 1) }
        for (index, channel) in encoded.enumerated() { _ = try await HistoryTests.publish(node, channel, "first\(index)") }
        let got = try await stream.waitForEvents(channels.count)
        #expect(Set(byChannel(got).keys) == Set(0..<channels.count))
        for channel in channels {
            let slot = ClusterSlot.slot(of: channel)
            let owner = try await cluster.masterPort(forSlot: slot)
            let keys = try await cluster.command(port: owner, "CLUSTER", "COUNTKEYSINSLOT", String(slot))
            #expect((keys.int ?? 0) >= 4, "\(channel) (slot \(slot)): \(keys)")
        }
        let lastID = try #require(got.last.flatMap(id))
        #expect(ChannelPositions(lastID, channels: names)?.isComplete == true)
        await stream.close()
        for (index, channel) in encoded.enumerated() { _ = try await HistoryTests.publish(node, channel, "then\(index)") }
        let resumed = try await StreamClient.open(port: node.port, query, headers: ["Last-Event-ID": lastID])
        let replay = try await resumed.waitForEvents(channels.count)
        #expect(byChannel(replay) == Dictionary(uniqueKeysWithValues: (0..<channels.count).map { ($0, ["then\($0)"]) }))
        await resumed.close()
    }
}
