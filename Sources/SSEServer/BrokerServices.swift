import Logging
import SSEPublisher

/// What every connection of a node shares: configuration, the stream hub, the publisher.
final class BrokerServices: Sendable {
    let configuration: BrokerConfiguration
    let hub: StreamHub
    let publisher: SSEPublisher
    let channels: ChannelNameValidator
    let logger: Logger

    init(configuration: BrokerConfiguration, hub: StreamHub, publisher: SSEPublisher, logger: Logger) {
        self.configuration = configuration
        self.hub = hub
        self.publisher = publisher
        self.channels = ChannelNameValidator(maximumBytes: configuration.maxChannelNameBytes)
        self.logger = logger
    }
}
