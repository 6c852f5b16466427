import Logging
import NIOCore
import SSEHistory
import SSERedis
import SSEWire
import Synchronization

/// Connects a node's one Redis subscription to its stream clients on every event loop.
///
/// Clients register on their own loop; the hub counts them per channel (`SubscriptionTable`)
/// and asks the subscriber thread to SUBSCRIBE on the first and UNSUBSCRIBE after the last.
/// Each message from Redis is decoded and encoded once, on the subscriber thread, and the
/// shared bytes hop once per batch onto each loop that has clients of that channel.
///
/// With history, the hub also resumes streams (`Last-Event-ID`) and, when the subscription
/// comes back after an outage, replays to every client what was published in between.
final class StreamHub: RedisSubscriberDelegate {
    let subscriber: RedisSubscriber
    /// The bytes that open every stream.
    let preamble: StreamPreamble
    private let history: HistoryStore?
    private let loops: [any EventLoop]
    private let registries: [NIOLoopBoundBox<LoopStreamRegistry>]
    private let loopIndex: [ObjectIdentifier: Int]
    private let table = Mutex(SubscriptionTable())
    private let allocator = ByteBufferAllocator()
    private let logger: Logger
    /// Open streams on this node.
    private let connected = Mutex(0)
    private let metrics: BrokerMetrics
    private let maxPayloadBytes: Int
    /// Per subscribed channel, the position of the newest event of that channel that reached
    /// the node (or, before any did, the newest one published before the subscription was
    /// confirmed). After an outage, that channel's clients miss exactly what comes after it.
    private let channelPositions = Mutex<[String: HistoryPosition]>([:])
    private let hasConnected = Mutex(false)
    /// Per loop: deliveries handed over but not yet run.
    private let queuedDeliveries: [QueuedCounter]

    init(
        group: any EventLoopGroup,
        subscriber: RedisSubscriber,
        history: HistoryStore?,
        metrics: BrokerMetrics,
        configuration: BrokerConfiguration,
        logger: Logger
    ) {
        self.subscriber = subscriber
        self.history = history
        self.metrics = metrics
        self.logger = logger
        self.maxPayloadBytes = configuration.maxPayloadBytes
        self.preamble = StreamPreamble(retryMilliseconds: configuration.retryMilliseconds, nodeName: configuration.demo ? configuration.nodeName : nil)
        var loops: [any EventLoop] = []
        var registries: [NIOLoopBoundBox<LoopStreamRegistry>] = []
        var loopIndex: [ObjectIdentifier: Int] = [:]
        for loop in group.makeIterator() {
            loopIndex[ObjectIdentifier(loop)] = loops.count
            loops.append(loop)
            registries.append(
                .makeBoxSendingValue(LoopStreamRegistry(eventLoop: loop, allocator: allocator, metrics: metrics), eventLoop: loop)
            )
        }
        self.loops = loops
        self.registries = registries
        self.loopIndex = loopIndex
        self.queuedDeliveries = loops.map { _ in QueuedCounter() }
    }

    /// Starts heartbeats on every loop.
    func startHeartbeats(every interval: TimeAmount) {
        for registry in registries {
            registry.eventLoop.execute { registry.value.startHeartbeat(every: interval) }
        }
    }

    /// Stops heartbeats on every loop.
    func stopHeartbeats() {
        for registry in registries {
            registry.eventLoop.execute { registry.value.stopHeartbeat() }
        }
    }

    private func index(of loop: any EventLoop) -> Int {
        guard let index = loopIndex[ObjectIdentifier(loop)] else {
            preconditionFailure("a connection on an event loop the hub does not know")
        }
        return index
    }

    /// Adds a client; called on its event loop. A client with `resumeFrom` gets its replay first.
    func register(_ client: StreamConnectionHandler, on loop: any EventLoop) {
        let index = index(of: loop)
        registries[index].value.add(client)
        let (actions, channelCount) = table.withLock { table in
            (client.channels.map { table.add(channel: $0, loop: index) }, table.channels.count)
        }
        metrics.connectedClients.record(connected.withLock { count in
            count += 1
            return count
        })
        metrics.channelsSubscribed.record(channelCount)
        apply(actions)
        if let resumeFrom = client.resumeFrom, history != nil {
            let position = HistoryPosition(resumeFrom)
            client.beginReplay(after: position)
            replay([client], channels: client.channels, after: position, lastEventID: resumeFrom, on: loop)
        }
    }

