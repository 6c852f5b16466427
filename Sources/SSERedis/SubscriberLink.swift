import CHiredis
import SSEWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// One pub/sub connection of the subscriber thread and what rides on it: a
/// `SubscriptionStateMachine`, PING liveness, the output stall limit and (on the classic link)
/// the delivery probe. Used by the subscriber thread alone.
///
/// A classic link speaks `SUBSCRIBE`; a sharded one `SSUBSCRIBE`, one slot per command, and
/// reports the channels its server does not serve (`takeDisplaced()`): a `sunsubscribe` the
/// server pushed by itself, or an error answering their `SSUBSCRIBE` (`-MOVED`, `-ASK`,
/// `-CLUSTERDOWN`, an ACL without `ssubscribe`). Those are never refusals.
final class SubscriberLink {
    typealias Machine = SubscriptionStateMachine<SubscriptionWaiter>

    /// The commands the link speaks.
    enum Verbs {
        case classic
        case sharded
    }

    let verbs: Verbs
    private let owner: RedisSubscriber
    private(set) var connection: RedisConnection?
    private(set) var machine: Machine
    private var lastTraffic = ContinuousClock.now
    private var pingSentAt: ContinuousClock.Instant?
    /// When the output last shrank (or became pending), while some is pending.
    private var lastOutputProgress = ContinuousClock.now
    /// The delivery probe (nil when it is off, and on sharded links).
    private(set) var probe: SubscriberProbe?
    /// Channels the server said it does not serve, since the last `takeDisplaced()`.
    private var displaced: [ChannelName] = []
    /// Sharded links: told of the channels the server confirmed, before any message that came
    /// after them in the same read reaches the delegate (so a catch-up for a gap is queued ahead
    /// of the first live event after it).
    var onConfirmed: (([ChannelName]) -> Void)?

    init(owner: RedisSubscriber, verbs: Verbs, probe: SubscriberProbe?) {
        self.owner = owner
        self.verbs = verbs
        let tuning = owner.tuning
        var configuration = Machine.Configuration(
            refusalRetryBase: .milliseconds(max(1, tuning.refusalRetryBaseMilliseconds)),
            refusalRetryCap: .milliseconds(max(1, tuning.refusalRetryCapMilliseconds))
        )
        if verbs == .sharded { configuration.batchKey = { ClusterSlot.slot(of: $0.bytes) } }
        self.machine = Machine(configuration: configuration)
        self.probe = probe
    }

    private var interval: Int { max(1, owner.tuning.pingIntervalMilliseconds) }

    /// A new connection is up: everything wanted is subscribed on it.
    func attach(_ fresh: RedisConnection) throws(RedisError) {
        connection = fresh
        lastTraffic = .now
        pingSentAt = nil
        try perform(machine.connected())
        try fresh.writeAvailable()
    }

    /// The connection is gone: the machine and the probe start over with the next.
    /// (A probe left awaiting a token across a Sentinel switch judged the new connection by the
    /// old one's deadline: silent at once when the resolve took longer than the deadline.)
    func detach() {
        connection = nil
        machine.disconnected()
        probe?.disconnected()
    }

    /// Takes in a change of what is wanted here and new waiters.
    func take(wanted: Set<ChannelName>?, added: [ChannelName], removed: [ChannelName], waiters: [SubscriptionWaiter]) throws(RedisError) {
        if let wanted { try perform(machine.setWanted(wanted)) }
        if !added.isEmpty || !removed.isEmpty { try perform(machine.changeWanted(added: added, removed: removed)) }
        for waiter in waiters { try perform(machine.addWaiter(waiter, channels: waiter.channels)) }
    }

    /// The channels the server said it does not serve since the last call; the caller moves them.
    func takeDisplaced() -> [ChannelName] {
        defer { displaced.removeAll() }
        return displaced
    }



    /// What to poll the socket for.
    var pollEvents: Int16 {
        guard let connection else { return 0 }
        return connection.hasPendingOutput ? Int16(POLLIN | POLLOUT) : Int16(POLLIN)
    }

