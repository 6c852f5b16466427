import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SSEPublisher
import SSERedis
import Synchronization

/// One broker node: an HTTP server on SwiftNIO event loops, one Redis subscriber thread,
/// one Redis publisher thread.
///
/// Nodes share nothing but Redis, so any number can run behind a load balancer.
public final class BrokerServer: Sendable {
    public let configuration: BrokerConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let services: BrokerServices
    private let serverChannel = Mutex<(any Channel)?>(nil)
    private let shutdownTask = Mutex<Task<Void, Never>?>(nil)

    /// Creates a node; nothing runs until `start()`.
    public init(configuration: BrokerConfiguration, logger: Logger) throws(RedisError) {
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        let subscriber = try RedisSubscriber(redis: configuration.redis, configuration: configuration.subscriber, logger: logger)
        let hub = StreamHub(group: group, subscriber: subscriber, logger: logger)
        let publisher = SSEPublisher(redis: configuration.redis, logger: logger)
        self.services = BrokerServices(configuration: configuration, hub: hub, publisher: publisher, logger: logger)
    }

    /// Binds the listening socket and starts the Redis subscriber. Streams are served even
    /// while Redis is down; the subscriber keeps reconnecting.
    public func start() async throws {
        let services = self.services
        let buffer = max(configuration.clientBufferBytes, 1024)
        let limits = NIOHTTPDecoderLimitConfiguration()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: .init(low: buffer / 2, high: buffer))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.configureHTTPServerPipeline(
                        withErrorHandling: true,
                        withEncoderConfiguration: .init(),
                        withDecoderLimitConfiguration: limits
                    )
                    try pipeline.addHandler(HTTPRequestHandler(services: services))
                }
            }
        let channel = try await bootstrap.bind(host: configuration.host, port: configuration.port).get()
        serverChannel.withLock { $0 = channel }
        services.hub.subscriber.start(delegate: services.hub)
        if configuration.heartbeatSeconds > 0 {
            services.hub.startHeartbeats(every: .nanoseconds(Int64(configuration.heartbeatSeconds * 1_000_000_000)))
        }
        logger.info(
            "sse-broker listening",
            metadata: [
                "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
                "redis": "\(configuration.redis)",
                "threads": "\(configuration.threads)",
            ]
        )
    }

    /// The port actually bound (useful with port 0).
    public var localPort: Int? {
        serverChannel.withLock { $0?.localAddress?.port }
    }

    /// Whether the node's Redis subscription is up.
    public var isSubscriptionConnected: Bool { services.hub.subscriber.isConnected }

    /// Clients of `channel` on this node.
    public func clientCount(for channel: String) -> Int {
        services.hub.clientCount(for: channel)
    }

    /// Suspends until the listening socket closes.
    public func waitUntilClosed() async {
        guard let channel = serverChannel.withLock({ $0 }) else { return }
        try? await channel.closeFuture.get()
    }

    /// Stops accepting, ends every stream cleanly, stops the Redis threads and the event loops.
    /// Safe to call more than once and from several tasks: all of them wait for the one shutdown.
    public func shutdown() async {
        let task = shutdownTask.withLock { task in
            if let task { return task }
            let started = Task { await self.performShutdown() }
            task = started
            return started
        }
        await task.value
    }

    private func performShutdown() async {
        if let channel = serverChannel.withLock({ $0 }) {
            try? await channel.close()
        }
        try? await services.hub.finishAllStreams().get()
        services.hub.subscriber.shutdown()
        services.publisher.shutdown()
        try? await group.shutdownGracefully()
    }
}
