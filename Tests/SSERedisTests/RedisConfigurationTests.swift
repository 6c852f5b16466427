import SSERedis
import Testing

@Suite("REDIS_URL forms")
struct RedisConfigurationTests {
    @Test("accepted forms", arguments: [
        ("redis://127.0.0.1:6379/0", RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 6379))),
        ("redis://localhost", RedisConfiguration(endpoint: .tcp(host: "localhost", port: 6379))),
        ("redis://cache:6380/4", RedisConfiguration(endpoint: .tcp(host: "cache", port: 6380), database: 4)),
        ("redis://:p%40ss@host:1/2", RedisConfiguration(endpoint: .tcp(host: "host", port: 1), password: "p@ss", database: 2)),
        ("redis://user:pw@host", RedisConfiguration(endpoint: .tcp(host: "host", port: 6379), username: "user", password: "pw")),
        ("redis://pw@host", RedisConfiguration(endpoint: .tcp(host: "host", port: 6379), password: "pw")),
        ("redis://[::1]:7000/1", RedisConfiguration(endpoint: .tcp(host: "::1", port: 7000), database: 1)),
        ("redis://host?db=3", RedisConfiguration(endpoint: .tcp(host: "host", port: 6379), database: 3)),
        ("REDIS://host:6379", RedisConfiguration(endpoint: .tcp(host: "host", port: 6379))),
        ("unix:///run/redis.sock", RedisConfiguration(endpoint: .unixSocket(path: "/run/redis.sock"))),
        ("unix:///run/redis.sock?db=5", RedisConfiguration(endpoint: .unixSocket(path: "/run/redis.sock"), database: 5)),
        ("unix://:pw@/run/redis.sock", RedisConfiguration(endpoint: .unixSocket(path: "/run/redis.sock"), password: "pw")),
    ])
    func accepted(_ url: String, _ expected: RedisConfiguration) throws {
        #expect(try RedisConfiguration(url: url) == expected)
    }

    @Test("refused with a clear reason", arguments: [
        ("rediss://host:6380", "TLS"),
        ("http://host", "unsupported scheme"),
        ("localhost:6379", "expected a URL"),
        ("redis://host:99999", "port"),
        ("redis://host:abc", "port"),
        ("redis://host/-1", "database"),
        ("redis://host/x", "database"),
        ("unix://relative.sock", "absolute path"),
        ("redis://[::1", "IPv6"),
    ])
    func refused(_ url: String, _ reason: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("the password never appears in descriptions or errors")
    func redaction() throws {
        let configuration = try RedisConfiguration(url: "redis://:hunter2@host:1/0")
        #expect(!configuration.description.contains("hunter2"))
        do {
            _ = try RedisConfiguration(url: "redis://:hunter2@host:0/0")
            Issue.record("port 0 accepted")
        } catch {
            #expect(!error.description.contains("hunter2"))
        }
        // Without a plain scheme (forgotten, or mistyped) the user-info is masked all the same.
        for url in [":hunter2@host:6379/0", "user:hunter2@host", "redis:/:hunter2@host", ":hunter2@x://host", "redis//:hunter2@host", "redis://host/1password=hunter2"] {
            do {
                _ = try RedisConfiguration(url: url)
                Issue.record("accepted \(url)")
            } catch {
                #expect(!error.description.contains("hunter2"), "\(error.description)")
                #expect(!error.description.contains("ter2"), "\(error.description)")
            }
        }
    }
}
