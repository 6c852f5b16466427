import Logging
import SSEHistory
import SSERedis
import SSEWire

/// Publishes events to SSE streams through Redis: the Swift counterpart of Flask-SSE's
/// `sse.publish(data, type=None, id=None, retry=None, channel="sse")`.
///
/// It writes exactly the bytes Flask-SSE writes (CONTRACT.md section 1), so any broker node,
/// and any Flask-SSE stream, delivers what it publishes. It needs no running server: only
/// Redis. Commands are pipelined on a dedicated thread, so callers never block.
///
/// With history on (the default, as in the broker), each publish is one atomic Redis script
/// that appends the event to the channel's history and publishes it, and the event's id is the
/// position the broker assigns (`EPOCH-SEQUENCE`), so browsers can resume with `Last-Event-ID`
/// on any node. The `id` argument is then replaced; pass `history: .disabled` to publish
/// exactly as Flask-SSE does, your own id included.
///
/// ```swift
/// let publisher = try SSEPublisher(redisURL: "redis://127.0.0.1:6379/0")
/// let receipt = try await publisher.publish(data: ["message": "Hello!"], type: "greeting")
/// ```
public final class SSEPublisher: Sendable {
    /// The default channel, as in Flask-SSE.
    public static let defaultChannel = "sse"

    private let client: RedisCommandClient
    private let historySender: (any RedisCommandSending)?
    private let history: HistoryStore?

    /// Creates a publisher for the Redis at `redis`.
    ///
    /// `watermark` is the highest position this process has seen (a broker node shares its own):
    /// each publish passes it to Redis, so a counter that moved backwards (a restore, a promoted
    /// lagging replica) starts a new epoch instead of re-issuing ids clients already hold.
    public init(
        redis: RedisConfiguration,
        history: HistoryConfiguration = .default,
        logger: Logger = Logger(label: "sse.publisher"),
        watermark: HistoryWatermark = HistoryWatermark()
    ) {
        // On a Redis Cluster the one connection goes to the master of history's slot (classic
        // PUBLISH is served by every node).
        let client = RedisCommandClient(redis: HistoryConfiguration.commandEndpoint(redis), logger: logger)
        let history = history.adapted(to: redis)
        self.client = client
        // With positions per channel, history's commands go to each channel's master instead.
        let sender: any RedisCommandSending = history.isPerChannel ? HistoryStore.commandSender(redis: redis, history: history, logger: logger) : client
        self.historySender = history.isPerChannel ? sender : nil
        self.history = history.isEnabled ? HistoryStore(configuration: history, client: sender, watermark: watermark) : nil
    }

    /// Creates a publisher from a Redis URL (`redis://…`, `rediss://…`, `unix://…`, `redis+sentinel://…` or `redis+cluster://…`; on a cluster, history lives in one hash-tagged slot and the publisher talks to its master).
    public convenience init(
        redisURL: String,
        history: HistoryConfiguration = .default,
        logger: Logger = Logger(label: "sse.publisher")
    ) throws(RedisConfigurationError) {
        self.init(redis: try RedisConfiguration(url: redisURL), history: history, logger: logger)
    }

    /// Publishes one event.
    ///
    /// Falsy `type`, `id` and `retry` (`""`, `0`, `nil`, …) are left out, as Flask-SSE does.
    @discardableResult
    public func publish(
        data: JSONValue,
        type: JSONValue? = nil,
        id: JSONValue? = nil,
        retry: JSONValue? = nil,
        channel: String = SSEPublisher.defaultChannel
    ) async throws(RedisError) -> PublishReceipt {
        try await publish(FlaskSSEMessage(data: data, type: type, id: id, retry: retry), channel: channel)
    }

    /// Publishes a prepared message.
    @discardableResult
    public func publish(_ message: FlaskSSEMessage, channel: String = SSEPublisher.defaultChannel) async throws(RedisError) -> PublishReceipt {
        let result: Result<PublishReceipt, RedisError> = await withCheckedContinuation { continuation in
            publish(message, channel: channel) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Publishes a prepared message and reports through `completion` (called on the Redis
    /// command thread), for callers that are not `async`.
    public func publish(
        _ message: FlaskSSEMessage,
        channel: String,
        completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void
    ) {
        if let history {
            history.publish(message, channel: channel) { result in
                completion(result.map { PublishReceipt(receivers: $0.receivers, id: $0.position) })
            }
            return
        }
        client.send([Array("PUBLISH".utf8), Array(channel.utf8), message.redisPayload]) { result in
            completion(result.flatMap(Self.receipt))
        }
    }

    /// Publishes a batch of events on one channel, in order, and returns one receipt per event,
    /// in order.
    ///
    /// With history, the batch is one atomic script call (cut into calls of at most 256 events
    /// or 1 MiB), and its ids are consecutive positions in the batch's order. Without history the
    /// events are pipelined `PUBLISH`es, in order. An empty batch publishes nothing.
    @discardableResult
    public func publish(_ messages: [FlaskSSEMessage], channel: String = SSEPublisher.defaultChannel) async throws(RedisError) -> [PublishReceipt] {
        let result: Result<[PublishReceipt], RedisError> = await withCheckedContinuation { continuation in
            publish(messages, channel: channel) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Publishes a batch of events and reports through `completion` (called on the Redis command
    /// thread), for callers that are not `async`. See `publish(_:channel:)`.
    public func publish(
        _ messages: [FlaskSSEMessage],
        channel: String,
        completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void
    ) {
        if let history {
            history.publish(messages, channel: channel) { result in
                completion(result.map { published in published.map { PublishReceipt(receivers: $0.receivers, id: $0.position) } })
            }
            return
        }
        guard !messages.isEmpty else {
            completion(.success([]))
            return
        }
        let gathered = ReceiptGatherer(count: messages.count, completion: completion)
        for (index, message) in messages.enumerated() {
            client.send([Array("PUBLISH".utf8), Array(channel.utf8), message.redisPayload]) { result in
                gathered.record(result.flatMap(Self.receipt), at: index)
            }
        }
    }

    /// Whether the last attempt to reach Redis succeeded.
    public var isRedisAvailable: Bool { client.isAvailable }

    /// Stops the publisher's thread; pending publishes fail with `.shutdown`.
    public func shutdown() {
        client.shutdown()
        historySender?.shutdown()
    }

    private static func receipt(_ reply: RedisReply) -> Result<PublishReceipt, RedisError> {
        switch reply {
        case .integer(let count): return .success(PublishReceipt(receivers: Int(count), id: nil))
        case .error(let message): return .failure(RedisError(serverReply: message))
        default: return .failure(RedisError(.serverError, "unexpected reply to PUBLISH: \(reply)"))
        }
    }
}

/// What a publish did.
public struct PublishReceipt: Sendable, Hashable {
    /// Redis subscribers reached: one per broker node (or Flask-SSE stream), not per browser.
    public let receivers: Int
    /// The id the event got from history (`EPOCH-SEQUENCE`); nil when history is off.
    public let id: String?

    public init(receivers: Int, id: String?) {
        self.receivers = receivers
        self.id = id
    }
}
