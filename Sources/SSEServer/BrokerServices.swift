import Logging
import NIOCore
import SSEAuth
import SSEHistory
import SSEPublisher
import SSERedis
import SSEStreamCore

/// What every connection of a node shares: configuration, the stream hub, the publisher,
/// access control, CORS and metrics.
final class BrokerServices: Sendable {
    let configuration: BrokerConfiguration
    let hub: StreamHub
    let publisher: SSEPublisher
    let access: AccessController
    let cors: CORSPolicy
    /// Who may publish, from the request head and the peer.
    let publishPolicy: PublishPolicy
    let metrics: BrokerMetrics
    /// The registry `metrics` records into, for `GET /metrics`.
    let prometheus: PrometheusMetrics
    /// The demo's publisher, with `--demo`.
    let demo: DemoPublisher?
    let channels: ChannelNameValidator
    let logger: Logger

    init(
        configuration: BrokerConfiguration,
        hub: StreamHub,
        publisher: SSEPublisher,
        access: AccessController,
        prometheus: PrometheusMetrics,
        demo: DemoPublisher?,
        logger: Logger
    ) {
        self.configuration = configuration
        self.hub = hub
        self.publisher = publisher
        self.access = access
        self.cors = CORSPolicy(origins: configuration.corsOrigins)
        self.publishPolicy = PublishPolicy(cors: cors, cookieName: configuration.access.cookieName)
        self.metrics = prometheus.metrics
        self.prometheus = prometheus
        self.demo = demo
        self.channels = ChannelNameValidator(maximumBytes: configuration.maxChannelNameBytes, maximumChannels: configuration.maxChannelsPerStream)
        self.logger = logger
    }

    /// A node's shared parts for `configuration`, its streams on `group`'s loops (an
    /// `EmbeddedEventLoop` in tests and fuzz targets); nothing connects to Redis until the
    /// subscriber is started. Also returns the history store, which the node shuts down.
    /// Throws for an unusable key.
    static func make(configuration given: BrokerConfiguration, group: any EventLoopGroup, logger: Logger) async throws -> (BrokerServices, HistoryStore?) {
        // A message a node must deliver (up to --max-payload) must never exceed what the Redis
        // layer accepts in one reply, or it would drop the subscription instead.
        var configuration = given
        configuration.redis.maximumReplyBytes = max(configuration.redis.maximumReplyBytes, 2 * min(max(0, configuration.maxPayloadBytes), 1 << 40) + (1 << 20))
        let subscriber = try RedisSubscriber(redis: configuration.redis, configuration: configuration.subscriber, logger: logger)
        // Replays read on their own connection, so a burst of resumes never queues behind publishes.
        let history = configuration.history.isEnabled
            ? HistoryStore(
                configuration: configuration.history,
                client: RedisCommandClient(
                    redis: configuration.redis,
                    logger: logger,
                    maximumPending: HistoryLane.maximumPending,
                    lanes: HistoryLane.count
                )
            )
            : nil
        let prometheus = PrometheusMetrics()
        let hub = StreamHub(group: group, subscriber: subscriber, history: history, metrics: prometheus.metrics, configuration: configuration.streamCore, logger: logger)
        let publisher = SSEPublisher(
            redis: configuration.redis,
            history: configuration.history,
            logger: logger,
            watermark: history?.watermark ?? HistoryWatermark()
        )
        let access = try await AccessController(configuration: configuration.access)
        let demo = configuration.demo
            ? DemoPublisher(
                publisher: publisher,
                redis: configuration.redis,
                nodeName: configuration.nodeName,
                maxTasks: configuration.maxDemoTasks,
                streams: { hub.connectedCount },
                logger: logger
            )
            : nil
        let services = BrokerServices(
            configuration: configuration,
            hub: hub,
            publisher: publisher,
            access: access,
            prometheus: prometheus,
            demo: demo,
            logger: logger
        )
        return (services, history)
    }
}
