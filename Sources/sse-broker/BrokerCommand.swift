import ArgumentParser
import Logging
import NIOCore
import Foundation
import SSEAuth
import SSEDemo
import SSEHistory
import SSERedis
import SSEServer
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `sse-broker`: serves Server-Sent Events from Redis pub/sub, a drop-in for Flask-SSE.
///
/// Every option can also come from the environment (named in `--help`); a flag wins over the
/// environment, the environment over the default.
@main
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sse-broker",
        abstract: "A Redis-backed Server-Sent Events broker, wire-compatible with Flask-SSE.",
        discussion: """
            Browsers connect with EventSource to GET /stream?channel=NAME; events published on the
            Redis channel NAME (redis-cli PUBLISH, Flask-SSE's sse.publish, POST /publish) reach
            every subscriber on every node. SIGTERM or SIGINT drains the node and exits 0.
            """
    )

    @Option(help: "Address to listen on. (env: HOST, default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on. (env: PORT, default: 5000)")
    var port: Int?

    @Option(name: .customLong("redis-url"), help: "Redis URL: redis://[[user]:password@]host[:port][/db], rediss://… (TLS, redis-py's ssl_* parameters), unix:///path.sock[?db=N] or redis[s]+sentinel://[[user]:password@]host[:26379],host2[:port]/mastername[/db], or a Redis Cluster: redis[s]+cluster://[[user]:password@]host[:6379],host2[:port]. (env: SSE_REDIS_URL, else REDIS_URL; default: redis://127.0.0.1:6379/0)")
    var redisURL: String?

    @Option(name: .customLong("redis-sentinel-password"), help: "Password for the sentinels of a redis+sentinel:// URL (its user-info authenticates to the master); instead of sentinel_password= in the URL. (env: SSE_REDIS_SENTINEL_PASSWORD)")
    var redisSentinelPassword: String?

    @Option(name: .customLong("redis-tls-ca"), help: ArgumentHelp("PEM file of CA certificates trusted for Redis's certificate, besides the system's (ssl_ca_certs); needs a rediss:// URL. (env: SSE_REDIS_TLS_CA)", valueName: "file"))
    var redisTLSCA: String?

    @Option(name: .customLong("redis-tls-cert"), help: ArgumentHelp("PEM client certificate for Redis (ssl_certfile), with --redis-tls-key. (env: SSE_REDIS_TLS_CERT)", valueName: "file"))
    var redisTLSCert: String?

    @Option(name: .customLong("redis-tls-key"), help: ArgumentHelp("PEM private key of --redis-tls-cert (ssl_keyfile). (env: SSE_REDIS_TLS_KEY)", valueName: "file"))
    var redisTLSKey: String?

    @Flag(name: .customLong("redis-tls-insecure"), help: "Do not check Redis's certificate at all (ssl_cert_reqs=none): encrypted, not authenticated. (env: SSE_REDIS_TLS_INSECURE=1)")
    var redisTLSInsecure = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. (env: LOG_LEVEL, default: info)")
    var logLevel: String?

    @Option(help: "Seconds between heartbeat comments on every stream; 0 turns them off. (env: SSE_HEARTBEAT, default: 15)")
    var heartbeat: Double?

    @Option(name: .customLong("retry-ms"), help: "Send 'retry: N' first on every stream, setting the browser's reconnect delay. (env: SSE_RETRY_MS, default: off)")
    var retryMilliseconds: Int?

    @Option(name: .customLong("client-buffer"), help: "Bytes that may wait unsent for one client before it is cut off as too slow. (env: SSE_CLIENT_BUFFER, default: 262144)")
    var clientBuffer: Int?

    @Option(name: .customLong("flush-interval-ms"), help: "Least milliseconds between two flushes of live events on one event loop, while its events come closer together than this on average; events closer together then leave in one write per client, and at lower rates every event leaves at once. 0 flushes every event. (env: SSE_FLUSH_INTERVAL_MS, default: 5)")
    var flushIntervalMilliseconds: Double?

    @Option(name: .customLong("max-payload"), help: "Largest POST /publish body and largest Redis payload delivered, in bytes (413 beyond). (env: SSE_MAX_PAYLOAD, default: 262144)")
    var maxPayload: Int?

    @Option(name: .customLong("max-head-bytes"), help: "Largest request head (request line and headers), in bytes (431 beyond). (env: SSE_MAX_HEAD_BYTES, default: 32768)")
    var maxHeadBytes: Int?

    @Option(name: .customLong("max-connections"), help: "Open connections beyond which new ones get 503. (env: SSE_MAX_CONNECTIONS, default: the open-file limit less 128)")
    var maxConnections: Int?

    @Option(name: .customLong("drain-timeout"), help: "Seconds a graceful shutdown may take before connections are closed hard. (env: SSE_DRAIN_TIMEOUT, default: 10)")
    var drainTimeout: Double?

    @Option(name: .customLong("request-timeout"), help: "Seconds a request (head and body) may take to arrive, from its first byte or from accept; beyond it, 408 and close. Streams never time out. (env: SSE_REQUEST_TIMEOUT, default: 10)")
    var requestTimeout: Double?

    @Option(name: .customLong("idle-timeout"), help: "Seconds a keep-alive connection may stay idle between requests before it is closed. (env: SSE_IDLE_TIMEOUT, default: 60)")
    var idleTimeout: Double?

    @Option(name: .customLong("redis-probe-interval"), help: "Seconds between delivery probes: the node PUBLISHes a random token on its own probe channel and expects it back on its subscription; 0 turns the probe off. (env: SSE_REDIS_PROBE_INTERVAL, default: 5)")
    var redisProbeInterval: Double?

    @Option(name: .customLong("redis-probe-timeout"), help: "Seconds a probe may take to come back before the subscription counts as silent and is rebuilt (/readyz 503 meanwhile); 0 turns the probe off. (env: SSE_REDIS_PROBE_TIMEOUT, default: 3)")
    var redisProbeTimeout: Double?

    @Option(name: .customLong("max-channels"), help: "Most channels one stream may name (400 beyond). (env: SSE_MAX_CHANNELS, default: 64)")
    var maxChannels: Int?

    @Option(help: "Events kept per channel in Redis Streams for Last-Event-ID resume; 0 turns history off. (env: SSE_HISTORY, default: 1000)")
    var history: Int?

    @Option(name: .customLong("history-ttl"), help: "Seconds a channel's history lives after its last publish. (env: SSE_HISTORY_TTL, default: 3600)")
    var historyTTL: Int?

    @Option(name: .customLong("jwt-secret"), help: "HS256 secret: streams need a JWT granting their channels (sse.subscribe), publishing one granting the channel (sse.publish). (env: SSE_JWT_SECRET, default: auth off)")
    var jwtSecret: String?

    @Option(name: .customLong("jwt-public-key"), help: "PEM file of an RSA (RS256) or P-256 (ES256) public key, instead of --jwt-secret. (env: SSE_JWT_PUBLIC_KEY)")
    var jwtPublicKey: String?

    @Option(name: .customLong("jwt-cookie"), help: "Cookie that may carry the token. (env: SSE_JWT_COOKIE, default: sse_token)")
    var jwtCookie: String?

    @Option(name: .customLong("publish-key"), help: "Static bearer token allowed to publish on every channel. (env: SSE_PUBLISH_KEY)")
    var publishKey: String?

    @Flag(name: .customLong("allow-open-publish"), help: "Allow POST /publish without credentials from any client, not only from loopback ones (an Origin outside --cors-origin is still refused). (env: SSE_ALLOW_OPEN_PUBLISH=1)")
    var allowOpenPublish = false

    @Option(name: .customLong("cors-origin"), help: "Origin allowed cross-origin; repeat it, or * for any (no credentials then). (env: SSE_CORS_ORIGINS, comma-separated)")
    var corsOrigins: [String] = []

    @Flag(help: "Serve the demo page at / and publish its live data (clock, status, task). (env: SSE_DEMO=1)")
    var demo = false

    @Option(name: .customLong("node-name"), help: "This node's name, shown by the demo page. (env: SSE_NODE_NAME, default: HOSTNAME:PORT)")
    var nodeName: String?

    @Option(help: "Event loop threads. (env: SSE_THREADS, default: number of cores)")
    var threads: Int?

    @Option(name: .customLong("tls-cert"), help: ArgumentHelp("PEM certificate chain (leaf first) to serve HTTPS with, HTTP/2 offered by ALPN; with --tls-key. Reloaded on SIGHUP and when the file changes. (env: SSE_TLS_CERT, default: cleartext)", valueName: "file"))
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: ArgumentHelp("PEM private key of --tls-cert. (env: SSE_TLS_KEY)", valueName: "file"))
    var tlsKey: String?

    @Option(name: .customLong("tls-handshake-timeout"), help: "Seconds a TLS handshake may take before the connection is closed. (env: SSE_TLS_HANDSHAKE_TIMEOUT, default: 10)")
    var tlsHandshakeTimeout: Double?

    @Option(name: .customLong("tls-reload-check"), help: "Seconds between checks of --tls-cert and --tls-key for changes (loaded for new connections, as SIGHUP does); 0 reloads on SIGHUP only. (env: SSE_TLS_RELOAD_CHECK, default: 5)")
    var tlsReloadCheck: Double?

    @Flag(name: .customLong("no-http2"), help: "With TLS, offer HTTP/1.1 only by ALPN. (env: SSE_HTTP2=0)")
    var noHTTP2 = false

    @Flag(name: .customLong("h2c"), help: "Also accept HTTP/2 with prior knowledge on a cleartext listener (for proxies that speak HTTP/2 to their upstreams); HTTP/1.1 stays served. (env: SSE_H2C=1)")
    var h2c = false

    @Option(name: .customLong("h2-max-streams"), help: "Streams one HTTP/2 connection may have open at once (each EventSource holds one). (env: SSE_H2_MAX_STREAMS, default: 100, at most 1000)")
    var h2MaxStreams: Int?

    func run() async throws {
        let environment = Environment()
        let levelText = logLevel ?? environment["LOG_LEVEL"] ?? "info"
        guard let level = Logger.Level(rawValue: levelText.lowercased()) else {
            throw ValidationError("unknown log level '\(levelText)'")
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "sse-broker")
        let configuration = try makeConfiguration(environment)
        if configuration.redis.tls?.verification == RedisTLSOptions.Verification.none {
            logger.warning("Redis TLS certificate checks are off (ssl_cert_reqs=none / --redis-tls-insecure): the connection is encrypted, but any server is accepted")
        }
        let server = try await BrokerServer(
            configuration: configuration,
            logger: logger,
            extensionFactory: configuration.demo
                ? DemoRoutes.factory(redis: configuration.redis, nodeName: configuration.nodeName, maxTasks: configuration.maxDemoTasks)
                : nil
        )
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server)],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        // SIGHUP reloads the TLS certificate and key (open connections keep theirs); without
        // TLS it is trapped all the same, so it never ends the node without a drain.
        let reloads = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                if configuration.tls == nil {
                    logger.info("SIGHUP: nothing to reload (no --tls-cert)")
                } else {
                    _ = try? server.reloadTLS()
                }
            }
        }
        defer { reloads.cancel() }
        try await group.run()
        logger.info("sse-broker stopped")
    }

    private func makeConfiguration(_ environment: Environment) throws -> BrokerConfiguration {
        let urlText = redisURL ?? environment["SSE_REDIS_URL"] ?? environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
        var redis: RedisConfiguration
        do {
            redis = try RedisConfiguration(url: urlText)
        } catch {
            throw ValidationError(error.description)
        }
        if let sentinelPassword = redisSentinelPassword ?? environment["SSE_REDIS_SENTINEL_PASSWORD"] {
            guard case .sentinel(var endpoint) = redis.endpoint else {
                throw ValidationError("--redis-sentinel-password needs a redis+sentinel:// URL")
            }
            endpoint.password = sentinelPassword
            redis.endpoint = .sentinel(endpoint)
        }
        redis.tls = try mergeTLSOptions(into: redis.tls, environment)
        do {
            try redis.checkTLSFiles()
        } catch {
            throw ValidationError("Redis \(error.message)")
        }
        var configuration = BrokerConfiguration(redis: redis)
        configuration.host = host ?? environment["HOST"] ?? configuration.host
        configuration.port = try port ?? environment.value("PORT") ?? configuration.port
        let threadCount = try threads ?? environment.value("SSE_THREADS") ?? configuration.threads
        try Self.check(threadCount, "threads", 1...1024)
        configuration.threads = threadCount
        configuration.heartbeatSeconds = try heartbeat ?? environment.value("SSE_HEARTBEAT") ?? configuration.heartbeatSeconds
        configuration.retryMilliseconds = try retryMilliseconds ?? environment.value("SSE_RETRY_MS")
        configuration.clientBufferBytes = try clientBuffer ?? environment.value("SSE_CLIENT_BUFFER") ?? configuration.clientBufferBytes
        configuration.maxPayloadBytes = try maxPayload ?? environment.value("SSE_MAX_PAYLOAD") ?? configuration.maxPayloadBytes
        configuration.flushIntervalMilliseconds = try flushIntervalMilliseconds ?? environment.value("SSE_FLUSH_INTERVAL_MS") ?? configuration.flushIntervalMilliseconds
        configuration.maxHeadBytes = try maxHeadBytes ?? environment.value("SSE_MAX_HEAD_BYTES") ?? configuration.maxHeadBytes
        configuration.maxConnections = try maxConnections ?? environment.value("SSE_MAX_CONNECTIONS") ?? configuration.maxConnections
        configuration.drainTimeoutSeconds = try drainTimeout ?? environment.value("SSE_DRAIN_TIMEOUT") ?? configuration.drainTimeoutSeconds

        configuration.requestTimeoutSeconds = try requestTimeout ?? environment.value("SSE_REQUEST_TIMEOUT") ?? configuration.requestTimeoutSeconds
        configuration.idleTimeoutSeconds = try idleTimeout ?? environment.value("SSE_IDLE_TIMEOUT") ?? configuration.idleTimeoutSeconds
        configuration.maxChannelsPerStream = try maxChannels ?? environment.value("SSE_MAX_CHANNELS") ?? configuration.maxChannelsPerStream
        configuration.subscriber.probeIntervalMilliseconds = try Self.probeMilliseconds(
            redisProbeInterval ?? environment.value("SSE_REDIS_PROBE_INTERVAL"), "redis-probe-interval", default: configuration.subscriber.probeIntervalMilliseconds, maximum: 3600
        )
        configuration.subscriber.probeDeadlineMilliseconds = try Self.probeMilliseconds(
            redisProbeTimeout ?? environment.value("SSE_REDIS_PROBE_TIMEOUT"), "redis-probe-timeout", default: configuration.subscriber.probeDeadlineMilliseconds, maximum: 600
        )

        let historyLength = try history ?? environment.value("SSE_HISTORY") ?? configuration.history.length
        let historyTTL = try self.historyTTL ?? environment.value("SSE_HISTORY_TTL") ?? configuration.history.ttlSeconds
        try Self.check(historyLength, "history", 0...10_000_000)
        try Self.check(historyTTL, "history-ttl", 1...(10 * 365 * 86_400), unit: " seconds")
        configuration.history = HistoryConfiguration(length: historyLength, ttlSeconds: historyTTL)

        configuration.access = try makeAccess(environment)
        configuration.demo = demo || environment["SSE_DEMO"] == "1"
        configuration.nodeName = nodeName ?? environment["SSE_NODE_NAME"] ?? "\(BrokerConfiguration.hostname()):\(configuration.port)"
        configuration.corsOrigins = corsOrigins.isEmpty
            ? (environment["SSE_CORS_ORIGINS"] ?? "").split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            : corsOrigins

        try Self.check(configuration.port, "port", 0...65535)
        try Self.check(configuration.heartbeatSeconds, "heartbeat", 0...86_400, unit: " seconds")
        if let retry = configuration.retryMilliseconds { try Self.check(retry, "retry-ms", 0...86_400_000) }
        try Self.check(configuration.clientBufferBytes, "client-buffer", 1024...(1 << 30), unit: " bytes")
        try Self.check(configuration.maxPayloadBytes, "max-payload", 1...(256 << 20), unit: " bytes")
        try Self.check(configuration.flushIntervalMilliseconds, "flush-interval-ms", 0...1000, unit: " ms")
        try Self.check(configuration.maxHeadBytes, "max-head-bytes", 1024...(1 << 20), unit: " bytes")
        try Self.check(configuration.maxConnections, "max-connections", 1...10_000_000)
        try Self.check(configuration.drainTimeoutSeconds, "drain-timeout", 0...86_400, unit: " seconds")
        try Self.check(configuration.requestTimeoutSeconds, "request-timeout", 0.01...86_400, unit: " seconds")
        try Self.check(configuration.idleTimeoutSeconds, "idle-timeout", 0.01...86_400, unit: " seconds")
        try Self.check(configuration.maxChannelsPerStream, "max-channels", 1...10_000)
        try makeHTTP(into: &configuration, environment)
        return configuration
    }
}

