import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import SSEAuth
import SSEEndpoints
import SSEHistory
import SSEPublisher
import SSERedis
import ServiceLifecycle
import Synchronization

/// One broker node: an HTTP server on SwiftNIO event loops (connections accepted by a
/// ``SocketListener`` thread), one Redis subscriber thread, one Redis publisher thread.
///
/// Nodes share nothing but Redis, so any number can run behind a load balancer. As a
/// swift-service-lifecycle `Service`, it runs until a graceful shutdown (SIGTERM, SIGINT), then
/// drains: it stops accepting, ends every stream with the terminating chunk so EventSource
/// reconnects elsewhere, lets in-flight requests answer, and closes what is left after
/// `--drain-timeout`.
public final class BrokerServer: Service, Sendable {
    public let configuration: BrokerConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let services: BrokerServices
    private let connections: ConnectionRegistry
    private let history: HistoryStore?
    private let listener = Mutex<SocketListener?>(nil)
    private let shutdownTask = Mutex<Task<Void, Never>?>(nil)
    private let demoTask = Mutex<Task<Void, Never>?>(nil)

    /// Creates a node; nothing runs until `start()` or `run()`. Throws for an unusable key.
    public convenience init(configuration: BrokerConfiguration, logger: Logger) async throws {
        try await self.init(configuration: configuration, logger: logger, extensionFactory: nil)
    }

    /// A node that also serves what `extensionFactory` makes from its parts (the demo), which
    /// runs from `start()` until the node drains.
    package init(configuration: BrokerConfiguration, logger: Logger, extensionFactory: BrokerExtensionFactory?) async throws {
        self.configuration = configuration
        self.logger = logger
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        self.group = group
        let (services, history) = try await BrokerServices.make(
            configuration: configuration,
            group: group,
            logger: logger,
            extensionFactory: extensionFactory
        )
        self.services = services
        self.history = history
        self.connections = ConnectionRegistry(limit: configuration.maxConnections)
    }

