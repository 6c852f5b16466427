import Foundation
import Testing

/// Limits on what one request may ask for, and flags that must refuse nonsense (issue 15,
/// items 1, 6 and the rest of the HTTP path).
@Suite("Request limits and flag validation", .timeLimit(.minutes(2)))
struct RequestLimitsTests {
    @Test("--max-channels: a stream naming more distinct channels gets 400 with a JSON body; repeats count once")
    func maxChannels() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxChannelsPerStream = 4 }
        let tooMany = try await node.request("GET", "/stream?" + (0..<5).map { "channel=c\($0)" }.joined(separator: "&"))
        #expect(tooMany.status == 400)
        #expect(tooMany.header("content-type") == "application/json")
        #expect(tooMany.bodyText == #"{"error": "a stream may name at most 4 channels"}"#)
        // Four distinct names, each repeated: admitted, one subscription each, every event once.
        let client = try await StreamClient.open(port: node.port, "/stream?" + (0..<8).map { "channel=c\($0 % 4)" }.joined(separator: "&"))
        #expect(try await client.head().status == 200)
        try await redis.waitForSubscribers("c3", count: 1)
        _ = try await redis.command("PUBLISH", "c3", "once")
        _ = try await redis.command("PUBLISH", "c0", "again once")
        #expect(try await client.waitForEvents(2) == ["data:once\n\n", "data:again once\n\n"])
        await client.close()
        await node.shutdown()
    }

    @Test("a default node refuses 65 channels and takes 64")
    func defaultMaxChannels() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        #expect(try await node.request("GET", "/stream?" + (0..<65).map { "channel=d\($0)" }.joined(separator: "&")).status == 400)
        let client = try await StreamClient.open(port: node.port, "/stream?" + (0..<64).map { "channel=d\($0)" }.joined(separator: "&"))
        #expect(try await client.head().status == 200)
        await client.close()
        await node.shutdown()
    }

    @Test("a body on GET is ignored up to --max-payload, then 413 and close; the node keeps serving")
    func bodyOnGet() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxPayloadBytes = 1000 }
        let small = try await node.request("GET", "/healthz", body: Array(repeating: UInt8(ascii: "a"), count: 500))
        #expect(small.status == 200)
        let connection = try await TestConnection.connect(port: node.port)
        var chunked = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
        for _ in 0..<5 { chunked += "190\r\n" + String(repeating: "y", count: 400) + "\r\n" }
        try await connection.send(chunked)
        try await connection.waitForClose()
        #expect(try HTTPResponse.parse(connection.received)?.status == 413)
        #expect(try await node.request("GET", "/healthz").status == 200)
        await node.shutdown()
    }

    /// Every numeric option, with values it must refuse: each exits with a usage error and a
    /// message naming the option, never a trap. The same through its environment variable.
    static let badValues: [(flag: String, env: String, values: [String])] = [
        ("--heartbeat", "SSE_HEARTBEAT", ["inf", "nan", "-1", "1e300"]),
        ("--drain-timeout", "SSE_DRAIN_TIMEOUT", ["inf", "nan", "-1", "1e300"]),
        ("--request-timeout", "SSE_REQUEST_TIMEOUT", ["inf", "nan", "0", "-1", "1e300"]),
        ("--idle-timeout", "SSE_IDLE_TIMEOUT", ["inf", "nan", "0", "1e300"]),
        ("--port", "PORT", ["-1", "65536", "99999999999999999999"]),
        ("--threads", "SSE_THREADS", ["0", "100000"]),
        ("--retry-ms", "SSE_RETRY_MS", ["-1", "9223372036854775807"]),
        ("--client-buffer", "SSE_CLIENT_BUFFER", ["0", "9223372036854775807"]),
        ("--max-payload", "SSE_MAX_PAYLOAD", ["0", "9223372036854775807"]),
        ("--max-head-bytes", "SSE_MAX_HEAD_BYTES", ["0", "9223372036854775807"]),
        ("--max-connections", "SSE_MAX_CONNECTIONS", ["0", "9223372036854775807"]),
        ("--max-channels", "SSE_MAX_CHANNELS", ["0", "9223372036854775807"]),
        ("--history", "SSE_HISTORY", ["-1", "9223372036854775807"]),
        ("--history-ttl", "SSE_HISTORY_TTL", ["0", "9223372036854775807"]),
        ("--flush-interval-ms", "SSE_FLUSH_INTERVAL_MS", ["inf", "nan", "-1", "1001"]),
    ]

    @Test("nonsense numeric flags and environment values exit with a message (usage error 64), never a trap")
    func numericFlags() async throws {
        // Redis is never reached: validation comes first. A trapping value would die by a signal.
        var cases: [(what: String, arguments: [String], environment: [String: String], names: [String])] = []
        for option in Self.badValues {
            let names = [String(option.flag.dropFirst(2)), option.env]
            for value in option.values {
                cases.append(("\(option.flag) \(value)", ["--redis-url", "redis://127.0.0.1:1/0", option.flag, value], [:], names))
            }
            let port = option.env == "PORT" ? [] : ["--port", "0"]
            cases.append(("\(option.env)=\(option.values[0])", ["--redis-url", "redis://127.0.0.1:1/0"] + port, [option.env: option.values[0]], names))
        }
        // A few at a time: each is a short-lived process.
        for batch in stride(from: 0, to: cases.count, by: 4).map({ Array(cases[$0..<min(cases.count, $0 + 4)]) }) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for item in batch {
                    group.addTask { try await Self.expectRefused(item.what, item.arguments, item.environment, names: item.names) }
                }
                try await group.waitForAll()
            }
        }
    }

    static func expectRefused(_ what: String, _ arguments: [String], _ environment: [String: String], names: [String]) async throws {
        let child = try ChildProcess(try Executables.broker(), arguments, environment: environment)
        let status = try await child.waitForExit(timeout: .seconds(10))
        #expect(child.process.terminationReason == .exit, "\(what) killed the broker: \(child.text)")
        #expect(status == 64, "\(what): exit \(status): \(child.text)")
        // The pipe's reader may still be collecting what the process wrote.
        let told = (try? await eventually(timeout: .seconds(3), "the message") {
            names.contains { child.text.contains($0) }
        }) != nil
        #expect(told, "\(what): \(child.text)")
    }
}
