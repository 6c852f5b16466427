import Foundation
import SSEHistory
import SSEPublisher
import SSERedis
import SSEWire
import Testing

/// History under hostile ids, lost data, slow or absent readers and a struggling Redis.
@Suite("History hardening", .timeLimit(.minutes(3)))
struct HistoryHardeningTests {
    static func publish(_ node: BrokerNode, _ channel: String, _ data: String) async throws -> String {
        try await HistoryTests.publish(node, channel, data)
    }

    static func event(_ data: String, _ id: String) -> String { HistoryTests.event(data, id) }

    /// `INFO commandstats` calls of one command (scripts' calls included).
    static func calls(_ redis: RedisServerProcess, _ command: String) async throws -> Int {
        guard case .bulkString(let bytes) = try await redis.command("INFO", "commandstats") else { return 0 }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_\(command):calls=") }) else { return 0 }
        return Int(line.dropFirst("cmdstat_\(command):calls=".count).prefix { $0.isNumber }) ?? 0
    }

    @Test("raw ids that look like positions (a huge sequence, an app id like 2024-06, past the counter) are delivered as is and never make a client drop later events")
    func foreignIDsNeverMovePositions() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("ids")
        try await redis.waitForSubscribers("ids", count: 1)
        let first = try await Self.publish(node, "ids", "one")
        let issued = try #require(HistoryPosition(first))
        let forged = ["9999999999999999999-0", "2024-06", "\(issued.epoch)-\(issued.sequence + 1000)"]
        for id in forged {
            _ = try await redis.command("PUBLISH", "ids", #"{"data": "raw", "id": "\#(id)"}"#)
        }
        let second = try await Self.publish(node, "ids", "two")
        let expected = [Self.event("one", first)] + forged.map { Self.event("raw", $0) } + [Self.event("two", second)]
        #expect(try await client.waitForEvents(expected.count) == expected)
        // A resume from a forged id is `unknown` and then live; it does not hold back what follows.
        let resumed = try await StreamClient.open(port: node.port, "/stream?channel=ids", headers: ["Last-Event-ID": "2024-06"])
        #expect(try await resumed.waitForEvents(1).first?.contains(#""ids": "unknown""#) == true)
        let third = try await Self.publish(node, "ids", "three")
        #expect(try await resumed.waitForEvents(2).last == Self.event("three", third))
        #expect(try await client.waitForEvents(expected.count + 1).last == Self.event("three", third))
        await client.close()
        await resumed.close()
        await node.shutdown()
    }