extension BrokerCommand {
    /// TLS and HTTP/2 on the node's listener.
    private func makeHTTP(into configuration: inout BrokerConfiguration, _ environment: Environment) throws {
        let certificate = tlsCert ?? environment["SSE_TLS_CERT"]
        let key = tlsKey ?? environment["SSE_TLS_KEY"]
        switch (certificate, key) {
        case (nil, nil):
            configuration.tls = nil
        case (let certificate?, let key?):
            var tls = NodeTLSConfiguration(certificateChainFile: certificate, privateKeyFile: key)
            tls.handshakeTimeoutSeconds = try tlsHandshakeTimeout ?? environment.value("SSE_TLS_HANDSHAKE_TIMEOUT") ?? tls.handshakeTimeoutSeconds
            try Self.check(tls.handshakeTimeoutSeconds, "tls-handshake-timeout", 0.01...3600, unit: " seconds")
            tls.reloadCheckSeconds = try tlsReloadCheck ?? environment.value("SSE_TLS_RELOAD_CHECK") ?? tls.reloadCheckSeconds
            try Self.check(tls.reloadCheckSeconds, "tls-reload-check", 0...86_400, unit: " seconds")
            configuration.tls = tls
        case (nil, _?):
            throw ValidationError("--tls-key needs --tls-cert")
        case (_?, nil):
            throw ValidationError("--tls-cert needs --tls-key")
        }
        configuration.http2.isEnabled = !(noHTTP2 || environment["SSE_HTTP2"] == "0")
        configuration.http2.acceptsCleartext = h2c || environment["SSE_H2C"] == "1"
        let streams = try h2MaxStreams ?? environment.value("SSE_H2_MAX_STREAMS") ?? configuration.http2.maxConcurrentStreams
        try Self.check(streams, "h2-max-streams", 1...HTTP2Configuration.maxConcurrentStreamsLimit)
        configuration.http2.maxConcurrentStreams = streams
    }

