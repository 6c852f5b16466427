import Foundation
import JWTKit
import SSEAuth
import Testing

/// Who may publish (issue 15, items 3, 8 and 10): decided from the head, before any body;
/// open publish only for a loopback peer's own, unproxied, same-host requests.
@Suite("Publish policy", .timeLimit(.minutes(2)))
struct PublishPolicyTests {
    static let body = Array(#"{"data": "hi"}"#.utf8)

    static func keyed(_ redis: RedisServerProcess, demo: Bool = false, maxDemoTasks: Int = 8) async throws -> BrokerNode {
        try await BrokerNode(redis: try redis.configuration) {
            $0.access = AccessConfiguration(publishKey: "publish-key-for-tests")
            $0.demo = demo
            $0.maxDemoTasks = maxDemoTasks
        }
    }

    @Test("a refused publish declaring a 200 KB body it never sends gets its 401 at once, and the connection closes")
    func refusedFromTheHead() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.keyed(redis)
        let started = ContinuousClock.now
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send("POST /publish?channel=x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\n\r\n{\"data\": ")
        // At once: well before --request-timeout (10 s) would end the wait for the body.
        try await connection.waitForClose(timeout: .seconds(6))
        #expect(started.duration(to: .now) < .seconds(5))
        let answer = try #require(try HTTPResponse.parse(connection.received))
        #expect(answer.status == 401)
        #expect(answer.header("connection") == "close")
        #expect(answer.bodyText.contains("publishing needs a bearer token"))
        await node.shutdown()
    }

