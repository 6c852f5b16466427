import Logging
import NIOCore
import NIOHTTP1
import SSEStreamCore
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
    /// The node's TLS context with `--tls-cert`; reloaded on SIGHUP and when its files change.
    private let tls: NodeTLSContext?
    /// The node's one lifecycle state: every `start()` and `shutdown()` goes through it.
    private let state = Mutex(BrokerServerStateMachine<Running, CheckedContinuation<Void, Never>>())

    /// What a started node must release when it drains.
    private struct Running: Sendable {
        let listener: SocketListener
        /// What the node mounted beside its own endpoints (the demo), running until the drain.
        let mounted: Task<Void, Never>?
        /// Looks for changed TLS files every `reloadCheckSeconds`, until the drain.
        let tlsWatch: Task<Void, Never>?
    }

    /// Creates a node; nothing runs until `start()` or `run()`. Throws for an unusable key, and
    /// then leaves nothing behind (its event loops are shut down).
    public convenience init(configuration: BrokerConfiguration, logger: Logger) async throws {
        try await self.init(configuration: configuration, logger: logger, extensionFactory: nil)
    }

    /// A node that also serves what `extensionFactory` makes from its parts (the demo), which
    /// runs from `start()` until the node drains.
    package init(configuration: BrokerConfiguration, logger: Logger, extensionFactory: BrokerExtensionFactory?) async throws {
        self.configuration = configuration
        self.logger = logger
        let tls = try configuration.tls.map { try NodeTLSContext(configuration: $0, offersHTTP2: configuration.http2.isEnabled) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: configuration.threads)
        let made: BrokerServices
        do {
            made = try await BrokerServices.make(configuration: configuration, group: group, logger: logger, extensionFactory: extensionFactory)
        } catch {
            // Nothing else has started (Redis threads start on first use): the loops are all.
            try? await group.shutdownGracefully()
            throw error
        }
        self.group = group
        self.services = made
        self.connections = ConnectionRegistry(limit: configuration.maxConnections, gauge: made.prometheus.connections)
        self.tls = tls
    }

    /// Starts, serves until a graceful shutdown is requested, then drains.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Binds the listening socket and starts the Redis subscriber. Streams are served even
    /// while Redis is down; the subscriber keeps reconnecting. A node starts once: a second call,
    /// or one after `shutdown()` has begun, throws ``BrokerServerError``. A start that fails
    /// (the port is taken, no thread to accept on) shuts the node down before it throws, so its
    /// threads are gone; such a node cannot be started again.
    public func start() async throws {
        if let refusal = state.withLock({ $0.startRequested() }) {
            switch refusal {
            case .alreadyStarted: throw BrokerServerError("the node has already started")
            case .shuttingDown: throw BrokerServerError("the node is shutting down")
            }
        }
        let running: Running
        do {
            running = try startServing()
        } catch {
            if case .drain(let resources) = state.withLock({ $0.startFailed() }) { await beginDrain(resources).value }
            throw error
        }
        if case .drain(let resources) = state.withLock({ $0.startSucceeded(running) }) {
            // A shutdown was asked for while this start was under way: it runs now.
            await beginDrain(resources).value
            throw BrokerServerError("the node is shutting down")
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
                "address": "\(configuration.tls == nil ? "http" : "https")://\(configuration.host):\(running.listener.port)",
                "http2": "\(configuration.tls != nil && configuration.http2.isEnabled ? "h2 by ALPN" : configuration.http2.acceptsCleartext ? "h2c (prior knowledge)" : "off")",
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

    /// Listens, accepts, and starts the subscriber, the demo and heartbeats; what it returns is
    /// what the drain releases. Throws with nothing left running.
    private func startServing() throws -> Running {
        let services = self.services
        let connections = self.connections
        let group = self.group
        let logger = self.logger
        let tls = self.tls
        let listener = try SocketListener(host: configuration.host, port: configuration.port)
        // Makes the accepted socket a SwiftNIO channel on `loop`, with the node's pipeline
        // (keepalive it has from the listening socket; TCP_NODELAY is the bootstrap's default too).
        @Sendable func adopt(_ socket: Int32, on loop: any EventLoop) {
            ClientBootstrap(group: loop)
                // SwiftNIO keeps each connection's last read buffer for the next read. A
                // stream reads its request head and then next to nothing, so start small
                // (the default is 2 KB) and let larger heads and bodies grow it.
                .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let pipeline = channel.pipeline.syncOperations
                        guard connections.admit(channel) else {
                            try pipeline.addHandler(OverloadResponder(limit: services.configuration.maxConnections, answers: tls == nil))
                            return
                        }
                        try ConnectionPipeline.configure(channel, services: services, socket: socket, tls: tls)
                    }
                }
                .withConnectedSocket(socket)
                .whenFailure { error in
                    logger.warning("could not set up an accepted connection", metadata: ["error": "\(error)"])
                }
        }
        do {
            try listener.start(logger: logger) { sockets in
                // The channel and its pipeline are made on the loop that will own them, so they
                // sit in that thread's heap beside the rest of the connection's state; made on
                // the accepting thread, a burst of connections left about 1 KB more per connection.
                // The loops take turns by connection, and each is woken once per burst.
                var shares: [(loop: any EventLoop, sockets: [Int32])] = []
                for socket in sockets {
                    let loop = group.next()
                    if let index = shares.firstIndex(where: { $0.loop === loop }) {
                        shares[index].sockets.append(socket)
                    } else {
                        shares.append((loop, [socket]))
                    }
                }
                for (loop, share) in shares {
                    loop.execute {
                        for socket in share { adopt(socket, on: loop) }
                    }
                }
            }
        } catch {
            listener.stop()  // never accepted: nothing to wait for
            throw error
        }
        services.core.start()
        let mounted = services.brokerExtension.map { mounted in Task { await mounted.run() } }
        return Running(listener: listener, mounted: mounted, tlsWatch: watchTLSFiles())
    }

    /// With TLS and a reload check interval: a task that loads the certificate and key again
    /// whenever either file changed, for new connections.
    private func watchTLSFiles() -> Task<Void, Never>? {
        guard let tls, tls.configuration.reloadCheckSeconds > 0 else { return nil }
        let interval = Duration.nanoseconds(TimeAmount.clamping(seconds: tls.configuration.reloadCheckSeconds).nanoseconds)
        let logger = self.logger
        return Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { break }
                Self.log(tls.reload(force: false), logger: logger, cause: "the files changed")
            }
        }
    }

    /// Loads `--tls-cert` and `--tls-key` again (as SIGHUP asks): new connections get the new
    /// certificate, open ones keep theirs. A reload that fails keeps the current certificate and
    /// says why (and throws it). Returns false for a node without TLS.
    @discardableResult
    public func reloadTLS() throws(BrokerServerError) -> Bool {
        guard let tls else { return false }
        let outcome = tls.reload(force: true)
        Self.log(outcome, logger: logger, cause: "reload asked")
        if case .failed(let reason) = outcome { throw BrokerServerError(reason) }
        return true
    }

    private static func log(_ outcome: NodeTLSContext.ReloadOutcome, logger: Logger, cause: String) {
        switch outcome {
        case .unchanged: break
        case .reloaded: logger.notice("TLS certificate reloaded", metadata: ["cause": "\(cause)"])
        case .failed(let reason): logger.error("TLS certificate not reloaded; the current one stays", metadata: ["cause": "\(cause)", "error": "\(reason)"])
        }
    }

    /// The port actually bound (useful with port 0); kept after shutdown.
    public var localPort: Int? {
        state.withLock { $0.resources?.listener.port }
    }

    /// Whether the node's Redis subscription is up.
    public var isSubscriptionConnected: Bool { services.core.isSubscriptionConnected }

    /// False from a failed delivery probe until a probe succeeds on the rebuilt subscription.
    public var isSubscriptionDelivering: Bool { services.core.isSubscriptionDelivering }

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
    /// One called while `start()` is under way begins when that start has settled.
    public func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            switch state.withLock({ $0.shutdownRequested(continuation) }) {
            case .drain(let resources): beginDrain(resources)
            case .wait: break
            case .resume(let waiter): waiter.resume()
            }
        }
    }

    /// Runs the one drain in a task of its own (a cancelled caller must not cut it short), then
    /// marks the node stopped and resumes everyone waiting for it.
    @discardableResult
    private func beginDrain(_ running: Running?) -> Task<Void, Never> {
        Task {
            await drain(running)
            for waiter in state.withLock({ $0.drainFinished() }) { waiter.resume() }
        }
    }

    private func drain(_ running: Running?) async {
        let started = ContinuousClock.now
        running?.mounted?.cancel()
        running?.tlsWatch?.cancel()
        await running?.listener.stop()
        services.core.stopHeartbeats()
        let open = connections.count
        connections.quiesceAll()
        let timeout = Duration.nanoseconds(TimeAmount.clamping(seconds: configuration.drainTimeoutSeconds).nanoseconds)
        let drained = await connectionsClosed(within: timeout)
        let forced = drained ? 0 : connections.count
        if forced > 0 {
            logger.warning("drain timeout: closing remaining connections", metadata: ["connections": "\(forced)"])
            connections.closeAll()
        }
        await services.core.shutdown()
        services.publisher.shutdown()
        try? await group.shutdownGracefully()
        logger.info(
            "drained",
            metadata: ["connections": "\(open)", "forced": "\(forced)", "seconds": "\(started.duration(to: .now))"]
        )
    }

    /// Waits until the last connection has closed (true), or `timeout` has passed (false):
    /// the registry signals the moment the count reaches zero, so nothing polls it.
    private func connectionsClosed(within timeout: Duration) async -> Bool {
        let connections = self.connections
        return await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let outcome = DrainOutcome(continuation)
            let timer = Task {
                try? await Task.sleep(for: timeout)
                outcome.settle(drained: false)
            }
            connections.whenEmpty {
                timer.cancel()
                outcome.settle(drained: true)
            }
        }
    }
}

/// Resumes a drain's wait once: with whichever comes first, the last close or the timeout.
private final class DrainOutcome: Sendable {
    private let continuation: Mutex<CheckedContinuation<Bool, Never>?>

    init(_ continuation: CheckedContinuation<Bool, Never>) {
        self.continuation = Mutex(continuation)
    }

    func settle(drained: Bool) {
        continuation.withLock { continuation in
            defer { continuation = nil }
            return continuation
        }?.resume(returning: drained)
    }
}

/// Answers a connection beyond `--max-connections` with 503 and closes it, before any HTTP
/// parsing. Over TLS it only closes: a cleartext 503 would be noise to a TLS client.
private final class OverloadResponder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    private let limit: Int
    private let answers: Bool
    private var answered = false

    init(limit: Int, answers: Bool) {
        self.limit = limit
        self.answers = answers
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
        guard answers else {
            context.close(promise: nil)
            return
        }
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
