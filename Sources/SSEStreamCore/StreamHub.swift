import Dispatch
import Logging
import NIOCore
import SSEHistory
import SSERedis
import SSEWire
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Connects a node's one Redis subscription to its stream clients on every event loop.
///
/// Clients register on their own loop; the hub counts them per channel (`SubscriptionTable`)
/// and asks the subscriber thread to SUBSCRIBE on the first and UNSUBSCRIBE after the last.
/// Each message from Redis is decoded and encoded once, on the subscriber thread, and the
/// shared bytes hop once per batch onto each loop that has clients of that channel.
///
/// With history, the hub also resumes streams (`Last-Event-ID`) and, when the subscription
/// comes back after an outage or a loop fell behind, replays to every client what was published
/// in between (`HistoryReplaySession`). Only ids Redis vouches for count as positions (current
/// epoch, not past the counter): any other id is delivered as is and never moves a client's
/// position, and a counter that moved backwards starts a new epoch instead of re-issuing ids
/// clients already hold.
package final class StreamHub: RedisSubscriberDelegate {
    package let subscriber: RedisSubscriber
    /// The bytes that open every stream.
    package let preamble: StreamPreamble
    package let allocator = ByteBufferAllocator()
    private let history: HistoryStore?
    /// Whether history positions are counted per channel (`HistoryConfiguration.Layout.perChannel`):
    /// then a position is compared only with positions of its own channel, and a multi-channel
    /// stream carries one per channel (`ChannelPositions`).
    package let positionsPerChannel: Bool
    /// Events with history travel by `SPUBLISH` on the channels' shards (positions per channel on
    /// a cluster with sharded pub/sub): a shard's gap is caught up per channel
    /// (`subscriber(_:resubscribed:)`), the classic link's carries none of them.
    package let historyOnShards: Bool
    /// Reads the counter to vouch for live ids, on a connection of its own so it never waits
    /// behind replays.
    private let verifier: HistoryStore?
    /// Live gaps are logged at most once per 10 s, slow replays once a second.
    private let gapLog = Mutex(ReportGate(every: .seconds(10)))
    private let slowReplayLog = Mutex(ReportGate(every: .seconds(1)))
    private let loops: [any EventLoop]
    private let registries: [NIOLoopBoundBox<LoopStreamRegistry>]
    private let loopIndex: [ObjectIdentifier: Int]
    /// Everything the hub's callers share, in one value under one lock.
    private let state = Mutex(HubState())
    private let logger: Logger
    private let metrics: BrokerMetrics
    /// Payloads past this are dropped, live and replayed (`--max-payload`).
    package let maxPayloadBytes: Int
    /// Per loop: deliveries handed over but not yet run, and their bytes.
    private let queuedDeliveries: [QueuedCounter]
    /// Bytes of deliveries that may wait for one loop before it is caught up from history instead.
    package let maxQueuedBytesPerLoop: Int
    package let maxQueuedDeliveriesPerLoop: Int
    /// How far past the last counter read an id may be and still count as a position while
    /// Redis cannot be asked.
    package static let unverifiedSlack: UInt64 = 100_000
    /// How long one vouching read of a channel's counter may block the subscriber thread.
    package static let perChannelReadMilliseconds = 300
    /// How long vouching reads pause after one failed.
    package static let vouchReadPause = Duration.seconds(2)
    /// How long a refused channel is answered 503 without asking Redis again.
    package static let refusalMemory = Duration.seconds(30)

    package init(
        group: any EventLoopGroup,
        subscriber: RedisSubscriber,
        history: HistoryStore?,
        metrics: BrokerMetrics,
        configuration: StreamCoreConfiguration,
        logger: Logger
    ) {
        self.subscriber = subscriber
        self.history = history
        self.positionsPerChannel = history?.configuration.isPerChannel ?? false
        self.historyOnShards = positionsPerChannel && (history?.configuration.publishesSharded ?? false)
        self.verifier = history.map { history in
            HistoryStore(
                configuration: history.configuration,
                client: HistoryStore.commandSender(
                    redis: configuration.redis,
                    history: history.configuration,
                    logger: logger,
                    maximumPending: 1024,
                    retryIntervalMilliseconds: 50,
                    onMoved: { [subscriber] in subscriber.clusterSlotMoved() }
                ),
                watermark: history.watermark
            )
        }
        self.metrics = metrics
        self.logger = logger
        self.maxPayloadBytes = configuration.maxPayloadBytes
        self.maxQueuedBytesPerLoop = max(1, configuration.maxQueuedBytesPerLoop ?? max(64 * 1024 * 1024, 16 * configuration.maxPayloadBytes))
        self.maxQueuedDeliveriesPerLoop = max(1, configuration.maxQueuedDeliveriesPerLoop)
        self.preamble = StreamPreamble(retryMilliseconds: configuration.retryMilliseconds, nodeName: configuration.announcedNodeName)
        var loops: [any EventLoop] = []
        var registries: [NIOLoopBoundBox<LoopStreamRegistry>] = []
        var loopIndex: [ObjectIdentifier: Int] = [:]
        let flushInterval = TimeAmount.nanoseconds(Int64((min(1000, max(0, configuration.flushIntervalMilliseconds.isFinite ? configuration.flushIntervalMilliseconds : 0)) * 1_000_000).rounded()))
        for loop in group.makeIterator() {
            loopIndex[ObjectIdentifier(loop)] = loops.count
            loops.append(loop)
            registries.append(
                .makeBoxSendingValue(LoopStreamRegistry(eventLoop: loop, allocator: allocator, metrics: metrics, flushInterval: flushInterval), eventLoop: loop)
            )
        }
        self.loops = loops
        self.registries = registries
        self.loopIndex = loopIndex
        self.queuedDeliveries = loops.map { _ in QueuedCounter() }
        let perChannel = positionsPerChannel
        state.withLock { $0.table = SubscriptionTable(positionsPerChannel: perChannel) }
    }

    /// Starts heartbeats on every loop.
    package func startHeartbeats(every interval: TimeAmount) {
        for registry in registries {
            registry.eventLoop.execute { registry.value.startHeartbeat(every: interval) }
        }
    }

    /// Stops heartbeats on every loop.
    package func stopHeartbeats() {
        for registry in registries {
            registry.eventLoop.execute { registry.value.stopHeartbeat() }
        }
    }

    /// Ends every stream on every loop cleanly.
    package func finishAllStreams() {
        for registry in registries {
            registry.eventLoop.execute {
                for client in registry.value.clients { client.finish() }
            }
        }
    }

    /// Stops the hub's own Redis connection.
    package func shutdown() {
        verifier?.shutdown()
    }

    private func index(of loop: any EventLoop) -> Int {
        guard let index = loopIndex[ObjectIdentifier(loop)] else {
            preconditionFailure("a connection on an event loop the hub does not know")
        }
        return index
    }

    /// Adds a client; called on its event loop. A client with `resumeFrom` gets its replay first.
    package func register(_ client: StreamClient, on loop: any EventLoop) {
        change(client, on: loop, joining: true)
        if client.resumeFrom == nil, positionsPerChannel, let history {
            // A new stream with positions per channel starts each channel where it
            // stands now, so a multi-channel stream's first id already resumes every channel, the
            // quiet ones too, and a catch-up never starts before the stream did: from
            // the node's table (what the node has seen of it), else from the channel's counter,
            // read at once, with live events held meanwhile. What is at or before a start from the
            // table came before the stream (a classic PUBLISH the cluster bus brings late, say):
            // dropped. A start from the read is tentative: the read may run after events that reach
            // the stream live, and those are written (a late one from before the stream with them).
            let known = state.withLock { state in
                client.channels.map { channel in (channel, state.table.position(of: channel), state.noHistoryYet.contains(channel)) }
            }
            var unknown: [ChannelName] = []
            for (channel, position, empty) in known {
                if let position {
                    client.raisePosition(to: position, on: channel)
                } else if !empty {
                    unknown.append(channel)
                }
            }
            if !unknown.isEmpty {
                client.beginReplay(after: nil)
                client.beginAwaitingStart()
                HistoryReplaySession(hub: self, history: history, loop: loop, clients: [client], channels: unknown, start: .freshStart).run()
            }
        }
        if let resumeFrom = client.resumeFrom, let history {
            client.beginReplay(after: nil)
            // Streams of this loop resuming from the same id on the same channels while a replay
            // for them has not read Redis yet join it: one state read, one read and one encoding
            // per page for all of them (a reconnect storm after a node went away).
            let registry = registries[index(of: loop)].value
            let key = ResumeKey(channels: client.channels, lastEventID: resumeFrom)
            if let pending = registry.pendingResumes[key], pending.join(client) { return }
            let session = HistoryReplaySession(hub: self, history: history, loop: loop, clients: [client], channels: client.channels, start: .resume(lastEventID: resumeFrom))
            registry.pendingResumes[key] = session
            session.whenJoinCloses { [weak registry, weak session] in
                guard let registry, let session, registry.pendingResumes[key] === session else { return }
                registry.pendingResumes[key] = nil
            }
            session.run()
        }
    }

    /// Removes a client; called on its event loop.
    package func unregister(_ client: StreamClient, on loop: any EventLoop) {
        change(client, on: loop, joining: false)
    }

    /// Adds or removes a client in its loop's registry and the node's subscription table, then
    /// subscribes or unsubscribes what that changed.
    private func change(_ client: StreamClient, on loop: any EventLoop, joining: Bool) {
        let index = index(of: loop)
        if joining {
            registries[index].value.add(client)
        } else {
            registries[index].value.remove(client)
        }
        let (actions, channelCount, connected) = state.withLock { state in
            state.connected += joining ? 1 : -1
            let actions = client.channels.map { channel in
                joining ? state.table.add(channel: channel, loop: index) : state.table.remove(channel: channel, loop: index)
            }
            for case .unsubscribe(let channel) in actions {
                state.vouchedPerChannel[channel] = nil
                state.noHistoryYet.remove(channel)
            }
            return (actions, state.table.channelCount, state.connected)
        }
        metrics.connectedClients.record(connected)
        metrics.channelsSubscribed.record(channelCount)
        apply(actions)
    }

    private func apply(_ actions: [SubscriptionTable.Action]) {
        for action in actions {
            switch action {
            case .none:
                break
            case .subscribe(let channel):
                subscriber.subscribe(channel.text)
                learnPosition(of: channel)
            case .unsubscribe(let channel):
                subscriber.unsubscribe(channel.text)
            }
        }
    }

    /// Once the new subscription is confirmed, everything after the channel's newest event
    /// reaches the node live; that event is where a catch-up for this channel would start. (Until
    /// then the channel stands at the newest position the node knew when it was first wanted.)
    /// A late answer for a channel nobody wants any more leaves nothing behind.
    private func learnPosition(of channel: ChannelName) {
        guard let history else { return }
        subscriber.whenSubscribed([channel.text]) { [self] _ in
            history.lastPosition(of: channel.text, lane: HistoryLane.positions) { [self] result in
                guard case .success(let position?) = result else { return }
                state.withLock { state in
                    state.table.advance(channel, to: position)
                    // Our script wrote it, at or below the channel's counter: live ids up to it
                    // need no read (per channel; a new epoch is always read).
                    if positionsPerChannel, state.table.clientCount(for: channel) > 0, state.vouchedPerChannel[channel] == nil {
                        state.vouchedPerChannel[channel] = position
                    }
                }
            }
        }
    }

    /// A new stream read where `channel` stands (`.freshStart`): the table takes it, or, when the
    /// channel has no history yet, remembers that while the channel has clients, so the next new
    /// stream of it reads nothing.
    package func learnedStart(of channel: ChannelName, at position: HistoryPosition?) {
        state.withLock { state in
            guard state.table.clientCount(for: channel) > 0 else { return }
            if let position {
                state.table.advance(channel, to: position)
            } else {
                state.noHistoryYet.insert(channel)
            }
        }
    }

    /// Records the state of `channel`'s own counter (positions per channel) from any read of it.
    package func observe(_ state: HistoryState, on channel: ChannelName) {
        guard let current = state.current else { return }
        self.state.withLock { state in
            // Only for a channel with clients: the entry goes with its last client.
            guard state.table.clientCount(for: channel) > 0 else { return }
            if state.vouchedPerChannel[channel].map({ $0 < current }) ?? true { state.vouchedPerChannel[channel] = current }
        }
        history?.watermark.observe(current, on: channel)
    }

    /// Records the counter's state from any read of it.
    package func observe(_ state: HistoryState) {
        guard let current = state.current else { return }
        self.state.withLock { state in
            if state.vouched.map({ $0 < current }) ?? true { state.vouched = current }
            state.table.observe(current)
        }
        history?.watermark.observe(current)
    }

    // MARK: History replay

    /// The documented `history-gap` event: which channels cannot be resumed exactly, and why.
    package func gapEvent(_ gaps: [(ChannelName, HistoryGap)], lastEventID: String) -> EncodedEvent {
        let data: JSONValue = [
            "channels": .object(JSONObject(gaps.map { ($0.0.text, JSONValue.string($0.1.rawValue)) })),
            "lastEventId": .string(lastEventID),
        ]
        let text = String(decoding: PythonJSONEncoder.encode(data), as: UTF8.self)
        return EncodedEvent(ServerSentEvent(data: text, type: "history-gap"), position: nil, allocator: allocator)
    }

    /// A replay found these channels' counters behind what this process saw (Redis lost events).
    package func noteCounterBehind(_ channels: [ChannelName]) {
        logger.error(
            "a channel's history counter moved backwards (Redis lost events); starting a new epoch",
            metadata: ["channels": "\(channels.prefix(8))", "count": "\(channels.count)"]
        )
    }

    package func noteReplayed(_ count: Int) {
        metrics.eventsReplayed.increment(by: count)
    }

    package func noteReplaySlow(seconds: Double, waitingFor step: String, lastError: RedisError?, channels: [ChannelName], streams: Int) {
        let now = ContinuousClock.now
        guard let reports = slowReplayLog.withLock({ $0.take(now: now) }) else { return }
        let heldBack = reports - 1
        logger.warning(
            "a history replay is still holding its streams' live events",
            metadata: [
                "seconds": "\(Int(seconds))", "waiting-for": "\(step)", "last-error": "\(lastError.map { "\($0)" } ?? "-")",
                "channels": "\(channels.prefix(8).map(\.text))", "streams": "\(streams)", "other slow replays since the last report": "\(heldBack)",
            ]
        )
    }

    package func noteReplayFailure(_ error: RedisError, channels: [ChannelName]) {
        logger.warning("history replay failed", metadata: ["error": "\(error)", "channels": "\(channels.count)"])
    }

    /// Replays to every client of `loop` what its channels got since `positions` (or, for a
    /// client that got history events, since the last one it got), grouped by channel set and
    /// start so a group costs one read per page and one encoding. Clients drop what they
    /// already have. Called on `loop`.
    private func catchUp(loop index: Int, positions: [ChannelName: HistoryPosition], fallback: HistoryPosition) {
        guard let history else { return }
        let registry = registries[index].value
        let loop = registry.eventLoop
        if positionsPerChannel {
            catchUpPerChannel(registry: registry, history: history, positions: positions)
            return
        }
        var groups: [CatchUpKey: [StreamClient]] = [:]
        for client in registry.clients where client.isOpen {
            let known = client.channels.compactMap { positions[$0] }
            let channelStart = known.count == client.channels.count ? known.min() : nil
            let from = client.lastDelivered ?? channelStart ?? fallback
            groups[CatchUpKey(channels: client.channels, from: from), default: []].append(client)
        }
        for (key, clients) in groups {
            for client in clients { client.beginReplay(after: key.from.epoch == 0 ? nil : key.from) }
            HistoryReplaySession(hub: self, history: history, loop: loop, clients: clients, channels: key.channels, start: .catchUp(from: key.from)).run()
        }
    }

    /// `catchUp` with positions per channel: each client from where it stands on each channel
    /// (else where the channel stood, else all that history holds), grouped by channels and starts.
    private func catchUpPerChannel(registry: LoopStreamRegistry, history: HistoryStore, positions: [ChannelName: HistoryPosition]) {
        let origin = HistoryPosition(epoch: 0, sequence: 0)
        func key(_ client: StreamClient) -> PerChannelCatchUpKey {
            var from: [ChannelName: HistoryPosition] = [:]
            for channel in client.channels { from[channel] = client.position(on: channel) ?? positions[channel] ?? origin }
            return PerChannelCatchUpKey(channels: client.channels, from: from)
        }
        var groups: [PerChannelCatchUpKey: [StreamClient]] = [:]
        for client in registry.clients where client.isOpen {
            guard !client.isAwaitingStart else {
                catchUpAfterStart(client, registry: registry, history: history) { [key(client)] }
                continue
            }
            groups[key(client), default: []].append(client)
        }
        runCatchUps(groups, registry: registry, history: history)
    }

    /// A stream whose start read is still out catches up once it knows where it started:
    /// before, it has no position, and a catch-up from where the channel stood (or from all of
    /// its history) would replay events from before the stream opened.
    private func catchUpAfterStart(
        _ client: StreamClient, registry: LoopStreamRegistry, history: HistoryStore, keys: @escaping () -> [PerChannelCatchUpKey]
    ) {
        client.afterStart { [self] in
            guard client.isOpen else { return }
            runCatchUps(Dictionary(keys().map { ($0, [client]) }, uniquingKeysWith: { $0 + $1 }), registry: registry, history: history)
        }
    }

    /// A gap catch-up of this loop: it covers its channel's later gaps until it asks for its
    /// first page, and leaves the registry when it ends.
    private func trackGapCatchUp(_ session: HistoryReplaySession, channel: ChannelName, registry: LoopStreamRegistry) {
        registry.gapCatchUps[channel, default: []].append(session)
        session.onFinish = { [weak registry, weak session] in
            guard let registry, let session else { return }
            registry.gapCatchUps[channel]?.removeAll { $0 === session }
            if registry.gapCatchUps[channel]?.isEmpty == true { registry.gapCatchUps[channel] = nil }
        }
    }

    /// One replay per group of clients with the same channels and starts (positions per channel).
    private func runCatchUps(
        _ groups: [PerChannelCatchUpKey: [StreamClient]], registry: LoopStreamRegistry, history: HistoryStore,
        prepare: (HistoryReplaySession, PerChannelCatchUpKey) -> Void = { _, _ in }
    ) {
        for (key, clients) in groups {
            for client in clients {
                client.beginReplay(after: nil)
                for (channel, position) in key.from where position.epoch != 0 { client.raisePosition(to: position, on: channel) }
            }
            let session = HistoryReplaySession(
                hub: self, history: history, loop: registry.eventLoop, clients: clients, channels: key.channels, start: .catchUpPerChannel(from: key.from)
            )
            prepare(session, key)
            session.run()
        }
    }

    /// After the subscription came back: every loop catches up from where its channels stood.
    private func catchUpEverywhere() {
        let (positions, fallback) = snapshotPositions()
        for index in registries.indices {
            registries[index].eventLoop.execute { [self] in catchUp(loop: index, positions: positions, fallback: fallback) }
        }
    }

    /// Every channel's position, and where a channel without one stands: the newest position the
    /// node knew of, or the origin (every retained event) if it never knew any.
    private func snapshotPositions() -> ([ChannelName: HistoryPosition], HistoryPosition) {
        state.withLock { state in
            (state.table.positions, (positionsPerChannel ? nil : state.table.newest) ?? HistoryPosition(epoch: 0, sequence: 0))
        }
    }

    // MARK: Counters

    package func noteSlowClientCutOff(backlog: Int) {
        metrics.slowClientsCutOff.increment()
        logger.info("slow client cut off", metadata: ["unsent-bytes": "\(backlog)"])
    }

    /// Open streams on this node.
    package var connectedCount: Int { state.withLock { $0.connected } }

    /// Clients of `channel` on this node.
    package func clientCount(for channel: String) -> Int {
        state.withLock { $0.table.clientCount(for: ChannelName(channel)) }
    }

    /// Channels with clients on this node.
    package var channelCount: Int { state.withLock { $0.table.channelCount } }

    // MARK: Vouching for ids (subscriber thread)

    /// Waits, on the subscriber thread (ours to block), for the counter's state: a few tries
    /// within about a second (the first command after a Redis restart may meet the old,
    /// broken connection); nil if Redis does not answer.
    private func readStateNow(channel: String = "", milliseconds: Int = 1200, attempts: Int = 4) -> HistoryState? {
        guard let verifier else { return nil }
        let deadline = DispatchTime.now() + .milliseconds(milliseconds)
        for attempt in 0..<attempts {
            let box = Mutex<Result<HistoryState, RedisError>?>(nil)
            let done = DispatchSemaphore(value: 0)
            verifier.state(channel: channel) { result in
                box.withLock { $0 = result }
                done.signal()
            }
            guard done.wait(timeout: deadline) == .success else { return nil }
            switch box.withLock({ $0 }) {
            case .success(let state)?: return state
            case .failure(let error)? where error.isTransient && attempt < attempts - 1: usleep(UInt32(50_000 << attempt))
            default: return nil
            }
        }
        return nil
    }

    /// Reads the counter; if it moved backwards below what this node saw (in the same epoch, or
    /// back to an older epoch), starts a new epoch. Returns the state Redis vouches for now.
    private func refreshCounter() -> HistoryState? {
        // What the node had seen before asking: positions seen while the read is in flight (this
        // node's own publishes, say) may be newer than the answer without anything being wrong.
        let seenBeforeRead = history?.watermark.position
        guard let state = readStateNow() else { return nil }
        if let current = state.current, let seen = seenBeforeRead, seen > current, let verifier {
            logger.error(
                "the history counter moved backwards (Redis lost events); starting a new epoch",
                metadata: ["seen": "\(seen)", "counter": "\(current)"]
            )
            let done = DispatchSemaphore(value: 0)
            verifier.startEpochIfBehind { _ in done.signal() }
            _ = done.wait(timeout: .now() + .seconds(1))
            // The counter as it is now, even if lower than before: ids at or below the old one
            // are no longer covered without asking.
            self.state.withLock { $0.vouched = current }
            return readStateNow().map { fresh in
                self.state.withLock { $0.vouched = fresh.current }
                observe(fresh)
                return fresh
            }
        }
        self.state.withLock { $0.vouched = state.current }
        observe(state)
        return state
    }

    /// `refreshCounter` for `channel`'s own counter (positions per channel).
    private func refreshCounter(of channel: ChannelName) -> HistoryState? {
        let seenBeforeRead = history?.watermark.position(of: channel)
        guard let state = readStateNow(channel: channel.text, milliseconds: Self.perChannelReadMilliseconds, attempts: 1) else { return nil }
        if let current = state.current, let seen = seenBeforeRead, seen > current, let verifier {
            logger.error(
                "a channel's history counter moved backwards (Redis lost events); starting a new epoch",
                metadata: ["channel": "\(channel)", "seen": "\(seen)", "counter": "\(current)"]
            )
            let done = DispatchSemaphore(value: 0)
            verifier.startEpochIfBehind(channel: channel.text) { _ in done.signal() }
            _ = done.wait(timeout: .now() + .seconds(1))
            self.state.withLock { $0.vouchedPerChannel[channel] = nil }
            return readStateNow(channel: channel.text, milliseconds: Self.perChannelReadMilliseconds, attempts: 1).map { fresh in
                self.state.withLock { $0.vouchedPerChannel[channel] = nil }
                observe(fresh, on: channel)
                return fresh
            }
        }
        observe(state, on: channel)
        return state
    }

    /// `vouchedPositions` with positions per channel: each id against its own channel's
    /// counter, read (blocking, on the subscriber thread) once per channel that has an id not
    /// covered yet. Returns per candidate its position, and whether Redis vouched for it now.
    private func vouchedPositionsPerChannel(_ candidates: [(channel: ChannelName, position: HistoryPosition?)]) -> [(position: HistoryPosition?, verified: Bool)] {
        guard let history else { return candidates.map { _ in (nil, true) } }
        let channels = Set(candidates.compactMap { $0.position == nil ? nil : $0.channel })
        var known: [ChannelName: HistoryPosition] = state.withLock { state in
            state.vouchedPerChannel.filter { channels.contains($0.key) }
        }
        func covered(_ position: HistoryPosition, on channel: ChannelName) -> Bool {
            guard let vouched = known[channel], position.epoch == vouched.epoch else { return false }
            if position.sequence <= vouched.sequence { return true }
            return history.watermark.position(of: channel).map { $0.epoch == vouched.epoch && position.sequence <= $0.sequence } ?? false
        }
        // At most one blocking read per read of the subscription, and none for a while after one
        // failed (a master that is slow or paused): the others count as Redis not askable now.
        // Ids from anyone (a raw PUBLISH of `2024-06`) can ask for reads: this bounds what they cost.
        let now = ContinuousClock.now
        var readsLeft = state.withLock { $0.vouchReadsPausedUntil.map { $0 > now } ?? false } ? 0 : 1
        var fresh: [ChannelName: HistoryState?] = [:]
        for candidate in candidates {
            guard let position = candidate.position, fresh[candidate.channel] == nil, !covered(position, on: candidate.channel) else { continue }
            guard readsLeft > 0 else {
                fresh[candidate.channel] = .some(nil)
                continue
            }
            readsLeft -= 1
            let state = refreshCounter(of: candidate.channel)
            fresh[candidate.channel] = .some(state)
            if let current = state?.current { known[candidate.channel] = current }
            if state == nil {
                self.state.withLock { $0.vouchReadsPausedUntil = now + Self.vouchReadPause }
            }
        }
        return candidates.map { candidate in
            guard let position = candidate.position else { return (nil, true) }
            switch fresh[candidate.channel] {
            case nil:
                return (covered(position, on: candidate.channel) ? position : nil, true)
            case .some(.some(let state)):
                return (state.vouches(for: position) ? position : nil, true)
            case .some(.none):
                // Redis cannot be asked right now: as `vouchedPositions`, a plausible distance.
                let plausible = covered(position, on: candidate.channel)
                    || known[candidate.channel].map { position.epoch == $0.epoch && position.sequence <= $0.sequence &+ Self.unverifiedSlack } ?? false
                return (plausible ? position : nil, false)
            }
        }
    }

    /// Decides which candidate ids of one read are positions: those Redis vouches for. One
    /// counter read per read of the subscription at most, and none when every id is already
    /// covered. Ids at or below what the node saw, in an epoch whose counter moved backwards,
    /// are re-issued ones: delivered as is, never positions.
    private func vouchedPositions(_ candidates: [HistoryPosition?]) -> (positions: [HistoryPosition?], verified: Bool) {
        guard let history else { return (candidates.map { _ in nil }, true) }
        let known = state.withLock { $0.vouched }
        // Redis also vouches for what this process's own publishes got back (the watermark): in
        // the epoch of the last counter read, ids up to it are covered without another read. A
        // new epoch is always read (the table learns how the old one ended).
        let issued = history.watermark.position
        let covered: (HistoryPosition) -> Bool = { position in
            guard let known, position.epoch == known.epoch else { return false }
            if position.sequence <= known.sequence { return true }
            return issued.map { $0.epoch == known.epoch && position.sequence <= $0.sequence } ?? false
        }
        guard candidates.contains(where: { $0.map { !covered($0) } ?? false }) else { return (candidates, true) }
        guard let state = refreshCounter() else {
            // Redis cannot be asked right now (the subscription delivers, the counter read does
            // not: rare and short). Ids in the known epoch a plausible distance past the last
            // counter read count, rather than every event of the moment becoming undeduplicated.
            let positions = candidates.map { candidate in
                candidate.flatMap { position in
                    covered(position) || known.map { position.epoch == $0.epoch && position.sequence <= $0.sequence &+ Self.unverifiedSlack } ?? false
                        ? position : nil
                }
            }
            return (positions, false)
        }
        // After a new epoch began (the counter had moved backwards), ids of the old epoch are
        // not vouched for: re-issued ones must reach clients that hold the same ids already.
        return (candidates.map { candidate in candidate.flatMap { state.vouches(for: $0) ? $0 : nil } }, true)
    }

    // MARK: RedisSubscriberDelegate (called on the subscriber thread)

    package func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        let channels = messages.map { ChannelName($0.channel) }
        let routes: [[Int]] = state.withLock { state in
            channels.map { state.table.loops(for: $0).map(Array.init) ?? [] }
        }
        var decoded: [(index: Int, event: ServerSentEvent, publishedAt: Double?)] = []
        for (index, message) in messages.enumerated() where !routes[index].isEmpty {
            guard message.payload.count <= maxPayloadBytes else {
                logger.error(
                    "dropped a Redis payload larger than --max-payload",
                    metadata: ["channel": "\(message.channel)", "bytes": "\(message.payload.count)"]
                )
                continue
            }
            let (event, stamp) = EncodedEvent.decode(redisPayload: message.payload)
            decoded.append((index, event, stamp))
        }
        let vouched: [(position: HistoryPosition?, verified: Bool)]
        if positionsPerChannel {
            vouched = vouchedPositionsPerChannel(decoded.map { (channels[$0.index], $0.event.historyPosition) })
        } else {
            let (positions, verified) = vouchedPositions(decoded.map { $0.event.historyPosition })
            vouched = positions.map { ($0, verified) }
        }
        var plan = FanOutPlan(loopCount: loops.count)
        var verifiedTop: [ChannelName: HistoryPosition] = [:]
        for (item, (position, verified)) in zip(decoded, vouched) {
            let channel = channels[item.index]
            let event = EncodedEvent(item.event, position: position, channel: channel, publishedAt: item.publishedAt, allocator: allocator)
            plan.add(event, channel: channel, loops: routes[item.index])
            if positionsPerChannel, verified, let position { verifiedTop[channel] = max(verifiedTop[channel] ?? position, position) }
        }
        let deliveries = plan.deliveries(allocator: allocator)
        var gaps: [ChannelName: HistoryPosition] = [:]
        if !plan.newest.isEmpty {
            let verifiedLive: [(channel: ChannelName, position: HistoryPosition?)] = positionsPerChannel && !verifiedTop.isEmpty
                ? zip(decoded, vouched).map { (channels[$0.0.index], $0.1.verified ? $0.1.position : nil) } : []
            state.withLock { state in
                if !verifiedLive.isEmpty { gaps = Self.liveGaps(in: verifiedLive, table: state.table) }
                for (channel, position) in plan.newest { state.table.advance(channel, to: position) }
            }
            // Only what Redis vouched for may raise the watermark (it decides new epochs).
            if positionsPerChannel {
                for (channel, position) in verifiedTop { history?.watermark.observe(position, on: channel) }
            } else if vouched.allSatisfy(\.verified), let top = plan.newest.values.max() {
                history?.watermark.observe(top)
            }
        }
        metrics.eventsReceived.increment(by: messages.count)
        if !gaps.isEmpty { catchUpLiveGaps(gaps) }
        for (index, delivery) in deliveries.enumerated() where !delivery.ordered.isEmpty {
            hand(delivery, toLoop: index)
        }
    }

    /// Channels (positions per channel) whose live events skip positions: each channel's counter
    /// counts one per event, so a verified position more than one past the one before it (the
    /// node's last known, then the previous one of the read) means events that never reached
    /// the subscription (a replica promoted before its subscribers were told, a shard's message
    /// lost in a move, a publisher on another `pubsub=` setting). Returns where each such
    /// channel stood before the read (the node's position, else just before the read's first
    /// event there): the read's own events are not delivered yet, so a stream without a
    /// position of its own is caught up from there and loses none of them.
    static func liveGaps(in events: [(channel: ChannelName, position: HistoryPosition?)], table: SubscriptionTable) -> [ChannelName: HistoryPosition] {
        var last: [ChannelName: HistoryPosition] = [:]
        var start: [ChannelName: HistoryPosition] = [:]
        var gaps: [ChannelName: HistoryPosition] = [:]
        for (channel, position) in events {
            guard let position else { continue }
            if start[channel] == nil {
                start[channel] = table.position(of: channel) ?? HistoryPosition(epoch: position.epoch, sequence: position.sequence &- min(1, position.sequence))
            }
            guard let before = last[channel] ?? table.position(of: channel) else {
                last[channel] = position
                continue
            }
            if gaps[channel] == nil, position.epoch == before.epoch, position.sequence > before.sequence &+ 1 {
                gaps[channel] = start[channel]
            }
            if before < position { last[channel] = position } else { last[channel] = before }
        }
        return gaps
    }

    /// Catches every stream of `gaps`' channels up from history (from where each stands, else
    /// where the channel stood before the gap), ahead of the read's deliveries on every loop, so
    /// the missed events come first and the live ones after them once.
    private func catchUpLiveGaps(_ gaps: [ChannelName: HistoryPosition]) {
        let now = ContinuousClock.now
        if let report = gapLog.withLock({ $0.take(gaps.count, now: now) }) {
            logger.warning(
                "events of a channel did not arrive live (their positions were skipped); catching its streams up from history",
                metadata: ["channels": "\(gaps.keys.prefix(8).map(\.text))", "gaps since the last report": "\(report)"]
            )
        }
        metrics.liveGaps.increment(by: gaps.count)
        let channels = Set(gaps.keys)
        for index in registries.indices {
            registries[index].eventLoop.execute { [self] in catchUp(channels: channels, loop: index, standing: gaps) }
        }
    }

    /// Queues a delivery on a loop, unless that loop is too far behind: then its deliveries are
    /// dropped and, once it has drained, its clients are caught up from history instead, so a
    /// stalled loop never grows the node's memory.
    private func hand(_ delivery: LoopDelivery, toLoop index: Int) {
        let registry = registries[index]
        let queued = queuedDeliveries[index]
        let bytes = delivery.ordered.reduce(0) { $0 + $1.event.chunked.readableBytes }
        if queued.isBehind { return }
        if queued.bytes + bytes > maxQueuedBytesPerLoop || queued.count >= maxQueuedDeliveriesPerLoop {
            queued.isBehind = true
            metrics.loopsBehind.increment()
            var (positions, fallback) = snapshotPositions()
            // The table already counts this delivery's events: start before them.
            for routed in delivery.ordered {
                guard let position = routed.event.position, position.sequence > 0 else { continue }
                let before = HistoryPosition(epoch: position.epoch, sequence: position.sequence - 1)
                positions[routed.channel] = min(positions[routed.channel] ?? before, before)
                fallback = min(fallback, before)
            }
            logger.error(
                "an event loop fell too far behind; its deliveries are dropped until it has drained",
                metadata: ["loop": "\(index)", "queued": "\(queued.count)", "bytes": "\(queued.bytes)", "catch-up": "\(history != nil)"]
            )
            registry.eventLoop.execute { [self, positions, fallback] in
                // Runs after everything queued before it: the loop has drained. With history its
                // clients get what was dropped from there; without, it is gone (as for a client
                // that was disconnected).
                queued.isBehind = false
                catchUp(loop: index, positions: positions, fallback: fallback)
            }
            return
        }
        queued.increment(bytes: bytes)
        registry.eventLoop.execute {
            // The last of the deliveries queued on this loop flushes at once; earlier ones leave
            // it to that one, so a burst still goes out in one writev per client.
            let isLast = queued.decrementReachesZero(bytes: bytes)
            registry.value.deliver(delivery, flushNow: isLast)
        }
    }

    /// Runs before any message of the new connection is read, so the catch-up's `beginReplay`
    /// reaches each loop ahead of the first live batch. Reads the counter first (and starts a new
    /// epoch if it moved backwards), so ids are vouched for against the Redis now connected.
    package func subscriberDidConnect(_ subscriber: RedisSubscriber) {
        let isReconnect = state.withLock { state in
            defer { state.hasConnected = true }
            return state.hasConnected
        }
        if isReconnect { metrics.redisReconnects.increment() }
        guard history != nil else { return }
        if positionsPerChannel {
            // Each channel's counter is read by its catch-up (and by the first live id that
            // needs it), not here: one read per channel would hold this thread. With history on
            // the shards, the classic link carries no event with history: nothing to catch up.
            if isReconnect, !historyOnShards { catchUpEverywhere() }
            return
        }
        if let state = refreshCounter(), state.current == nil {
            // No history was ever written (or Redis lost all of it): every entry that appears from
            // now on is new to every client.
            self.state.withLock { $0.table.observe(HistoryPosition(epoch: 0, sequence: 0)) }
        }
        if isReconnect { catchUpEverywhere() }
    }

    package func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {}

    /// History on the shards: `channels` are subscribed again after a gap on their shard; their
    /// streams on every loop catch up on those channels from history.
    package func subscriber(_ subscriber: RedisSubscriber, resubscribed channels: [String]) {
        guard history != nil, positionsPerChannel else { return }
        let moved = Set(channels.map { ChannelName($0) })
        for index in registries.indices {
            registries[index].eventLoop.execute { [self] in catchUp(channels: moved, loop: index, standing: nil) }
        }
    }

    /// Catches every client of loop `index` up on those of `channels` it receives, each channel
    /// from where the client stands on it (else where the channel stood, else all of its
    /// history), grouped by channel and start. Called on that loop.
    /// `standing`: where the channels stood for clients without a position of their own (else
    /// the node's table).
    ///
    /// For a live gap (`standing` given), a channel whose earlier gap catch-up on this loop has not
    /// asked for its first page yet is left to it (that page reads past this gap too), so gaps
    /// arriving faster than replays end cost at most one waiting replay per channel and start.
    private func catchUp(channels: Set<ChannelName>, loop index: Int, standing: [ChannelName: HistoryPosition]?) {
        guard let history else { return }
        let registry = registries[index].value
        let origin = HistoryPosition(epoch: 0, sequence: 0)
        let isGap = standing != nil
        let wanted = isGap ? channels.filter { registry.gapCatchUps[$0]?.contains { !$0.pagesStarted } != true } : channels
        guard !wanted.isEmpty else { return }
        let positions = standing ?? state.withLock { state in
            state.table.positions.filter { wanted.contains($0.key) }
        }
        func key(_ client: StreamClient, _ channel: ChannelName) -> PerChannelCatchUpKey {
            PerChannelCatchUpKey(channels: [channel], from: [channel: client.position(on: channel) ?? positions[channel] ?? origin])
        }
        var groups: [PerChannelCatchUpKey: [StreamClient]] = [:]
        var awaiting: [ObjectIdentifier: (client: StreamClient, channels: [ChannelName])] = [:]
        for channel in wanted {
            for client in registry.clients(of: channel) where client.isOpen {
                guard !client.isAwaitingStart else {
                    awaiting[ObjectIdentifier(client), default: (client, [])].channels.append(channel)
                    continue
                }
                groups[key(client, channel), default: []].append(client)
            }
        }
        for (client, channels) in awaiting.values {
            catchUpAfterStart(client, registry: registry, history: history) { channels.map { key(client, $0) } }
        }
        runCatchUps(groups, registry: registry, history: history) { session, key in
            guard isGap, let channel = key.channels.first else { return }
            trackGapCatchUp(session, channel: channel, registry: registry)
        }
    }

    /// The delivery probe found the subscription silent: counted; the subscriber reconnects, and
    /// the reconnect catches every stream up from history (`subscriberDidConnect`).
    package func subscriber(_ subscriber: RedisSubscriber, foundSilent reason: String) {
        metrics.probeFailures.increment()
    }

    /// Redis refused to subscribe `channels` (an ACL user without access to them): only these
    /// channels are affected. Their open streams get a `subscription-refused` event and end, so
    /// an EventSource reconnects and is then answered 503 while the refusal lasts (the node
    /// keeps retrying, since an ACL can change); `/readyz` and the metrics list them.
    package func subscriber(_ subscriber: RedisSubscriber, refused channels: [String], error: String) {
        let until = ContinuousClock.now + Self.refusalMemory
        let count = state.withLock { state in
            for channel in channels { state.refusedUntil[ChannelName(channel)] = until }
            return state.refusedUntil.count
        }
        metrics.subscriptionRefusals.increment(by: channels.count)
        metrics.channelsRefused.record(count)
        logger.error("Redis refused to subscribe channels", metadata: ["channels": "\(channels)", "error": "\(error)"])
        let refused = Set(channels.map { ChannelName($0) })
        let data: JSONValue = [
            "channels": .array(channels.sorted().map { .string($0) }),
            "error": "Redis refused the subscription (access control); the node keeps retrying",
        ]
        let notice = EncodedEvent(
            ServerSentEvent(data: String(decoding: PythonJSONEncoder.encode(data), as: UTF8.self), type: "subscription-refused"),
            position: nil,
            allocator: allocator
        )
        for registry in registries {
            registry.eventLoop.execute {
                for client in registry.value.clients where client.channels.contains(where: refused.contains) {
                    client.finish(after: notice)
                }
            }
        }
    }

    /// The channels among `channels` that Redis refused to subscribe within `refusalMemory`
    /// (or refuses now): a stream of them is answered 503 rather than opened, ended and
    /// reopened by its EventSource again and again.
    package func refusedChannels(among channels: [String]) -> [String] {
        let remembered = currentRefusals()
        guard !remembered.isEmpty else { return [] }
        return channels.filter { remembered.contains(ChannelName($0)) }
    }

    /// Channels refused within `refusalMemory`.
    package var refusedChannelCount: Int { currentRefusals().count }

    private func currentRefusals() -> Set<ChannelName> {
        let now = ContinuousClock.now
        let (remembered, count) = state.withLock { state in
            state.refusedUntil = state.refusedUntil.filter { $0.value > now }
            return (Set(state.refusedUntil.keys), state.refusedUntil.count)
        }
        metrics.channelsRefused.record(count)
        return remembered
    }
}

