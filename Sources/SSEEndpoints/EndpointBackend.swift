import SSEPublisher
import SSERedis
import SSEWire

/// What the endpoints need from the node they serve: subscription facts, metrics, and publishing.
///
/// The stream core provides it (hub, metrics, publisher); tests give a stand-in whose Redis is
/// never connected. Every member is called on the host's request path and must not block.
package protocol EndpointBackend: Sendable {
    /// Whether the node's Redis subscription is up (`/readyz`).
    var isSubscriptionConnected: Bool { get }
    /// False while the delivery probe finds the subscription connected but not delivering (`/readyz`).
    var isSubscriptionDelivering: Bool { get }
    /// Channels Redis refuses this node now (an ACL).
    var refusedChannelCount: Int { get }
    /// Those of `channels` Redis refuses, in order.
    func refusedChannels(among channels: [String]) -> [String]
    /// The Prometheus text exposition (`/metrics`).
    func metricsExposition() -> [UInt8]
    /// Publishes `message` on `channel`; `completion` runs on the publisher's thread, after
    /// the node counted the publish (or its failure) in its metrics.
    func publish(_ message: FlaskSSEMessage, channel: String, completion: @escaping @Sendable (Result<PublishReceipt, RedisError>) -> Void)
    /// Publishes a batch on `channel`, in order (one receipt per message, in order); counted as
    /// `messages.count` publishes, or failures.
    func publish(_ messages: [FlaskSSEMessage], channel: String, completion: @escaping @Sendable (Result<[PublishReceipt], RedisError>) -> Void)
}
