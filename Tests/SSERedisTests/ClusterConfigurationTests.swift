import SSERedis
import Testing

@Suite("redis+cluster:// URLs")
struct ClusterConfigurationTests {
    static func cluster(_ seeds: [SentinelAddress], username: String? = nil, password: String? = nil) -> RedisConfiguration {
        RedisConfiguration(endpoint: .cluster(ClusterEndpoint(seeds: seeds)), username: username, password: password)
    }

    @Test("accepted forms", arguments: [
        ("redis+cluster://h1", cluster([SentinelAddress(host: "h1", port: 6379)])),
        ("redis+cluster://h1:7000,h2:7001,h3", cluster([SentinelAddress(host: "h1", port: 7000), SentinelAddress(host: "h2", port: 7001), SentinelAddress(host: "h3", port: 6379)])),
        ("REDIS+CLUSTER://127.0.0.1:7000/0", cluster([SentinelAddress(host: "127.0.0.1", port: 7000)])),
        ("redis+cluster://h1:7000/", cluster([SentinelAddress(host: "h1", port: 7000)])),
        ("redis+cluster://h1?db=0", cluster([SentinelAddress(host: "h1", port: 6379)])),
        ("redis+cluster://[::1]:7000,[fe80::1%25eth0]", cluster([SentinelAddress(host: "::1", port: 7000), SentinelAddress(host: "fe80::1%eth0", port: 6379)])),
        ("redis+cluster://:p%40ss@h1:7000", cluster([SentinelAddress(host: "h1", port: 7000)], password: "p@ss")),
        ("redis+cluster://user:pw@h1,h2", cluster([SentinelAddress(host: "h1", port: 6379), SentinelAddress(host: "h2", port: 6379)], username: "user", password: "pw")),
    ])
    func accepted(_ url: String, _ expected: RedisConfiguration) throws {
        let parsed = try RedisConfiguration(url: url)
        #expect(parsed == expected)
        #expect(parsed.isCluster)
    }

    @Test("TLS options apply to every node of a rediss+cluster:// URL")
    func tls() throws {
        let parsed = try RedisConfiguration(url: "rediss+cluster://:pw@h1:7000,h2:7001?ssl_cert_reqs=none")
        #expect(parsed.tls?.verification == RedisTLSOptions.Verification.none)
        #expect(parsed.description == "rediss+cluster://:***@h1:7000,h2:7001/0?ssl_cert_reqs=none")
        #expect(try RedisConfiguration(url: "redis+cluster://h1").tls == nil)
    }

    @Test("refused with a clear reason", arguments: [
        ("redis+cluster://h1/1", "only database 0"),
        ("redis+cluster://h1?db=2", "only database 0"),
        ("redis+cluster://h1/x", "database"),
        ("redis+cluster://h1:0", "port"),
        ("redis+cluster://h1,,h2", "empty cluster node host"),
        ("redis+cluster://", "empty cluster node host"),
        ("redis+cluster://h\u{1}1", "cluster node host"),
        ("redis+cluster://::1", "in brackets"),
        ("redis+cluster://h1?ssl_cert_reqs=none", "rediss+cluster"),
        ("redis+cluster://h1?readFromReplicas=yes", "unknown parameter 'readFromReplicas'"),
        ("redis+cluster://h1?pubsub=shard", "pubsub must be both, classic or sharded"),
        ("redis+cluster://h1?pubsub=sharded&history=shared", "pubsub=sharded needs history=per-channel"),
        ("redis+cluster://\(Array(repeating: "h", count: 65).joined(separator: ","))", "at most 64 cluster nodes"),
    ])
    func refused(_ url: String, _ reason: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("pubsub= picks classic-only subscriptions; both is the default and is not shown")
    func pubsub() throws {
        let classic = try RedisConfiguration(url: "redis+cluster://h1:7000?pubsub=classic")
        guard case .cluster(let endpoint) = classic.endpoint else {
            Issue.record("not a cluster endpoint")
            return
        }
        #expect(endpoint.pubsub == .classic)
        #expect(classic.description == "redis+cluster://h1:7000/0?pubsub=classic")
        #expect(try RedisConfiguration(url: "redis+cluster://h1:7000?pubsub=both").description == "redis+cluster://h1:7000/0")
        let secure = try RedisConfiguration(url: "rediss+cluster://h1:7000?ssl_cert_reqs=none&pubsub=classic")
        #expect(secure.description == "rediss+cluster://h1:7000/0?ssl_cert_reqs=none&pubsub=classic")
    }

    @Test("history= picks where history lives: per-channel is the default and is not shown, shared is; anything else is refused")
    func history() throws {
        let defaulted = try RedisConfiguration(url: "redis+cluster://h1:7000")
        guard case .cluster(let endpoint) = defaulted.endpoint else {
            Issue.record("not a cluster endpoint")
            return
        }
        #expect(endpoint.history == .perChannel)
        #expect(try RedisConfiguration(url: "redis+cluster://h1:7000?history=per-channel").description == "redis+cluster://h1:7000/0")
        let shared = try RedisConfiguration(url: "redis+cluster://h1:7000?pubsub=classic&history=shared")
        #expect(shared.description == "redis+cluster://h1:7000/0?pubsub=classic&history=shared")
        guard case .cluster(let sharedEndpoint) = shared.endpoint else { return }
        #expect(sharedEndpoint.history == .shared)
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "redis+cluster://h1:7000?history=global") }
        // Sharded-only needs history per channel: history in one slot publishes classically.
        let sharded = try RedisConfiguration(url: "redis+cluster://h1:7000?pubsub=sharded")
        #expect(sharded.description == "redis+cluster://h1:7000/0?pubsub=sharded")
        #expect { try RedisConfiguration(url: "redis+cluster://h1:7000?pubsub=sharded&history=shared") } throws: { error in
            "\(error)".contains("pubsub=sharded needs history=per-channel")
        }
    }

    @Test("the password never shows in a description or an error")
    func redaction() {
        let secret = "s3cr3t-pass"
        #expect(!((try? RedisConfiguration(url: "redis+cluster://:\(secret)@h1"))?.description.contains(secret) ?? true))
        #expect {
            try RedisConfiguration(url: "redis+cluster://:\(secret)@h1/5")
        } throws: { error in
            !"\(error)".contains(secret)
        }
    }

    @Test("routing to a slot changes only cluster endpoints")
    func routing() throws {
        let cluster = try RedisConfiguration(url: "redis+cluster://h1:7000")
        guard case .cluster(let endpoint) = cluster.routed(toSlot: 42).endpoint else {
            Issue.record("not a cluster endpoint")
            return
        }
        #expect(endpoint.slot == 42)
        #expect(cluster.routed(toSlot: 42).description == cluster.description)
        let plain = try RedisConfiguration(url: "redis://h1:6379/2")
        #expect(plain.routed(toSlot: 42) == plain)
        #expect(!plain.isCluster)
    }
}
