import ArgumentParser
import Dispatch
import Logging
import NIOCore
import SSERedis
import SSEServer

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
            every subscriber on every node.
            """
    )

    @Option(help: "Address to listen on. (env: HOST, default: 127.0.0.1)")
    var host: String?

    @Option(help: "Port to listen on. (env: PORT, default: 5000)")
    var port: Int?

    @Option(name: .customLong("redis-url"), help: "Redis URL: redis://[[user]:password@]host[:port][/db] or unix:///path.sock[?db=N]. (env: SSE_REDIS_URL, else REDIS_URL; default: redis://127.0.0.1:6379/0)")
    var redisURL: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. (env: LOG_LEVEL, default: info)")
    var logLevel: String?

    @Option(help: "Seconds between heartbeat comments on every stream; 0 turns them off. (env: SSE_HEARTBEAT, default: 15)")
    var heartbeat: Double?

    @Option(help: "Event loop threads. (env: SSE_THREADS, default: number of cores)")
    var threads: Int?

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

        let urlText = redisURL ?? environment["SSE_REDIS_URL"] ?? environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
        let redis: RedisConfiguration
        do {
            redis = try RedisConfiguration(url: urlText)
        } catch {
            throw ValidationError(error.description)
        }
        let configuration = BrokerConfiguration(
            host: host ?? environment["HOST"] ?? "127.0.0.1",
            port: try port ?? environment.integer("PORT") ?? 5000,
            redis: redis,
            threads: try threads ?? environment.integer("SSE_THREADS") ?? System.coreCount,
            heartbeatSeconds: try heartbeat ?? environment.double("SSE_HEARTBEAT") ?? 15
        )
        guard (0...65535).contains(configuration.port) else { throw ValidationError("port must be 0...65535") }
        guard configuration.heartbeatSeconds >= 0 else { throw ValidationError("heartbeat must be >= 0") }

        let server = try BrokerServer(configuration: configuration, logger: logger)
        try await server.start()
        let signals = SignalWatcher(signals: [SIGTERM, SIGINT]) {
            logger.info("signal received, draining")
            Task { await server.shutdown() }
        }
        await server.waitUntilClosed()
        await server.shutdown()
        withExtendedLifetime(signals) {}
        logger.info("sse-broker stopped")
    }
}

/// Reads configuration from the process environment.
struct Environment {
    subscript(name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        let value = String(cString: raw)
        return value.isEmpty ? nil : value
    }

    func integer(_ name: String) throws -> Int? {
        guard let text = self[name] else { return nil }
        guard let value = Int(text) else { throw ValidationError("\(name) must be an integer, got '\(text)'") }
        return value
    }

    func double(_ name: String) throws -> Double? {
        guard let text = self[name] else { return nil }
        guard let value = Double(text) else { throw ValidationError("\(name) must be a number, got '\(text)'") }
        return value
    }
}

