import Foundation
import NIOHTTP2
import SSERedis
import SSEServer
import Testing

/// HTTP/2 on the node, spoken by a real HTTP/2 client (swift-nio-http2 over swift-nio-ssl, and
/// nghttp from Debian's nghttp2-client), against a real Redis: every feature per stream as on
/// HTTP/1.1, many streams on one connection, a slow stream reset alone, the stream limit, the
/// connection limit, drain with GOAWAY, and cleartext HTTP/2 with prior knowledge.
@Suite("HTTP/2 on the node", .timeLimit(.minutes(3)))
struct HTTP2Tests {
    /// A node serving TLS with the test CA's `localhost` certificate.
    static func tlsNode(_ redis: RedisServerProcess, configure: (inout BrokerConfiguration) -> Void = { _ in }) async throws -> BrokerNode {
        let certificates = try TLSTestCertificates.shared()
        return try await BrokerNode(redis: redis.configuration) { configuration in
            configuration.tls = NodeTLSConfiguration(certificateChainFile: certificates.serverCertificate, privateKeyFile: certificates.serverKey)
            configure(&configuration)
        }
    }

    static func client(_ node: BrokerNode) async throws -> HTTP2TestClient {
        try await HTTP2TestClient(port: node.port, trustedCA: try TLSTestCertificates.shared().caCertificate)
    }

    @Test("over HTTP/2: stream headers at once, Flask-SSE's event bytes, multi-channel, publish (single and batch), resume with Last-Event-ID, CORS preflight, publish key")
    func everyFeaturePerStream() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { configuration in
            configuration.corsOrigins = ["https://app.example"]
            configuration.access.publishKey = "h2-key"
        }
        let client = try await Self.client(node)
        let both = try await client.open("/stream?channel=h2a&channel=h2b")
        #expect(try await both.head() == 200)
        #expect(both.header("content-type") == "text/event-stream; charset=utf-8")
        #expect(both.header("cache-control") == "no-cache")
        #expect(both.header("connection") == nil && both.header("transfer-encoding") == nil)
        let onlyA = try await client.open("/stream?channel=h2a")
        #expect(try await onlyA.head() == 200)
        try await eventually("both streams subscribed") { node.server.clientCount(for: "h2a") == 2 }