    /// Starts, serves until a graceful shutdown is requested, then drains.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Binds the listening socket and starts the Redis subscriber. Streams are served even
    /// while Redis is down; the subscriber keeps reconnecting. A node starts once: a second call,
    /// or one after `shutdown()` has begun, throws ``BrokerServerError``.
    public func start() async throws {
        let services = self.services
        let connections = self.connections
        let group = self.group
        let logger = self.logger
        let listener = try SocketListener(host: configuration.host, port: configuration.port)
        // Kept before it accepts, so a shutdown that begins from here on stops it; refused once a
        // shutdown has begun or when the node already listens.
        let refusal: BrokerServerError? = shutdownTask.withLock { shutdown in
            if shutdown != nil { return BrokerServerError("the node is shutting down") }
            return self.listener.withLock { current in
                if current != nil { return BrokerServerError("the node has already started") }
                current = listener
                return nil
            }
        }
        if let refusal {
            listener.stop()
            throw refusal
        }
        // Makes the accepted socket a SwiftNIO channel on `loop`, with the node's pipeline.
        @Sendable func adopt(_ socket: Int32, on loop: any EventLoop) {
            ClientBootstrap(group: loop)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                // SwiftNIO keeps each connection's last read buffer for the next read. A
                // stream reads its request head and then next to nothing, so start small
                // (the default is 2 KB) and let larger heads and bodies grow it.
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        guard connections.admit(channel) else {
                            try pipeline.addHandler(OverloadResponder(limit: services.configuration.maxConnections))
                            return
                        }
                        try HTTPPipeline.configure(pipeline, services: services, socket: socket)
                    }
                }
                .withConnectedSocket(socket)
                .whenFailure { error in
                    logger.warning("could not set up an accepted connection", metadata: ["error": "\(error)"])
                }
        }
        do {
            try listener.start(logger: logger) { socket in
                // The channel and its pipeline are made on the loop that will own them, so they
                // sit in that thread's heap beside the rest of the connection's state; made on
                // the accepting thread, a burst of connections left about 1 KB more per connection.
                let loop = group.next()
                loop.execute { adopt(socket, on: loop) }
            }
        } catch {
            listener.stop()
            self.listener.withLock { $0 = nil }
            throw error
        }
        services.hub.subscriber.start(delegate: services.hub)
        if let mounted = services.brokerExtension {
            demoTask.withLock { $0 = Task { await mounted.run() } }
        }
        if configuration.heartbeatSeconds > 0 {
            services.hub.startHeartbeats(every: BrokerConfiguration.timeAmount(seconds: configuration.heartbeatSeconds))
        }
        if !configuration.access.publishingNeedsCredentials {
            logger.notice(
                configuration.access.allowOpenPublish
                    ? "POST /publish is open to every client (--allow-open-publish)"
                    : "POST /publish without credentials is open to loopback clients only (no proxy headers, a loopback Host)"
            )
        }
        logger.info(
            "sse-broker listening",
            metadata: [
                "address": "\(configuration.host):\(listener.port)",
                "redis": "\(configuration.redis)",
                "threads": "\(configuration.threads)",
                "node": "\(configuration.nodeName)",
                "demo": "\(configuration.demo)",
                "max-connections": "\(configuration.maxConnections)",
                "auth": "\(configuration.access.streamsNeedToken ? "jwt" : configuration.access.publishingNeedsCredentials ? "publish key" : "off")",
                "history": "\(configuration.history.isEnabled ? "\(configuration.history.length) events, \(configuration.history.ttlSeconds) s" : "off")",
            ]
        )
    }

    /// The port actually bound (useful with port 0).
    public var localPort: Int? {
        listener.withLock { $0?.port }
    }

    /// Whether the node's Redis subscription is up.
    public var isSubscriptionConnected: Bool { services.hub.subscriber.isConnected }

    /// Clients of `channel` on this node.
    public func clientCount(for channel: String) -> Int {
        services.hub.clientCount(for: channel)
    }

    /// Open connections (streams and plain HTTP).
    public var connectionCount: Int { connections.count }

    /// The node's event loops (tests stall one to see the node cope).
    package var eventLoopGroup: any EventLoopGroup { group }

    /// Channels this node has stream clients of (and so subscribes).
    public var channelCount: Int { services.hub.channelCount }

    /// Stops accepting, ends every stream cleanly, waits (up to the drain timeout) for
    /// connections to close, then stops the Redis threads and the event loops.
    /// Safe to call more than once and from several tasks: all of them wait for the one shutdown.
    public func shutdown() async {
        let task = shutdownTask.withLock { task in
            if let task { return task }
            let started = Task { await self.drain() }
            task = started
            return started
        }
        await task.value
    }

    private func drain() async {
        let started = ContinuousClock.now
        demoTask.withLock { $0?.cancel() }
        listener.withLock { $0 }?.stop()
        services.hub.stopHeartbeats()
        let open = connections.count
        connections.quiesceAll()
        let deadline = started + .nanoseconds(BrokerConfiguration.timeAmount(seconds: configuration.drainTimeoutSeconds).nanoseconds)
        while connections.count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        let forced = connections.count
        if forced > 0 {
            logger.warning("drain timeout: closing remaining connections", metadata: ["connections": "\(forced)"])
            connections.closeAll()
        }
        services.hub.subscriber.shutdown()
        services.publisher.shutdown()
        history?.shutdown()
        services.hub.shutdown()
        try? await group.shutdownGracefully()
        logger.info(
            "drained",
            metadata: ["connections": "\(open)", "forced": "\(forced)", "seconds": "\(started.duration(to: .now))"]
        )
    }
}

/// Answers a connection beyond `--max-connections` with 503 and closes it, before any HTTP parsing.
private final class OverloadResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let limit: Int
    private var answered = false

    init(limit: Int) {
        self.limit = limit
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { refuse(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        refuse(context: context)
    }

    private func refuse(context: ChannelHandlerContext) {
        guard !answered else { return }
        answered = true
        let body = HTTPError(.serviceUnavailable, "node at its connection limit (\(limit)); retry or use another node").body
        let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\n"
            + "Retry-After: 1\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        context.writeAndFlush(wrapOutboundOut(buffer)).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
