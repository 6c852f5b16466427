import Logging
import NIOCore
import SSEAuth
import SSEEndpoints
import SSEHistory
import SSEPublisher
import SSERedis
import SSEStreamCore

/// What every connection of a node shares: configuration, the stream core, the publisher,
/// access control, metrics, and the HTTP endpoints and router over them.
///
/// The host-neutral decisions (CORS, publish policy, channel names, every answer) live in
/// ``BrokerEndpoints``; this bundle adds what only the NIO host uses (the hub a stream joins,
/// the configuration's connection limits and timeouts).
final class BrokerServices: Sendable {
    let configuration: BrokerConfiguration
    /// The node's stream side: its Redis subscription, history and fan-out.
    let core: StreamCore
    let hub: StreamHub
    let publisher: SSEPublisher
    let access: AccessController
    let metrics: BrokerMetrics
    /// The registry `metrics` records into, for `GET /metrics`.
    let prometheus: PrometheusMetrics
    let endpoints: BrokerEndpoints
    let router: Router
    /// Mounted from outside the core server (the demo, with `--demo`).
    let brokerExtension: (any BrokerExtension)?
    let logger: Logger

    init(
        configuration: BrokerConfiguration,
        core: StreamCore,
        publisher: SSEPublisher,
        access: AccessController,
        prometheus: PrometheusMetrics,
        brokerExtension: (any BrokerExtension)?,
        logger: Logger,
        endpointBackend: (any EndpointBackend)? = nil
    ) {
        self.configuration = configuration
        self.core = core
        self.hub = core.hub
        self.publisher = publisher
        self.access = access
        self.metrics = prometheus.metrics
        self.prometheus = prometheus
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
            backend: endpointBackend ?? StreamCoreBackend(core: core, publisher: publisher, exposition: prometheus.exposition),
            logger: logger
        )
        self.router = Router(extraRoutes: brokerExtension?.routes ?? [])
    }

    /// A node's shared parts for `configuration`, its streams on `group`'s loops (an
    /// `EmbeddedEventLoop` in tests and fuzz targets); nothing connects to Redis until the
    /// core is started. Throws for an unusable key. `extensionFactory` makes what the node
    /// mounts beside its own endpoints. `endpointBackend` stands in for the node's own (tests
    /// that decide when a publish is answered).
    static func make(
        configuration: BrokerConfiguration,
        group: any EventLoopGroup,
        logger: Logger,
        extensionFactory: BrokerExtensionFactory? = nil,
        endpointBackend: (any EndpointBackend)? = nil
    ) async throws -> BrokerServices {
        let prometheus = PrometheusMetrics()
        let core = try StreamCore(configuration: configuration.streamCore, group: group, metrics: prometheus.metrics, logger: logger)
        let publisher = SSEPublisher(
            redis: configuration.redis,
            history: configuration.history,
            logger: logger,
            watermark: core.watermark
        )
        let access = try await AccessController(configuration: configuration.access)
        let brokerExtension = extensionFactory?(
            BrokerExtensionContext(publisher: publisher, streamCount: { core.streamCount }, logger: logger)
        )
        return BrokerServices(
            configuration: configuration,
            core: core,
            publisher: publisher,
            access: access,
            prometheus: prometheus,
            brokerExtension: brokerExtension,
            logger: logger,
            endpointBackend: endpointBackend
        )
    }
}