        let key = [("authorization", "Bearer h2-key"), ("content-type", "application/json")]
        let refused = try await client.open("/publish?channel=h2a", method: "POST", headers: [("content-type", "application/json")], body: Array(#"{"data": "x"}"#.utf8))
        _ = try await refused.head()
        #expect(refused.status == 401 || refused.status == 403)
        let first = try await client.open("/publish?channel=h2a", method: "POST", headers: key, body: Array(#"{"data": "one", "type": "greeting"}"#.utf8))
        #expect(try await first.head() == 200)
        try await eventually("the publish answer") { first.ended }
        let firstID = try #require(Self.ids(in: first.text).first)
        try await both.waitFor("data:one")
        try await onlyA.waitFor("data:one")
        #expect(both.text.contains("event:greeting\ndata:one\nid:\(firstID)\n\n"))

        let batch = try await client.open("/publish?channel=h2b", method: "POST", headers: key, body: Array(#"[{"data": "two"}, {"data": "three"}]"#.utf8))
        #expect(try await batch.head() == 200)
        try await eventually("the batch answer") { batch.ended }
        #expect(Self.ids(in: batch.text).count == 2)
        try await both.waitFor("data:three")
        #expect(!onlyA.text.contains("data:two"))

        // Resume on a new stream of the same connection: exactly what came after `firstID`.
        let resumed = try await client.open("/stream?channel=h2a&channel=h2b", headers: [("last-event-id", firstID)])
        try await resumed.waitFor("data:three")
        #expect(!resumed.text.contains("data:one"))
        #expect(resumed.text.contains("data:two"))

        let preflight = try await client.open("/stream?channel=h2a", method: "OPTIONS", headers: [("origin", "https://app.example"), ("access-control-request-method", "GET")])
        #expect(try await preflight.head() == 204)
        #expect(preflight.header("access-control-allow-origin") == "https://app.example")
        let health = try await client.open("/healthz")
        #expect(try await health.head() == 200)
        // Metrics tell streams from connections: three streams, one HTTP/2 connection.
        let metrics = try await client.open("/metrics")
        #expect(try await metrics.head() == 200)
        try await eventually("the metrics body") { metrics.ended }
        func value(_ name: String) -> Double? {
            metrics.text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.flatMap { Double($0.dropFirst(name.count + 1)) }
        }
        #expect(value("sse_connected_clients") == 3)
        #expect(value("sse_connections") == 1)
        #expect(value("sse_http2_connections") == 1)
        #expect(client.isActive)
        await client.close()
        await node.shutdown()
    }

    @Test("100 concurrent streams on one HTTP/2 connection (nghttp) all receive every event; a drain ends every stream with END_STREAM and GOAWAY")
    func hundredStreamsThenDrain() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { $0.drainTimeoutSeconds = 20 }
        let nghttp = try Executables.find("nghttp")
        let url = "https://localhost:\(node.port)/stream?channel=many"
        let child = try ChildProcess(nghttp, ["-v", "-m", "100", url])
        try await eventually(timeout: .seconds(20), "100 HTTP/2 streams open (have \(node.server.clientCount(for: "many")))") {
            node.server.clientCount(for: "many") == 100
        }
        #expect(node.server.connectionCount == 1)
        let events = 5
        for index in 0..<events {
            _ = try await redis.command("PUBLISH", "many", #"{"data": "ev-\#(index)"}"#)
        }
        try await eventually(timeout: .seconds(20), "every stream to get every event") {
            child.text.components(separatedBy: "data:ev-\(events - 1)").count - 1 == 100
        }
        let started = ContinuousClock.now
        await node.shutdown()
        #expect(started.duration(to: .now) < .seconds(15))
        let status = try await child.waitForExit(timeout: .seconds(20))
        let output = child.text
        #expect(status == 0, "nghttp: \(output.suffix(2000))")
        for index in 0..<events {
            #expect(output.components(separatedBy: "data:ev-\(index)\n").count - 1 == 100)
        }
        #expect(!output.contains("recv RST_STREAM"))
    }

    @Test("heartbeats reach every HTTP/2 stream; a drain sends GOAWAY on every HTTP/2 connection and ends each of its streams with END_STREAM (not a reset), within --drain-timeout")
    func drainGoAway() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { configuration in
            configuration.drainTimeoutSeconds = 20
            configuration.heartbeatSeconds = 0.2
        }
        let client = try await Self.client(node)
        var streams: [HTTP2TestStream] = []
        for index in 0..<3 { streams.append(try await client.open("/stream?channel=drain\(index)")) }
        try await eventually("three streams") { (0..<3).allSatisfy { node.server.clientCount(for: "drain\($0)") == 1 } }
        // Heartbeat comments reach every stream, as over HTTP/1.1.
        for stream in streams { try await stream.waitFor(":\n\n", count: 3) }
        let started = ContinuousClock.now
        await node.shutdown()
        #expect(started.duration(to: .now) < .seconds(15))
        #expect(client.goAways >= 1)
        for stream in streams {
            #expect(stream.ended)
            #expect(stream.resetCode == nil)
        }
        try await client.waitForClose()
        await client.close()
    }

    @Test("a stream that stops reading is reset alone: its sibling on the same connection gets every event, and the connection stays usable")
    func slowStreamResetAlone() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { $0.clientBufferBytes = 256 * 1024 }
        let client = try await Self.client(node)
        _ = try await client.open("/stream?channel=slow", reading: false)
        let reader = try await client.open("/stream?channel=slow")
        try await eventually("two streams") { node.server.clientCount(for: "slow") == 2 }
        // Past the stalled stream's window (the client's 1 MiB) and its 256 KiB buffer.
        let padding = String(repeating: "x", count: 16 * 1024)
        let total = (HTTP2TestClient.streamWindow + 256 * 1024) / (16 * 1024) + 16
        // Paced as a live feed, not one burst past a window: the backlog over HTTP/2 includes
        // what the client's flow-control window has not let out yet.
        for index in 0..<total {
            _ = try await redis.command("PUBLISH", "slow", #"{"data": "\#(index) \#(padding)"}"#)
            if index % 2 == 1 { try await Task.sleep(for: .milliseconds(10)) }
        }
        try await reader.waitFor("\n\n", count: total, timeout: .seconds(30))
        try await eventually(timeout: .seconds(20), "the stalled stream to be cut off") { node.server.clientCount(for: "slow") == 1 }
        for index in 0..<total { #expect(reader.text.contains("data:\(index) x")) }
        #expect(!reader.ended && reader.resetCode == nil)
        #expect(client.isActive)
        let after = try await client.open("/healthz")
        #expect(try await after.head() == 200)
        await client.close()
        await node.shutdown()
    }

    @Test("--h2-max-streams bounds the streams open at once on one connection; --max-connections counts connections, not streams")
    func streamAndConnectionLimits() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { configuration in
            configuration.http2.maxConcurrentStreams = 3
            configuration.maxConnections = 1
        }
        // A client that opens streams before it has the node's SETTINGS is held to twice the limit.
        let eager = try await Self.client(node)
        for _ in 0..<12 { _ = try await eager.open("/stream?channel=eager") }
        try await Task.sleep(for: .milliseconds(500))
        #expect(node.server.clientCount(for: "eager") <= 6)
        await eager.close()
        try await eventually("the eager connection's streams gone") { node.server.clientCount(for: "eager") == 0 && node.server.connectionCount == 0 }

        let client = try await Self.client(node)
        // Once it has the SETTINGS (the first answer), the client keeps to the limit.
        var streams = [try await client.open("/stream?channel=limited")]
        #expect(try await streams[0].head() == 200)
        for _ in 0..<3 { streams.append(try await client.open("/stream?channel=limited")) }
        try await eventually("three streams open (\(node.server.clientCount(for: "limited")))") { node.server.clientCount(for: "limited") == 3 }
        try await Task.sleep(for: .milliseconds(300))
        #expect(node.server.clientCount(for: "limited") == 3)
        #expect(streams[3].status == nil)
        // One ends: the waiting stream takes its place.
        streams[0].cancel()
        #expect(try await streams[3].head() == 200)
        try await eventually("three streams again") { node.server.clientCount(for: "limited") == 3 }
        #expect(node.server.connectionCount == 1)

        // A second connection is beyond --max-connections 1, whatever the first one carries:
        // over TLS it is closed at once (a cleartext 503 would be noise to a TLS client).
        let second = try await TestConnection.connect(port: node.port)
        try await second.waitForClose()
        #expect(second.received.isEmpty)
        await second.close()
        #expect(client.isActive)
        await client.close()
        await node.shutdown()
    }

    @Test("publishes in flight are bounded per HTTP/2 connection, across its streams, as per HTTP/1 connection: the 17th is answered 429 at once")
    func publishBudgetPerConnection() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.tlsNode(redis) { $0.access.publishKey = "h2-key" }
        let client = try await Self.client(node)
        let headers = [("authorization", "Bearer h2-key"), ("content-type", "application/json")]
        // Warm the publisher's connection, then hold every publish in Redis.
        let first = try await client.open("/publish?channel=budget", method: "POST", headers: headers, body: Array(#"{"data": "warm"}"#.utf8))
        #expect(try await first.head() == 200)
        _ = try await redis.command("CLIENT", "PAUSE", "3000", "WRITE")
        var held: [HTTP2TestStream] = []
        for index in 0..<16 {  // the per-connection limit (HTTP2PublishBudget.defaultLimit)
            held.append(try await client.open("/publish?channel=budget", method: "POST", headers: headers, body: Array(#"{"data": "\#(index)"}"#.utf8)))
        }
        try await Task.sleep(for: .milliseconds(300))
        let over = try await client.open("/publish?channel=budget", method: "POST", headers: headers, body: Array(#"{"data": "over"}"#.utf8))
        #expect(try await over.head(timeout: .seconds(2)) == 429)
        #expect(held.allSatisfy { $0.status == nil })
        _ = try await redis.command("CLIENT", "UNPAUSE")
        for stream in held { #expect(try await stream.head() == 200) }
        // Answered: the slots are free again.
        let after = try await client.open("/publish?channel=budget", method: "POST", headers: headers, body: Array(#"{"data": "after"}"#.utf8))
        #expect(try await after.head() == 200)
        await client.close()
        await node.shutdown()
    }

    @Test("--h2c: HTTP/2 with prior knowledge and HTTP/1.1 on one cleartext port; without it, an HTTP/2 preface is refused as bad HTTP/1")
    func cleartextPriorKnowledge() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: redis.configuration) { $0.http2.acceptsCleartext = true }
        let client = try await HTTP2TestClient(port: node.port, trustedCA: nil)
        let h2 = try await client.open("/stream?channel=clear")
        #expect(try await h2.head() == 200)
        let h1 = try await node.stream("clear")
        try await eventually("two streams") { node.server.clientCount(for: "clear") == 2 }
        _ = try await redis.command("PUBLISH", "clear", #"{"data": "both"}"#)
        try await h2.waitFor("data:both")
        let events = try await h1.waitForEvents(1)
        #expect(events == ["data:both\n\n"])
        await client.close()
        await h1.close()
        await node.shutdown()

        let plain = try await BrokerNode(redis: redis.configuration)
        let connection = try await TestConnection.connect(port: plain.port)
        try await connection.send(String(decoding: HTTP2PrefaceBytes.preface, as: UTF8.self))
        try await connection.waitForClose()
        #expect(String(decoding: connection.received, as: UTF8.self).hasPrefix("HTTP/1.1 400"))
        await connection.close()
        await plain.shutdown()
    }

    @Test("an HTTP/2 connection that opens no stream is closed after --idle-timeout, one that breaks the protocol after its GOAWAY, and an answer held by a window never opened is reset")
    func idleAndBrokenConnectionsClose() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: redis.configuration) { configuration in
            configuration.http2.acceptsCleartext = true
            configuration.idleTimeoutSeconds = 0.5
        }
        let emptySettings: [UInt8] = [0, 0, 0, 4, 0, 0, 0, 0, 0]
        let idle = try await TestConnection.connect(port: node.port)
        try await idle.send(HTTP2PrefaceBytes.preface + emptySettings)
        try await idle.waitForClose(timeout: .seconds(5))
        await idle.close()

        // A PING on stream 1 is a connection error (RFC 9113, section 6.7).
        let pingOnStream: [UInt8] = [0, 0, 8, 6, 0, 0, 0, 0, 1] + Array("12345678".utf8)
        let broken = try await TestConnection.connect(port: node.port)
        try await broken.send(HTTP2PrefaceBytes.preface + emptySettings + pingOnStream)
        try await broken.waitForClose(timeout: .seconds(2))
        // The GOAWAY (frame type 7) came before the close, with PROTOCOL_ERROR (1).
        let received = broken.received
        #expect(received.count >= 17)
        #expect(Self.frames(in: received).contains { $0.type == 7 && $0.payload.count >= 8 && $0.payload[7] == 1 })
        await broken.close()

        // A client that never opens its flow-control window: the answer's HEADERS leave, its
        // DATA cannot; the stream is reset after --idle-timeout, then the idle connection closes.
        let zeroWindow: [UInt8] = [0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0]
        let block: [UInt8] = [0x82, 0x86, 0x44, 8] + Array("/healthz".utf8) + [0x41, 9] + Array("localhost".utf8)
        let headers: [UInt8] = [0, 0, UInt8(block.count), 1, 0x5, 0, 0, 0, 1] + block
        let stuck = try await TestConnection.connect(port: node.port)
        try await stuck.send(HTTP2PrefaceBytes.preface + zeroWindow + headers)
        try await stuck.waitForClose(timeout: .seconds(6))
        let frames = Self.frames(in: stuck.received)
        #expect(frames.contains { $0.type == 1 })
        #expect(frames.contains { $0.type == 3 })
        await stuck.close()
        try await eventually("no connection left") { node.server.connectionCount == 0 }
        await node.shutdown()
    }

    /// The frames in `bytes` (server to client: no preface), as type and payload.
    static func frames(in bytes: [UInt8]) -> [(type: UInt8, payload: [UInt8])] {
        var frames: [(type: UInt8, payload: [UInt8])] = []
        var index = 0
        while index + 9 <= bytes.count {
            let length = Int(bytes[index]) << 16 | Int(bytes[index + 1]) << 8 | Int(bytes[index + 2])
            guard index + 9 + length <= bytes.count else { break }
            frames.append((bytes[index + 3], Array(bytes[(index + 9)..<(index + 9 + length)])))
            index += 9 + length
        }
        return frames
    }

    /// The `"id"`s of a publish answer, in order.
    static func ids(in answer: String) -> [String] {
        answer.components(separatedBy: "\"id\": \"").dropFirst().compactMap { $0.split(separator: "\"").first.map(String.init) }
    }
}

/// HTTP/2's connection preface, as a client with prior knowledge sends it first.
enum HTTP2PrefaceBytes {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
}
