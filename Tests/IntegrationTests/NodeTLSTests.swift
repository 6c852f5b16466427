import Foundation
import NIOSSL
import SSERedis
import SSEServer
import Testing

/// TLS on the node (`--tls-cert`, `--tls-key`), against real clients: certificates a client
/// does not accept fail that client alone, bad files fail the start with a reason, handshakes
/// that do not finish time out, and a rotated certificate reaches new connections (on file
/// change, and on SIGHUP to the real executable) while open streams keep going.
@Suite("TLS on the node", .timeLimit(.minutes(3)))
struct NodeTLSTests {
    static func node(_ redis: RedisServerProcess, certificate: String, key: String, configure: (inout NodeTLSConfiguration) -> Void = { _ in }) async throws -> BrokerNode {
        try await BrokerNode(redis: redis.configuration) { configuration in
            var tls = NodeTLSConfiguration(certificateChainFile: certificate, privateKeyFile: key)
            configure(&tls)
            configuration.tls = tls
        }
    }

    @Test("a client that does not trust the node's certificate, gets an expired one, or offers only TLS 1.1 fails its handshake cleanly; the node goes on serving the others")
    func untrustedAndExpiredCertificates() async throws {
        let certificates = try TLSTestCertificates.shared()
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, certificate: certificates.serverCertificate, key: certificates.serverKey)
        await #expect(throws: (any Error).self) {
            let client = try await HTTP2TestClient(port: node.port, trustedCA: certificates.otherCACertificate)
            await client.close()
        }
        // TLS 1.2 is the oldest the node speaks.
        await #expect(throws: (any Error).self) {
            let client = try await HTTP2TestClient(port: node.port, trustedCA: certificates.caCertificate, maximumVersion: .tlsv11)
            await client.close()
        }
        let trusted = try await HTTP2TestClient(port: node.port, trustedCA: certificates.caCertificate)
        let health = try await trusted.open("/healthz")
        #expect(try await health.head() == 200)
        await trusted.close()
        try await eventually("the failed connections to close") { node.server.connectionCount == 0 }
        await node.shutdown()

        let expired = try await Self.node(redis, certificate: certificates.expiredCertificate, key: certificates.expiredKey)
        await #expect(throws: (any Error).self) {
            let client = try await HTTP2TestClient(port: expired.port, trustedCA: certificates.caCertificate)
            await client.close()
        }
        try await eventually("the failed connection to close") { expired.server.connectionCount == 0 }
        await expired.shutdown()
    }

    @Test("a key that does not fit the certificate, or a missing file, fails the start with a reason naming the file")
    func badFilesFailTheStart() async throws {
        let certificates = try TLSTestCertificates.shared()
        let redis = try await RedisServerProcess()
        do {
            _ = try await Self.node(redis, certificate: certificates.serverCertificate, key: certificates.wrongNameKey)
            Issue.record("a node started with a key of another certificate")
        } catch let error as BrokerServerError {
            #expect(error.description.contains("does not fit"), "\(error)")
        }
        let missing = certificates.path("no-such.crt")
        do {
            _ = try await Self.node(redis, certificate: missing, key: certificates.serverKey)
            Issue.record("a node started without its certificate file")
        } catch let error as BrokerServerError {
            #expect(error.description.contains(missing), "\(error)")
        }
    }

    @Test("a connection that does not finish its TLS handshake in time is closed, and so is a cleartext request on the TLS port")
    func handshakeDeadline() async throws {
        let certificates = try TLSTestCertificates.shared()
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, certificate: certificates.serverCertificate, key: certificates.serverKey) {
            $0.handshakeTimeoutSeconds = 1.5
        }
        let started = ContinuousClock.now
        let silent = try await TestConnection.connect(port: node.port)
        try await silent.waitForClose(timeout: .seconds(8))
        // Closed by the deadline, not at once (the clock started before the connect, and half the
        // deadline leaves room for a loaded machine's scheduling).
        #expect(started.duration(to: .now) >= .milliseconds(750))
        await silent.close()
        let cleartext = try await TestConnection.connect(port: node.port)
        // (On a loaded machine the handshake deadline may close it before the request is sent.)
        try? await cleartext.send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        try await cleartext.waitForClose(timeout: .seconds(5))
        #expect(!String(decoding: cleartext.received, as: UTF8.self).contains("200 OK"))
        await cleartext.close()
        try await eventually("no connection left") { node.server.connectionCount == 0 }
        let client = try await HTTP2TestClient(port: node.port, trustedCA: certificates.caCertificate)
        #expect(try await client.open("/healthz").head() == 200)
        await client.close()
        await node.shutdown()
    }

    /// Copies `certificate` and `key` over the files at `paths`, each written beside its target
    /// and renamed into place (as a rotation does).
    static func install(certificate: String, key: String, at paths: (certificate: String, key: String)) throws {
        for (source, target) in [(certificate, paths.certificate), (key, paths.key)] {
            let staged = target + ".new"
            try? FileManager.default.removeItem(atPath: staged)
            try FileManager.default.copyItem(atPath: source, toPath: staged)
            _ = rename(staged, target)
        }
    }

    static func rotationFiles() throws -> (certificate: String, key: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-node-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return (directory.appendingPathComponent("node.crt").path, directory.appendingPathComponent("node.key").path)
    }

    /// Whether a new connection is shown the certificate in the PEM file at `path`.
    static func serves(_ path: String, port: Int) async -> Bool {
        guard let certificates = try? TLSTestCertificates.shared(),
            let expected = try? NIOSSLCertificate.fromPEMFile(path).first,
            let client = try? await HTTP2TestClient(port: port, trustedCA: certificates.caCertificate, verifiesName: false)
        else { return false }
        defer { Task { await client.close() } }
        return client.peerCertificate == expected
    }

    @Test("a certificate rotated on disk reaches new connections within --tls-reload-check; open streams keep going; a broken rotation keeps the old certificate")
    func reloadOnFileChange() async throws {
        let certificates = try TLSTestCertificates.shared()
        let files = try Self.rotationFiles()
        try Self.install(certificate: certificates.serverCertificate, key: certificates.serverKey, at: files)
        let redis = try await RedisServerProcess()
        let node = try await Self.node(redis, certificate: files.certificate, key: files.key) { $0.reloadCheckSeconds = 0.2 }
        let client = try await HTTP2TestClient(port: node.port, trustedCA: certificates.caCertificate)
        let stream = try await client.open("/stream?channel=rotate")
        #expect(try await stream.head() == 200)
        #expect(await !Self.serves(certificates.wrongNameCertificate, port: node.port))

        try Self.install(certificate: certificates.wrongNameCertificate, key: certificates.wrongNameKey, at: files)
        try await eventually("the rotated certificate") { await Self.serves(certificates.wrongNameCertificate, port: node.port) }
        #expect(await !Self.serves(certificates.serverCertificate, port: node.port))
        try await eventually("the stream's subscription") { node.server.clientCount(for: "rotate") == 1 }
        _ = try await redis.command("PUBLISH", "rotate", #"{"data": "after rotation"}"#)
        try await stream.waitFor("data:after rotation")

        // Half a rotation (a key that does not fit): refused, the current certificate stays.
        try Self.install(certificate: certificates.serverCertificate, key: certificates.wrongNameKey, at: files)
        #expect(throws: BrokerServerError.self) { try node.server.reloadTLS() }
        try await Task.sleep(for: .milliseconds(500))
        #expect(await Self.serves(certificates.wrongNameCertificate, port: node.port))
        await client.close()
        await node.shutdown()
    }

    @Test("SIGHUP makes the real sse-broker load its certificate again (with --tls-reload-check 0 nothing else does), without dropping open streams")
    func sighupReload() async throws {
        let certificates = try TLSTestCertificates.shared()
        let files = try Self.rotationFiles()
        try Self.install(certificate: certificates.serverCertificate, key: certificates.serverKey, at: files)
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(
            redisURL: redis.url(),
            arguments: ["--tls-cert", files.certificate, "--tls-key", files.key, "--tls-reload-check", "0", "--heartbeat", "0"]
        )
        let client = try await HTTP2TestClient(port: broker.port, trustedCA: certificates.caCertificate)
        let stream = try await client.open("/stream?channel=hup")
        #expect(try await stream.head() == 200)
        try Self.install(certificate: certificates.wrongNameCertificate, key: certificates.wrongNameKey, at: files)
        try await Task.sleep(for: .milliseconds(500))
        #expect(await Self.serves(certificates.serverCertificate, port: broker.port))
        kill(broker.pid, SIGHUP)
        try await eventually("the certificate loaded on SIGHUP") { await Self.serves(certificates.wrongNameCertificate, port: broker.port) }
        try await redis.waitForSubscribers("hup", count: 1)
        _ = try await redis.command("PUBLISH", "hup", #"{"data": "after sighup"}"#)
        try await stream.waitFor("data:after sighup")
        await client.close()
        #expect(try await broker.stop() == 0)
    }
}
