import SSEEndpoints
import SSEPublisher
import SSERedis
import SSEStreamCore
import SSEWire

/// The endpoints' view of a node: its stream core's subscription facts, its metrics, its publisher.
struct NodeBackend: EndpointBackend {
    let core: StreamCore
    let prometheus: PrometheusMetrics
    let publisher: SSEPublisher

    var isSubscriptionConnected: Bool { core.isSubscriptionConnected }

    var refusedChannelCount: Int { core.hub.refusedChannelCount }

    func refusedChannels(among channels: [String]) -> [String] {
        core.hub.refusedChannels(among: channels)
    }

    func metricsExposition() -> [UInt8] {
        prometheus.exposition()
    }

    func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void) {
        let metrics = core.metrics
        publisher.publish(message, channel: channel) { result in
            switch result {
            case .success: metrics.publishes.increment()
            case .failure: metrics.publishErrors.increment()
            }
            completion(result)
        }
    }
}