/// What the hub's callers (event loops, the subscriber thread) share.
private struct HubState {
    var table = SubscriptionTable()
    /// Open streams on this node.
    var connected = 0
    /// The subscription connected once already (a later connect is a reconnect).
    var hasConnected = false
    /// The newest counter Redis vouched for (`HistoryState.current`): live ids at or below it
    /// in its epoch are positions without asking Redis again.
    var vouched: HistoryPosition?
    /// With positions per channel, the same per channel, for channels with clients only.
    var vouchedPerChannel: [ChannelName: HistoryPosition] = [:]
    /// With positions per channel: no vouching read before then (one failed).
    var vouchReadsPausedUntil: ContinuousClock.Instant?
    /// With positions per channel: channels with clients whose counter a new stream found unset.
    var noHistoryYet: Set<ChannelName> = []
    /// Channels Redis refused, and until when that is remembered.
    var refusedUntil: [ChannelName: ContinuousClock.Instant] = [:]
}

/// Streams that catch up together: same channels, same start.
/// Resumes that share one replay: the same channels, in order, and the same `Last-Event-ID` text.
package struct ResumeKey: Hashable {
    package let channels: [ChannelName]
    package let lastEventID: String
}

private struct CatchUpKey: Hashable {
    package let channels: [ChannelName]
    package let from: HistoryPosition
}

/// Streams that catch up together with positions per channel: same channels, same starts.
private struct PerChannelCatchUpKey: Hashable {
    let channels: [ChannelName]
    let from: [ChannelName: HistoryPosition]
}
