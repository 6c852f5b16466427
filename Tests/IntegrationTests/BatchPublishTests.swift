import SSEHistory
import SSEPublisher
import SSERedis
import SSEWire
import Synchronization
import Testing

/// Batches and group commit on the history publish path, against a real Redis: one script call
/// for many events, ids consecutive and in order, the bytes Flask-SSE writes, every epoch rule
/// kept, and `POST /publish` with a JSON array all or nothing.
@Suite("Batched history publishing", .timeLimit(.minutes(3)))
struct BatchPublishTests {
    static func event(_ data: String, _ id: String) -> String { "data:\(data)\nid:\(id)\n\n" }

    /// The history stream's entries: (id, payload, prev).
    static func entries(_ redis: RedisServerProcess, _ channel: String) async throws -> [(id: String, payload: [UInt8], prev: String)] {
        guard case .array(let items) = try await redis.command("XRANGE", "sse:history:stream:\(channel)", "-", "+") else {
            throw TestFailure("XRANGE answered no array")
        }
        return try items.map { item in
            guard case .array(let parts) = item, parts.count == 2, let id = parts[0].string, case .array(let fields) = parts[1],
                fields.count == 4, fields[0].string == "p", case .bulkString(let payload) = fields[1], fields[2].string == "prev",
                let prev = fields[3].string
            else { throw TestFailure("unexpected stream entry \(item)") }
            return (id, payload, prev)
        }
    }

