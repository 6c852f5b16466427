import Logging
import SSEAuth
import SSEPublisher

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
    /// The demo's publisher, with `--demo`.
    let demo: DemoPublisher?
    let channels: ChannelNameValidator
    let logger: Logger

    init(
        configuration: BrokerConfiguration,
        hub: StreamHub,
        publisher: SSEPublisher,
        access: AccessController,
        metrics: BrokerMetrics,
        demo: DemoPublisher?,
        logger: Logger
    ) {
        self.configuration = configuration
        self.hub = hub
        self.publisher = publisher
        self.access = access
        self.cors = CORSPolicy(origins: configuration.corsOrigins)
        self.publishPolicy = PublishPolicy(cors: cors, cookieName: configuration.access.cookieName)
        self.metrics = metrics
        self.demo = demo
        self.channels = ChannelNameValidator(maximumBytes: configuration.maxChannelNameBytes, maximumChannels: configuration.maxChannelsPerStream)
        self.logger = logger
    }
}
