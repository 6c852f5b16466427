import Foundation
import SSERedis
import SeededRandom
import Testing

@Suite("Limits and bad input", .timeLimit(.minutes(3)))
struct LimitsAndBadInputTests {
    @Test("--max-connections: 503 with a JSON body beyond it; room again once a client leaves")
    func maxConnections() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxConnections = 3 }
        var clients: [StreamClient] = []
        for _ in 0..<3 { clients.append(try await node.stream("full")) }
        let refused = try await TestConnection.connect(port: node.port)
        try await refused.waitForClose()
        let answer = try #require(try HTTPResponse.parse(refused.received))
        #expect(answer.status == 503)
        #expect(answer.header("content-type") == "application/json")
        #expect(answer.bodyText.contains("connection limit"))
        await clients.removeFirst().close()
        try await eventually("room for one more") { node.server.connectionCount == 2 }
        let admitted = try await node.stream("full")
        #expect(try await admitted.head().status == 200)
        for client in clients + [admitted] { await client.close() }
        await node.shutdown()
    }

    @Test("a request head over --max-head-bytes gets 431; other connections are unharmed")
    func headTooLarge() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxHeadBytes = 4096 }
        let live = try await node.stream("ok")
        try await redis.waitForSubscribers("ok", count: 1)
        for request in [
            "GET /stream HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 5000))\r\n\r\n",
            "GET /stream HTTP/1.1\r\nHost: x\r\n" + (0..<300).map { "X-\($0): 0123456789\r\n" }.joined() + "\r\n",
            "GET /stream?channel=\(String(repeating: "u", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let connection = try await TestConnection.connect(port: node.port)
            try await connection.send(request)
            try await connection.waitForClose()
            let answer = try #require(try HTTPResponse.parse(connection.received))
            #expect(answer.status == 431)
            #expect(answer.bodyText.contains("request head larger than 4096 bytes"))
        }
        _ = try await redis.command("PUBLISH", "ok", "still here")
        #expect(try await live.waitForEvents(1) == ["data:still here\n\n"])
        await live.close()
        await node.shutdown()
    }

    @Test("a publish body over --max-payload gets 413, declared or streamed")
    func payloadTooLarge() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxPayloadBytes = 1000 }
        let big = Array(#"{"data": "\#(String(repeating: "x", count: 2000))"}"#.utf8)
        let declared = try await node.request("POST", "/publish", body: big)
        #expect(declared.status == 413)
        #expect(declared.bodyText.contains("larger than 1000 bytes"))
        let streamed = try await TestConnection.connect(port: node.port)
        var chunked = "POST /publish HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<5 { chunked += "190\r\n" + String(repeating: "y", count: 400) + "\r\n" }
        try await streamed.send(chunked)
        try await streamed.waitForClose()
        #expect(try HTTPResponse.parse(streamed.received)?.status == 413)
        let fits = try await node.request("POST", "/publish", body: Array(#"{"data": "small"}"#.utf8))
        #expect(fits.status == 200)
        await node.shutdown()
    }

    @Test("a Redis payload over --max-payload is dropped; later events still flow")
    func oversizedRedisPayload() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxPayloadBytes = 100 }
        let client = try await node.stream("big")
        try await redis.waitForSubscribers("big", count: 1)
        _ = try await redis.command("PUBLISH", "big", String(repeating: "z", count: 101))
        _ = try await redis.command("PUBLISH", "big", "fine")
        #expect(try await client.waitForEvents(1) == ["data:fine\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("malformed requests get 400 and close; a live stream on the node is unharmed", arguments: [
        "GARBAGE\r\n\r\n",
        "GET /stream HTTP/9.9\r\n\r\n",
        "GET /stream HTTP/1.1\r\nBad Header\r\n\r\n",
        "GET /stream HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "\u{0}\u{1}\u{2}\r\n\r\n",
        // A loopback Host, so the publish is allowed from its head and the bad chunk is what
        // is answered (without one it is refused 403 from the head, before its body is read).
        "POST /publish HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\n",
    ])
    func malformed(_ request: String) async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("calm")
        try await redis.waitForSubscribers("calm", count: 1)
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send(request)
        try await connection.waitForClose()
        #expect(try HTTPResponse.parse(connection.received)?.status == 400)
        _ = try await redis.command("PUBLISH", "calm", "fine")
        #expect(try await live.waitForEvents(1) == ["data:fine\n\n"])
        await live.close()
        await node.shutdown()
    }

    @Test("pipelined requests are answered in order on one connection")
    func pipelining() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let body = #"{"data": "p"}"#
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send(
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                + "POST /publish?channel=pipe HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                + "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        try await connection.waitForClose()
        let text = String(decoding: connection.received, as: UTF8.self)
        // Bodies have no line break after them, so status lines are found by their text alone.
        let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }
        #expect(statuses == ["200", "200", "404", "200"])
        #expect(text.contains(#""receivers": 0"#))
        await node.shutdown()
    }

    @Test("a request head several times the first read (a browser's, with cookies) streams as usual")
    func headLargerThanFirstRead() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let connection = try await TestConnection.connect(port: node.port)
        let cookies = (0..<40).map { "c\($0)=\(String(repeating: "v", count: 60))" }.joined(separator: "; ")
        let head = "GET /stream?channel=big-head HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCookie: \(cookies)\r\n\r\n"
        #expect(head.utf8.count > 2048)
        try await connection.send(head)
        try await redis.waitForSubscribers("big-head", count: 1)
        _ = try await redis.command("PUBLISH", "big-head", "arrived")
        let text = String(decoding: try await connection.waitFor("the event") { bytes in
            String(decoding: bytes, as: UTF8.self).contains("data:arrived\n\n")
        }, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK"))
        await connection.close()
        await node.shutdown()
    }

    @Test("invalid UTF-8 and injected fields from Redis are delivered safely")
    func hostilePayloads() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("hostile")
        try await redis.waitForSubscribers("hostile", count: 1)
        let publisher = RedisCommandClient(redis: try redis.configuration, logger: .init(label: "test"))
        defer { publisher.shutdown() }
        _ = try await publisher.send([Array("PUBLISH".utf8), Array("hostile".utf8), [0x6F, 0x6B, 0xFF, 0xC0]])
        _ = try await publisher.send("PUBLISH", "hostile", #"{"data": "x", "type": "a\nid: forged", "id": "1\r\nretry: 1"}"#)
        _ = try await publisher.send("PUBLISH", "hostile", #"{"data": "line\r\nevent: forged"}"#)
        #expect(try await client.waitForEvents(3) == ["data:ok\u{FFFD}\u{FFFD}\n\n", "data:x\n\n", "data:line\ndata:event: forged\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("random bytes thrown at the HTTP port: no crash, no hang, the node keeps serving")
    func fuzzHTTP() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let live = try await node.stream("steady")
        try await redis.waitForSubscribers("steady", count: 1)
        var generator = SeededGenerator.forTest()
        let replay = generator.description
        let seeds = [
            "GET /stream?channel=a HTTP/1.1\r\nHost: x\r\n\r\n",
            "POST /publish HTTP/1.1\r\nContent-Length: 12\r\n\r\n{\"data\": 1}",
            "HEAD /readyz HTTP/1.0\r\n\r\n",
        ].map { Array($0.utf8) }
        for round in 0..<300 {
            var bytes: [UInt8]
            if round.isMultiple(of: 2) {
                bytes = (0..<Int.random(in: 1...2048, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...8, using: &generator) {
                    let position = Int.random(in: 0..<bytes.count, using: &generator)
                    bytes[position] = UInt8.random(in: 0...255, using: &generator)
                }
            }
            let connection = try await TestConnection.connect(port: node.port)
            try await connection.send(bytes)
            if round.isMultiple(of: 10) {
                await connection.close()
            } else {
                try? await connection.waitForClose(timeout: .milliseconds(200))
                await connection.close()
            }
        }
        #expect(try await node.request("GET", "/healthz").status == 200, "\(replay)")
        _ = try await redis.command("PUBLISH", "steady", "survived")
        #expect(try await live.waitForEvents(1) == ["data:survived\n\n"], "\(replay)")
        await live.close()
        await node.shutdown()
    }
}