    @Test("ids this node's own publishes got back from Redis are vouched for without a counter read; an id past them still costs one and is no position")
    func ownPublishesNeedNoRead() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                let client = try await node.stream("seen")
                try await redis.waitForSubscribers("seen", count: 1)
                let first = try await Self.publish(node, "seen", "first")
                #expect(try await client.waitForEvents(1) == [Self.event("first", first)])
                // Publishes on a channel nobody here streams: Redis answers their ids to this node
                // (its watermark), and no message of theirs reaches the node's subscription.
                var issued: [String] = []
                for index in 0..<5 { issued.append(try await Self.publish(node, "elsewhere", "e\(index)")) }
                _ = try await redis.command("CONFIG", "RESETSTAT")
                // A message carrying one of those ids arrives after its publish was answered.
                _ = try await redis.command("PUBLISH", "seen", #"{"data": "late", "id": "\#(issued[3])"}"#)
                #expect(try await client.waitForEvents(2).last == Self.event("late", issued[3]))
                #expect(try await Self.calls(redis, "evalsha") == 0, "no counter read for an id Redis already gave this node")
                let past = try #require(HistoryPosition(issued[4]))
                _ = try await redis.command("PUBLISH", "seen", #"{"data": "past", "id": "\#(past.epoch)-\#(past.sequence + 50)"}"#)
                #expect(try await client.waitForEvents(3).last == Self.event("past", "\(past.epoch)-\(past.sequence + 50)"))
                #expect(try await Self.calls(redis, "evalsha") == 1, "an id past the watermark is read")
                // It was no position: the next real event (below it) still reaches the client.
                let after = try await Self.publish(node, "seen", "after")
                #expect(try await client.waitForEvents(4).last == Self.event("after", after))
                // And a resume from it is unknown.
                let resumed = try await StreamClient.open(port: node.port, "/stream?channel=seen", headers: ["Last-Event-ID": "\(past.epoch)-\(past.sequence + 50)"])
                #expect(try await resumed.waitForEvents(1).first?.contains(#""seen": "unknown""#) == true)
                await resumed.close()
                await client.close()
            }
        }
    }

    @Test("Last-Event-ID 0-0, an unknown epoch or a sequence past the counter costs no history read")
    func unknownIDsCostNoRead() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        for index in 0..<50 { _ = try await Self.publish(node, "cheap", "e\(index)") }
        let current = try #require(HistoryPosition(try await Self.publish(node, "cheap", "last")))
        _ = try await redis.command("CONFIG", "RESETSTAT")
        for id in ["0-0", "1-1", "\(current.epoch)-\(current.sequence + 5)", "\(current.epoch + 1)-1"] {
            let client = try await StreamClient.open(port: node.port, "/stream?channel=cheap", headers: ["Last-Event-ID": id])
            #expect(try await client.waitForEvents(1).first?.contains(#""cheap": "unknown""#) == true, "\(id)")
            await client.close()
        }
        #expect(try await Self.calls(redis, "xrange") == 0)
        await node.shutdown()
    }

    @Test("a counter that moves backwards (Redis lost events) starts a new epoch: connected and resuming clients get every later event, and a 'lost' notice only where they missed what Redis lost")
    func counterMovesBackwards() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("back")
        try await redis.waitForSubscribers("back", count: 1)
        var ids: [String] = []
        for index in 1...5 { ids.append(try await Self.publish(node, "back", "b\(index)")) }
        #expect(try await live.waitForEvents(5).count == 5)
        // What a restore from an older snapshot looks like: the counter, the stream and the last
        // position are back at event 2.
        _ = try await redis.command("SET", "sse:history:seq", String(try #require(HistoryPosition(ids[1])).sequence))
        _ = try await redis.command("XDEL", "sse:history:stream:back", ids[2], ids[3], ids[4])
        _ = try await redis.command("SET", "sse:history:last:back", ids[1])
        let after1 = try await Self.publish(node, "back", "after1")
        let after2 = try await Self.publish(node, "back", "after2")
        let old = try #require(HistoryPosition(ids[4]))
        let new = try #require(HistoryPosition(after1))
        #expect(new.epoch > old.epoch, "a new epoch began")
        #expect(try await live.waitForEvents(7) == ids.enumerated().map { Self.event("b\($0.offset + 1)", $0.element) }
            + [Self.event("after1", after1), Self.event("after2", after2)])
        // A client that had everything resumes with no notice; one that was behind hears what was lost.
        let upToDate = try await StreamClient.open(port: node.port, "/stream?channel=back", headers: ["Last-Event-ID": ids[4]])
        #expect(try await upToDate.waitForEvents(2) == [Self.event("after1", after1), Self.event("after2", after2)])
        let behind = try await StreamClient.open(port: node.port, "/stream?channel=back", headers: ["Last-Event-ID": ids[2]])
        let heard = try await behind.waitForEvents(3)
        #expect(heard[0] == "event:history-gap\ndata:{\"channels\": {\"back\": \"lost\"}, \"lastEventId\": \"\(ids[2])\"}\n\n")
        #expect(Array(heard[1...]) == [Self.event("after1", after1), Self.event("after2", after2)])
        for client in [live, upToDate, behind] { await client.close() }
        await node.shutdown()
    }

    @Test("a Redis back in an older epoch (a promoted replica that missed an epoch change) gets a new epoch past the one clients hold: live events keep flowing, a resume hears what was lost")
    func olderEpoch() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("older")
        try await redis.waitForSubscribers("older", count: 1)
        var ids: [String] = []
        for index in 1...3 { ids.append(try await Self.publish(node, "older", "o\(index)")) }
        #expect(try await live.waitForEvents(3).count == 3)
        let held = try #require(HistoryPosition(ids[2]))
        // What the replica had: an epoch before the one the node saw, with a higher counter.
        _ = try await redis.command("SET", "sse:history:epoch", String(held.epoch - 1000))
        _ = try await redis.command("SET", "sse:history:seq", "10")
        _ = try await redis.command("DEL", "sse:history:previous", "sse:history:last:older")
        let after = try await Self.publish(node, "older", "after")
        let position = try #require(HistoryPosition(after))
        #expect(position.epoch > held.epoch, "the new epoch follows the one clients hold")
        #expect(try await live.waitForEvents(4).last == Self.event("after", after))
        let behind = try await StreamClient.open(port: node.port, "/stream?channel=older", headers: ["Last-Event-ID": ids[1]])
        let heard = try await behind.waitForEvents(3)
        #expect(heard[0].hasPrefix("event:history-gap\n") && heard[0].contains(#""older": "lost""#), "\(heard)")
        #expect(heard.last == Self.event("after", after))
        for client in [live, behind] { await client.close() }
        await node.shutdown()
    }

    @Test("after a restore from an older snapshot, the node starts a new epoch before anyone re-issues ids clients hold; a fresh publisher's events reach the connected client")
    func restoreFromOlderSnapshot() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("again")
        try await redis.waitForSubscribers("again", count: 1)
        var ids: [String] = []
        for index in 1...2 { ids.append(try await Self.publish(node, "again", "a\(index)")) }
        _ = try await redis.command("SAVE")
        for index in 3...4 { ids.append(try await Self.publish(node, "again", "a\(index)")) }
        #expect(try await live.waitForEvents(4).count == 4)
        try await redis.restart()  // loads the snapshot taken after event 2
        // (The node may already have noticed: it checks the counter as soon as it reconnects.)
        try await redis.waitForSubscribers("again", count: 1)
        let fresh = SSEPublisher(redis: try redis.configuration)
        defer { fresh.shutdown() }
        try await eventually("the node to start a new epoch") {
            try await redis.command("GET", "sse:history:epoch").string != HistoryPosition(ids[0]).map { String($0.epoch) }
        }
        let next = try #require(try await fresh.publish(data: "next", channel: "again").id)
        #expect(try #require(HistoryPosition(next)).epoch > (HistoryPosition(ids[0])?.epoch ?? .max))
        #expect(try await live.waitForEvents(5).last == Self.event("next", next))
        await live.close()
        await node.shutdown()
    }

    @Test("a long replay is read in bounded pages, in order, and a resuming client that does not read is cut off without the rest being read")
    func pagedReplay() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) {
            $0.history = HistoryConfiguration(length: 5000, pageBytes: 512 * 1024)
            // Room for a reader a loaded machine holds up for a moment (a 16 KB buffer and 0.2 s
            // heartbeats cut off the reading client too), still far below the 12.8 MB below.
            $0.clientBufferBytes = 256 * 1024
            $0.heartbeatSeconds = 0.5
        }
        let publisher = SSEPublisher(redis: try redis.configuration, history: HistoryConfiguration(length: 5000))
        defer { publisher.shutdown() }
        // 12.8 MB: more than the kernel's socket buffers hold for a client that does not read.
        let padding = String(repeating: "x", count: 32 * 1024)
        var ids: [String] = []
        for index in 0..<400 { ids.append(try #require(try await publisher.publish(data: .string("\(index) \(padding)"), channel: "long").id)) }
        _ = try await redis.command("CONFIG", "RESETSTAT")
        let reader = try await StreamClient.open(port: node.port, "/stream?channel=long", headers: ["Last-Event-ID": ids[0]])
        let events = try await reader.waitForEvents(399, timeout: .seconds(90))
        #expect(events == (1..<400).map { Self.event("\($0) \(padding)", ids[$0]) })
        let pages = try await Self.calls(redis, "xrange")
        #expect(pages >= 399 * 32 * 1024 / (512 * 1024), "one bounded read per page of at most 512 KB")
        await reader.close()
        try await eventually("the reader's connection to be gone") { node.server.connectionCount == 0 }
        _ = try await redis.command("CONFIG", "RESETSTAT")
        let stalled = try await TestConnection.connect(port: node.port, autoRead: false, receiveBuffer: 4096)
        try await stalled.send("GET /stream?channel=long HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: \(ids[0])\r\n\r\n")
        // Admitted first, so the wait below sees the cut-off (the replay's stall timeout, 10 s),
        // not a moment before the connection was counted.
        try await eventually("the stalled resume to be admitted") { node.server.connectionCount == 1 }
        try await eventually(timeout: .seconds(30), "the stalled resume to be cut off") { node.server.connectionCount == 0 }
        #expect(try await Self.calls(redis, "xrange") < pages, "pages are read as the client takes them")
        await stalled.close()
        await node.shutdown()
    }

    @Test("heartbeats keep flowing while a replay is pending")
    func heartbeatsDuringReplay() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.heartbeatSeconds = 0.2 }
        let id = try await Self.publish(node, "hb", "x")
        let other = try await node.stream("hb")
        try await redis.waitForSubscribers("hb", count: 1)
        _ = try await redis.command("CLIENT", "PAUSE", "2500", "ALL")
        let resumed = try await StreamClient.open(port: node.port, "/stream?channel=hb", headers: ["Last-Event-ID": id])
        try await eventually(timeout: .seconds(2), "a heartbeat while the replay waits for Redis") {
            try resumed.frames().contains { $0.hasPrefix(":") }
        }
        #expect(try resumed.events().isEmpty)
        let after = try await Self.publish(node, "hb", "after the pause")
        #expect(try await resumed.waitForEvents(1) == [Self.event("after the pause", after)])
        await other.close()
        await resumed.close()
        await node.shutdown()
    }

    @Test("a resume while Redis is still loading its data (-LOADING) is retried, not answered 'unavailable'")
    func loadingIsRetried() async throws {
        let redis = try await RedisServerProcess(persistent: true)
        let node = try await BrokerNode(redis: try redis.configuration)
        let first = try await Self.publish(node, "load", "one")
        let second = try await Self.publish(node, "load", "two")
        _ = try await redis.command("EVAL", "for i = 1, 2000 do redis.call('SET', 'filler:' .. i, 'x') end", "0")
        // Into the AOF's base file, so the restart loads them.
        _ = try await redis.command("BGREWRITEAOF")
        try await eventually("the AOF rewrite") {
            guard case .bulkString(let info) = try await redis.command("INFO", "persistence") else { return false }
            let text = String(decoding: info, as: UTF8.self)
            return text.contains("aof_rewrite_in_progress:0") && text.contains("aof_rewrite_scheduled:0")
        }
        // Loading 2,000 keys at 1 ms each: about two seconds of -LOADING.
        try await redis.restart(arguments: ["--key-load-delay", "1000"], waitUntilReady: true)
        let loading = try await redis.command("GET", "sse:history:seq")
        #expect(loading.errorMessage?.hasPrefix("LOADING") == true, "Redis answered \(loading) while it should be loading")
        let resumed = try await StreamClient.open(port: node.port, "/stream?channel=load", headers: ["Last-Event-ID": first])
        // A publish while Redis loads waits out -LOADING (the script did not run, so retrying is safe).
        let during = try await Self.publish(node, "load", "during")
        let events = try await resumed.waitForEvents(2, timeout: .seconds(20))
        #expect(events == [Self.event("two", second), Self.event("during", during)])
        await resumed.close()
        await node.shutdown()
    }

    @Test("a channel first wanted while the subscription is down is caught up from history once it is back")
    func channelWantedDuringOutage() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) {
            $0.subscriber = .init(backoffBaseMilliseconds: 1500, backoffCapMilliseconds: 1500, pingIntervalMilliseconds: 1000)
        }
        let publisher = SSEPublisher(redis: try redis.configuration)
        defer { publisher.shutdown() }
        let existing = try await node.stream("known")
        try await redis.waitForSubscribers("known", count: 1)
        _ = try await publisher.publish(data: "k", channel: "known")
        _ = try await existing.waitForEvents(1)
        _ = try await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
        try await eventually("the node to notice") { !node.server.isSubscriptionConnected }
        let newcomer = try await node.stream("fresh")
        let during = try #require(try await publisher.publish(data: "during", channel: "fresh").id)
        try await redis.waitForSubscribers("fresh", count: 1)
        let after = try #require(try await publisher.publish(data: "after", channel: "fresh").id)
        #expect(try await newcomer.waitForEvents(2) == [Self.event("during", during), Self.event("after", after)])
        await existing.close()
        await newcomer.close()
        await node.shutdown()
    }

    @Test("a channel's last position expires with its history; nothing history writes grows without bound")
    func lastPositionExpires() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.history = HistoryConfiguration(length: 10, ttlSeconds: 60) }
        for index in 0..<20 { _ = try await Self.publish(node, "c\(index)", "x") }
        let ttl = try #require(try await redis.command("TTL", "sse:history:last:c7").integer)
        #expect(ttl > 0 && ttl <= 60 + Int64(HistoryConfiguration.lastPositionGraceSeconds))
        #expect(try await redis.command("EXISTS", "sse:history:last").integer == 0)
        await node.shutdown()
    }

    @Test("resuming clients that leave before their replay arrives, again and again, leave nothing behind")
    func resumersLeavingEarly() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let id = try await Self.publish(node, "churn", "x")
        for _ in 0..<30 { _ = try await Self.publish(node, "churn", "y") }
        for round in 0..<40 {
            let connection = try await TestConnection.connect(port: node.port)
            try await connection.send("GET /stream?channel=churn-\(round % 4)&channel=churn HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: \(id)\r\n\r\n")
            await connection.close()
        }
        try await eventually("every stream and channel to be gone") {
            node.server.connectionCount == 0 && node.server.channelCount == 0
        }
        try await eventually("the node to unsubscribe") { try await redis.subscriberCount("churn") == 0 }
        await node.shutdown()
    }
}

