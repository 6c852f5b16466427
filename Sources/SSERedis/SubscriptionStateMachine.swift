import SSEWire

/// The Redis side of a node's pub/sub subscriptions, as a pure value: no I/O, no clock.
///
/// The shape of postgres-nio's `ListenStateMachine`: the subscriber thread feeds it what it
/// learns (the wanted set changed, a connection came up or went down, a reply arrived, time
/// passed) and carries out the actions it returns (send a command, report a refusal, run a
/// waiter, drop the connection).
///
/// Redis answers commands in order (Redis pub/sub): a `SUBSCRIBE` of n channels gets n
/// `subscribe` confirmations or one error reply, an `UNSUBSCRIBE` of n channels n
/// `unsubscribe` confirmations, a `PING` one `pong`; `message`s come between commands. So a
/// FIFO of the commands in flight maps every confirmation and every error reply to its
/// command. An ACL refusal (`-NOPERM`) rejects a whole `SUBSCRIBE`; a refused batch is
/// retried one channel per command to find the channels Redis actually refuses, and only
/// those are refused: they are not subscribed, reported once, retried on every new
/// connection and, on this one, after a backoff (an ACL can change).
struct SubscriptionStateMachine<Waiter> {
    /// A command for the subscription connection.
    enum Command: Hashable {
        case subscribe([ChannelName])
        case unsubscribe([ChannelName])
        case ping
    }

    /// What the thread must do, in order.
    enum Action {
        case send(Command)
        /// Redis refused these wanted channels (newly: each is reported once until confirmed).
        case reportRefused([ChannelName], error: String)
        /// Every channel of the waiter is answered; `refused` are those Redis refused.
        case runWaiter(Waiter, refused: Set<ChannelName>)
        /// The replies do not match the commands: the connection cannot be trusted.
        case closeConnection(reason: String)
    }

    /// Limits and delays.
    struct Configuration {
        /// Channels per SUBSCRIBE/UNSUBSCRIBE command.
        var batchSize = 500
        /// First retry of a refused channel on the same connection; doubles per refusal.
        var refusalRetryBase: Duration = .seconds(5)
        /// Longest wait between retries of a refused channel.
        var refusalRetryCap: Duration = .seconds(30)
        /// When set, one command names only channels with the same key (sharded pub/sub: one
        /// slot per `SSUBSCRIBE`, or Redis answers `-CROSSSLOT`).
        var batchKey: (@Sendable (ChannelName) -> Int)?
    }

    private struct InFlight {
        enum Kind { case subscribe, unsubscribe, ping }
        let kind: Kind
        let channels: [ChannelName]
        /// How many of `channels` Redis has answered so far.
        var answered = 0
    }

    /// What is known about a channel Redis refused.
    private struct Refusal {
        var attempts: Int
        var retryAt: ContinuousClock.Instant
        var error: String
    }

    private let configuration: Configuration
    private(set) var isConnected = false
    private(set) var wanted: Set<ChannelName> = []
    /// Channels a SUBSCRIBE was sent for on this connection and not refused or unsubscribed since.
    private var subscribed: Set<ChannelName> = []
    /// Channels Redis confirmed with `subscribe` on this connection (and has not unsubscribed).
    private var confirmed: Set<ChannelName> = []
    /// Per channel, how many commands in flight name it.
    private var pending: [ChannelName: Int] = [:]
    private var inFlight: [InFlight] = []
    private var inFlightHead = 0
    /// Wanted channels refused on this connection and not subscribed again since.
    private var refusedHere: Set<ChannelName> = []
    /// Wanted channels last refused and not confirmed since (survives reconnects).
    private var refusals: [ChannelName: Refusal] = [:]
    /// Waiters by id (ids grow, so id order is arrival order), and the ids waiting on each
    /// channel: only the waiters of channels whose state changed are checked again.
    private var waiters: [Int: (waiter: Waiter, channels: Set<ChannelName>)] = [:]
    private var waitersByChannel: [ChannelName: Set<Int>] = [:]
    private var nextWaiterID = 0
    /// Channels with waiters whose state changed since waiters were last checked.
    private var touched: Set<ChannelName> = []

    init(configuration: Configuration = .init()) {
        self.configuration = configuration
    }

    // MARK: Queries

    /// Wanted channels Redis refused and has not confirmed since.
    var refusedChannels: Set<ChannelName> { Set(refusals.keys) }

    /// Channels Redis has confirmed on this connection with nothing about them still in flight.
    func isConfirmed(_ channel: ChannelName) -> Bool {
        confirmed.contains(channel) && pending[channel] == nil
    }