    /// Removes a client; called on its event loop.
    func unregister(_ client: StreamConnectionHandler, on loop: any EventLoop) {
        let index = index(of: loop)
        registries[index].value.remove(client)
        let (actions, channelCount) = table.withLock { table in
            (client.channels.map { table.remove(channel: $0, loop: index) }, table.channels.count)
        }
        metrics.connectedClients.record(connected.withLock { count in
            count -= 1
            return count
        })
        metrics.channelsSubscribed.record(channelCount)
        apply(actions)
    }

    private func apply(_ actions: [SubscriptionTable.Action]) {
        for action in actions {
            switch action {
            case .none:
                break
            case .subscribe(let channel):
                subscriber.subscribe(channel)
                learnPosition(of: channel)
            case .unsubscribe(let channel):
                subscriber.unsubscribe(channel)
                _ = channelPositions.withLock { $0.removeValue(forKey: channel) }
            }
        }
    }

    /// Once the new subscription is confirmed, everything after the channel's newest event
    /// reaches the node live; that event is where a catch-up for this channel would start.
    private func learnPosition(of channel: String) {
        guard let history else { return }
        subscriber.whenSubscribed([channel]) { [self] _ in
            history.lastPosition(of: channel) { [self] result in
                guard case .success(let position) = result else { return }
                advance(channel, to: position ?? HistoryPosition(epoch: 0, sequence: 0))
            }
        }
    }

    private func advance(_ channel: String, to position: HistoryPosition) {
        channelPositions.withLock { positions in
            if positions[channel].map({ $0 < position }) ?? true { positions[channel] = position }
        }
    }

    // MARK: History replay

    /// Replays history after `position` on `channels` to `clients` (all on `loop`, all already in
    /// `beginReplay`), once Redis confirms the subscriptions, so nothing falls between the
    /// snapshot and live traffic. A nil position (an id the broker did not issue) gets the
    /// `unknown` notice without a query.
    private func replay(
        _ clients: [StreamConnectionHandler],
        channels: [String],
        after position: HistoryPosition?,
        lastEventID: String,
        on loop: any EventLoop
    ) {
        let bound = NIOLoopBound(clients, eventLoop: loop)
        let clientCount = clients.count
        guard let history, let position else {
            let gap = gapEvent(channels.map { ($0, HistoryReplay.Gap.unknown) }, lastEventID: lastEventID)
            for client in clients { client.completeReplay([], gap: gap) }
            return
        }
        let allocator = self.allocator
        let logger = self.logger
        subscriber.whenSubscribed(Set(channels)) { [self] _ in
            history.replay(channels: channels, after: position) { result in
                let events: [EncodedEvent]
                let gap: EncodedEvent?
                switch result {
                case .success(let replay):
                    events = replay.events.map { EncodedEvent(ServerSentEvent(redisPayload: $0.payload), allocator: allocator) }
                    gap = replay.gaps.isEmpty ? nil : self.gapEvent(replay.gaps, lastEventID: lastEventID)
                    self.metrics.eventsReplayed.increment(by: events.count * clientCount)
                case .failure(let error):
                    logger.warning("history replay failed", metadata: ["error": "\(error)"])
                    events = []
                    gap = self.gapEvent(channels.map { ($0, .unavailable) }, lastEventID: lastEventID)
                }
                loop.execute {
                    for client in bound.value { client.completeReplay(events, gap: gap) }
                }
            }
        }
    }

    /// The documented `history-gap` event: which channels cannot be resumed exactly, and why.
    private func gapEvent(_ gaps: [(channel: String, gap: HistoryReplay.Gap)], lastEventID: String) -> EncodedEvent {
        let data: JSONValue = [
            "channels": .object(JSONObject(gaps.map { ($0.channel, JSONValue.string($0.gap.rawValue)) })),
            "lastEventId": .string(lastEventID),
        ]
        let text = String(decoding: PythonJSONEncoder.encode(data), as: UTF8.self)
        return EncodedEvent(ServerSentEvent(data: text, type: "history-gap"), allocator: allocator)
    }

