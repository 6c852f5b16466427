/// Where and how to reach Redis, parsed once from a `REDIS_URL`.
///
/// Accepted forms are those Flask-SSE users already have (redis-py's):
/// `redis://[[user]:password@]host[:port][/db][?db=N]`,
/// `rediss://…` (the same over TLS, with redis-py's `ssl_*` query parameters, see `tls`),
/// `unix://[[user]:password@]/path/to/redis.sock[?db=N]`; and, for a master behind Redis
/// Sentinel, `redis+sentinel://[[user]:password@]h1[:26379],h2[:port]/mymaster[/db][?…]`
/// (`rediss+sentinel://` over TLS to the sentinels and the master; see `parseSentinel`); and a
/// Redis Cluster through seed nodes, `redis+cluster://[[user]:password@]h1[:6379],h2[:port][/0]`
/// (`rediss+cluster://` over TLS; see `parseCluster`).
public struct RedisConfiguration: Sendable, Hashable, CustomStringConvertible {
    /// The transport to the server.
    public enum Endpoint: Sendable, Hashable {
        case tcp(host: String, port: Int)
        case unixSocket(path: String)
        /// The master that these sentinels name, found anew on every connect.
        case sentinel(SentinelEndpoint)
        /// A Redis Cluster, through its seed nodes.
        case cluster(ClusterEndpoint)
    }

    public var endpoint: Endpoint
    /// ACL user name (Redis 6+); `AUTH user password` is sent when both are set.
    public var username: String?
    /// Password, sent with `AUTH` on every connect.
    public var password: String?
    /// Logical database, sent with `SELECT` on connect when not 0.
    public var database: Int
    /// How long one connection attempt may take.
    public var connectTimeoutMilliseconds: Int
    /// How long Redis may stay silent (no byte read or written) while a command's reply is
    /// awaited before the command fails with `.timedOut` and the connection is dropped; also
    /// bounds `AUTH`/`SELECT` on connect.
    public var commandTimeoutMilliseconds: Int
    /// Largest reply accepted (bytes of strings plus about 64 per node); a larger one, or more
    /// unparsed input than this, fails the connection with `.protocolViolation`. Default 64 MiB;
    /// raise it with the largest payload the node accepts if that is larger.
    public var maximumReplyBytes: Int
    /// TLS to the server (`rediss://`), or nil for plain TCP. Not for `.unixSocket` endpoints.
    public var tls: RedisTLSOptions?

    public init(
        endpoint: Endpoint,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeoutMilliseconds: Int = 2000,
        commandTimeoutMilliseconds: Int = 5000,
        maximumReplyBytes: Int = RedisConfiguration.defaultMaximumReplyBytes,
        tls: RedisTLSOptions? = nil
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeoutMilliseconds = connectTimeoutMilliseconds
        self.commandTimeoutMilliseconds = commandTimeoutMilliseconds
        self.maximumReplyBytes = maximumReplyBytes
        self.tls = tls
    }

    /// 64 MiB.
    public static let defaultMaximumReplyBytes = 64 * 1024 * 1024

    /// `maximumReplyBytes`, at least 1 KiB (room for any confirmation or error line).
    var effectiveMaximumReplyBytes: Int { max(1024, maximumReplyBytes) }

    /// Parses a Redis URL.
    public init(url: String) throws(RedisConfigurationError) {
        let (scheme, remainder) = try Self.splitScheme(url)
        switch scheme {
        case "redis":
            self = try Self.parseTCP(remainder, url: url, secure: false)
        case "rediss":
            self = try Self.parseTCP(remainder, url: url, secure: true)
        case "unix":
            self = try Self.parseUnix(remainder, url: url)
        case "redis+sentinel":
            self = try Self.parseSentinel(remainder, url: url, tls: false)
        case "rediss+sentinel":
            self = try Self.parseSentinel(remainder, url: url, tls: true)
        case "redis+cluster":
            self = try Self.parseCluster(remainder, url: url, tls: false)
        case "rediss+cluster":
            self = try Self.parseCluster(remainder, url: url, tls: true)
        default:
            throw RedisConfigurationError(
                url: url,
                reason: "unsupported scheme '\(scheme)'; use redis://, rediss://, unix://, redis[s]+sentinel:// or redis[s]+cluster://"
            )
        }
    }

    public var description: String {
        let auth = password == nil ? "" : "\(username ?? ""):***@"
        switch endpoint {
        case .tcp(let host, let port):
            let shownHost = host.contains(":") ? "[\(host)]" : host
            let scheme = tls == nil ? "redis" : "rediss"
            return "\(scheme)://\(auth)\(shownHost):\(port)/\(database)\(tls?.queryText ?? "")"
        case .unixSocket(let path):
            return "unix://\(auth)\(path)?db=\(database)"
        case .sentinel(let sentinel):
            return Self.sentinelDescription(sentinel, auth: auth, database: database, tls: tls)
        case .cluster(let cluster):
            return Self.clusterDescription(cluster, auth: auth, tls: tls)
        }
    }

    private static func splitScheme(_ url: String) throws(RedisConfigurationError) -> (String, Substring) {
        // Only a plain scheme is quoted back: what precedes `://` may be credentials (`:pw@h://…`).
        guard let range = RedisConfigurationError.plainSchemeSeparator(in: url) else {
            throw RedisConfigurationError(url: url, reason: "expected a URL such as redis://host:6379/0")
        }
        return (url[..<range.lowerBound].lowercased(), url[range.upperBound...])
    }