    /// Commands sent whose replies have not all arrived.
    var commandsInFlight: Int { inFlight.count - inFlightHead }

    /// Waiters not yet run.
    var waiterCount: Int { waiters.count }

    /// Whether `channel` is wanted and subscribed on the connection now, confirmed by Redis.
    func isSubscribedNow(_ channel: ChannelName) -> Bool {
        isConnected && wanted.contains(channel) && pending[channel] == nil && confirmed.contains(channel)
    }

    /// When `tick` next has a refused channel to retry, if ever.
    var nextRetry: ContinuousClock.Instant? {
        guard isConnected else { return nil }
        return refusals.filter { refusedHere.contains($0.key) }.map(\.value.retryAt).min()
    }

    // MARK: Inputs

    /// The set of channels the node wants is now `newWanted`.
    mutating func setWanted(_ newWanted: Set<ChannelName>) -> [Action] {
        changeWanted(added: Array(newWanted.subtracting(wanted)), removed: Array(wanted.subtracting(newWanted)))
    }

    /// The node wants `added` too and no longer wants `removed` (cost in proportion to the
    /// change, not to the wanted set).
    mutating func changeWanted(added: [ChannelName], removed: [ChannelName]) -> [Action] {
        var toSubscribe: [ChannelName] = []
        var toUnsubscribe: [ChannelName] = []
        for channel in added where wanted.insert(channel).inserted {
            if isConnected, !subscribed.contains(channel) { toSubscribe.append(channel) }
        }
        for channel in removed where wanted.remove(channel) != nil {
            refusals.removeValue(forKey: channel)
            refusedHere.remove(channel)
            touch(channel)
            if isConnected, subscribed.contains(channel) || confirmed.contains(channel) {
                subscribed.remove(channel)
                toUnsubscribe.append(channel)
            }
        }
        let actions = send(.subscribe, toSubscribe) + send(.unsubscribe, toUnsubscribe)
        return actions + satisfiedWaiters()
    }

    /// Someone waits for `channels` to be answered.
    mutating func addWaiter(_ waiter: Waiter, channels: Set<ChannelName>) -> [Action] {
        if channels.allSatisfy({ answered($0) }) {
            return [.runWaiter(waiter, refused: refusedAmong(channels))]
        }
        let id = nextWaiterID
        nextWaiterID += 1
        waiters[id] = (waiter, channels)
        for channel in channels { waitersByChannel[channel, default: []].insert(id) }
        return []
    }

    /// A new connection is up (authenticated, database selected): subscribe everything wanted.
    mutating func connected() -> [Action] {
        resetConnection()
        isConnected = true
        return send(.subscribe, Array(wanted)) + satisfiedWaiters()
    }

    /// The connection is gone: nothing is subscribed any more; waiters keep waiting.
    mutating func disconnected() {
        resetConnection()
        isConnected = false
    }

    /// The thread wants to check liveness.
    mutating func ping() -> [Action] {
        guard isConnected else { return [] }
        return send(.ping, [])
    }

    /// Redis sent `["subscribe", channel, count]`.
    mutating func subscribeConfirmed(_ channel: ChannelName) -> [Action] {
        guard case .success = answer(.subscribe, channel) else {
            return [.closeConnection(reason: "unexpected subscribe confirmation for '\(channel)'")]
        }
        confirmed.insert(channel)
        refusals.removeValue(forKey: channel)
        refusedHere.remove(channel)
        return satisfiedWaiters()
    }

    /// Redis sent `["unsubscribe", channel, count]`.
    mutating func unsubscribeConfirmed(_ channel: ChannelName) -> [Action] {
        guard case .success = answer(.unsubscribe, channel) else {
            return [.closeConnection(reason: "unexpected unsubscribe confirmation for '\(channel)'")]
        }
        confirmed.remove(channel)
        return satisfiedWaiters()
    }

    /// How a sharded link reads a `sunsubscribe`.
    enum ShardedUnsubscribe: Equatable {
        /// It answers the oldest command: `unsubscribeConfirmed` takes it.
        case answer
        /// The server dropped a subscription by itself (a shard drops the sharded subscriptions
        /// of a slot it no longer serves): the channel is no longer subscribed here.
        case dropped
        /// Neither (a push for a channel not subscribed here): nothing to do.
        case stray
    }

