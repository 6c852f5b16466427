import Logging
import Metrics
import NIOCore
import SSEHistory
import SSERedis
import SSEWire

/// The broker's stream side for one process, whichever host serves the HTTP: one Redis
/// subscription (on its own thread), the history store, fan-out to every event loop,
/// heartbeats. The standalone node and an app that mounts the broker each own one and open
/// their streams on it.
public final class StreamCore: Sendable {
    public let configuration: StreamCoreConfiguration
    package let hub: StreamHub
    /// Event history (nil when history is off).
    package let history: HistoryStore?
    package let metrics: BrokerMetrics
    package let group: any EventLoopGroup

    /// Sets up the core with streams on `group`'s loops; nothing connects to Redis until
    /// `start()`. Metrics go to `metricsFactory` (the process-wide one by default).
    public convenience init(
        configuration: StreamCoreConfiguration,
        group: any EventLoopGroup,
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        logger: Logger
    ) throws {
        try self.init(configuration: configuration, group: group, metrics: BrokerMetrics(factory: metricsFactory), logger: logger)
    }

    package init(configuration given: StreamCoreConfiguration, group: any EventLoopGroup, metrics: BrokerMetrics, logger: Logger) throws {
        // A message a node must deliver (up to the largest payload) must never exceed what the
        // Redis layer accepts in one reply, or it would drop the subscription instead.
        var configuration = given
        configuration.history = configuration.history.adapted(to: configuration.redis)
        configuration.redis.maximumReplyBytes = max(
            configuration.redis.maximumReplyBytes,
            2 * min(max(0, configuration.maxPayloadBytes), 1 << 40) + (1 << 20)
        )
        // Events with history by SPUBLISH: resumes wait for the shards, and a shard's gap is caught up.
        configuration.subscriber.historyOnShards = configuration.history.isEnabled && configuration.history.isPerChannel && configuration.history.publishesSharded
        self.configuration = configuration
        self.group = group
        self.metrics = metrics
        let subscriber = try RedisSubscriber(redis: configuration.redis, configuration: configuration.subscriber, logger: logger)
        // Replays read on their own connection, so a burst of resumes never queues behind publishes.
        let history = configuration.history.isEnabled
            ? HistoryStore(
                configuration: configuration.history,
                client: HistoryStore.commandSender(
                    redis: configuration.redis,
                    history: configuration.history,
                    logger: logger,
                    maximumPending: HistoryLane.maximumPending,
                    lanes: HistoryLane.count,
                    // A publish or a read told a slot moved: the subscription may be on the old master.
                    onMoved: { [subscriber] in subscriber.clusterSlotMoved() }
                )
            )
            : nil
        self.history = history
        self.hub = StreamHub(group: group, subscriber: subscriber, history: history, metrics: metrics, configuration: configuration, logger: logger)
    }

    /// The history watermark publishers in this process share with the core (ids they issue
    /// count as seen), or a fresh one without history.
    public var watermark: HistoryWatermark { history?.watermark ?? HistoryWatermark() }

    /// Starts the subscription thread and the heartbeats. Call once.
    public func start() {
        hub.subscriber.start(delegate: hub)
        if configuration.heartbeatSeconds > 0 {
            hub.startHeartbeats(every: .clamping(seconds: configuration.heartbeatSeconds))
        }
    }

    /// Stops heartbeats (a drain: streams are ending).
    public func stopHeartbeats() {
        hub.stopHeartbeats()
    }

    /// Stops the Redis threads and connections, once the subscription thread has exited
    /// (suspending meanwhile, never blocking a thread of the cooperative pool). Streams still
    /// open get nothing more.
    public func shutdown() async {
        hub.stopHeartbeats()
        await hub.subscriber.shutdown()
        history?.shutdown()
        hub.shutdown()
    }

    /// A stream of `channels` whose bytes go to `sink` (the body's opening first, then events
    /// as text: the host writes the head and frames the body), on `loop`, one of the core's
    /// loops; call on that loop, make the stream the sink's owner, then `start()` it.
    /// `resumeFrom` is the client's `Last-Event-ID`; `expiresAt` (Unix seconds) ends the
    /// stream then.
    package func makeStream(
        channels: [ChannelName],
        resumeFrom: String?,
        expiresAt: Double?,
        sink: any StreamSink,
        on loop: any EventLoop
    ) -> StreamClient {
        loop.preconditionInEventLoop()
        let client = StreamClient(
            channels: channels,
            resumeFrom: resumeFrom.flatMap { $0.isEmpty ? nil : $0 },
            expiresAt: expiresAt,
            opening: hub.preamble.opening,
            isChunked: false,
            clientBufferBytes: configuration.clientBufferBytes,
            hub: hub,
            sink: sink,
            eventLoop: loop
        )
        return client
    }

    /// Ends every open stream cleanly (a host's graceful shutdown), so each EventSource
    /// reconnects, through the load balancer, to another node.
    public func endAllStreams() {
        hub.finishAllStreams()
    }

    /// Whether the Redis subscription is up.
    public var isSubscriptionConnected: Bool { hub.subscriber.isConnected }

    /// False from a failed delivery probe until a probe succeeds on the rebuilt subscription.
    public var isSubscriptionDelivering: Bool { hub.subscriber.isDelivering }

    /// Open streams in this process.
    public var streamCount: Int { hub.connectedCount }

    /// Streams of `channel` in this process.
    public func streamCount(for channel: String) -> Int { hub.clientCount(for: channel) }
}

extension TimeAmount {
    /// `seconds` as a `TimeAmount`, without trapping: NaN, infinite or negative values (which the
    /// command line refuses, but a library caller may pass) become zero, huge ones about 30 years.
    package static func clamping(seconds: Double) -> TimeAmount {
        guard seconds.isFinite, seconds > 0 else { return .zero }
        return .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
    }
}
