import Foundation
import Logging
import SSERedis
import Testing

/// Redis over TLS with real parts: a TLS-only `redis-server` (plain TCP off), certificates made
/// by `openssl`, the real broker node and `redis-cli --tls`.
@Suite("Redis over TLS (rediss://)", .timeLimit(.minutes(2)))
struct RedisTLSTests {
    static func tlsRedis(password: String? = nil) async throws -> RedisServerProcess {
        try await RedisServerProcess(password: password, tls: try TLSTestCertificates.shared())
    }

    /// The error of a first command through a fresh client, or nil when it was answered.
    static func commandError(_ configuration: RedisConfiguration) async -> RedisError? {
        let client = RedisCommandClient(redis: configuration, logger: Logger(label: "test.tls"))
        defer { client.shutdown() }
        do {
            _ = try await client.send("PING")
            return nil
        } catch {
            return error
        }
    }

    static func commandError(_ url: String) async throws -> RedisError? {
        await commandError(try RedisConfiguration(url: url))
    }

    /// TCP clients the server holds (the test's own helper uses the unix socket).
    static func tcpClients(_ redis: RedisServerProcess) async throws -> Int {
        guard case .bulkString(let bytes) = try await redis.command("CLIENT", "LIST") else {
            throw TestFailure("unexpected CLIENT LIST reply")
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter { $0.contains("laddr=127.0.0.1:") }.count
    }

    static func expectRefused(_ url: String, on redis: RedisServerProcess, saying reason: String) async throws {
        let error = try #require(await commandError(url), "\(url) was accepted")
        #expect(error.message.contains(reason), "\(error)")
        #expect(error.message.contains("TLS"), "\(error)")
        try await eventually("no TCP client left") { try await tcpClients(redis) == 0 }
    }

    @Test("streams and publishes go over TLS: POST /publish (with history) and redis-cli --tls PUBLISH reach the stream")
    func endToEnd() async throws {
        let redis = try await Self.tlsRedis(password: "s3cret")
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        try await withNode(redis: try RedisConfiguration(url: redis.tlsURL())) { node in
            let client = try await node.stream("tls")
            try await redis.waitForSubscribers("tls", count: 1)
            let response = try await node.request("POST", "/publish?channel=tls", body: Array(#"{"data": "over tls"}"#.utf8))
            #expect(response.status == 200, "\(response.bodyText)")
            let cli = try ChildProcess(try Executables.find("redis-cli"), [
                "--tls", "--cacert", certificates.caCertificate, "-h", "127.0.0.1", "-p", String(redis.port),
                "-a", "s3cret", "--no-auth-warning", "PUBLISH", "tls", "from redis-cli",
            ])
            #expect(try await cli.waitForExit() == 0, "\(cli.text)")
            let events = try await client.waitForEvents(2)
            #expect(events[0].contains("data:over tls\n"), "\(events)")
            #expect(events[0].contains("id:"), "history was not written: \(events)")
            #expect(events[1] == "data:from redis-cli\n\n")
            #expect(try await Self.tcpClients(redis) >= 2, "the node's subscriber and command connections")
            await client.close()
        }
    }

    @Test("by host name: SNI and the DNS name are checked (localhost)")
    func byHostName() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        #expect(try await Self.commandError(redis.tlsURL(host: "localhost")) == nil)
    }

    @Test("a server certificate from an unrelated CA is refused, with a clear error and no connection")
    func wrongCA() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        try await Self.expectRefused(
            redis.tlsURL(query: "ssl_ca_certs=\(certificates.otherCACertificate)"), on: redis, saying: "not signed by a trusted CA"
        )
    }

    @Test("an expired server certificate is refused, saying so")
    func expired() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        _ = try await redis.command("CONFIG", "SET", "tls-cert-file", certificates.expiredCertificate, "tls-key-file", certificates.expiredKey)
        try await Self.expectRefused(redis.tlsURL(), on: redis, saying: "expired on 2020-01-02")
    }