    /// Redis sent `["sunsubscribe", channel, count]` on a sharded link.
    mutating func shardedUnsubscribe(_ channel: ChannelName) -> ShardedUnsubscribe {
        if inFlightHead < inFlight.count {
            let entry = inFlight[inFlightHead]
            if entry.kind == .unsubscribe, entry.answered < entry.channels.count, entry.channels[entry.answered] == channel { return .answer }
        }
        guard subscribed.contains(channel) || confirmed.contains(channel) else { return .stray }
        subscribed.remove(channel)
        confirmed.remove(channel)
        touch(channel)
        return .dropped
    }

    /// How a sharded link reads an error reply.
    enum ShardedError: Equatable {
        /// It answered a SSUBSCRIBE: these wanted channels are not subscribed here (the caller
        /// moves them); never refused.
        case moved([ChannelName])
        /// It answers nothing this machine waits for (a redirection for another slot, e.g. the
        /// late `-MOVED` of an unsubscribe a push already answered): ignored.
        case stray
    }

    /// Redis answered with an error on a sharded link. `slot` is the slot a `-MOVED`/`-ASK`
    /// names (-1 when malformed), nil for any other error. A redirection answers the oldest
    /// command only when that is a SSUBSCRIBE of the slot it names; another error answers the
    /// oldest command whatever it is.
    mutating func shardedError(slot: Int?) -> ShardedError {
        guard inFlightHead < inFlight.count else { return .stray }
        let entry = inFlight[inFlightHead]
        if let slot {
            guard entry.kind == .subscribe, let first = entry.channels.first, configuration.batchKey?(first) == slot else { return .stray }
        }
        popHead()
        let unanswered = Array(entry.channels[entry.answered...])
        for channel in unanswered { release(channel) }
        guard entry.kind == .subscribe else { return .moved([]) }
        let moved = unanswered.filter { subscribed.contains($0) && wanted.contains($0) }
        subscribed.subtract(moved)
        return .moved(moved)
    }

    /// Redis sent `["pong", ...]`.
    mutating func pong() -> [Action] {
        guard case .success = answer(.ping, nil) else {
            return [.closeConnection(reason: "unexpected pong")]
        }
        return []
    }

    /// Redis sent an error reply: it answers the oldest command in flight.
    mutating func errorReply(_ text: String, now: ContinuousClock.Instant) -> [Action] {
        guard inFlightHead < inFlight.count else {
            return [.closeConnection(reason: "error reply with no command in flight: \(text)")]
        }
        let entry = inFlight[inFlightHead]
        popHead()
        let unanswered = Array(entry.channels[entry.answered...])
        for channel in unanswered { release(channel) }
        switch entry.kind {
        case .ping:
            return []
        case .unsubscribe:
            // Redis keeps those channels; their messages reach a node that no longer wants
            // them, which drops them. Nothing else to do.
            return satisfiedWaiters()
        case .subscribe:
            let stillWanted = unanswered.filter { subscribed.contains($0) }
            subscribed.subtract(stillWanted)
            if stillWanted.count > 1 {
                // Isolate the refused channels: one command each.
                var actions: [Action] = []
                for channel in stillWanted { actions += send(.subscribe, [channel]) }
                return actions + satisfiedWaiters()
            }
            var newlyRefused: [ChannelName] = []
            for channel in stillWanted {
                var refusal = refusals[channel] ?? Refusal(attempts: 0, retryAt: now, error: text)
                if refusals[channel] == nil { newlyRefused.append(channel) }
                refusal.attempts += 1
                refusal.error = text
                refusal.retryAt = now.advanced(by: retryDelay(afterAttempts: refusal.attempts))
                refusals[channel] = refusal
                refusedHere.insert(channel)
            }
            let report: [Action] = newlyRefused.isEmpty ? [] : [.reportRefused(newlyRefused, error: text)]
            return report + satisfiedWaiters()
        }
    }

    /// Time passed: retry the refused channels whose backoff is over.
    mutating func tick(now: ContinuousClock.Instant) -> [Action] {
        guard isConnected else { return [] }
        let due = refusedHere.filter { channel in
            guard let refusal = refusals[channel] else { return true }
            return refusal.retryAt <= now
        }
        guard !due.isEmpty else { return [] }
        refusedHere.subtract(due)
        return send(.subscribe, Array(due))
    }

    // MARK: Internals

    private func retryDelay(afterAttempts attempts: Int) -> Duration {
        var delay = configuration.refusalRetryBase
        var step = 1
        while step < attempts, delay < configuration.refusalRetryCap {
            delay *= 2
            step += 1
        }
        return min(delay, configuration.refusalRetryCap)
    }

