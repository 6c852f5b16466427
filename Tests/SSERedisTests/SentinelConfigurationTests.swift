import SSERedis
import Testing

@Suite("redis+sentinel:// URLs")
struct SentinelConfigurationTests {
    static func sentinel(
        _ sentinels: [SentinelAddress],
        _ name: String = "mymaster",
        username: String? = nil,
        password: String? = nil,
        sentinelUsername: String? = nil,
        sentinelPassword: String? = nil,
        database: Int = 0
    ) -> RedisConfiguration {
        RedisConfiguration(
            endpoint: .sentinel(SentinelEndpoint(sentinels: sentinels, masterName: name, username: sentinelUsername, password: sentinelPassword)),
            username: username,
            password: password,
            database: database
        )
    }

    @Test("accepted forms", arguments: [
        ("redis+sentinel://h1/mymaster", sentinel([SentinelAddress(host: "h1")])),
        ("redis+sentinel://h1:26380,h2/mymaster", sentinel([SentinelAddress(host: "h1", port: 26380), SentinelAddress(host: "h2")])),
        ("REDIS+SENTINEL://10.0.0.1:1,10.0.0.2:2/m-1.a_b:c", sentinel([SentinelAddress(host: "10.0.0.1", port: 1), SentinelAddress(host: "10.0.0.2", port: 2)], "m-1.a_b:c")),
        ("redis+sentinel://[::1]:26380,[fe80::1%25eth0]/mymaster", sentinel([SentinelAddress(host: "::1", port: 26380), SentinelAddress(host: "fe80::1%eth0")])),
        ("redis+sentinel://h1/mymaster/3", sentinel([SentinelAddress(host: "h1")], database: 3)),
        ("redis+sentinel://h1/mymaster/", sentinel([SentinelAddress(host: "h1")])),
        ("redis+sentinel://h1/mymaster?db=4", sentinel([SentinelAddress(host: "h1")], database: 4)),
        ("redis+sentinel://:p%40ss@h1/mymaster", sentinel([SentinelAddress(host: "h1")], password: "p@ss")),
        ("redis+sentinel://user:pw@h1,h2/mymaster/1", sentinel([SentinelAddress(host: "h1"), SentinelAddress(host: "h2")], username: "user", password: "pw", database: 1)),
        (
            "redis+sentinel://:master@h1/mymaster?sentinel_password=s%26cret&sentinel_username=watch",
            sentinel([SentinelAddress(host: "h1")], password: "master", sentinelUsername: "watch", sentinelPassword: "s&cret")
        ),
        ("redis+sentinel://h1/mymaster?sentinel_password=", sentinel([SentinelAddress(host: "h1")])),
    ])
    func accepted(_ url: String, _ expected: RedisConfiguration) throws {
        #expect(try RedisConfiguration(url: url) == expected)
    }

    @Test("refused with a clear reason", arguments: [
        ("redis+sentinel://h1", "names the master"),
        ("redis+sentinel://h1/", "names the master"),
        ("redis+sentinel://h1/my master", "master name"),
        ("redis+sentinel://h1/\(String(repeating: "m", count: 256))", "master name"),
        ("redis+sentinel://h1/mymaster/x", "database"),
        ("redis+sentinel://h1/mymaster/1/2", "/mastername/db"),
        ("redis+sentinel://h1:0/mymaster", "port"),
        ("redis+sentinel://h1:26379x/mymaster", "port"),
        ("redis+sentinel://h1,,h2/mymaster", "empty sentinel host"),
        ("redis+sentinel://:26379/mymaster", "empty sentinel host"),
        ("redis+sentinel://h\u{1}1/mymaster", "sentinel host"),
        ("redis+sentinel://[::1/mymaster", "IPv6"),
        ("redis+sentinel://[::1]x/mymaster", "after the IPv6"),
        ("redis+sentinel://::1/mymaster", "in brackets"),
        ("redis+sentinel://h1/mymaster?sentinel_pasword=x", "unknown parameter 'sentinel_pasword'"),
        ("redis+sentinel://h1/mymaster?ssl_cert_reqs=none", "rediss+sentinel"),
        ("redis+sentinel://\(Array(repeating: "h", count: 17).joined(separator: ","))/mymaster", "at most 16 sentinels"),
        ("redis+sentinel://h1/mymaster?sentinel_password=%zz", "percent-encoding"),
    ])
    func refused(_ url: String, _ reason: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }

