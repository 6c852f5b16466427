import Foundation
import SSERedis
import Testing

/// `rediss+sentinel://` with real parts: a TLS-only master and a TLS-only sentinel (plain TCP off
/// on both; the sentinel monitors the master over TLS), certificates made by `openssl`.
@Suite("Sentinel over TLS (rediss+sentinel://)", .timeLimit(.minutes(2)))
struct SentinelTLSTests {
    /// A sentinel that speaks only TLS on `port`, monitoring `master` over TLS (quorum 1).
    static func tlsSentinel(port: Int, master: RedisServerProcess, directory: URL) throws -> SentinelProcess {
        let certificates = try TLSTestCertificates.shared()
        let id = (0..<40).map { _ in String("0123456789abcdef".randomElement() ?? "0") }.joined()
        return try SentinelProcess(port: port, id: id, directory: directory, lines: [
            "port 0",
            "tls-port \(port)",
            "tls-cert-file \(certificates.serverCertificate)",
            "tls-key-file \(certificates.serverKey)",
            "tls-ca-cert-file \(certificates.caCertificate)",
            "tls-auth-clients optional",
            "tls-replication yes",
            "sentinel monitor \(SentinelCluster.masterName) 127.0.0.1 \(master.port) 1",
        ])
    }

    @Test("the master is found through a TLS sentinel and reached over TLS: streams and POST /publish work; without TLS the sentinel is unreachable")
    func overTLS() async throws {
        let certificates = try TLSTestCertificates.shared()
        let master = try await RedisServerProcess(tls: certificates)
        defer { master.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("sse-sentinel-tls-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let port = try FreePort.next()
        let sentinel = try Self.tlsSentinel(port: port, master: master, directory: directory)
        defer { sentinel.stop() }
        try await sentinel.waitUntilListening()

        let url = "rediss+sentinel://127.0.0.1:\(port)/\(SentinelCluster.masterName)?ssl_ca_certs=\(certificates.caCertificate)"
        try await withNode(redis: try RedisConfiguration(url: url)) { node in
            let client = try await node.stream("sentinel-tls")
            try await master.waitForSubscribers("sentinel-tls", count: 1)
            let response = try await node.request("POST", "/publish?channel=sentinel-tls", body: Array(#"{"data": "via a TLS sentinel"}"#.utf8))
            #expect(response.status == 200, "\(response.bodyText)")
            let events = try await client.waitForEvents(1)
            #expect(events[0].contains("data:via a TLS sentinel\n"), "\(events)")
            #expect(events[0].contains("id:"), "history was not written: \(events)")
            await client.close()
        }

        // The same sentinel without TLS: the resolver reports it, naming the sentinel.
        let plain = RedisCommandClient(
            redis: try RedisConfiguration(url: "redis+sentinel://127.0.0.1:\(port)/\(SentinelCluster.masterName)"),
            logger: .init(label: "test.sentinel-tls")
        )
        defer { plain.shutdown() }
        do {
            _ = try await plain.send("PING")
            Issue.record("a plain connection to a TLS-only sentinel was answered")
        } catch {
            #expect(error.message.contains("127.0.0.1:\(port)"), "\(error)")
        }
    }
}