extension RedisReply {
    /// The text of an error reply.
    var errorMessage: String? {
        if case .error(let message) = self { return message }
        return nil
    }
}

@Suite("History hardening: races", .timeLimit(.minutes(3)))
struct HistoryRaceTests {
    @Test("a channel unsubscribed (its last client left) and resubscribed by a resuming client at once: the resume misses nothing published meanwhile")
    func resubscribeWhileResuming() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let publisher = SSEPublisher(redis: try redis.configuration)
        defer { publisher.shutdown() }
        let published = SharedValue<[String]>([])
        let running = SharedValue(true)
        let publishing = Task {
            var index = 0
            while running.get() {
                let id = try #require(try await publisher.publish(data: .string("p\(index)"), channel: "flip").id)
                published.set(published.get() + [id])
                index += 1
                try await Task.sleep(for: .milliseconds(2))
            }
        }
        for _ in 0..<15 {
            let leaving = try await node.stream("flip")
            try await redis.waitForSubscribers("flip", count: 1)
            try await eventually("an event on the leaving stream") { try leaving.events().count >= 1 }
            let lastSeen = try #require(try leaving.events().last?.split(separator: "\n").last.map { String($0.dropFirst(3)) })
            // The last client leaves and a resuming one arrives in the same instant.
            async let closing: Void = leaving.close()
            let resumed = try await StreamClient.open(port: node.port, "/stream?channel=flip", headers: ["Last-Event-ID": lastSeen])
            await closing
            try await Task.sleep(for: .milliseconds(150))
            let expectedAfter = published.get().drop { $0 != lastSeen }.dropFirst()
            let have = try await resumed.waitForEvents(expectedAfter.count)
            let ids = have.compactMap { $0.split(separator: "\n").last.map { String($0.dropFirst(3)) } }
            #expect(Array(ids.prefix(expectedAfter.count)) == Array(expectedAfter), "a gap after \(lastSeen)")
            await resumed.close()
            try await eventually("the node to unsubscribe") { try await redis.subscriberCount("flip") == 0 }
        }
        running.set(false)
        try await publishing.value
        await node.shutdown()
    }
}