    /// Refuses a value outside `range`, naming the option; NaN and infinities are outside every range.
    static func check<Value: Comparable>(_ value: Value, _ name: String, _ range: ClosedRange<Value>, unit: String = "") throws {
        guard range.contains(value) else {
            throw ValidationError("\(name) must be between \(range.lowerBound) and \(range.upperBound)\(unit), got \(value)")
        }
    }

    /// A probe setting in seconds as milliseconds: 0 (off), or between 0.05 and `maximum` seconds.
    static func probeMilliseconds(_ seconds: Double?, _ name: String, default milliseconds: Int, maximum: Double) throws -> Int {
        guard let seconds else { return milliseconds }
        try check(seconds, name, 0...maximum, unit: " seconds")
        guard seconds == 0 || seconds >= 0.05 else {
            throw ValidationError("\(name) must be 0 (off) or at least 0.05 seconds, got \(seconds)")
        }
        return Int((seconds * 1000).rounded())
    }

    /// The URL's TLS options with the `--redis-tls-*` flags (or their variables) laid over them.
    /// A flag on a plain URL is refused, as an `ssl_*` parameter there is.
    private func mergeTLSOptions(into fromURL: RedisTLSOptions?, _ environment: Environment) throws -> RedisTLSOptions? {
        let ca = redisTLSCA ?? environment["SSE_REDIS_TLS_CA"]
        let certificate = redisTLSCert ?? environment["SSE_REDIS_TLS_CERT"]
        let key = redisTLSKey ?? environment["SSE_REDIS_TLS_KEY"]
        let insecure = redisTLSInsecure || environment["SSE_REDIS_TLS_INSECURE"] == "1"
        guard ca != nil || certificate != nil || key != nil || insecure else { return fromURL }
        guard var options = fromURL else {
            throw ValidationError("--redis-tls-* options need a rediss:// Redis URL")
        }
        if let ca { options.caCertificatesFile = ca }
        if let certificate { options.certificateFile = certificate }
        if let key { options.privateKeyFile = key }
        if insecure { options.verification = .none }
        if let problem = options.problem {
            throw ValidationError("Redis TLS: \(problem)")
        }
        return options
    }