    /// Splits `[[user]:password@]rest` into credentials and the rest.
    static func splitCredentials(
        _ text: Substring,
        url: String
    ) throws(RedisConfigurationError) -> (String?, String?, Substring) {
        guard let at = text.lastIndex(of: "@") else { return (nil, nil, text) }
        let userInfo = text[..<at]
        let rest = text[text.index(after: at)...]
        var username: String?
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            username = try percentDecoded(userInfo[..<colon], url: url)
            password = try percentDecoded(userInfo[userInfo.index(after: colon)...], url: url)
        } else {
            // redis-py reads a lone user-info part as the password.
            password = try percentDecoded(userInfo, url: url)
        }
        if username?.isEmpty == true { username = nil }
        if password?.isEmpty == true { password = nil }
        return (username, password, rest)
    }

    /// Splits off `?query`, reads `db=N` from it and keeps the other `name=value` pairs
    /// (values percent-decoded) for `tlsOptions(from:secure:url:)`.
    static func splitQuery(
        _ text: Substring,
        url: String
    ) throws(RedisConfigurationError) -> (Substring, Int?, [(name: String, value: String)]) {
        guard let question = text.firstIndex(of: "?") else { return (text, nil, []) }
        var database: Int?
        var parameters: [(name: String, value: String)] = []
        for (key, value) in queryPairs(text[text.index(after: question)...]) {
            if key == "db" {
                if !value.isEmpty { database = try parseDatabase(value, url: url) }
            } else {
                parameters.append((String(key), try percentDecoded(value, url: url, in: "a query value")))
            }
        }
        return (text[..<question], database, parameters)
    }

    /// The `name=value` pairs of a query, split at `&` and at each pair's first `=` (a pair
    /// without one has an empty value); values are not decoded.
    static func queryPairs(_ query: Substring) -> [(key: Substring, value: Substring)] {
        query.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (parts[0], parts.count == 2 ? parts[1] : "")
        }
    }

    /// `?a=b&…` for a description: the TLS options' parameters, then `extra`; empty for none.
    static func describedQuery(tls: RedisTLSOptions?, extra: [String]) -> String {
        let parameters = (tls.map { $0.queryText.dropFirst().split(separator: "&").map(String.init) } ?? []) + extra
        return parameters.isEmpty ? "" : "?" + parameters.joined(separator: "&")
    }

    static func parseDatabase(_ text: Substring, url: String) throws(RedisConfigurationError) -> Int {
        guard let database = Int(text), database >= 0 else {
            throw RedisConfigurationError(url: url, reason: "database must be a non-negative integer, got \(RedisConfigurationError.shown(text, of: url))")
        }
        return database
    }

    private static func parseTCP(
        _ remainder: Substring,
        url: String,
        secure: Bool
    ) throws(RedisConfigurationError) -> RedisConfiguration {
        let (username, password, afterCredentials) = try splitCredentials(remainder, url: url)
        let (withoutQuery, queryDatabase, parameters) = try splitQuery(afterCredentials, url: url)
        let tls = try tlsOptions(from: parameters, secure: secure, url: url)
        var hostPort = withoutQuery
        var database = queryDatabase ?? 0
        if let slash = withoutQuery.firstIndex(of: "/") {
            hostPort = withoutQuery[..<slash]
            let path = withoutQuery[withoutQuery.index(after: slash)...]
            if !path.isEmpty, queryDatabase == nil {
                database = try parseDatabase(path, url: url)
            }
        }
        let (parsedHost, port) = try splitHostPort(hostPort, defaultPort: 6379, url: url)
        let host = parsedHost.isEmpty ? "127.0.0.1" : String(parsedHost)
        return RedisConfiguration(
            endpoint: .tcp(host: host, port: port),
            username: username,
            password: password,
            database: database,
            tls: tls
        )
    }

    static func parsePort(_ text: Substring, url: String) throws(RedisConfigurationError) -> Int {
        guard let port = Int(text), (1...65535).contains(port) else {
            throw RedisConfigurationError(url: url, reason: "port must be 1...65535, got \(RedisConfigurationError.shown(text, of: url))")
        }
        return port
    }

    private static func parseUnix(_ remainder: Substring, url: String) throws(RedisConfigurationError) -> RedisConfiguration {
        let (username, password, afterCredentials) = try splitCredentials(remainder, url: url)
        let (path, queryDatabase, parameters) = try splitQuery(afterCredentials, url: url)
        _ = try tlsOptions(from: parameters, secure: false, url: url)
        guard path.hasPrefix("/") else {
            throw RedisConfigurationError(url: url, reason: "a unix socket URL needs an absolute path: unix:///path/to/redis.sock")
        }
        return RedisConfiguration(
            endpoint: .unixSocket(path: String(path)),
            username: username,
            password: password,
            database: queryDatabase ?? 0
        )
    }

    static func percentDecoded(
        _ text: Substring,
        url: String,
        in part: String = "credentials"
    ) throws(RedisConfigurationError) -> String {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            guard byte == UInt8(ascii: "%") else {
                bytes.append(byte)
                continue
            }
            guard let high = iterator.next(), let low = iterator.next(),
                let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
            else {
                throw RedisConfigurationError(url: url, reason: "bad percent-encoding in \(part)")
            }
            bytes.append(value)
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// A `REDIS_URL` that cannot be used, with the reason. The password is never included.
public struct RedisConfigurationError: Error, Hashable, CustomStringConvertible {
    public let reason: String
    let redactedURL: String

    init(url: String, reason: String) {
        self.reason = reason
        self.redactedURL = Self.redacted(url)
    }

    public var description: String { "invalid Redis URL '\(redactedURL)': \(reason)" }
}