    @Test("Expect: 100-continue: 100 only once the head is allowed; else the final 401 or 413 at once")
    func expectContinue() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) {
            $0.access = AccessConfiguration(publishKey: "publish-key-for-tests")
            $0.maxPayloadBytes = 1000
        }
        let allowed = try await TestConnection.connect(port: node.port)
        try await allowed.send(
            "POST /publish?channel=x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer publish-key-for-tests\r\n"
                + "Expect: 100-continue\r\nContent-Length: \(Self.body.count)\r\nConnection: close\r\n\r\n"
        )
        try await allowed.waitFor("100 Continue") { String(decoding: $0, as: UTF8.self).hasPrefix("HTTP/1.1 100 Continue\r\n\r\n") }
        try await allowed.send(Self.body)
        try await allowed.waitForClose()
        let text = String(decoding: allowed.received, as: UTF8.self)
        #expect(text.contains("HTTP/1.1 200 OK"))
        #expect(text.contains(#""receivers": 0"#))

        for (headers, status) in [("", 401), ("Authorization: Bearer publish-key-for-tests\r\n", 413)] {
            let refused = try await TestConnection.connect(port: node.port)
            let length = status == 413 ? 5000 : Self.body.count
            try await refused.send("POST /publish HTTP/1.1\r\nHost: localhost\r\n\(headers)Expect: 100-continue\r\nContent-Length: \(length)\r\n\r\n")
            try await refused.waitForClose(timeout: .seconds(3))
            let answer = String(decoding: refused.received, as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 \(status) "), "\(answer)")
            #expect(!answer.contains("100 Continue"))
        }
        await node.shutdown()
    }

    @Test("open publish (no auth): refused for proxy headers, a non-loopback Host and a foreign Origin; allowed for the node's own page")
    func openPublish() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.corsOrigins = ["https://app.example"] }
        func status(_ headers: [String: String]) async throws -> Int {
            try await node.request("POST", "/publish?channel=open", body: Self.body, headers: headers).status
        }
        // BrokerNode.request sends Host: 127.0.0.1.
        #expect(try await status([:]) == 200)
        #expect(try await status(["Origin": "http://127.0.0.1"]) == 200)  // same origin: the node's own page
        #expect(try await status(["Origin": "https://app.example"]) == 200)
        for refused in [
            ["X-Forwarded-For": "203.0.113.9"], ["Forwarded": "for=203.0.113.9"], ["X-Real-IP": "203.0.113.9"],
            ["Origin": "https://evil.example"], ["Origin": "null"],
        ] {
            let response = try await node.request("POST", "/publish?channel=open", body: Self.body, headers: refused)
            #expect(response.status == 403, "\(refused)")
            #expect(response.header("content-type") == "application/json")
        }
        for host in ["localhost", "localhost:5000", "127.0.0.1:8080", "127.1.2.3", "[::1]", "[::1]:5000"] {
            #expect(try await self.raw(node, host: host) == 200, "Host: \(host)")
        }
        for host in ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "10.0.0.1", "[::2]", "127.0.0.256"] {
            #expect(try await self.raw(node, host: host) == 403, "Host: \(host)")
        }
        await node.shutdown()
    }

    /// A publish with exactly this `Host` (DNS rebinding sends the attacker's name).
    func raw(_ node: BrokerNode, host: String) async throws -> Int {
        let connection = try await TestConnection.connect(port: node.port)
        try await connection.send(
            Array("POST /publish?channel=open HTTP/1.1\r\nHost: \(host)\r\nContent-Length: \(Self.body.count)\r\nConnection: close\r\n\r\n".utf8) + Self.body
        )
        try await connection.waitForClose()
        return try #require(try HTTPResponse.parse(connection.received)).status
    }

    @Test("credentials: Authorization always; the cookie only from an allowed Origin; ?token= never")
    func credentialSources() async throws {
        let redis = try await RedisServerProcess()
        let secret = "policy-secret-0123456789-abcdefghijkl"
        let node = try await BrokerNode(redis: try redis.configuration) {
            $0.access = AccessConfiguration(tokenKey: .hmacSecret(secret))
            $0.corsOrigins = ["https://app.example"]
        }
        let token = try await JWTKeyCollection().add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256).sign(
            BrokerTokenClaims(exp: ExpirationClaim(value: Date().addingTimeInterval(60)), sse: ChannelGrants(subscribe: ["news"], publish: ["news"]))
        )
        func status(_ headers: [String: String], target: String = "/publish?channel=news") async throws -> Int {
            try await node.request("POST", target, body: Self.body, headers: headers).status
        }
        #expect(try await status(["Authorization": "Bearer \(token)"]) == 200)
        #expect(try await status(["Cookie": "sse_token=\(token)", "Origin": "https://app.example"]) == 200)
        #expect(try await status(["Cookie": "sse_token=\(token)", "Origin": "http://127.0.0.1"]) == 200)  // same origin
        #expect(try await status(["Cookie": "sse_token=\(token)"]) == 401)  // no Origin: not a page of ours
        #expect(try await status(["Cookie": "sse_token=\(token)", "Origin": "https://evil.example"]) == 401)
        #expect(try await status([:], target: "/publish?channel=news&token=\(token)") == 401)
        // Streams still take ?token= (EventSource cannot set headers).
        let stream = try await StreamClient.open(port: node.port, "/stream?channel=news&token=\(token)")
        #expect(try await stream.head().status == 200)
        await stream.close()
        await node.shutdown()
    }

    @Test("with the demo mounted: GET / serves its page; POST /demo/task needs publish authorization, and at most maxDemoTasks (8 by default) run at once (429 beyond)")
    func demoTask() async throws {
        let redis = try await RedisServerProcess()
        let node = try await Self.keyed(redis, demo: true, maxDemoTasks: 2)
        let page = try await node.request("GET", "/")
        #expect(page.status == 200)
        #expect(page.header("content-type") == "text/html; charset=utf-8")
        #expect(page.bodyText.hasPrefix("<!doctype html>\n<html lang=\"en\">"))
        #expect(page.bodyText.hasSuffix("</body>\n</html>"))
        // Byte for byte the page in the sources (the bundle's copy of it).
        let source = try Data(contentsOf: Executables.packageRoot.appendingPathComponent("Sources/SSEDemo/Resources/demo.html"))
        #expect(page.body == Array(source))
        #expect(try await node.request("POST", "/demo/task").status == 401)
        let key = ["Authorization": "Bearer publish-key-for-tests"]
        #expect(try await node.request("POST", "/demo/task", headers: key).status == 200)
        #expect(try await node.request("POST", "/demo/task", headers: key).status == 200)
        let busy = try await node.request("POST", "/demo/task", headers: key)
        #expect(busy.status == 429)
        #expect(busy.header("retry-after") != nil)
        #expect(busy.bodyText.contains("demo tasks are already running"))
        await node.shutdown()
    }

    @Test("a publish while Redis is down gets 503 with a fixed message, no raw Redis error text")
    func unavailableBody() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        redis.kill()
        let response = try await node.request("POST", "/publish?channel=x", body: Self.body)
        #expect(response.status == 503)
        #expect(response.bodyText == #"{"error": "publish failed: Redis is unavailable; retry shortly"}"#)
        await node.shutdown()
    }
}