    private func makeAccess(_ environment: Environment) throws -> AccessConfiguration {
        var access = AccessConfiguration()
        let secret = jwtSecret ?? environment["SSE_JWT_SECRET"]
        let keyFile = jwtPublicKey ?? environment["SSE_JWT_PUBLIC_KEY"]
        if secret != nil, keyFile != nil {
            throw ValidationError("use either --jwt-secret or --jwt-public-key, not both")
        }
        if let secret {
            access.tokenKey = .hmacSecret(secret)
        } else if let keyFile {
            do {
                access.tokenKey = .publicKeyPEM(try String(contentsOfFile: keyFile, encoding: .utf8))
            } catch {
                throw ValidationError("cannot read --jwt-public-key \(keyFile): \(error.localizedDescription)")
            }
        }
        access.publishKey = publishKey ?? environment["SSE_PUBLISH_KEY"]
        access.cookieName = jwtCookie ?? environment["SSE_JWT_COOKIE"] ?? access.cookieName
        access.allowOpenPublish = allowOpenPublish || environment["SSE_ALLOW_OPEN_PUBLISH"] == "1"
        return access
    }
}

/// Reads configuration from the process environment; empty values count as unset.
struct Environment {
    subscript(name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    /// The variable parsed as `Value`; nil when unset, an error naming it when malformed.
    func value<Value: LosslessStringConvertible>(_ name: String, as type: Value.Type = Value.self) throws -> Value? {
        guard let text = self[name] else { return nil }
        guard let value = Value(text) else { throw ValidationError("\(name) must be a \(Value.self), got '\(text)'") }
        return value
    }
}
