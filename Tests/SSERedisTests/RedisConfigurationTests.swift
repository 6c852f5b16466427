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

    @Test("rediss:// with redis-py's ssl_* parameters", arguments: [
        ("rediss://host", RedisTLSOptions()),
        ("REDISS://host:6380/2", RedisTLSOptions()),
        ("rediss://host?ssl_cert_reqs=required", RedisTLSOptions()),
        ("rediss://host?ssl_cert_reqs=optional", RedisTLSOptions()),
        ("rediss://host?ssl_cert_reqs=none", RedisTLSOptions(verification: .none)),
        ("rediss://host?ssl_cert_reqs=none&ssl_check_hostname=true", RedisTLSOptions(verification: .none)),
        ("rediss://host?ssl_check_hostname=false", RedisTLSOptions(verification: .noHostname)),
        ("rediss://host?ssl_check_hostname=0", RedisTLSOptions(verification: .noHostname)),
        ("rediss://host?ssl_check_hostname=True", RedisTLSOptions()),
        ("rediss://host?ssl_ca_certs=/etc/ca%20dir/ca.pem", RedisTLSOptions(caCertificatesFile: "/etc/ca dir/ca.pem")),
        ("rediss://host?ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
         RedisTLSOptions(certificateFile: "/c.pem", privateKeyFile: "/k.pem")),
        ("rediss://host?ssl_min_version=TLSv1_3", RedisTLSOptions(minimumVersion: .tlsv13)),
        ("rediss://host?ssl_min_version=TLSv1_2", RedisTLSOptions()),
        ("rediss://10.0.0.5?tls_server_name=redis.internal", RedisTLSOptions(serverName: "redis.internal")),
        ("rediss://host?socket_timeout=5", RedisTLSOptions()),
    ])
    func secure(_ url: String, _ expected: RedisTLSOptions) throws {
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.tls == expected)
    }

    @Test("rediss:// keeps host, port, credentials and database as redis:// does")
    func secureEndpoint() throws {
        let configuration = try RedisConfiguration(url: "rediss://u:pw@cache:6380/3?ssl_ca_certs=/ca.pem")
        #expect(configuration.endpoint == .tcp(host: "cache", port: 6380))
        #expect(configuration.username == "u")
        #expect(configuration.password == "pw")
        #expect(configuration.database == 3)
        #expect(try RedisConfiguration(url: "redis://cache:6380/3").tls == nil)
    }

    @Test("descriptions show rediss:// and the options, never the password", arguments: [
        ("rediss://:hunter2@host:6380/1", "rediss://:***@host:6380/1"),
        ("rediss://host?ssl_cert_reqs=none", "rediss://host:6379/0?ssl_cert_reqs=none"),
        ("rediss://host?ssl_check_hostname=no&ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem",
         "rediss://host:6379/0?ssl_check_hostname=false&ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"),
        ("redis://host:1/0", "redis://host:1/0"),
    ])
    func secureDescription(_ url: String, _ expected: String) throws {
        #expect(try RedisConfiguration(url: url).description == expected)
    }

    @Test("refused with a clear reason", arguments: [
        ("redis://host?ssl_cert_reqs=none", "'ssl_cert_reqs' needs a rediss:// URL"),
        ("unix:///run/r.sock?ssl_ca_certs=/ca.pem", "'ssl_ca_certs' needs a rediss:// URL"),
        ("rediss://host?ssl_ca_path=/etc/ssl", "unsupported TLS parameter 'ssl_ca_path'"),
        ("rediss://host?ssl_password=x", "unsupported TLS parameter 'ssl_password'"),
        ("rediss://host?ssl_certfile=/c.pem", "needs its key (ssl_keyfile)"),
        ("rediss://host?ssl_keyfile=/k.pem", "needs its certificate (ssl_certfile)"),
        ("rediss://host?ssl_cert_reqs=maybe", "ssl_cert_reqs must be none, optional or required"),
        ("rediss://host?ssl_check_hostname=perhaps", "ssl_check_hostname must be true or false"),
        ("rediss://host?ssl_min_version=TLSv1_1", "ssl_min_version must be TLSv1_2 or TLSv1_3"),
        ("rediss://host?ssl_ca_certs=", "ssl_ca_certs needs a file path"),
        ("rediss://host?ssl_ca_certs=%zz", "percent-encoding in a query value"),
        ("rediss://host?tls_server_name=", "tls_server_name must be 1 to 255 bytes"),
        ("http://host", "unsupported scheme 'http'; use redis://, rediss://, unix://, redis[s]+sentinel:// or redis[s]+cluster://"),
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
