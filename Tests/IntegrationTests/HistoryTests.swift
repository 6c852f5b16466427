import Foundation
import SSEHistory
import SSEPublisher
import SSERedis
import SSEWire
import SeededRandom
import Synchronization
import Testing

/// `Last-Event-ID` resume from Redis Streams history, across nodes and Redis restarts.
@Suite("History and resume", .timeLimit(.minutes(3)))
struct HistoryTests {
    /// Publishes `data` through a node's `POST /publish` and returns the id the broker assigned.
    static func publish(_ node: BrokerNode, _ channel: String, _ data: String) async throws -> String {
        let response = try await node.request("POST", "/publish?channel=\(channel)", body: PythonJSONEncoder.encode(["data": .string(data)]))
        guard response.status == 200, case .object(let answer) = try JSONParser.parse(response.body), case .string(let id)? = answer["id"] else {
            throw TestFailure("publish failed: \(response.status) \(response.bodyText)")
        }
        return id
    }

    static func event(_ data: String, _ id: String) -> String { "data:\(data)\nid:\(id)\n\n" }

    @Test("a client reads 1..k on node A, misses k+1..m, resumes on node B with Last-Event-ID and gets exactly k+1..m, then live")
    func resumeOnAnotherNode() async throws {
        let redis = try await RedisServerProcess()
        let nodeA = try await BrokerNode(redis: try redis.configuration)
        let nodeB = try await BrokerNode(redis: try redis.configuration)
        let first = try await nodeA.stream("news")
        try await redis.waitForSubscribers("news", count: 1)
        var ids: [String] = []
        for index in 1...5 { ids.append(try await Self.publish(nodeA, "news", "e\(index)")) }
        #expect(try await first.waitForEvents(5) == (1...5).map { Self.event("e\($0)", ids[$0 - 1]) })
        await first.close()
        for index in 6...12 { ids.append(try await Self.publish(nodeA, "news", "e\(index)")) }
        let resumed = try await StreamClient.open(port: nodeB.port, "/stream?channel=news", headers: ["Last-Event-ID": ids[4]])
        #expect(try await resumed.waitForEvents(7) == (6...12).map { Self.event("e\($0)", ids[$0 - 1]) })
        try await redis.waitForSubscribers("news", count: 1)
        for index in 13...14 { ids.append(try await Self.publish(nodeB, "news", "e\(index)")) }
        #expect(try await resumed.waitForEvents(9) == (6...14).map { Self.event("e\($0)", ids[$0 - 1]) })
        await resumed.close()
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test("resumes arriving together from one id share one replay (one state read and one page read, not one each); each still gets exactly what it missed, once, in order, then live; another id is replayed on its own")
    func simultaneousResumesShareReads() async throws {
        let redis = try await RedisServerProcess()
        let nodeA = try await BrokerNode(redis: try redis.configuration)
        let nodeB = try await BrokerNode(redis: try redis.configuration)
        var ids: [String] = []
        for index in 1...30 { ids.append(try await Self.publish(nodeA, "storm", "e\(index)")) }
        _ = try await redis.command("CONFIG", "RESETSTAT")
        // Redis holds every command for 2 s, nodeB's subscription to the channel among them, so
        // each resume below waits for it: all of them arrive while the first replay has not read.
        _ = try await redis.command("CLIENT", "PAUSE", "2000", "ALL")
        let sameCount = 40
        let opened = try await withThrowingTaskGroup(of: (Int, StreamClient).self) { group in
            for index in 0..<(sameCount + 5) {
                let lastID = index < sameCount ? ids[9] : ids[19]
                group.addTask { (index, try await StreamClient.open(port: nodeB.port, "/stream?channel=storm", headers: ["Last-Event-ID": lastID])) }
            }
            var clients: [Int: StreamClient] = [:]
            for try await (index, client) in group { clients[index] = client }
            return clients
        }
        let clients = (0..<(sameCount + 5)).compactMap { opened[$0] }
        #expect(clients.count == sameCount + 5)
        for (index, client) in clients.enumerated() {
            let from = index < sameCount ? 11 : 21
            #expect(try await client.waitForEvents(31 - from) == (from...30).map { Self.event("e\($0)", ids[$0 - 1]) }, "stream \(index)")
        }
        let calls = try await HistoryHardeningTests.calls(redis, "evalsha")
        // Two ids, at most one replay each per event loop, each a state read and at most two
        // pages, and the node's own counter reads: a few; one replay per stream would be >= 90.
        #expect(calls <= 20, "\(calls) script calls for \(sameCount + 5) resumes")
        try await redis.waitForSubscribers("storm", count: 1)
        ids.append(try await Self.publish(nodeA, "storm", "live"))
        for (index, client) in clients.enumerated() {
            let from = index < sameCount ? 11 : 21
            #expect(try await client.waitForEvents(32 - from).last == Self.event("live", ids[30]), "stream \(index) live after its replay")
            await client.close()
        }
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test("one id resumes a two-channel stream exactly, events of both channels in publish order; lastEventId works too")
    func resumeTwoChannels() async throws {
        let redis = try await RedisServerProcess()
        let nodeA = try await BrokerNode(redis: try redis.configuration)
        let nodeB = try await BrokerNode(redis: try redis.configuration)
        let first = try await nodeA.stream("a&channel=b")
        try await redis.waitForSubscribers("a", count: 1)
        try await redis.waitForSubscribers("b", count: 1)
        var expected: [String] = []
        for index in 0..<6 {
            let channel = index.isMultiple(of: 3) ? "b" : "a"
            expected.append(Self.event("\(channel)\(index)", try await Self.publish(nodeA, channel, "\(channel)\(index)")))
        }
        #expect(try await first.waitForEvents(6) == expected)
        await first.close()
        let lastSeen = try #require(expected.last?.split(separator: ":").last?.trimmingCharacters(in: .whitespacesAndNewlines))
        for index in 6..<12 {
            let channel = index.isMultiple(of: 2) ? "a" : "b"
            expected.append(Self.event("\(channel)\(index)", try await Self.publish(nodeA, channel, "\(channel)\(index)")))
        }
        _ = try await Self.publish(nodeA, "c", "other channel, not resumed")
        let resumed = try await StreamClient.open(port: nodeB.port, "/stream?channel=a&channel=b&lastEventId=\(lastSeen)")
        #expect(try await resumed.waitForEvents(6) == Array(expected[6...]))
        try await Task.sleep(for: .milliseconds(200))
        #expect(try resumed.events().count == 6)
        await resumed.close()
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test("trimmed, expired and unknown positions get the documented history-gap event, then what is retained, then live")
    func gapSignals() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.history = HistoryConfiguration(length: 3, ttlSeconds: 3) }
        var ids: [String] = []
        for index in 1...10 { ids.append(try await Self.publish(node, "short", "s\(index)")) }
        let trimmed = try await StreamClient.open(port: node.port, "/stream?channel=short", headers: ["Last-Event-ID": ids[1]])
        let received = try await trimmed.waitForEvents(4)
        #expect(received[0] == "event:history-gap\ndata:{\"channels\": {\"short\": \"trimmed\"}, \"lastEventId\": \"\(ids[1])\"}\n\n")
        #expect(Array(received[1...]) == (8...10).map { Self.event("s\($0)", ids[$0 - 1]) })
        // Resuming from the newest retained-adjacent position has no gap.
        let exact = try await StreamClient.open(port: node.port, "/stream?channel=short", headers: ["Last-Event-ID": ids[7]])
        #expect(try await exact.waitForEvents(2) == (9...10).map { Self.event("s\($0)", ids[$0 - 1]) })
        let unknown = try await StreamClient.open(port: node.port, "/stream?channel=short", headers: ["Last-Event-ID": "not-an-id"])
        #expect(try await unknown.waitForEvents(1) == ["event:history-gap\ndata:{\"channels\": {\"short\": \"unknown\"}, \"lastEventId\": \"not-an-id\"}\n\n"])
        let future = try #require(HistoryPosition(ids[9]))
        let ahead = HistoryPosition(epoch: future.epoch, sequence: future.sequence + 1000).description
        let fromFuture = try await StreamClient.open(port: node.port, "/stream?channel=short", headers: ["Last-Event-ID": ahead])
        #expect(try await fromFuture.waitForEvents(1).first?.contains("\"unknown\"") == true)
        // The channel's history expires (TTL 3 s: long enough that a loaded machine still resumes the
        // retained events above before it does).
        try await eventually(timeout: .seconds(10), "the channel's history to expire") {
            try await redis.command("EXISTS", "sse:history:stream:short").integer == 0
        }
        let expired = try await StreamClient.open(port: node.port, "/stream?channel=short", headers: ["Last-Event-ID": ids[8]])
        #expect(try await expired.waitForEvents(1) == ["event:history-gap\ndata:{\"channels\": {\"short\": \"expired\"}, \"lastEventId\": \"\(ids[8])\"}\n\n"])
        // After any notice the stream continues live.
        let live = try await Self.publish(node, "short", "after")
        #expect(try await expired.waitForEvents(2).last == Self.event("after", live))
        for client in [trimmed, exact, unknown, fromFuture, expired] { await client.close() }
        await node.shutdown()
    }

    @Test("resuming a channel that had nothing new gets nothing, no notice")
    func quietChannel() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let id = try await Self.publish(node, "busy", "x")
        let client = try await StreamClient.open(port: node.port, "/stream?channel=quiet", headers: ["Last-Event-ID": id])
        try await redis.waitForSubscribers("quiet", count: 1)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try client.events().isEmpty)
        await client.close()
        await node.shutdown()
    }

    @Test("events published without history are delivered live but cannot be replayed")
    func rawPublishLiveOnly() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("mixed")
        try await redis.waitForSubscribers("mixed", count: 1)
        let first = try await Self.publish(node, "mixed", "one")
        _ = try await redis.command("PUBLISH", "mixed", #"{"data": "raw", "id": 7}"#)
        let second = try await Self.publish(node, "mixed", "two")
        #expect(try await live.waitForEvents(3) == [Self.event("one", first), "data:raw\nid:7\n\n", Self.event("two", second)])
        let resumed = try await StreamClient.open(port: node.port, "/stream?channel=mixed", headers: ["Last-Event-ID": first])
        #expect(try await resumed.waitForEvents(1) == [Self.event("two", second)])
        await live.close()
        await resumed.close()
        await node.shutdown()
    }

    @Test("with history on, the broker assigns the id; the publisher's own id is replaced")
    func brokerAssignsIDs() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("ids")
        try await redis.waitForSubscribers("ids", count: 1)
        let response = try await node.request("POST", "/publish?channel=ids", body: Array(#"{"data": "d", "id": "mine", "type": "t", "retry": 10}"#.utf8))
        guard case .object(let answer) = try JSONParser.parse(response.body), case .string(let id)? = answer["id"] else {
            throw TestFailure("no id in \(response.bodyText)")
        }
        #expect(HistoryPosition(id) != nil)
        #expect(try await client.waitForEvents(1) == ["event:t\ndata:d\nid:\(id)\nretry:10\n\n"])
        let stored = try await redis.command("XRANGE", "sse:history:stream:ids", "-", "+")
        #expect(stored == .array([.array([.bulkString(Array(id.utf8)), .array([
            .bulkString(Array("p".utf8)), .bulkString(Array(#"{"data": "d", "id": "\#(id)", "retry": 10, "type": "t"}"#.utf8)),
            .bulkString(Array("prev".utf8)), .bulkString([]),
        ])])]))
        await client.close()
        await node.shutdown()
    }

    @Test("after Redis restarts, the node replays to its clients what was published while its subscription was down")
    func replayAfterRedisRestart() async throws {
        let redis = try await RedisServerProcess(persistent: true)
        let node = try await BrokerNode(redis: try redis.configuration) {
            // A slow reconnect leaves a window in which events are published but not yet subscribed.
            $0.subscriber = .init(backoffBaseMilliseconds: 1500, backoffCapMilliseconds: 1500, pingIntervalMilliseconds: 1000)
        }
        let client = try await node.stream("durable")
        try await redis.waitForSubscribers("durable", count: 1)
        let publisher = SSEPublisher(redis: try redis.configuration)
        defer { publisher.shutdown() }
        var expected = [Self.event("before", try #require(try await publisher.publish(data: "before", channel: "durable").id))]
        #expect(try await client.waitForEvents(1) == expected)
        try await redis.restart()
        #expect(try await redis.subscriberCount("durable") == 0, "the node reconnected before the test could publish in the gap")
        for index in 1...3 {
            let receipt = try await publisher.publish(data: .string("gap \(index)"), channel: "durable")
            expected.append(Self.event("gap \(index)", try #require(receipt.id)))
        }
        try await redis.waitForSubscribers("durable", count: 1)
        let after = try await publisher.publish(data: "after", channel: "durable")
        expected.append(Self.event("after", try #require(after.id)))
        #expect(try await client.waitForEvents(5) == expected)
        try await Task.sleep(for: .milliseconds(200))
        #expect(try client.events() == expected)
        #expect(!client.connection.isClosed)
        await client.close()
        await node.shutdown()
    }

    @Test("a killed subscription connection reconnects and catches up with no gap and no duplicate")
    func replayAfterSubscriptionKill() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let clients = [try await node.stream("k"), try await node.stream("k&channel=j")]
        try await redis.waitForSubscribers("k", count: 1)
        let publisher = SSEPublisher(redis: try redis.configuration)
        defer { publisher.shutdown() }
        var expected: [String] = []
        for round in 0..<5 {
            _ = try await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            for index in 0..<20 {
                let data = "r\(round)-\(index)"
                expected.append(Self.event(data, try #require(try await publisher.publish(data: .string(data), channel: "k").id)))
            }
            try await redis.waitForSubscribers("k", count: 1)
        }
        for client in clients {
            #expect(try await client.waitForEvents(expected.count) == expected)
        }
        try await Task.sleep(for: .milliseconds(200))
        for client in clients { #expect(try client.events().count == expected.count) }
        for client in clients { await client.close() }
        await node.shutdown()
    }

    @Test("streams opened before the node's first counter read are caught up after a subscription kill like any other")
    func catchUpOfStreamsOpenedBeforeFirstCounterRead() async throws {
        try await withRedis { redis in
            // Holds back the node's first counter read (a script: paused as a write) while its
            // subscription connects and the streams open, so the streams' channels start with no
            // known position; SUBSCRIBE and GET are not paused.
            _ = try await redis.command("CLIENT", "PAUSE", "900", "WRITE")
            try await withNode(redis: try redis.configuration) { node in
                let clients = [try await node.stream("p"), try await node.stream("p&channel=q")]
                try await redis.waitForSubscribers("p", count: 1)
                let publisher = SSEPublisher(redis: try redis.configuration)
                defer { publisher.shutdown() }
                _ = try await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
                var expected: [String] = []
                for index in 0..<5 {
                    let data = "e\(index)"
                    expected.append(Self.event(data, try #require(try await publisher.publish(data: .string(data), channel: "p").id)))
                }
                try await redis.waitForSubscribers("p", count: 1)
                for client in clients {
                    #expect(try await client.waitForEvents(expected.count) == expected)
                }
                for client in clients { await client.close() }
            }
        }
    }

    @Test("soak: publishing never pauses while 50 clients reconnect at random to two nodes for 30 s; each sees every event once, in order")
    func reconnectSoak() async throws {
        let redis = try await RedisServerProcess()
        // History long enough for the whole run: a client held up by a loaded machine for longer
        // than 1,000 events would be told `trimmed`, which is right but not what this tests.
        let nodes = [
            try await BrokerNode(redis: try redis.configuration) { $0.history.length = 100_000 },
            try await BrokerNode(redis: try redis.configuration) { $0.history.length = 100_000 },
        ]
        let publisher = SSEPublisher(redis: try redis.configuration, history: { var history = HistoryConfiguration.default; history.length = 100_000; return history }())
        defer { publisher.shutdown() }
        let published = SharedValue(0)
        let publishing = SharedValue(true)
        let deadline = ContinuousClock.now + .seconds(30)
        let publisherTask = Task {
            var sequence = 0
            while ContinuousClock.now < deadline {
                try await publisher.publish(data: .string(String(sequence)), channel: "soak")
                sequence += 1
                published.set(sequence)
                try await Task.sleep(for: .milliseconds(5))
            }
            publishing.set(false)
        }
        // One seed for the run; each client draws its pauses from its own shard of it.
        let seed = SeededGenerator.forTest()
        let results = try await withThrowingTaskGroup(of: [Int].self) { group in
            for clientIndex in 0..<50 {
                group.addTask {
                    var seen: [Int] = []
                    var lastID: String?
                    var generator = SeededGenerator(seed: seed.seed, shard: clientIndex + 1)
                    var connection = 0
                    while true {
                        let finalRound = !publishing.get()
                        let node = nodes[(clientIndex + connection) % nodes.count]
                        connection += 1
                        let headers = lastID.map { ["Last-Event-ID": $0] } ?? [:]
                        let client = try await StreamClient.open(port: node.port, "/stream?channel=soak", headers: headers)
                        if finalRound {
                            let total = published.get()
                            try await eventually(timeout: .seconds(20), "client \(clientIndex) to catch up to \(total)") {
                                if seen.last == total - 1 { return true }
                                return try client.events().last?.hasPrefix("data:\(total - 1)\n") == true
                            }
                        } else if lastID == nil {
                            // Until a client has an id it cannot resume; its first connection waits for one.
                            try await client.waitForEvents(1)
                        } else {
                            try await Task.sleep(for: .milliseconds(Int.random(in: 20...400, using: &generator)))
                        }
                        for event in try client.events() {
                            let lines = event.split(separator: "\n")
                            guard lines.count == 2, lines[0].hasPrefix("data:"), lines[1].hasPrefix("id:"),
                                let value = Int(lines[0].dropFirst(5))
                            else { throw TestFailure("unexpected event \(event.debugDescription)") }
                            seen.append(value)
                            lastID = String(lines[1].dropFirst(3))
                        }
                        await client.close()
                        if finalRound { return seen }
                    }
                }
            }
            var all: [[Int]] = []
            for try await seen in group { all.append(seen) }
            return all
        }
        try await publisherTask.value
        let total = published.get()
        print("soak: \(total) events, 50 clients, every client saw \(results.map(\.count).min() ?? 0)...\(results.map(\.count).max() ?? 0)")
        #expect(total > 1000)
        for seen in results {
            let firstSeen = seen.first ?? 0
            #expect(seen == Array(firstSeen..<total), "a client saw \(seen.count) events, first \(firstSeen); \(seed)")
        }
        for node in nodes { await node.shutdown() }
    }
}
