import SSEHistory
import SSERedis

/// What the stream core needs, whichever host serves its streams: the standalone node
/// (`BrokerConfiguration.streamCore`) or an app that mounts the broker.
public struct StreamCoreConfiguration: Sendable {
    /// Where Redis is.
    public var redis: RedisConfiguration
    /// Subscriber reconnect and liveness tuning.
    public var subscriber: RedisSubscriber.Configuration
    /// Event history for `Last-Event-ID` resume; `.disabled` for Flask-SSE's behaviour.
    public var history: HistoryConfiguration
    /// Seconds between heartbeat comments on every stream; 0 turns them off.
    public var heartbeatSeconds: Double
    /// When set, a `retry:` line with this many milliseconds opens every stream.
    public var retryMilliseconds: Int?
    /// Bytes that may wait unsent for one client before it is cut off as too slow.
    public var clientBufferBytes: Int
    /// Largest Redis payload delivered; larger ones are dropped and logged.
    public var maxPayloadBytes: Int
    /// When set, every stream opens with a `: node NAME` comment (the demo shows it).
    public var announcedNodeName: String?
    /// Least milliseconds between two flushes of live events on one event loop: events that come
    /// sooner after the last flush leave together once it has passed (one `writev` per client
    /// instead of one per event); events further apart leave at once. 0 flushes every event.
    public var flushIntervalMilliseconds: Double = 5
    /// Deliveries that may wait for one event loop before its clients are caught up from
    /// history instead. Not a flag: tests lower it to stall a loop cheaply.
    package var maxQueuedDeliveriesPerLoop = 100_000
    /// Bytes that may wait for one event loop before the same catch-up; nil: the larger of
    /// 64 MiB and 16 payloads. Not a flag: a deliveries count alone depends on how Redis's
    /// replies were batched into reads, a byte count does not.
    package var maxQueuedBytesPerLoop: Int?

    /// The defaults are the standalone node's.
    public init(
        redis: RedisConfiguration,
        subscriber: RedisSubscriber.Configuration = .init(),
        history: HistoryConfiguration = .default,
        heartbeatSeconds: Double = 15,
        retryMilliseconds: Int? = nil,
        clientBufferBytes: Int = 256 * 1024,
        maxPayloadBytes: Int = 256 * 1024,
        announcedNodeName: String? = nil
    ) {
        self.redis = redis
        self.subscriber = subscriber
        self.history = history
        self.heartbeatSeconds = heartbeatSeconds
        self.retryMilliseconds = retryMilliseconds
        self.clientBufferBytes = clientBufferBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.announcedNodeName = announcedNodeName
    }
}
