import SSEEndpoints
import SSEPublisher
import SSERedis
import SSEWire

/// The endpoints' view of a node: its stream hub's subscription facts, its metrics, its publisher.
struct NodeBackend: EndpointBackend {
    let hub: StreamHub
    let metrics: BrokerMetrics
    let publisher: SSEPublisher

    var isSubscriptionConnected: Bool { hub.subscriber.isConnected }

    var refusedChannelCount: Int { hub.refusedChannelCount }

    func refusedChannels(among channels: [String]) -> [String] {
        hub.refusedChannels(among: channels)
    }

    func metricsExposition() -> [UInt8] {
        metrics.exposition()
    }

    func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void) {
        let metrics = self.metrics
        publisher.publish(message, channel: channel) { result in
            switch result {
            case .success: metrics.publishes.increment()
            case .failure: metrics.publishErrors.increment()
            }
            completion(result)
        }
    }
}
