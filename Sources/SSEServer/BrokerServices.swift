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
    /// The node's stream side: its Redis subscription, history and fan-out.
    let core: StreamCore
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
        core: StreamCore,
        publisher: SSEPublisher,
        access: AccessController,
        prometheus: PrometheusMetrics,
        demo: DemoPublisher?,
        logger: Logger
    ) {
        self.configuration = configuration
        self.core = core
        self.hub = core.hub
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
    static func make(configuration: BrokerConfiguration, group: any EventLoopGroup, logger: Logger) async throws -> (BrokerServices, HistoryStore?) {
        let prometheus = PrometheusMetrics()
        let core = try StreamCore(configuration: configuration.streamCore, group: group, metrics: prometheus.metrics, logger: logger)
        let hub = core.hub
        let history = core.history
        let publisher = SSEPublisher(
            redis: configuration.redis,
            history: configuration.history,
            logger: logger,
            watermark: core.watermark
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
            core: core,
            publisher: publisher,
            access: access,
            prometheus: prometheus,
            demo: demo,
            logger: logger
        )
        return (services, history)
    }
}