    static func consecutive(_ ids: [String]) throws -> Bool {
        let positions = try ids.map { try #require(HistoryPosition($0)) }
        return zip(positions, positions.dropFirst()).allSatisfy { $0.epoch == $1.epoch && $1.sequence == $0.sequence + 1 }
    }

    @Test("a batch is one script call: consecutive ids in its order, each payload byte for byte what sse.publish(..., id=ID) writes, each entry chained to the one before")
    func oneCallInOrder() async throws {
        try await withRedis { redis in
            let publisher = SSEPublisher(redis: try redis.configuration)
            defer { publisher.shutdown() }
            let first = try await publisher.publish(data: "before", channel: "b")
            let messages = [
                FlaskSSEMessage(data: ["a": 1, "list": [1, "two", nil]], type: "update", id: "replaced", retry: 1500),
                FlaskSSEMessage(data: "plain"),
                FlaskSSEMessage(data: "é \u{2028} \"quoted\"\nline", type: "t"),
                FlaskSSEMessage(data: 3.5, retry: 0),
                FlaskSSEMessage(data: .string(String(repeating: "x", count: 70_000))),
            ]
            _ = try await redis.command("CONFIG", "RESETSTAT")
            let receipts = try await publisher.publish(messages, channel: "b")
            #expect(try await HistoryHardeningTests.calls(redis, "evalsha") == 1, "one script call for the batch")
            let ids = receipts.compactMap(\.id)
            #expect(ids.count == messages.count)
            #expect(try Self.consecutive([try #require(first.id)] + ids), "consecutive after the single publish before it")
            let stored = try await Self.entries(redis, "b")
            #expect(stored.map(\.id) == [try #require(first.id)] + ids)
            for (index, message) in messages.enumerated() {
                let entry = stored[index + 1]
                let expected = FlaskSSEMessage(data: message.data, type: message.type, id: .string(ids[index]), retry: message.retry)
                #expect(entry.payload == expected.redisPayload, "event \(index): the bytes sse.publish writes with the position as id")
                #expect(entry.prev == stored[index].id, "event \(index) chained to the one before")
            }
            let last = try await redis.command("GET", "sse:history:last:b")
            #expect(last.string == ids.last)
            #expect(try await publisher.publish([], channel: "b").isEmpty, "an empty batch publishes nothing")
        }
    }

    @Test("publishes from many callers at once are group-committed: far fewer script calls than events, one id order that is Redis's order and each caller's own order, every event delivered once")
    func groupCommit() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                let client = try await node.stream("g")
                try await redis.waitForSubscribers("g", count: 1)
                let publisher = SSEPublisher(redis: try redis.configuration)
                defer { publisher.shutdown() }
                _ = try await publisher.publish(data: "warm", channel: "other")
                _ = try await redis.command("CONFIG", "RESETSTAT")
                let callers = 4
                let perCaller = 250  // 1,000 in all: what the default history keeps
                let results = IDTable(callers: callers, perCaller: perCaller)
                await withTaskGroup(of: Void.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                                for index in 0..<perCaller {
                                    let message = FlaskSSEMessage(data: .string("c\(caller)-\(index)"))
                                    publisher.publish(message, channel: "g") { result in
                                        if results.record((try? result.get())?.id, caller: caller, index: index) { done.resume() }
                                    }
                                }
                            }
                        }
                    }
                }
                let ids = results.ids
                #expect(ids.allSatisfy { $0.allSatisfy { $0 != nil } }, "every publish answered with an id")
                let calls = try await HistoryHardeningTests.calls(redis, "evalsha")
                #expect(calls <= callers * perCaller / 8, "\(calls) script calls for \(callers * perCaller) publishes")
                for caller in ids {
                    let positions = caller.compactMap { $0.flatMap(HistoryPosition.init) }
                    #expect(zip(positions, positions.dropFirst()).allSatisfy { $0 < $1 }, "each caller's events in its own order")
                }
                let stored = try await Self.entries(redis, "g")
                var byID: [String: String] = [:]
                for (caller, list) in ids.enumerated() {
                    for (index, id) in list.enumerated() { byID[id ?? "-"] = "c\(caller)-\(index)" }
                }
                #expect(stored.count == callers * perCaller)
                #expect(try Self.consecutive(stored.map(\.id)), "one gapless id order")
                let expected = stored.map { Self.event(byID[$0.id] ?? "?", $0.id) }
                #expect(try await client.waitForEvents(expected.count, timeout: .seconds(30)) == expected, "delivered once each, in Redis's order")
                print("group commit: \(callers * perCaller) concurrent publishes in \(calls) script calls")
                await client.close()
            }
        }
    }

    @Test("a batch past one call's bounds is cut into calls of at most 256 events, ids still consecutive and in order")
    func cutAtBounds() async throws {
        try await withRedis { redis in
            let publisher = SSEPublisher(redis: try redis.configuration)
            defer { publisher.shutdown() }
            _ = try await publisher.publish(data: "warm", channel: "other")
            _ = try await redis.command("CONFIG", "RESETSTAT")
            let messages = (0..<600).map { FlaskSSEMessage(data: .string("e\($0)")) }
            let receipts = try await publisher.publish(messages, channel: "big")
            #expect(try await HistoryHardeningTests.calls(redis, "evalsha") == 3)
            let ids = receipts.compactMap(\.id)
            #expect(ids.count == 600)
            #expect(try Self.consecutive(ids))
            let stored = try await Self.entries(redis, "big")
            #expect(stored.map(\.id) == ids)
            #expect(stored.map { FlaskSSEMessage(redisPayload: $0.payload)?.data } == messages.map(\.data))
        }
    }

    @Test("the epoch rules hold for a batch: a counter moved back, a lost counter and an older epoch each start a new epoch before the batch's first id")
    func epochRules() async throws {
        try await withRedis { redis in
            let watermark = HistoryWatermark()
            let publisher = SSEPublisher(redis: try redis.configuration, watermark: watermark)
            defer { publisher.shutdown() }
            let batch = (0..<3).map { FlaskSSEMessage(data: .string("e\($0)")) }
            let firstIDs = try await publisher.publish(batch, channel: "e").compactMap(\.id)
            var held = try #require(firstIDs.last.flatMap(HistoryPosition.init))
            let cases: [(String, [[String]])] = [
                ("counter moved back", [["SET", "sse:history:seq", "1"]]),
                ("counter lost", [["DEL", "sse:history:seq"]]),
                ("older epoch", [["SET", "sse:history:epoch", String(held.epoch - 1000)], ["SET", "sse:history:seq", "10"]]),
            ]
            for (name, commands) in cases {
                for command in commands { _ = try await redis.command(command) }
                let ids = try await publisher.publish(batch, channel: "e").compactMap(\.id)
                let positions = try ids.map { try #require(HistoryPosition($0)) }
                #expect(positions.count == 3 && positions[0].epoch > held.epoch, "\(name): a new epoch past \(held)")
                #expect(try Self.consecutive(ids), "\(name): consecutive")
                #expect(positions.first?.sequence == 1, "\(name): the new epoch starts at 1")
                held = try #require(positions.last)
            }
        }
    }

    @Test("POST /publish with a JSON array: answered per event in order, delivered in order with those ids; a bad element, an empty or oversized array refuse the whole request and publish nothing")
    func httpBatch() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                let client = try await node.stream("h")
                try await redis.waitForSubscribers("h", count: 1)
                let body = #"[{"data": "one"}, {"data": "two", "type": "t"}, {"data": "three", "id": "ignored"}]"#
                let response = try await node.request("POST", "/publish?channel=h", body: Array(body.utf8))
                #expect(response.status == 200, "\(response.bodyText)")
                guard case .object(let answer) = try JSONParser.parse(response.body), case .array(let events)? = answer["events"] else {
                    throw TestFailure("unexpected answer \(response.bodyText)")
                }
                let ids: [String] = events.compactMap { event in
                    guard case .object(let fields) = event, case .string(let id)? = fields["id"], fields["receivers"] == .integer(JSONInteger(1)) else { return nil }
                    return id
                }
                #expect(ids.count == 3, "\(response.bodyText)")
                #expect(try Self.consecutive(ids))
                let expected = [Self.event("one", ids[0]), "event:t\n" + Self.event("two", ids[1]), Self.event("three", ids[2])]
                #expect(try await client.waitForEvents(3) == expected)

                let counter = try await redis.command("GET", "sse:history:seq").string
                let refused: [(String, String)] = [
                    (#"[{"data": 1}, {"type": "no data"}, {"data": 3}]"#, "batch element 1"),
                    (#"[{"data": 1}, {"data": 2, "typo": 1}]"#, "batch element 1"),
                    (#"[{"data": 1}, 7]"#, "batch element 1"),
                    ("[]", "empty array"),
                    ("[" + Array(repeating: #"{"data":1}"#, count: 1001).joined(separator: ",") + "]", "at most 1000"),
                ]
                for (bad, reason) in refused {
                    let answer = try await node.request("POST", "/publish?channel=h", body: Array(bad.utf8))
                    #expect(answer.status == 400, "\(reason)")
                    #expect(answer.bodyText.contains(reason), "\(answer.bodyText)")
                }
                #expect(try await redis.command("GET", "sse:history:seq").string == counter, "nothing was published")
                let after = try await HistoryTests.publish(node, "h", "after")
                #expect(try await client.waitForEvents(4) == expected + [Self.event("after", after)], "nothing of a refused batch reached the stream")
                await client.close()
            }
        }
    }

    @Test("single-event publishes pipelined on one keep-alive connection are worked on together: while Redis holds writes back, 16 are taken and go out in two script calls; every one answered in request order with consecutive ids and delivered once in that order")
    func pipelinedOnOneConnection() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration) { node in
                let client = try await node.stream("pipe")
                try await redis.waitForSubscribers("pipe", count: 1)
                _ = try await HistoryTests.publish(node, "pipe", "warm")  // the script is loaded
                #expect(try await client.waitForEvents(1).count == 1)
                _ = try await redis.command("CONFIG", "RESETSTAT")
                let count = 200
                let requests = (0..<count).map { index in
                    let body = #"{"data": "e\#(index)"}"#
                    return "POST /publish?channel=pipe HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                }
                // Writes held back: the first publish's call waits in Redis, so the node's other
                // publishes of the connection can only be waiting with it (serial handling would
                // have taken no second request).
                _ = try await redis.command("CLIENT", "PAUSE", "600", "WRITE")
                let connection = try await TestConnection.connect(port: node.port)
                try await connection.send(requests.joined() + "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                try await connection.waitForClose(timeout: .seconds(30))
                let text = String(decoding: connection.received, as: UTF8.self)
                let answers = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
                #expect(answers.count == count + 1)
                #expect(answers.last?.hasPrefix("200 OK") == true && answers.last?.contains(#"{"status": "ok"}"#) == true, "the health check answered last")
                let ids: [String] = answers.dropLast().compactMap { answer in
                    guard answer.hasPrefix("200 OK"), let start = answer.range(of: #""id": ""#) else { return nil }
                    return String(answer[start.upperBound...].prefix { $0 != "\"" })
                }
                #expect(ids.count == count, "every publish answered 200 with an id")
                #expect(try Self.consecutive(ids), "answers in request order: ids consecutive")
                // One INCR per publish-script call.
                let calls = try await HistoryHardeningTests.calls(redis, "incr")
                #expect(calls <= count - 14, "\(calls) script calls for \(count) publishes: the 15 taken behind the first went out together")
                let expected = (0..<count).map { Self.event("e\($0)", ids[$0]) }
                #expect(try await client.waitForEvents(count + 1, timeout: .seconds(30)).dropFirst() == expected[...])
                await client.close()
            }
        }
    }

    @Test("without history a batch is pipelined PUBLISHes: answered with receivers per event, delivered in order, the ids the publisher gave")
    func withoutHistory() async throws {
        try await withRedis { redis in
            try await withNode(redis: try redis.configuration, configure: { $0.history = .disabled }) { node in
                let client = try await node.stream("n")
                try await redis.waitForSubscribers("n", count: 1)
                let response = try await node.request("POST", "/publish?channel=n", body: Array(#"[{"data": "a", "id": "x1"}, {"data": "b"}]"#.utf8))
                #expect(response.status == 200)
                #expect(response.bodyText == #"{"events": [{"receivers": 1}, {"receivers": 1}]}"#)
                #expect(try await client.waitForEvents(2) == ["data:a\nid:x1\n\n", "data:b\n\n"])
                let publisher = SSEPublisher(redis: try redis.configuration, history: .disabled)
                defer { publisher.shutdown() }
                let receipts = try await publisher.publish([FlaskSSEMessage(data: "c"), FlaskSSEMessage(data: "d", id: "y")], channel: "n")
                #expect(receipts == [PublishReceipt(receivers: 1, id: nil), PublishReceipt(receivers: 1, id: nil)])
                #expect(try await client.waitForEvents(4).suffix(2) == ["data:c\n\n", "data:d\nid:y\n\n"])
                await client.close()
            }
        }
    }
}

/// The ids answered to each caller's publishes, by caller and index.
final class IDTable: Sendable {
    private struct State {
        var ids: [[String?]]
        var left: [Int]
    }

    private let state: Mutex<State>

    init(callers: Int, perCaller: Int) {
        state = Mutex(State(ids: Array(repeating: Array(repeating: nil, count: perCaller), count: callers), left: Array(repeating: perCaller, count: callers)))
    }

    /// Records one answer; true when it was the caller's last.
    func record(_ id: String?, caller: Int, index: Int) -> Bool {
        state.withLock { state in
            state.ids[caller][index] = id
            state.left[caller] -= 1
            return state.left[caller] == 0
        }
    }

    var ids: [[String?]] { state.withLock { $0.ids } }
}