    private mutating func resetConnection() {
        subscribed = []
        confirmed = []
        pending = [:]
        inFlight = []
        inFlightHead = 0
        refusedHere = []
    }

    /// Queues commands for `channels` in batches; returns the sends.
    private mutating func send(_ kind: InFlight.Kind, _ channels: [ChannelName]) -> [Action] {
        if kind == .ping {
            inFlight.append(InFlight(kind: .ping, channels: []))
            return [.send(.ping)]
        }
        guard !channels.isEmpty else { return [] }
        if let key = configuration.batchKey {
            // One group per key, in the order each key first appears.
            var order: [Int] = []
            var groups: [Int: [ChannelName]] = [:]
            for channel in channels {
                let value = key(channel)
                if groups[value] == nil { order.append(value) }
                groups[value, default: []].append(channel)
            }
            guard order.count > 1 else { return sendBatches(kind, channels) }
            return order.flatMap { sendBatches(kind, groups[$0] ?? []) }
        }
        return sendBatches(kind, channels)
    }

    /// Queues commands for `channels` in batches of at most `batchSize`; returns the sends.
    private mutating func sendBatches(_ kind: InFlight.Kind, _ channels: [ChannelName]) -> [Action] {
        let size = max(1, configuration.batchSize)
        var actions: [Action] = []
        var start = 0
        while start < channels.count {
            let chunk = Array(channels[start..<min(start + size, channels.count)])
            start += size
            for channel in chunk { pending[channel, default: 0] += 1 }
            if kind == .subscribe { subscribed.formUnion(chunk) }
            inFlight.append(InFlight(kind: kind, channels: chunk))
            actions.append(.send(kind == .subscribe ? .subscribe(chunk) : .unsubscribe(chunk)))
        }
        return actions
    }

    private enum Answer { case success, mismatch }

    /// Matches one confirmation (or pong) against the oldest command in flight.
    private mutating func answer(_ kind: InFlight.Kind, _ channel: ChannelName?) -> Answer {
        guard inFlightHead < inFlight.count else { return .mismatch }
        var entry = inFlight[inFlightHead]
        guard entry.kind == kind else { return .mismatch }
        if let channel {
            guard entry.answered < entry.channels.count, entry.channels[entry.answered] == channel else { return .mismatch }
            entry.answered += 1
            release(channel)
            if entry.answered == entry.channels.count {
                popHead()
            } else {
                inFlight[inFlightHead] = entry
            }
        } else {
            popHead()
        }
        return .success
    }

    private mutating func release(_ channel: ChannelName) {
        guard let count = pending[channel] else { return }
        pending[channel] = count > 1 ? count - 1 : nil
        touch(channel)
    }

    private mutating func touch(_ channel: ChannelName) {
        if waitersByChannel[channel] != nil { touched.insert(channel) }
    }

    private func refusedAmong(_ channels: Set<ChannelName>) -> Set<ChannelName> {
        channels.filter { wanted.contains($0) && refusedHere.contains($0) }
    }

    private mutating func popHead() {
        inFlightHead += 1
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        } else if inFlightHead >= 64, inFlightHead * 2 >= inFlight.count {
            inFlight.removeFirst(inFlightHead)
            inFlightHead = 0
        }
    }

    /// A channel is answered when it is not wanted, or, on a live connection with nothing
    /// about it in flight, confirmed or refused.
    private func answered(_ channel: ChannelName) -> Bool {
        guard wanted.contains(channel) else { return true }
        guard isConnected, pending[channel] == nil else { return false }
        return confirmed.contains(channel) || refusedHere.contains(channel)
    }

    /// Runs the waiters of the touched channels that are now fully answered, in arrival order.
    private mutating func satisfiedWaiters() -> [Action] {
        guard !touched.isEmpty else { return [] }
        var candidates: Set<Int> = []
        for channel in touched {
            if let ids = waitersByChannel[channel] { candidates.formUnion(ids) }
        }
        touched.removeAll(keepingCapacity: true)
        var actions: [Action] = []
        for id in candidates.sorted() {
            guard let entry = waiters[id], entry.channels.allSatisfy({ answered($0) }) else { continue }
            actions.append(.runWaiter(entry.waiter, refused: refusedAmong(entry.channels)))
            waiters.removeValue(forKey: id)
            for channel in entry.channels {
                waitersByChannel[channel]?.remove(id)
                if waitersByChannel[channel]?.isEmpty == true { waitersByChannel.removeValue(forKey: channel) }
            }
        }
        return actions
    }
}