    /// After a `poll()` that reported `revents` for the socket: reads and hands on what arrived,
    /// retries refused channels that are due, runs the probe, writes and checks liveness.
    func service(revents: Int16) throws(RedisError) {
        guard let connection else { return }
        if revents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0 {
            try connection.readAvailable()
            lastTraffic = .now
            pingSentAt = nil
            try drainReplies(connection)
        }
        try perform(machine.tick(now: .now))
        try probe?.service(now: .now)
        try write(connection)
        try checkLiveness(connection)
    }

    /// Milliseconds until the next deadline: the liveness check, the output stall limit, a
    /// refusal retry, the probe.
    var pollTimeout: Int {
        guard let connection else { return interval }
        let now = ContinuousClock.now
        var deadline = (pingSentAt ?? lastTraffic).advanced(by: .milliseconds(interval))
        if connection.hasPendingOutput { deadline = min(deadline, lastOutputProgress.advanced(by: .milliseconds(interval))) }
        if let retry = machine.nextRetry { deadline = min(deadline, retry) }
        if let due = probe?.nextDeadline { deadline = min(deadline, due) }
        return max(1, min(interval, now.duration(to: deadline).roundedUpMilliseconds))
    }

    /// Writes what the socket takes now; fails when it has taken nothing for an interval.
    private func write(_ connection: RedisConnection) throws(RedisError) {
        guard connection.hasPendingOutput else { return }
        let before = connection.pendingOutputBytes
        try connection.writeAvailable()
        let now = ContinuousClock.now
        if !connection.hasPendingOutput || connection.pendingOutputBytes < before {
            lastOutputProgress = now
        } else if lastOutputProgress.duration(to: now) > .milliseconds(interval) {
            throw RedisError(.timedOut, "Redis took none of \(before) bytes of commands within \(interval) ms")
        }
    }

    private func checkLiveness(_ connection: RedisConnection) throws(RedisError) {
        let now = ContinuousClock.now
        if let pingSentAt {
            if pingSentAt.duration(to: now) > .milliseconds(interval) {
                throw RedisError(.timedOut, "no answer to PING within \(interval) ms")
            }
        } else if lastTraffic.duration(to: now) >= .milliseconds(interval) {
            try perform(machine.ping())
            try write(connection)
            pingSentAt = now
        }
    }

    /// Carries out the machine's actions in order.
    func perform(_ actions: [Machine.Action]) throws(RedisError) {
        for action in actions {
            switch action {
            case .send(let command):
                guard let connection else { continue }
                if !connection.hasPendingOutput { lastOutputProgress = .now }
                try connection.append(arguments(command))
            case .reportRefused(let refused, let error):
                let channels = probe?.screen(refused, error: error) ?? refused
                guard !channels.isEmpty else { continue }
                owner.log.error(
                    "Redis refused to subscribe; those channels get no live events until it accepts",
                    metadata: ["channels": "\(channels.prefix(20))", "count": "\(channels.count)", "error": "\(error)"]
                )
                owner.delegate?.subscriber(owner, refused: channels.map(\.text), error: error)
            case .runWaiter(let waiter, let refused):
                waiter.action(refused)
            case .closeConnection(let reason):
                throw RedisError(.protocolViolation, reason)
            }
        }
    }

    private func arguments(_ command: Machine.Command) -> [[UInt8]] {
        switch (command, verbs) {
        case (.subscribe(let channels), .classic): return [Array("SUBSCRIBE".utf8)] + channels.map(\.bytes)
        case (.unsubscribe(let channels), .classic): return [Array("UNSUBSCRIBE".utf8)] + channels.map(\.bytes)
        case (.subscribe(let channels), .sharded): return [Array("SSUBSCRIBE".utf8)] + channels.map(\.bytes)
        case (.unsubscribe(let channels), .sharded): return [Array("SUNSUBSCRIBE".utf8)] + channels.map(\.bytes)
        case (.ping, _): return [Array("PING".utf8)]
        }
    }

