/// The Sentinel URL form: `redis+sentinel://[[user]:password@]h1[:26379],h2:26380/mymaster[/db][?…]`.
///
/// redis-py has no Sentinel URL (one builds `redis.sentinel.Sentinel(…)` in code); this is the
/// de-facto form of Redis-Sentinel-Url, prefect-redis and redis-vl-java. The user-info
/// authenticates to the master, like `redis://`; the sentinels get `sentinel_username=` and
/// `sentinel_password=` (percent-encoded). Ports default to 26379, IPv6 goes in brackets. The
/// query ends the URL at its first `?`, so a `?` in a password must be written `%3F`.
extension RedisConfiguration {
    /// Parses what follows `redis+sentinel://` (or `rediss+sentinel://` with `tls`: its `ssl_*`
    /// and `tls_*` parameters become the TLS options, for the sentinels and the master alike;
    /// without TLS they are refused). Every other parameter than `db`, `sentinel_username` and `sentinel_password`
    /// is refused, so a misspelt option never passes silently.
    static func parseSentinel(_ remainder: Substring, url: String, tls: Bool) throws(RedisConfigurationError) -> RedisConfiguration {
        let (main, query) = splitAtQuery(remainder)
        let (username, password, afterCredentials) = try splitCredentials(main, url: url)
        guard let slash = afterCredentials.firstIndex(of: "/") else {
            throw RedisConfigurationError(url: url, reason: "a Sentinel URL names the master: redis+sentinel://host:26379/mymaster")
        }
        let sentinels = try parseNodeList(
            afterCredentials[..<slash], defaultPort: SentinelAddress.defaultPort, maximum: SentinelEndpoint.maximumSentinels, kind: "sentinel", url: url
        )
        let path = afterCredentials[afterCredentials.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
        guard let name = path.first, !name.isEmpty else {
            throw RedisConfigurationError(url: url, reason: "a Sentinel URL names the master: redis+sentinel://host:26379/mymaster")
        }
        guard SentinelEndpoint.isValidMasterName(name) else {
            throw RedisConfigurationError(
                url: url,
                reason: "the master name must be 1 to \(SentinelEndpoint.maximumMasterNameBytes) bytes of letters, digits and -._:"
            )
        }
        guard path.count <= 2 else {
            throw RedisConfigurationError(url: url, reason: "expected /mastername or /mastername/db after the sentinels")
        }
        var database = 0
        if path.count == 2, !path[1].isEmpty { database = try parseDatabase(path[1], url: url) }
        var endpoint = SentinelEndpoint(sentinels: sentinels, masterName: String(name))
        var tlsParameters: [(name: String, value: String)] = []
        for (key, value) in queryPairs(query) {
            switch key {
            case "db":
                database = try parseDatabase(value, url: url)
            case "sentinel_password":
                let decoded = try percentDecoded(value, url: url)
                endpoint.password = decoded.isEmpty ? nil : decoded
            case "sentinel_username":
                let decoded = try percentDecoded(value, url: url)
                endpoint.username = decoded.isEmpty ? nil : decoded
            default:
                try takeTLSParameter(
                    key, value, into: &tlsParameters, tls: tls, scheme: "rediss+sentinel://",
                    otherwise: "a Sentinel URL takes db, sentinel_username and sentinel_password", url: url
                )
            }
        }
        return RedisConfiguration(
            endpoint: .sentinel(endpoint),
            username: username,
            password: password,
            database: database,
            tls: try tlsOptions(from: tlsParameters, secure: tls, url: url)
        )
    }

    /// `h1[:port],[v6]:port,…`: 1 to `maximum` nodes (sentinels or cluster seeds), each at
    /// `defaultPort` unless given; `kind` names them in the reasons.
    static func parseNodeList(
        _ text: Substring,
        defaultPort: Int,
        maximum: Int,
        kind: String,
        url: String
    ) throws(RedisConfigurationError) -> [SentinelAddress] {
        let items = text.split(separator: ",", omittingEmptySubsequences: false)
        guard items.count <= maximum else {
            throw RedisConfigurationError(url: url, reason: "at most \(maximum) \(kind)s, got \(items.count)")
        }
        var nodes: [SentinelAddress] = []
        for item in items {
            var (host, port) = try splitHostPort(item, defaultPort: defaultPort, url: url)
            // A zone is written %25 in a URL (RFC 6874): `[fe80::1%25eth0]`.
            if item.hasPrefix("[") {
                host = Substring(try percentDecoded(host, url: url))
            } else if host.contains(":") {
                throw RedisConfigurationError(url: url, reason: "an IPv6 \(kind) goes in brackets: [::1]:\(defaultPort)")
            }
            guard SentinelAddress.isValidHost(host) else {
                throw RedisConfigurationError(
                    url: url,
                    reason: host.isEmpty ? "empty \(kind) host" : "\(kind) host must be letters, digits and -._:% (at most 255 bytes)"
                )
            }
            nodes.append(SentinelAddress(host: String(host), port: port))
        }
        return nodes
    }

    /// `text` up to its first `?`, and what follows it (empty without one). The query ends the
    /// URL at its first `?`, so a `?` in a password must be written `%3F`.
    static func splitAtQuery(_ text: Substring) -> (main: Substring, query: Substring) {
        guard let question = text.firstIndex(of: "?") else { return (text, "") }
        return (text[..<question], text[text.index(after: question)...])
    }

    /// Keeps an `ssl_*` or `tls_*` query parameter of a TLS URL for `tlsOptions(from:secure:url:)`;
    /// refuses it without TLS (naming `scheme`), and refuses any other parameter, saying what the
    /// URL form takes (`otherwise`).
    static func takeTLSParameter(
        _ key: Substring,
        _ value: Substring,
        into parameters: inout [(name: String, value: String)],
        tls: Bool,
        scheme: String,
        otherwise: String,
        url: String
    ) throws(RedisConfigurationError) {
        let shown = RedisConfigurationError.shown(key.prefix(64), of: url)
        guard key.hasPrefix("ssl_") || key.hasPrefix("tls_") else {
            throw RedisConfigurationError(url: url, reason: "unknown parameter \(shown); \(otherwise)")
        }
        guard tls else { throw RedisConfigurationError(url: url, reason: "\(shown) needs TLS: use \(scheme)") }
        parameters.append((String(key), try percentDecoded(value, url: url, in: "a query value")))
    }

    /// Splits `host[:port]` or `[ipv6][:port]`; the host is empty when the text names none.
    static func splitHostPort(_ text: Substring, defaultPort: Int, url: String) throws(RedisConfigurationError) -> (Substring, Int) {
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                throw RedisConfigurationError(url: url, reason: "unterminated IPv6 address")
            }
            let host = text[text.index(after: text.startIndex)..<close]
            let afterHost = text[text.index(after: close)...]
            if afterHost.hasPrefix(":") { return (host, try parsePort(afterHost.dropFirst(), url: url)) }
            guard afterHost.isEmpty else {
                throw RedisConfigurationError(url: url, reason: "unexpected text after the IPv6 address")
            }
            return (host, defaultPort)
        }
        guard let colon = text.lastIndex(of: ":") else { return (text, defaultPort) }
        return (text[..<colon], try parsePort(text[text.index(after: colon)...], url: url))
    }

    /// The Sentinel form of `description`: credentials masked, the sentinel user shown.
    static func sentinelDescription(_ endpoint: SentinelEndpoint, auth: String, database: Int, tls: RedisTLSOptions?) -> String {
        var extra: [String] = []
        if let username = endpoint.username { extra.append("sentinel_username=\(username)") }
        if endpoint.password != nil { extra.append("sentinel_password=***") }
        let query = describedQuery(tls: tls, extra: extra)
        return "\(tls == nil ? "redis" : "rediss")+sentinel://\(auth)\(endpoint)/\(database)\(query)"
    }
}