    @Test("a certificate for another name is refused; ssl_check_hostname=false accepts it")
    func wrongHostName() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        _ = try await redis.command(
            "CONFIG", "SET", "tls-cert-file", certificates.wrongNameCertificate, "tls-key-file", certificates.wrongNameKey
        )
        try await Self.expectRefused(redis.tlsURL(), on: redis, saying: "does not name 127.0.0.1")
        try await Self.expectRefused(redis.tlsURL(host: "localhost"), on: redis, saying: "does not name localhost")
        let unchecked = redis.tlsURL(query: "ssl_ca_certs=\(certificates.caCertificate)&ssl_check_hostname=false")
        #expect(try await Self.commandError(unchecked) == nil)
        let renamed = redis.tlsURL(query: "ssl_ca_certs=\(certificates.caCertificate)&tls_server_name=other.example")
        #expect(try await Self.commandError(renamed) == nil)
    }

    @Test("mutual TLS: with tls-auth-clients yes, a client certificate is needed and works")
    func mutualTLS() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        _ = try await redis.command("CONFIG", "SET", "tls-auth-clients", "yes")
        let error = try #require(await Self.commandError(redis.tlsURL()), "accepted without a client certificate")
        #expect(error.message.contains("(TLS: the server sent the TLS alert CERTIFICATE_REQUIRED"), "\(error)")
        try await eventually("no TCP client left") { try await Self.tcpClients(redis) == 0 }
        let withCertificate = redis.tlsURL(
            query: "ssl_ca_certs=\(certificates.caCertificate)&ssl_certfile=\(certificates.clientCertificate)&ssl_keyfile=\(certificates.clientKey)"
        )
        #expect(try await Self.commandError(withCertificate) == nil)
    }

    @Test("ssl_cert_reqs=none accepts a certificate nobody trusts; without it, refused")
    func optOut() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        #expect(try await Self.commandError(redis.tlsURL(query: "ssl_cert_reqs=none")) == nil)
        try await Self.expectRefused(redis.tlsURL(query: ""), on: redis, saying: "not signed by a trusted CA")
    }

    @Test("a server that accepts TCP and never answers the handshake is cut off at the connect timeout")
    func handshakeHangs() async throws {
        let silent = try ListeningSocket()
        var configuration = try RedisConfiguration(url: "rediss://127.0.0.1:\(silent.port)/0")
        configuration.connectTimeoutMilliseconds = 300
        let started = ContinuousClock.now
        // Waited for from outside: without the deadline the attempt would never end, and the
        // test must fail then, not hang.
        let outcome = SharedValue<RedisError??>(nil)
        Task { [configuration] in outcome.set(.some(await Self.commandError(configuration))) }
        try await eventually(timeout: .seconds(3), "the connect attempt to end") { outcome.get() != nil }
        let elapsed = started.duration(to: .now)
        let error = try #require(outcome.get() ?? nil, "connected to a silent server")
        #expect(error.message.contains("no TLS handshake within 300 ms"), "\(error)")
        #expect(elapsed < .milliseconds(1300), "took \(elapsed)")
    }

    @Test("the node reconnects over TLS after redis-server restarts, and delivers again")
    func reconnectsAfterRestart() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        try await withNode(redis: try RedisConfiguration(url: redis.tlsURL())) { node in
            let client = try await node.stream("again")
            try await redis.waitForSubscribers("again", count: 1)
            try await redis.restart()
            try await redis.waitForSubscribers("again", count: 1)
            try await eventually("the node's subscription back") { node.server.isSubscriptionConnected }
            try await eventually("a publish over TLS accepted") {
                let response = try await node.request("POST", "/publish?channel=again", body: Array(#"{"data": "back"}"#.utf8))
                return response.status == 200
            }
            let events = try await client.waitForEvents(1)
            #expect(events[0].contains("data:back\n"), "\(events)")
            await client.close()
        }
    }

    @Test("a CA file replaced on disk is read again on the next connect (rotation without a restart)")
    func rotatedFileReloads() async throws {
        let redis = try await Self.tlsRedis()
        defer { redis.stop() }
        let certificates = try TLSTestCertificates.shared()
        let rotated = FileManager.default.temporaryDirectory.appendingPathComponent("sse-tls-rotated-\(UUID().uuidString.prefix(8)).crt")
        defer { try? FileManager.default.removeItem(at: rotated) }
        try Data(contentsOf: URL(fileURLWithPath: certificates.otherCACertificate)).write(to: rotated)
        let url = redis.tlsURL(query: "ssl_ca_certs=\(rotated.path)")
        #expect(try await Self.commandError(url)?.message.contains("not signed by a trusted CA") == true)
        try Data(contentsOf: URL(fileURLWithPath: certificates.caCertificate)).write(to: rotated)
        #expect(try await Self.commandError(url) == nil)
    }

    @Test("a missing or malformed certificate file is an error naming the file, before any connect")
    func badFiles() throws {
        let certificates = try TLSTestCertificates.shared()
        let missing = try RedisConfiguration(url: "rediss://127.0.0.1:1/0?ssl_ca_certs=/nonexistent/ca.pem")
        #expect { try missing.checkTLSFiles() } throws: { "\($0)".contains("/nonexistent/ca.pem") }
        let notPEM = try RedisConfiguration(url: "rediss://127.0.0.1:1/0?ssl_ca_certs=\(certificates.path("ca.cnf"))")
        #expect { try notPEM.checkTLSFiles() } throws: { "\($0)".contains("ca.cnf") }
        let wrongKey = try RedisConfiguration(
            url: "rediss://127.0.0.1:1/0?ssl_certfile=\(certificates.clientCertificate)&ssl_keyfile=\(certificates.serverKey)"
        )
        #expect { try wrongKey.checkTLSFiles() } throws: { "\($0)".contains("key") }
        try RedisConfiguration(url: "rediss://127.0.0.1:1/0?ssl_ca_certs=\(certificates.caCertificate)").checkTLSFiles()
    }
}