    /// After the subscription came back: each client replays what its channels got since the
    /// node last heard from them, grouped by channel set so a group costs one query and one
    /// encoding. Clients drop what they already have, so the oldest channel position is safe.
    private func catchUp() {
        let positions = channelPositions.withLock { $0 }
        for registry in registries {
            let loop = registry.eventLoop
            loop.execute { [self] in
                for (channels, clients) in registry.value.clientsByChannelSet() {
                    let known = channels.compactMap { positions[$0] }
                    guard known.count == channels.count, let from = known.min() else {
                        logger.warning("no history position yet for a channel; no catch-up", metadata: ["channels": "\(channels)"])
                        continue
                    }
                    for client in clients { client.beginReplay(after: from) }
                    replay(clients, channels: channels, after: from, lastEventID: from.description, on: loop)
                }
            }
        }
    }

    // MARK: Counters

    func noteSlowClientCutOff(backlog: Int) {
        metrics.slowClientsCutOff.increment()
        logger.info("slow client cut off", metadata: ["unsent-bytes": "\(backlog)"])
    }

    /// Open streams on this node.
    var connectedCount: Int { connected.withLock { $0 } }

    /// Clients of `channel` on this node.
    func clientCount(for channel: String) -> Int {
        table.withLock { $0.clientCount(for: channel) }
    }

    // MARK: RedisSubscriberDelegate (called on the subscriber thread)

    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        let routes: [[Int]] = table.withLock { table in
            messages.map { message in table.loops(for: message.channel).map(Array.init) ?? [] }
        }
        var perLoop = [LoopDelivery](repeating: LoopDelivery(), count: loops.count)
        var byChannel: [String: [EncodedEvent]] = [:]
        var channelOrder: [String] = []
        var channelLoops: [String: [Int]] = [:]
        var newest: [String: HistoryPosition] = [:]
        for (message, loopsForMessage) in zip(messages, routes) where !loopsForMessage.isEmpty {
            guard message.payload.count <= maxPayloadBytes else {
                logger.error(
                    "dropped a Redis payload larger than --max-payload",
                    metadata: ["channel": "\(message.channel)", "bytes": "\(message.payload.count)"]
                )
                continue
            }
            let event = EncodedEvent(redisPayload: message.payload, allocator: allocator)
            if let position = event.position { newest[message.channel] = position }
            if byChannel[message.channel] == nil {
                channelOrder.append(message.channel)
                channelLoops[message.channel] = loopsForMessage
            }
            byChannel[message.channel, default: []].append(event)
            let routed = RoutedEvent(channel: message.channel, event: event)
            for index in loopsForMessage { perLoop[index].ordered.append(routed) }
        }
        for channel in channelOrder {
            guard let events = byChannel[channel], let loopsForChannel = channelLoops[channel] else { continue }
            let batch = ChannelBatch(channel: channel, events: events, allocator: allocator)
            for index in loopsForChannel { perLoop[index].batches.append(batch) }
        }
        for (channel, position) in newest { advance(channel, to: position) }
        metrics.eventsReceived.increment(by: messages.count)
        for (index, delivery) in perLoop.enumerated() where !delivery.ordered.isEmpty {
            let registry = registries[index]
            let queued = queuedDeliveries[index]
            queued.increment()
            registry.eventLoop.execute {
                // The last of the deliveries queued on this loop flushes at once; earlier ones leave
                // it to that one, so a burst still goes out in one writev per client.
                let isLast = queued.decrementReachesZero()
                registry.value.deliver(delivery, flushNow: isLast)
            }
        }
    }

    /// Runs before any message of the new connection is read, so the catch-up's `beginReplay`
    /// reaches each loop ahead of the first live batch.
    func subscriberDidConnect(_ subscriber: RedisSubscriber) {
        let isReconnect = hasConnected.withLock { connected in
            defer { connected = true }
            return connected
        }
        if isReconnect { metrics.redisReconnects.increment() }
        if isReconnect, history != nil { catchUp() }
    }

    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {}
}