@Suite("History hardening: a stalled event loop", .timeLimit(.minutes(2)))
struct StalledLoopTests {
    @Test("deliveries toward a stalled event loop are bounded; once it drains, its clients catch up from history: every event once, in order")
    func stalledLoopCatchesUp() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) {
            $0.threads = 1
            // Either bound trips, however Redis's replies were batched into reads: 200 events
            // are at least 200 * 30 bytes, and a count alone can stay under 20 hand-offs when
            // a loaded machine reads many replies at once.
            $0.maxQueuedDeliveriesPerLoop = 20
            $0.maxQueuedBytesPerLoop = 2_000
        }
        let client = try await node.stream("stall")
        try await redis.waitForSubscribers("stall", count: 1)
        let publisher = SSEPublisher(redis: try redis.configuration)
        defer { publisher.shutdown() }
        let first = try #require(try await publisher.publish(data: "first", channel: "stall").id)
        _ = try await client.waitForEvents(1)
        // Stall the node's only loop until 200 events have arrived, one read each (at most 10 s:
        // on a loaded machine a fixed stall could end before the bound is reached).
        let publishedAll = SharedValue(false)
        node.server.eventLoopGroup.any().execute {
            let until = ContinuousClock.now.advanced(by: .seconds(10))
            while !publishedAll.get(), ContinuousClock.now < until { usleep(10_000) }
            usleep(200_000)
        }
        var ids = [first]
        for index in 0..<200 {
            ids.append(try #require(try await publisher.publish(data: .string("e\(index)"), channel: "stall").id))
        }
        publishedAll.set(true)
        let events = try await client.waitForEvents(201, timeout: .seconds(20))
        #expect(events == [HistoryTests.event("first", first)] + (0..<200).map { HistoryTests.event("e\($0)", ids[$0 + 1]) })
        let metrics = try await node.request("GET", "/metrics")
        #expect(!metrics.bodyText.contains("sse_loop_behind_total 0"), "the bound was reached")
        #expect(metrics.bodyText.contains("sse_loop_behind_total"))
        await client.close()
        await node.shutdown()
    }
}
