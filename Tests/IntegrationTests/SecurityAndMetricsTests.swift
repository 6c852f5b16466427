import Foundation
import JWTKit
import SSEAuth
import SSEWire
import Testing

/// Auth, CORS and metrics over real HTTP, against a real Redis.
@Suite("Auth, CORS and metrics over HTTP", .timeLimit(.minutes(2)))
struct SecurityAndMetricsTests {
    static let secret = "integration-secret-0123456789-abcdefgh"

    static func token(subscribe: [String] = [], publish: [String] = [], expiresIn: TimeInterval = 60) async throws -> String {
        try await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256).sign(
            BrokerTokenClaims(exp: ExpirationClaim(value: Date().addingTimeInterval(expiresIn)), sse: ChannelGrants(subscribe: subscribe, publish: publish))
        )
    }

    static func securedNode(_ redis: RedisServerProcess) async throws -> BrokerNode {
        try await BrokerNode(redis: try redis.configuration) {
            $0.access = AccessConfiguration(tokenKey: .hmacSecret(secret), publishKey: "static-key-for-tests")
            $0.corsOrigins = ["https://app.example"]
        }
    }

    @Test("streams with a token from the header, the cookie or the query; 401 and 403 with JSON bodies that say which")
    func streamAuth() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.securedNode(redis)
        let token = try await Self.token(subscribe: ["news", "user.7.*"])
        for (target, headers) in [
            ("/stream?channel=news", ["Authorization": "Bearer \(token)"]),
            ("/stream?channel=user.7.inbox", ["Cookie": "sse_token=\(token)"]),
            ("/stream?channel=news&token=\(token)", [:]),
        ] {
            let client = try await StreamClient.open(port: node.port, target, headers: headers)
            #expect(try await client.head().status == 200, "\(target)")
            await client.close()
        }
        let missing = try await node.request("GET", "/stream?channel=news")
        #expect(missing.status == 401)
        #expect(missing.header("www-authenticate") == #"Bearer realm="sse""#)
        #expect(missing.bodyText.contains("a token is required"))
        let expired = try await node.request("GET", "/stream?channel=news&token=\(try await Self.token(subscribe: ["news"], expiresIn: -5))")
        #expect(expired.status == 401)
        #expect(expired.bodyText == #"{"error": "token expired"}"#)
        let forbidden = try await node.request("GET", "/stream?channel=news&channel=secret&token=\(token)")
        #expect(forbidden.status == 403)
        #expect(forbidden.bodyText == #"{"error": "token does not grant subscribe on: secret"}"#)
        await node.shutdown()
    }

    @Test("a stream ends when its token expires")
    func streamEndsAtExpiry() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.securedNode(redis)
        let client = try await StreamClient.open(port: node.port, "/stream?channel=news&token=\(try await Self.token(subscribe: ["news"], expiresIn: 1.5))")
        #expect(try await client.head().status == 200)
        try await client.connection.waitForClose(timeout: .seconds(10))
        #expect(try #require(try HTTPResponse.parse(client.connection.received)).chunkedComplete)
        await node.shutdown()
    }

    @Test("a token that expires in thousands of years (an issuer's 'never') streams as usual")
    func farFutureExpiry() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.securedNode(redis)
        let token = try await Self.token(subscribe: ["far"], expiresIn: 8_000 * 365 * 86_400)
        let client = try await StreamClient.open(port: node.port, "/stream?channel=far&token=\(token)")
        #expect(try await client.head().status == 200)
        try await redis.waitForSubscribers("far", count: 1)
        _ = try await redis.command("PUBLISH", "far", "still streaming")
        #expect(try await client.waitForEvents(1) == ["data:still streaming\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("requests pipelined behind a stream waiting for its token check are never answered; the stream's head goes first")
    func pipelinedBehindCheckedStream() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.securedNode(redis)
        let token = try await Self.token(subscribe: ["piped"])
        let body = #"{"data": "piped"}"#
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send(
            "GET /stream?channel=piped&token=\(token) HTTP/1.1\r\nHost: x\r\n\r\n"
                + "POST /publish?channel=piped HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer static-key-for-tests\r\n"
                + "Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
                + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        try await redis.waitForSubscribers("piped", count: 1)
        _ = try await redis.command("PUBLISH", "piped", "live")
        let text = String(decoding: try await connection.waitFor("the live event") { bytes in
            String(decoding: bytes, as: UTF8.self).contains("data:live\n\n")
        }, as: UTF8.self)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"), "\(text.debugDescription)")
        #expect(text.components(separatedBy: "HTTP/1.1 ").count == 2, "more than one response: \(text.debugDescription)")
        #expect(!text.contains("\"status\""), "the pipelined health check was answered")
        #expect(!text.contains("receivers"), "the pipelined publish was answered")
        await connection.close()
        await node.shutdown()
    }

    @Test("publishing needs sse.publish for the channel or the publish key")
    func publishAuth() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.securedNode(redis)
        let body = Array(#"{"data": "x"}"#.utf8)
        #expect(try await node.request("POST", "/publish?channel=news", body: body).status == 401)
        let reader = try await Self.token(subscribe: ["news"])
        let denied = try await node.request("POST", "/publish?channel=news", body: body, headers: ["Authorization": "Bearer \(reader)"])
        #expect(denied.status == 403)
        #expect(denied.bodyText.contains("does not grant publish"))
        let writer = try await Self.token(publish: ["news"])
        #expect(try await node.request("POST", "/publish?channel=news", body: body, headers: ["Authorization": "Bearer \(writer)"]).status == 200)
        #expect(try await node.request("POST", "/publish?channel=other", body: body, headers: ["Authorization": "Bearer \(writer)"]).status == 403)
        #expect(try await node.request("POST", "/publish?channel=other", body: body, headers: ["Authorization": "Bearer static-key-for-tests"]).status == 200)
        #expect(try await node.request("POST", "/publish?channel=other", body: body, headers: ["Authorization": "Bearer wrong-key"]).status == 401)
        await node.shutdown()
    }

    @Test("CORS: preflight for /publish, headers on streams and publishes, credentials only for explicit origins")
    func cors() async throws {
        let redis = try await RedisServerProcess()
        let explicit = try await Self.securedNode(redis)
        let preflight = try await explicit.request("OPTIONS", "/publish", headers: ["Origin": "https://app.example", "Access-Control-Request-Method": "POST"])
        #expect(preflight.status == 204)
        #expect(preflight.header("access-control-allow-origin") == "https://app.example")
        #expect(preflight.header("access-control-allow-credentials") == "true")
        #expect(preflight.header("access-control-allow-methods") == "POST, OPTIONS")
        #expect(preflight.header("access-control-allow-headers")?.contains("Authorization") == true)
        let stranger = try await explicit.request("OPTIONS", "/publish", headers: ["Origin": "https://evil.example"])
        #expect(stranger.header("access-control-allow-origin") == nil)
        let token = try await Self.token(subscribe: ["news"])
        let stream = try await StreamClient.open(port: explicit.port, "/stream?channel=news", headers: ["Origin": "https://app.example", "Cookie": "sse_token=\(token)"])
        let head = try await stream.head()
        #expect(head.header("access-control-allow-origin") == "https://app.example")
        #expect(head.header("access-control-allow-credentials") == "true")
        await stream.close()
        let published = try await explicit.request(
            "POST", "/publish", body: Array(#"{"data": 1}"#.utf8),
            headers: ["Origin": "https://app.example", "Authorization": "Bearer static-key-for-tests"]
        )
        #expect(published.header("access-control-allow-origin") == "https://app.example")

        let open = try await BrokerNode(redis: try redis.configuration) { $0.corsOrigins = ["*"] }
        let anyOrigin = try await StreamClient.open(port: open.port, "/stream?channel=news", headers: ["Origin": "https://anyone.example"])
        let anyHead = try await anyOrigin.head()
        #expect(anyHead.header("access-control-allow-origin") == "*")
        #expect(anyHead.header("access-control-allow-credentials") == nil)
        await anyOrigin.close()
        let none = try await BrokerNode(redis: try redis.configuration)
        #expect(try await none.request("GET", "/healthz", headers: ["Origin": "https://x.example"]).header("access-control-allow-origin") == nil)
        for node in [explicit, open, none] { await node.shutdown() }
    }

    @Test("metrics move when events flow")
    func metrics() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        func scrape() async throws -> [String: Double] {
            let response = try await node.request("GET", "/metrics")
            #expect(response.status == 200)
            #expect(response.header("content-type")?.hasPrefix("text/plain") == true)
            var values: [String: Double] = [:]
            for line in response.bodyText.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 2, let value = Double(parts[1]) { values[String(parts[0])] = value }
            }
            return values
        }
        let before = try await scrape()
        let clients = [try await node.stream("m"), try await node.stream("m")]
        try await redis.waitForSubscribers("m", count: 1)
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        for index in 0..<5 {
            let response = try await node.request("POST", "/publish?channel=m", body: Array(#"{"data": {"n": \#(index), "publishedAt": \#(stamp)}}"#.utf8))
            #expect(response.status == 200)
        }
        for client in clients { try await client.waitForEvents(5) }
        let during = try await scrape()
        #expect(during["sse_connected_clients"] == 2)
        #expect(during["sse_channels_subscribed"] == 1)
        #expect((during["sse_events_received_total"] ?? 0) - (before["sse_events_received_total"] ?? 0) == 5)
        #expect(during["sse_events_delivered_total"] == 10)
        #expect((during["sse_bytes_delivered_total"] ?? 0) > 0)
        #expect(during["sse_publishes_total"] == 5)
        // One observation per event per event loop that wrote it: the two clients share a loop or not.
        #expect([5, 10].contains(during["sse_publish_to_write_seconds_count"] ?? 0))
        for client in clients { await client.close() }
        try await eventually("clients gone from the gauge") { try await scrape()["sse_connected_clients"] == 0 }
        await node.shutdown()
    }
}
