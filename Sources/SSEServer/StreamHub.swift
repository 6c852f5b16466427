import Logging
import NIOCore
import SSERedis
import SSEWire
import Synchronization

/// Connects a node's one Redis subscription to its stream clients on every event loop.
///
/// Clients register on their own loop; the hub counts them per channel (`SubscriptionTable`)
/// and asks the subscriber thread to SUBSCRIBE on the first and UNSUBSCRIBE after the last.
/// Each message from Redis is decoded and encoded once, on the subscriber thread, and the
/// shared bytes hop once per batch onto each loop that has clients of that channel.
final class StreamHub: RedisSubscriberDelegate {
    let subscriber: RedisSubscriber
    private let loops: [any EventLoop]
    private let registries: [NIOLoopBoundBox<LoopStreamRegistry>]
    private let loopIndex: [ObjectIdentifier: Int]
    private let table = Mutex(SubscriptionTable())
    private let allocator = ByteBufferAllocator()
    private let logger: Logger
    private let counters = Mutex(StreamCounters())
    private let maxPayloadBytes: Int
    /// The bytes that open every stream.
    let preamble: StreamPreamble

    init(group: any EventLoopGroup, subscriber: RedisSubscriber, configuration: BrokerConfiguration, logger: Logger) {
        self.subscriber = subscriber
        self.logger = logger
        self.maxPayloadBytes = configuration.maxPayloadBytes
        self.preamble = StreamPreamble(retryMilliseconds: configuration.retryMilliseconds)
        var loops: [any EventLoop] = []
        var registries: [NIOLoopBoundBox<LoopStreamRegistry>] = []
        var loopIndex: [ObjectIdentifier: Int] = [:]
        for loop in group.makeIterator() {
            loopIndex[ObjectIdentifier(loop)] = loops.count
            loops.append(loop)
            registries.append(
                .makeBoxSendingValue(LoopStreamRegistry(eventLoop: loop, allocator: allocator), eventLoop: loop)
            )
        }
        self.loops = loops
        self.registries = registries
        self.loopIndex = loopIndex
    }

    /// Stops heartbeats on every loop.
    func stopHeartbeats() {
        for registry in registries {
            registry.eventLoop.execute { registry.value.stopHeartbeat() }
        }
    }

    /// Starts heartbeats on every loop.
    func startHeartbeats(every interval: TimeAmount) {
        for registry in registries {
            registry.eventLoop.execute { registry.value.startHeartbeat(every: interval) }
        }
    }

    private func index(of loop: any EventLoop) -> Int {
        guard let index = loopIndex[ObjectIdentifier(loop)] else {
            preconditionFailure("a connection on an event loop the hub does not know")
        }
        return index
    }

    /// Adds a client; called on its event loop.
    func register(_ client: StreamConnectionHandler, on loop: any EventLoop) {
        let index = index(of: loop)
        registries[index].value.add(client)
        let actions = table.withLock { table in
            client.channels.map { table.add(channel: $0, loop: index) }
        }
        counters.withLock { $0.connected += 1 }
        apply(actions)
    }

    /// Removes a client; called on its event loop.
    func unregister(_ client: StreamConnectionHandler, on loop: any EventLoop) {
        let index = index(of: loop)
        registries[index].value.remove(client)
        let actions = table.withLock { table in
            client.channels.map { table.remove(channel: $0, loop: index) }
        }
        counters.withLock { $0.connected -= 1 }
        apply(actions)
    }

    private func apply(_ actions: [SubscriptionTable.Action]) {
        for action in actions {
            switch action {
            case .none: break
            case .subscribe(let channel): subscriber.subscribe(channel)
            case .unsubscribe(let channel): subscriber.unsubscribe(channel)
            }
        }
    }

    func noteSlowClientCutOff(backlog: Int) {
        counters.withLock { $0.slowClientsCutOff += 1 }
        logger.info("slow client cut off", metadata: ["unsent-bytes": "\(backlog)"])
    }

    /// A snapshot of the hub's counters.
    var statistics: StreamCounters { counters.withLock { $0 } }

    /// Clients of `channel` on this node.
    func clientCount(for channel: String) -> Int {
        table.withLock { $0.clientCount(for: channel) }
    }

    // MARK: RedisSubscriberDelegate (called on the subscriber thread)

    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        let routes: [[Int]] = table.withLock { table in
            messages.map { message in table.loops(for: message.channel).map(Array.init) ?? [] }
        }
        var perLoop = [[RoutedEvent]](repeating: [], count: loops.count)
        for (message, loopsForMessage) in zip(messages, routes) where !loopsForMessage.isEmpty {
            guard message.payload.count <= maxPayloadBytes else {
                counters.withLock { $0.oversizedPayloadsDropped += 1 }
                logger.error(
                    "dropped a Redis payload larger than --max-payload",
                    metadata: ["channel": "\(message.channel)", "bytes": "\(message.payload.count)"]
                )
                continue
            }
            let text = EventTextEncoder.encode(ServerSentEvent(redisPayload: message.payload))
            let routed = RoutedEvent(channel: message.channel, event: EncodedEvent(text: text, allocator: allocator))
            for index in loopsForMessage { perLoop[index].append(routed) }
        }
        counters.withLock { $0.eventsReceived += messages.count }
        for (index, events) in perLoop.enumerated() where !events.isEmpty {
            let registry = registries[index]
            registry.eventLoop.execute { registry.value.deliver(events) }
        }
    }

    func subscriberDidConnect(_ subscriber: RedisSubscriber) {}

    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {}
}

/// Counters a node keeps about its streams.
struct StreamCounters: Sendable {
    var connected = 0
    var eventsReceived = 0
    var slowClientsCutOff = 0
    var oversizedPayloadsDropped = 0
}
