import Foundation
import Testing

/// The `sse-broker` executable as users run it: options, environment, signals.
@Suite("sse-broker executable", .timeLimit(.minutes(2)))
struct BrokerExecutableTests {
    @Test("--help lists every option with its environment variable and default")
    func help() async throws {
        let process = try ChildProcess(try Executables.broker(), ["--help"])
        #expect(try await process.waitForExit() == 0)
        let help = process.text
        for expected in [
            "--host", "HOST", "127.0.0.1", "--port", "PORT", "5000", "--redis-url", "SSE_REDIS_URL", "REDIS_URL",
            "redis://127.0.0.1:6379/0", "--log-level", "LOG_LEVEL", "--heartbeat", "SSE_HEARTBEAT",
            "--retry-ms", "SSE_RETRY_MS", "--client-buffer", "SSE_CLIENT_BUFFER", "--max-payload", "SSE_MAX_PAYLOAD",
            "--max-head-bytes", "SSE_MAX_HEAD_BYTES", "--max-connections", "SSE_MAX_CONNECTIONS",
            "--drain-timeout", "SSE_DRAIN_TIMEOUT", "--history", "SSE_HISTORY", "--history-ttl", "SSE_HISTORY_TTL",
            "--redis-sentinel-password", "SSE_REDIS_SENTINEL_PASSWORD", "redis+sentinel://",
            "--flush-interval-ms", "SSE_FLUSH_INTERVAL_MS",
        ] {
            #expect(help.contains(expected), "--help does not mention \(expected)")
        }
    }

    @Test("configured from the environment, it serves streams and publishes, then exits 0 on SIGTERM ending streams cleanly")
    func environmentAndSignal() async throws {
        let redis = try await RedisServerProcess()
        let port = try FreePort.next()
        let broker = try ChildProcess(
            try Executables.broker(),
            [],
            environment: ["PORT": String(port), "SSE_REDIS_URL": redis.url(), "REDIS_URL": "redis://127.0.0.1:1/0", "LOG_LEVEL": "debug"]
        )
        try await eventually("the broker to listen on \(port)") { try FreePort.isListening(port) }
        let client = try await StreamClient.open(port: port, "/stream?channel=exe")
        try await redis.waitForSubscribers("exe", count: 1)
        let connection = try await TestConnection.connect(port: port)
        let body = #"{"data": "via env"}"#
        try await connection.send("POST /publish?channel=exe HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        try await connection.waitForClose()
        #expect(String(decoding: connection.received, as: UTF8.self).contains(#""receivers": 1}"#))
        #expect(try await client.waitForEvents(1).first?.hasPrefix("data:via env\nid:") == true)
        #expect(try await broker.stop(signal: SIGTERM) == 0, "\(broker.text)")
        try await client.connection.waitForClose()
        #expect(try #require(try HTTPResponse.parse(client.connection.received)).chunkedComplete, "the stream did not end with the terminating chunk")
    }

    @Test("--history 0 publishes exactly as Flask-SSE: no id added")
    func historyOff() async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: [], environment: ["SSE_HISTORY": "0"])
        let connection = try await TestConnection.connect(port: broker.port)
        let body = #"{"data": "plain"}"#
        try await connection.send("POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n\(body)")
        try await connection.waitForClose()
        #expect(try HTTPResponse.parse(connection.received)?.bodyText == #"{"receivers": 0}"#)
        #expect(try await redis.command("EXISTS", "sse:history:seq") == .integer(0))
        #expect(try await broker.stop() == 0)
    }

    @Test("a bad REDIS_URL is refused at start with a clear message")
    func badRedisURL() async throws {
        let broker = try ChildProcess(try Executables.broker(), ["--redis-url", "redis://secure:6380?ssl_cert_reqs=none", "--port", "0"])
        #expect(try await broker.waitForExit() != 0)
        #expect(broker.text.contains("'ssl_cert_reqs' needs a rediss:// URL"), "\(broker.text)")
    }

    @Test("bad Redis TLS flags are refused at start: a missing file named, a certificate without key, a flag on redis://", arguments: [
        (["--redis-url", "rediss://127.0.0.1:1/0", "--redis-tls-ca", "/nonexistent/ca.pem"], "/nonexistent/ca.pem"),
        (["--redis-url", "rediss://127.0.0.1:1/0", "--redis-tls-cert", "/c.pem"], "needs its key"),
        (["--redis-url", "redis://127.0.0.1:1/0", "--redis-tls-insecure"], "need a rediss:// Redis URL"),
    ])
    func badTLSFlags(_ arguments: [String], _ reason: String) async throws {
        let broker = try ChildProcess(try Executables.broker(), arguments + ["--port", "0"])
        #expect(try await broker.waitForExit() != 0)
        #expect(broker.text.contains(reason), "\(broker.text)")
    }

    @Test("--redis-tls-ca and --redis-tls-insecure over a TLS-only Redis: the broker serves, and warns once when insecure")
    func tlsFlags() async throws {
        let certificates = try TLSTestCertificates.shared()
        let redis = try await RedisServerProcess(tls: certificates)
        defer { redis.stop() }
        let trusted = try await BrokerProcess(redisURL: redis.tlsURL(query: ""), arguments: ["--redis-tls-ca", certificates.caCertificate])
        try await eventually("the broker ready") { try await sendRequest(port: trusted.port, "GET", "/readyz").status == 200 }
        #expect(try await trusted.stop() == 0)
        #expect(!trusted.child.text.contains("checks are off"))
        let insecure = try await BrokerProcess(redisURL: redis.tlsURL(query: ""), environment: ["SSE_REDIS_TLS_INSECURE": "1"])
        try await eventually("the insecure broker ready") { try await sendRequest(port: insecure.port, "GET", "/readyz").status == 200 }
        #expect(try await insecure.stop() == 0)
        #expect(insecure.child.text.components(separatedBy: "checks are off").count == 2, "\(insecure.child.text)")
    }
}

/// The delivery probe's options.
@Suite("sse-broker executable: delivery probe options", .timeLimit(.minutes(1)))
struct BrokerProbeOptionTests {
    @Test("--help lists the probe options with their environment variables")
    func help() async throws {
        let process = try ChildProcess(try Executables.broker(), ["--help"])
        #expect(try await process.waitForExit() == 0)
        for expected in ["--redis-probe-interval", "SSE_REDIS_PROBE_INTERVAL", "--redis-probe-timeout", "SSE_REDIS_PROBE_TIMEOUT"] {
            #expect(process.text.contains(expected), "--help does not mention \(expected)")
        }
    }

    @Test("probe settings out of bounds are refused at start, naming the option", arguments: [
        (["--redis-probe-interval", "0.001"], "redis-probe-interval"),
        (["--redis-probe-interval", "-1"], "redis-probe-interval"),
        (["--redis-probe-interval", "nan"], "redis-probe-interval"),
        (["--redis-probe-timeout", "601"], "redis-probe-timeout"),
    ])
    func refused(_ arguments: [String], _ name: String) async throws {
        let broker = try ChildProcess(try Executables.broker(), arguments + ["--port", "0", "--redis-url", "redis://127.0.0.1:1/0"])
        #expect(try await broker.waitForExit() != 0)
        #expect(broker.text.contains(name), "\(broker.text)")
    }
}
