import Logging
import NIOCore
import SSEAuth
import SSEEndpoints
import SSEHistory
import SSEPublisher
import SSERedis

/// What every connection of a node shares: configuration, the stream hub, the publisher,
/// access control, metrics, and the HTTP endpoints and router over them.
///
/// The host-neutral decisions (CORS, publish policy, channel names, every answer) live in
/// ``BrokerEndpoints``; this bundle adds what only the NIO host uses (the hub a stream joins,
/// the configuration's connection limits and timeouts).
final class BrokerServices: Sendable {
    let configuration: BrokerConfiguration
    let hub: StreamHub
    let publisher: SSEPublisher
    let access: AccessController
    let metrics: BrokerMetrics
    let endpoints: BrokerEndpoints
    let router: Router
    /// Mounted from outside the core server (the demo, with `--demo`).
    let brokerExtension: (any BrokerExtension)?
    let logger: Logger

    init(
        configuration: BrokerConfiguration,
        hub: StreamHub,
        publisher: SSEPublisher,
        access: AccessController,
        metrics: BrokerMetrics,
        brokerExtension: (any BrokerExtension)?,
        logger: Logger
    ) {
        self.configuration = configuration
        self.hub = hub
        self.publisher = publisher
        self.access = access
        self.metrics = metrics
        self.brokerExtension = brokerExtension
        self.logger = logger
        self.endpoints = BrokerEndpoints(
            configuration: EndpointConfiguration(
                maxPayloadBytes: configuration.maxPayloadBytes,
                maxChannelNameBytes: configuration.maxChannelNameBytes,
                maxChannelsPerStream: configuration.maxChannelsPerStream,
                corsOrigins: configuration.corsOrigins
            ),
            access: access,
            backend: NodeBackend(hub: hub, metrics: metrics, publisher: publisher),
            logger: logger
        )
        self.router = Router(extraRoutes: brokerExtension?.routes ?? [])
    }

    /// A node's shared parts for `configuration`, its streams on `group`'s loops (an
    /// `EmbeddedEventLoop` in tests and fuzz targets); nothing connects to Redis until the
    /// subscriber is started. Also returns the history store, which the node shuts down.
    /// Throws for an unusable key. `extensionFactory` makes what the node mounts beside its own endpoints.
    static func make(
        configuration given: BrokerConfiguration,
        group: any EventLoopGroup,
        logger: Logger,
        extensionFactory: BrokerExtensionFactory? = nil
    ) async throws -> (BrokerServices, HistoryStore?) {
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
        let metrics = BrokerMetrics()
        let hub = StreamHub(group: group, subscriber: subscriber, history: history, metrics: metrics, configuration: configuration, logger: logger)
        let publisher = SSEPublisher(
            redis: configuration.redis,
            history: configuration.history,
            logger: logger,
            watermark: history?.watermark ?? HistoryWatermark()
        )
        let access = try await AccessController(configuration: configuration.access)
        let brokerExtension = extensionFactory?(
            BrokerExtensionContext(publisher: publisher, streamCount: { hub.connectedCount }, logger: logger)
        )
        let services = BrokerServices(
            configuration: configuration,
            hub: hub,
            publisher: publisher,
            access: access,
            metrics: metrics,
            brokerExtension: brokerExtension,
            logger: logger
        )
        return (services, history)
    }
}