    /// Hands every complete `message` reply from the last read to the delegate, as one batch,
    /// then acts on the confirmations and errors among them (so waiters run after the
    /// messages that preceded them are delivered).
    private func drainReplies(_ connection: RedisConnection) throws(RedisError) {
        var batch: [RedisPubSubMessage] = []
        var actions: [Machine.Action] = []
        // Sharded: confirmations not yet told (`onConfirmed`); told before the next message.
        var confirmedHere: [ChannelName] = []
        // Messages or confirmations read: a probe token may be queued behind them.
        var progressed = false
        let now = ContinuousClock.now
        while let reply = try connection.takeBufferedRawReply() {
            defer { freeReplyObject(reply) }
            switch SubscriberReply(reply.pointee) {
            case .message(let message):
                if !confirmedHere.isEmpty {
                    onConfirmed?(confirmedHere)
                    confirmedHere.removeAll()
                }
                if probe?.owns(message) == true { probe?.received(message.payload) } else { batch.append(message) }
            case .subscribed(let channel):
                progressed = true
                probe?.confirmed(channel, now: now)
                actions += machine.subscribeConfirmed(channel)
                if verbs == .sharded, onConfirmed != nil {
                    // What came before the confirmation goes first, as one batch.
                    if !batch.isEmpty {
                        owner.delegate?.subscriber(owner, received: batch)
                        batch.removeAll()
                    }
                    confirmedHere.append(channel)
                }
            case .unsubscribed(let channel) where verbs == .sharded:
                progressed = true
                switch machine.shardedUnsubscribe(channel) {
                case .answer: actions += machine.unsubscribeConfirmed(channel)
                case .dropped: displaced.append(channel)
                case .stray: break
                }
            case .unsubscribed(let channel):
                progressed = true
                actions += machine.unsubscribeConfirmed(channel)
            case .pong: actions += machine.pong()
            case .error(let text) where verbs == .sharded && owner.tuning.historyOnShards && text.hasPrefix("NOPERM"):
                // History travels by SPUBLISH: a shard that will not let this user SSUBSCRIBE means
                // the channel's events cannot reach the node. That is a refusal, as on the classic
                // link (its streams are told, `/readyz` counts it), not a move.
                actions += machine.errorReply(text, now: now)
            case .error(let text) where verbs == .sharded:
                // Never a refusal here: a shard that will not take a channel (moved, down, or an
                // ACL without `ssubscribe`) only sends it back to the topology.
                switch machine.shardedError(slot: Self.redirectionSlot(text)) {
                case .moved(let channels):
                    displaced += channels
                    if !channels.isEmpty, !Self.isRedirection(text) {
                        owner.log.warning("a shard did not take a sharded subscription", metadata: ["error": "\(SentinelReplyDecoder.quoted(text))"])
                    }
                case .stray: break
                }
            case .error(let text): actions += machine.errorReply(text, now: now)
            case .unexpected(let what): actions.append(.closeConnection(reason: "unexpected reply on the subscription connection: \(what)"))
            }
        }
        if progressed || !batch.isEmpty { probe?.traffic(now: now) }
        if !batch.isEmpty {
            owner.delegate?.subscriber(owner, received: batch)
        }
        if !confirmedHere.isEmpty { onConfirmed?(confirmedHere) }
        try perform(actions)
    }

    /// `-MOVED slot host:port` or `-ASK slot host:port`: another shard serves the slot.
    static func isRedirection(_ text: String) -> Bool {
        text.hasPrefix("MOVED ") || text.hasPrefix("ASK ")
    }

    /// The slot a redirection names, nil for another error or a malformed one.
    static func redirectionSlot(_ text: String) -> Int? {
        guard isRedirection(text) else { return nil }
        let words = text.split(separator: " ", maxSplits: 2)
        guard words.count >= 2, words[1].utf8.count <= 5, let slot = Int(words[1]), (0..<ClusterSlot.count).contains(slot) else { return -1 }
        return slot
    }
}