    @Test("rediss+sentinel:// carries redis-py's ssl_* options to the sentinels and the master, and shows them")
    func overTLS() throws {
        let configuration = try RedisConfiguration(
            url: "rediss+sentinel://:pw@h1,h2:26380/mymaster/2?ssl_ca_certs=/etc/ca%20dir/ca.pem&ssl_check_hostname=false&sentinel_password=sp"
        )
        var tls = RedisTLSOptions()
        tls.caCertificatesFile = "/etc/ca dir/ca.pem"
        tls.verification = .noHostname
        #expect(configuration.tls == tls)
        #expect(configuration.database == 2)
        guard case .sentinel(let endpoint) = configuration.endpoint else {
            Issue.record("not a Sentinel endpoint: \(configuration)")
            return
        }
        #expect(endpoint.sentinels == [SentinelAddress(host: "h1"), SentinelAddress(host: "h2", port: 26380)])
        #expect(endpoint.password == "sp")
        let shown = configuration.description
        #expect(shown.hasPrefix("rediss+sentinel://:***@"))
        #expect(shown.contains("ssl_check_hostname=false") && shown.contains("ssl_ca_certs=/etc/ca dir/ca.pem"))
        #expect(!shown.contains("pw") && !shown.contains("sp&") && !shown.hasSuffix("sp"))
        #expect(try RedisConfiguration(url: "rediss+sentinel://h1/mymaster").tls == RedisTLSOptions())
        #expect(try RedisConfiguration(url: "redis+sentinel://h1/mymaster").tls == nil)
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "rediss+sentinel://h1/mymaster?ssl_bogus=1") }
        #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: "redis+sentinel://h1/mymaster?tls_server_name=x") }
    }

    @Test("sixteen sentinels are accepted")
    func sixteen() throws {
        let hosts = (1...16).map { "h\($0)" }
        let configuration = try RedisConfiguration(url: "redis+sentinel://\(hosts.joined(separator: ","))/mymaster")
        guard case .sentinel(let endpoint) = configuration.endpoint else {
            Issue.record("not a Sentinel endpoint")
            return
        }
        #expect(endpoint.sentinels.map(\.host) == hosts)
    }

    @Test("neither password appears in descriptions or errors")
    func redaction() throws {
        let configuration = try RedisConfiguration(url: "redis+sentinel://u:hunter2@h1,[::1]:2/mymaster/2?sentinel_password=zq7kx9&sentinel_username=w")
        #expect(configuration.description == "redis+sentinel://u:***@h1:26379,[::1]:2/mymaster/2?sentinel_username=w&sentinel_password=***")
        for url in [
            "redis+sentinel://u:hunter2@h1/my master?sentinel_password=zq7kx9",
            "redis+sentinel://:hunter2@h1/mymaster?sentinel_password=zq7@kx9&x=1",
            "redis+sentinel://h1/mymaster?sentinel_password=zq7kx9&bogus=1",
            "redis+sentinel://:hun?ter2@h1/mymaster/x",
            // The query starts at the first `?`, so these passwords are split into a "port", a
            // "database" and "parameters" that the reason must not quote.
            "redis+sentinel://:hunter2/x?y@h1/mymaster",
            "redis+sentinel://:a/hunter2?y@h1/mymaster",
            "redis+sentinel://h1/mymaster?sentinel_password=zq7&kx9",
            "redis+sentinel://h1/mymaster?sentinel_password=zq7&ssl_kx9",
            "redis+sentinel://h1/mymaster?sentinel_password=zq7&db=kx9",
            // No `?`: not a parameter, but a password all the same (found by fuzz-redis-url).
            "redis+sentinel://h1,h2:26380/mymaster&sentinel_password=zq7kx9",
            "redis+sentinel://h1/mymaster/18sentinel_password=zq7kx9",
        ] {
            do {
                _ = try RedisConfiguration(url: url)
                Issue.record("accepted \(url)")
            } catch {
                for secret in ["hunter2", "hun?ter2", "ter2", "zq7kx9", "zq7", "kx9", "ssl_kx9"] {
                    #expect(!error.description.contains(secret), "\(error.description)")
                }
            }
        }
    }

    @Test("a misspelt parameter or a bad port outside the credentials is still quoted")
    func quotesPublicText() {
        for (url, quoted) in [
            ("redis+sentinel://:pw@h1/mymaster?sentinal_password=x", "'sentinal_password'"),
            ("redis+sentinel://:pw@h1:99999/mymaster", "'99999'"),
            ("redis+sentinel://h1/mymaster?ssl_ca=y&sentinel_password=x", "'ssl_ca'"),
        ] {
            #expect(throws: RedisConfigurationError.self) { try RedisConfiguration(url: url) }
            do {
                _ = try RedisConfiguration(url: url)
            } catch {
                #expect(error.description.contains(quoted), "\(error.description)")
            }
        }
    }
}
