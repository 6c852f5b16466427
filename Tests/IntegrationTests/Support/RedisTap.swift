import Logging
import SSERedis
import Synchronization

/// Records the exact payload bytes published on a channel, through its own subscription.
final class RedisTap: RedisSubscriberDelegate {
    private let subscriber: RedisSubscriber
    private let received = Mutex<[[UInt8]]>([])

    init(redis: RedisConfiguration, channel: String) throws {
        var logger = Logger(label: "test.tap")
        logger.logLevel = .warning
        subscriber = try RedisSubscriber(redis: redis, logger: logger)
        subscriber.subscribe(channel)
        subscriber.start(delegate: self)
    }

    var payloads: [[UInt8]] { received.withLock { $0 } }

    func waitForPayloads(_ count: Int) async throws -> [[UInt8]] {
        try await eventually("\(count) payloads on Redis") { self.payloads.count >= count }
        return payloads
    }

    func stop() {
        subscriber.shutdown()
    }

    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        received.withLock { $0.append(contentsOf: messages.map(\.payload)) }
    }

    func subscriberDidConnect(_ subscriber: RedisSubscriber) {}
    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {}
}
