import FlaskSSEVectors
import Foundation
import SSEPublisher
import SSERedis
import SSEWire
import Testing

/// The core broker against a real redis-server, over real sockets.
@Suite("Core broker, end to end", .timeLimit(.minutes(2)))
struct BrokerIntegrationTests {
    @Test("headers arrive at once, before any event, exactly as the contract says")
    func immediateHeaders() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("quiet")
        let head = try await client.head()
        #expect(head.statusLine == "HTTP/1.1 200 OK")
        #expect(head.header("content-type") == "text/event-stream; charset=utf-8")
        #expect(head.header("cache-control") == "no-cache")
        #expect(head.header("x-accel-buffering") == "no")
        #expect(head.header("transfer-encoding") == "chunked")
        #expect(try client.frames().isEmpty)
        await client.close()
        await node.shutdown()
    }

    @Test("every golden payload published raw on Redis reaches the stream byte for byte, in order")
    func rawPublishGoldenVectors() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("news")
        try await redis.waitForSubscribers("news", count: 1)
        let vectors = try FlaskSSEVector.all()
        let publisher = RedisCommandClient(redis: try redis.configuration, logger: .init(label: "test"))
        defer { publisher.shutdown() }
        for vector in vectors {
            _ = try await publisher.send([Array("PUBLISH".utf8), Array("news".utf8), vector.redisPayload])
        }
        let events = try await client.waitForEvents(vectors.count)
        #expect(events == vectors.map { String(decoding: $0.sse, as: UTF8.self) })
        await client.close()
        await node.shutdown()
    }

    @Test("redis-cli PUBLISH of plain text reaches the stream as data")
    func redisCLIPublish() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("sse")
        try await redis.waitForSubscribers("sse", count: 1)
        let cli = try ChildProcess(try Executables.find("redis-cli"), ["-p", String(redis.port), "PUBLISH", "sse", "hello"])
        #expect(try await cli.waitForExit() == 0)
        #expect(try await client.waitForEvents(1) == ["data:hello\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("a missing or empty channel means 'sse', as in Flask-SSE")
    func defaultChannel() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let bare = try await StreamClient.open(port: node.port, "/stream")
        let empty = try await StreamClient.open(port: node.port, "/stream?channel=")
        try await eventually("both clients on 'sse'") { node.server.clientCount(for: "sse") == 2 }
        try await redis.waitForSubscribers("sse", count: 1)
        _ = try await redis.command("PUBLISH", "sse", #"{"data": "default"}"#)
        #expect(try await bare.waitForEvents(1) == ["data:default\n\n"])
        #expect(try await empty.waitForEvents(1) == ["data:default\n\n"])
        await bare.close()
        await empty.close()
        await node.shutdown()
    }

    @Test("two nodes on one Redis both deliver every event, in order, to all their clients")
    func twoNodesInOrder() async throws {
        let redis = try await RedisServerProcess()
        let nodeA = try await BrokerNode(redis: try redis.configuration)
        let nodeB = try await BrokerNode(redis: try redis.configuration)
        var clients: [StreamClient] = []
        for node in [nodeA, nodeB] {
            for _ in 0..<3 { clients.append(try await node.stream("ticker")) }
        }
        try await redis.waitForSubscribers("ticker", count: 2)
        let publisher = RedisCommandClient(redis: try redis.configuration, logger: .init(label: "test"))
        defer { publisher.shutdown() }
        let count = 300
        for sequence in 0..<count {
            _ = try await publisher.send("PUBLISH", "ticker", #"{"data": {"n": \#(sequence)}, "id": \#(sequence + 1)}"#)
        }
        let expected = (0..<count).map { "data:{\"n\": \($0)}\nid:\($0 + 1)\n\n" }
        for client in clients {
            #expect(try await client.waitForEvents(count) == expected)
        }
        for client in clients { await client.close() }
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test("channels are isolated: a client sees only its own channel's events")
    func channelIsolation() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let red = try await node.stream("red")
        let blue = try await node.stream("blue")
        try await redis.waitForSubscribers("red", count: 1)
        try await redis.waitForSubscribers("blue", count: 1)
        for index in 0..<10 {
            _ = try await redis.command("PUBLISH", index.isMultiple(of: 2) ? "red" : "blue", "event \(index)")
        }
        _ = try await redis.command("PUBLISH", "green", "nobody listens")
        #expect(try await red.waitForEvents(5) == [0, 2, 4, 6, 8].map { "data:event \($0)\n\n" })
        #expect(try await blue.waitForEvents(5) == [1, 3, 5, 7, 9].map { "data:event \($0)\n\n" })
        try await Task.sleep(for: .milliseconds(200))
        #expect(try red.events().count == 5)
        #expect(try blue.events().count == 5)
        await red.close()
        await blue.close()
        await node.shutdown()
    }

    @Test("one Redis subscription per channel per node, released within a second of the last disconnect")
    func subscriptionRefcounting() async throws {
        let redis = try await RedisServerProcess()
        let nodeA = try await BrokerNode(redis: try redis.configuration)
        let nodeB = try await BrokerNode(redis: try redis.configuration)
        var onA: [StreamClient] = []
        for _ in 0..<5 { onA.append(try await nodeA.stream("shared")) }
        try await eventually("5 clients on node A") { nodeA.server.clientCount(for: "shared") == 5 }
        try await redis.waitForSubscribers("shared", count: 1)
        var onB: [StreamClient] = []
        for _ in 0..<3 { onB.append(try await nodeB.stream("shared")) }
        try await eventually("3 clients on node B") { nodeB.server.clientCount(for: "shared") == 3 }
        try await redis.waitForSubscribers("shared", count: 2)
        // Closing all but one client of node A keeps its subscription.
        for client in onA.dropFirst() { await client.close() }
        try await eventually("1 client left on node A") { nodeA.server.clientCount(for: "shared") == 1 }
        #expect(try await redis.subscriberCount("shared") == 2)
        // The last client of node A leaves: its node unsubscribes within a second.
        await onA[0].close()
        try await redis.waitForSubscribers("shared", count: 1, timeout: .seconds(1))
        for client in onB { await client.close() }
        try await redis.waitForSubscribers("shared", count: 0, timeout: .seconds(1))
        await nodeA.shutdown()
        await nodeB.shutdown()
    }

    @Test("POST /publish puts Flask-SSE's exact bytes on Redis and answers with the receiver count (history off)")
    func publishRoundTrip() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.history = .disabled }
        let tap = try RedisTap(redis: try redis.configuration, channel: "posted")
        defer { tap.stop() }
        let client = try await node.stream("posted")
        try await redis.waitForSubscribers("posted", count: 2)
        let vectors = try FlaskSSEVector.all().filter { $0.publish != nil }
        for vector in vectors {
            let body = PythonJSONEncoder.encode(.object(try #require(vector.publish)))
            let response = try await node.request("POST", "/publish?channel=posted", body: body)
            #expect(response.status == 200, "\(vector.name): \(response.bodyText)")
            #expect(response.header("content-type") == "application/json")
            #expect(response.bodyText == #"{"receivers": 2}"#)
        }
        let payloads = try await tap.waitForPayloads(vectors.count)
        #expect(payloads.map { String(decoding: $0, as: UTF8.self) } == vectors.map { String(decoding: $0.redisPayload, as: UTF8.self) })
        #expect(try await client.waitForEvents(vectors.count) == vectors.map { String(decoding: $0.sse, as: UTF8.self) })
        await client.close()
        await node.shutdown()
    }

    @Test("the Swift library's publish makes the same bytes as sse.publish (history off)")
    func libraryPublish() async throws {
        let redis = try await RedisServerProcess()
        let tap = try RedisTap(redis: try redis.configuration, channel: "lib")
        defer { tap.stop() }
        try await redis.waitForSubscribers("lib", count: 1)
        let publisher = SSEPublisher(redis: try redis.configuration, history: .disabled)
        defer { publisher.shutdown() }
        let vectors = try FlaskSSEVector.all().filter { $0.publish != nil }
        for vector in vectors {
            let publish = try #require(vector.publish)
            let receivers = try await publisher.publish(
                data: try #require(publish["data"]),
                type: publish["type"],
                id: publish["id"],
                retry: publish["retry"],
                channel: "lib"
            )
            #expect(receivers == PublishReceipt(receivers: 1, id: nil))
        }
        let payloads = try await tap.waitForPayloads(vectors.count)
        #expect(payloads == vectors.map(\.redisPayload))
        #expect(try await publisher.publish(data: "x", channel: "nobody").receivers == 0)
    }

    @Test("bad publish requests get a 400 with a JSON error, and nothing is published", arguments: [
        ("not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        (#"{"type": "t"}"#, "no \\\"data\\\" field"),
        (#"{"data": 1, "channel": "x"}"#, "unknown field"),
        (#"{"data": 1,}"#, "not valid JSON"),
        ("", "not valid JSON"),
    ])
    func badPublish(_ body: String, _ message: String) async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let tap = try RedisTap(redis: try redis.configuration, channel: "sse")
        defer { tap.stop() }
        try await redis.waitForSubscribers("sse", count: 1)
        let response = try await node.request("POST", "/publish", body: Array(body.utf8))
        #expect(response.status == 400)
        #expect(response.header("content-type") == "application/json")
        #expect(response.bodyText.hasPrefix(#"{"error": ""#))
        #expect(response.bodyText.contains(message), "\(response.bodyText)")
        try await Task.sleep(for: .milliseconds(100))
        #expect(tap.payloads.isEmpty)
        await node.shutdown()
    }

    @Test("an HTTP/1.0 client gets a close-delimited stream without chunk framing")
    func http10Stream() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await StreamClient.open(port: node.port, "/stream?channel=old", version: "HTTP/1.0")
        let head = try await client.head()
        #expect(head.statusLine == "HTTP/1.0 200 OK")
        #expect(head.header("transfer-encoding") == nil)
        #expect(head.header("connection") == "close")
        try await redis.waitForSubscribers("old", count: 1)
        _ = try await redis.command("PUBLISH", "old", #"{"data": "a\nb", "type": "t"}"#)
        #expect(try await client.waitForEvents(1) == ["event:t\ndata:a\ndata:b\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("Redis over a unix socket, with a password and a database number")
    func redisURLForms() async throws {
        let redis = try await RedisServerProcess(password: "s3cret")
        let unix = try RedisConfiguration(url: "unix://:s3cret@\(redis.socketPath)?db=2")
        let tcp = try RedisConfiguration(url: redis.url(database: 2))
        let node = try await BrokerNode(redis: unix)
        let client = try await node.stream("private")
        try await redis.waitForSubscribers("private", count: 1)
        let publisher = SSEPublisher(redis: tcp)
        defer { publisher.shutdown() }
        #expect(try await publisher.publish(data: "over tcp", channel: "private").receivers == 1)
        #expect(try await client.waitForEvents(1).first?.hasPrefix("data:over tcp\nid:") == true)
        let wrong = SSEPublisher(redis: try RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(redis.port)/0"))
        defer { wrong.shutdown() }
        await #expect(throws: RedisError.self) { try await wrong.publish(data: "x") }
        await client.close()
        await node.shutdown()
    }
}
