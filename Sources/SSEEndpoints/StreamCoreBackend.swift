import SSEPublisher
import SSERedis
import SSEStreamCore
import SSEWire

/// The endpoints' view of a host's broker: its stream core's subscription facts, its metrics,
/// its publisher. The standalone node and a mounted broker both use it.
package struct StreamCoreBackend: EndpointBackend {
    let core: StreamCore
    let publisher: SSEPublisher
    /// The metrics text `GET /metrics` serves (the node's Prometheus registry).
    let exposition: @Sendable () -> [UInt8]

    package init(core: StreamCore, publisher: SSEPublisher, exposition: @escaping @Sendable () -> [UInt8] = { [] }) {
        self.core = core
        self.publisher = publisher
        self.exposition = exposition
    }

    package var isSubscriptionConnected: Bool { core.isSubscriptionConnected }

    package var isSubscriptionDelivering: Bool { core.isSubscriptionDelivering }

    package var refusedChannelCount: Int { core.hub.refusedChannelCount }

    package func refusedChannels(among channels: [String]) -> [String] {
        core.hub.refusedChannels(among: channels)
    }

    package func metricsExposition() -> [UInt8] {
        exposition()
    }

    package func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void) {
        let metrics = core.metrics
        publisher.publish(message, channel: channel) { result in
            switch result {
            case .success: metrics.publishes.increment()
            case .failure: metrics.publishErrors.increment()
            }
            completion(result)
        }
    }

    package func publish(_ messages: [FlaskSSEMessage], channel: String, completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void) {
        let metrics = core.metrics
        let count = Int64(messages.count)
        publisher.publish(messages, channel: channel) { result in
            switch result {
            case .success: metrics.publishes.increment(by: count)
            case .failure: metrics.publishErrors.increment(by: count)
            }
            completion(result)
        }
    }
}
