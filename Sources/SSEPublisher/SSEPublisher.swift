import Logging
import SSERedis
import SSEWire

/// Publishes events to SSE streams through Redis: the Swift counterpart of Flask-SSE's
/// `sse.publish(data, type=None, id=None, retry=None, channel="sse")`.
///
/// It writes exactly the bytes Flask-SSE writes (CONTRACT.md section 1), so any broker node,
/// and any Flask-SSE stream, delivers what it publishes. It needs no running server: only
/// Redis. Commands are pipelined on a dedicated thread, so callers never block.
///
/// ```swift
/// let publisher = try SSEPublisher(redisURL: "redis://127.0.0.1:6379/0")
/// let receivers = try await publisher.publish(data: ["message": "Hello!"], type: "greeting")
/// ```
public final class SSEPublisher: Sendable {
    /// The default channel, as in Flask-SSE.
    public static let defaultChannel = "sse"

    private let client: RedisCommandClient

    /// Creates a publisher for the Redis at `redis`.
    public init(redis: RedisConfiguration, logger: Logger = Logger(label: "sse.publisher")) {
        self.client = RedisCommandClient(redis: redis, logger: logger)
    }

    /// Creates a publisher from a Redis URL (`redis://…` or `unix://…`).
    public convenience init(redisURL: String, logger: Logger = Logger(label: "sse.publisher")) throws(RedisConfigurationError) {
        self.init(redis: try RedisConfiguration(url: redisURL), logger: logger)
    }

    /// Publishes one event and returns how many Redis subscribers received it (broker nodes
    /// and Flask-SSE streams: one per node, not per browser).
    ///
    /// Falsy `type`, `id` and `retry` (`""`, `0`, `nil`, …) are left out, as Flask-SSE does.
    @discardableResult
    public func publish(
        data: JSONValue,
        type: JSONValue? = nil,
        id: JSONValue? = nil,
        retry: JSONValue? = nil,
        channel: String = SSEPublisher.defaultChannel
    ) async throws(RedisError) -> Int {
        try await publish(FlaskSSEMessage(data: data, type: type, id: id, retry: retry), channel: channel)
    }

    /// Publishes a prepared message.
    @discardableResult
    public func publish(_ message: FlaskSSEMessage, channel: String = SSEPublisher.defaultChannel) async throws(RedisError) -> Int {
        let result: Result<Int, RedisError> = await withCheckedContinuation { continuation in
            publish(message, channel: channel) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Publishes a prepared message and reports the receiver count through `completion`
    /// (called on the Redis command thread), for callers that are not `async`.
    public func publish(
        _ message: FlaskSSEMessage,
        channel: String,
        completion: @escaping @Sendable (Result<Int, RedisError>) -> Void
    ) {
        client.send([Array("PUBLISH".utf8), Array(channel.utf8), message.redisPayload]) { result in
            completion(result.flatMap(Self.receivers))
        }
    }

    /// Whether the last attempt to reach Redis succeeded.
    public var isRedisAvailable: Bool { client.isAvailable }

    /// Stops the publisher's thread; pending publishes fail with `.shutdown`.
    public func shutdown() {
        client.shutdown()
    }

    private static func receivers(_ reply: RedisReply) -> Result<Int, RedisError> {
        switch reply {
        case .integer(let count): return .success(Int(count))
        case .error(let message): return .failure(RedisError(.serverError, message))
        default: return .failure(RedisError(.serverError, "unexpected reply to PUBLISH: \(reply)"))
        }
    }
}
