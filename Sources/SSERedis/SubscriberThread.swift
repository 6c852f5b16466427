import CHiredis
import Logging
import SSEPOSIX
import SSEWire

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The subscriber's thread: a `poll()` loop over the Redis socket and the wake-up pipe that
/// feeds a `SubscriptionStateMachine` and carries out its actions.
///
/// Nothing here blocks without a deadline: connects are bounded by the connect timeout,
/// `AUTH`/`SELECT` by the command timeout, writes are non-blocking (a stall longer than the
/// ping interval drops the connection) and a silent connection is found by PING.
final class SubscriberThread: @unchecked Sendable {
    // @unchecked: after `start()` every stored property is used by the spawned thread alone.
    private typealias Machine = SubscriptionStateMachine<SubscriptionWaiter>

    private let owner: RedisSubscriber
    /// For a `.sentinel` endpoint: the process's topology, shared with the watcher.
    private let topology: SentinelTopology?
    /// The topology's generation when the last connect began.
    private var attemptGeneration: UInt64 = 0
    private var connection: RedisConnection?
    private var machine: Machine
    private var backoff: ReconnectBackoff
    private var lastTraffic = ContinuousClock.now
    private var pingSentAt: ContinuousClock.Instant?
    /// When the output last shrank (or became pending), while some is pending.
    private var lastOutputProgress = ContinuousClock.now
    private var hasReportedDown = false
    private var publishedRefused: Set<ChannelName> = []
    /// The delivery probe (nil when it is off).
    private var probe: SubscriberProbe?

    init(owner: RedisSubscriber, topology: SentinelTopology?) {
        self.owner = owner
        self.topology = topology
        let tuning = owner.tuning
        self.machine = Machine(
            configuration: .init(
                refusalRetryBase: .milliseconds(max(1, tuning.refusalRetryBaseMilliseconds)),
                refusalRetryCap: .milliseconds(max(1, tuning.refusalRetryCapMilliseconds))
            )
        )
        self.backoff = ReconnectBackoff(baseMilliseconds: tuning.backoffBaseMilliseconds, capMilliseconds: tuning.backoffCapMilliseconds)
        self.probe = owner.probe.map { SubscriberProbe(owner: owner, shared: $0) }
    }

    /// Spawns the thread; nil (and logged) if the system refused one.
    func start() -> OwnedThread? {
        guard let thread = OwnedThread.spawn({ [self] in run() }) else {
            owner.log.critical("cannot start the Redis subscriber thread")
            return nil
        }
        return thread
    }

    private var interval: Int { max(1, owner.tuning.pingIntervalMilliseconds) }

    private func run() {
        defer {
            connection = nil
            owner.setConnected(false)
        }
        while !owner.isStopping {
            if connection == nil {
                connect()
                continue
            }
            if connection?.isTopologyStale == true {
                followNewMaster()
                continue
            }
            do throws(RedisError) {
                try serviceConnection()
            } catch {
                drop(error)
            }
        }
    }

    private func connect() {
        do throws(RedisError) {
            try takeInputs(force: true)
            attemptGeneration = topology?.generation ?? 0
            let fresh = try RedisConnection.connect(owner.redisConfiguration, topology: topology, shouldStop: { [owner] in owner.isStopping })
            connection = fresh
            lastTraffic = .now
            pingSentAt = nil
            try perform(machine.connected())
            try fresh.writeAvailable()
            backoff.reset()
            hasReportedDown = false
            owner.setConnected(true)
            owner.log.info(
                "Redis subscription connected",
                metadata: [
                    "redis": "\(owner.redisConfiguration)", "channels": "\(machine.wanted.count)",
                    "master": "\(fresh.sentinelStamp.map { "\($0.master)" } ?? "-")",
                ]
            )
            owner.delegate?.subscriberDidConnect(owner)
        } catch {
            drop(error)
        }
    }

    /// The master may have changed (Sentinel announced a switch, or a command met `-READONLY`):
    /// drop the connection and resolve again at once, without waiting out any backoff, so
    /// delivery resumes within one resolve and connect.
    private func followNewMaster() {
        forgetConnection()
        backoff.reset()
        let error = RedisError(.connectionLost, "Sentinel: the master changed")
        owner.setConnected(false)
        hasReportedDown = true
        owner.log.notice("Redis subscription follows a new master", metadata: ["redis": "\(owner.redisConfiguration)"])
        owner.delegate?.subscriber(owner, didDisconnectWith: error)
    }

    private func drop(_ error: RedisError) {
        forgetConnection()
        reportDown(error)
        waitForRetry()
    }

    /// The connection is gone: the subscription machine and the probe start over with the next.
    /// (A probe left awaiting a token across a Sentinel switch judged the new connection by the
    /// old one's deadline: silent at once when the resolve took longer than the deadline.)
    private func forgetConnection() {
        connection = nil
        machine.disconnected()
        probe?.disconnected()
    }

    private func reportDown(_ error: RedisError) {
        owner.setConnected(false)
        if !hasReportedDown {
            hasReportedDown = true
            owner.log.warning("Redis subscription down, retrying with backoff", metadata: ["error": "\(error)"])
            owner.delegate?.subscriber(owner, didDisconnectWith: error)
        } else {
            owner.log.debug("Redis reconnect failed", metadata: ["error": "\(error)", "attempt": "\(backoff.failures)"])
        }
    }

    /// Sleeps for the next backoff delay, waking early if asked to stop. Wanted-set changes
    /// and new waiters are still taken in, so waiters for channels no longer wanted run.
    private func waitForRetry() {
        let delay = backoff.nextDelayMilliseconds()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(delay))
        while !owner.isStopping {
            if let topology, topology.generation != attemptGeneration {
                // A new master was announced: try it now.
                backoff.reset()
                return
            }
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return }
            var descriptor = pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Int32(clamping: max(1, remaining.roundedUpMilliseconds)))
            owner.drainWakeups()
            try? takeInputs(force: false)
        }
    }

    private func takeInputs(force: Bool) throws(RedisError) {
        let (wanted, added, removed, waiters) = owner.takeInputs(force: force)
        if let wanted { try perform(machine.setWanted(wanted)) }
        if !added.isEmpty || !removed.isEmpty { try perform(machine.changeWanted(added: added, removed: removed)) }
        for waiter in waiters { try perform(machine.addWaiter(waiter, channels: waiter.channels)) }
    }

    private func serviceConnection() throws(RedisError) {
        guard let connection else { return }
        var events = Int16(POLLIN)
        if connection.hasPendingOutput { events |= Int16(POLLOUT) }
        var descriptors = [
            pollfd(fd: connection.fileDescriptor, events: events, revents: 0),
            pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        let timeout = pollTimeout(connection)
        let ready = poll(&descriptors, 2, Int32(clamping: timeout))
        if ready < 0 {
            guard errno == EINTR else { throw RedisError(.connectionLost, "poll failed (errno \(errno))") }
            return
        }
        if descriptors[1].revents != 0 {
            owner.drainWakeups()
        }
        try takeInputs(force: false)
        let socketEvents = descriptors[0].revents
        if socketEvents & Int16(POLLIN | POLLERR | POLLHUP | POLLNVAL) != 0 {
            try connection.readAvailable()
            lastTraffic = .now
            pingSentAt = nil
            try drainReplies(connection)
        }
        try perform(machine.tick(now: .now))
        try probe?.service(now: .now)
        try write(connection)
        try checkLiveness(connection)
        publishRefused()
    }

    /// Until the next deadline: the liveness check, the output stall limit, a refusal retry, the probe.
    private func pollTimeout(_ connection: RedisConnection) -> Int {
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

    private func publishRefused() {
        var refused = machine.refusedChannels
        if let probe { refused.remove(probe.channel) }
        guard refused != publishedRefused else { return }
        publishedRefused = refused
        owner.setRefused(refused)
    }

    /// Carries out the machine's actions in order.
    private func perform(_ actions: [SubscriptionStateMachine<SubscriptionWaiter>.Action]) throws(RedisError) {
        for action in actions {
            switch action {
            case .send(let command):
                guard let connection else { continue }
                if !connection.hasPendingOutput { lastOutputProgress = .now }
                try connection.append(Self.arguments(command))
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

    private static func arguments(_ command: SubscriptionStateMachine<SubscriptionWaiter>.Command) -> [[UInt8]] {
        switch command {
        case .subscribe(let channels): return [Array("SUBSCRIBE".utf8)] + channels.map(\.bytes)
        case .unsubscribe(let channels): return [Array("UNSUBSCRIBE".utf8)] + channels.map(\.bytes)
        case .ping: return [Array("PING".utf8)]
        }
    }

    /// Hands every complete `message` reply from the last read to the delegate, as one batch,
    /// then acts on the confirmations and errors among them (so waiters run after the
    /// messages that preceded them are delivered).
    private func drainReplies(_ connection: RedisConnection) throws(RedisError) {
        var batch: [RedisPubSubMessage] = []
        var actions: [Machine.Action] = []
        // Messages or confirmations read: a probe token may be queued behind them.
        var progressed = false
        let now = ContinuousClock.now
        while let reply = try connection.takeBufferedRawReply() {
            defer { freeReplyObject(reply) }
            switch SubscriberReply(reply.pointee) {
            case .message(let message):
                if probe?.owns(message) == true { probe?.received(message.payload) } else { batch.append(message) }
            case .subscribed(let channel):
                progressed = true
                probe?.confirmed(channel, now: now)
                actions += machine.subscribeConfirmed(channel)
            case .unsubscribed(let channel):
                progressed = true
                actions += machine.unsubscribeConfirmed(channel)
            case .pong: actions += machine.pong()
            case .error(let text): actions += machine.errorReply(text, now: now)
            case .unexpected(let what): actions.append(.closeConnection(reason: "unexpected reply on the subscription connection: \(what)"))
            }
        }
        if progressed || !batch.isEmpty { probe?.traffic(now: now) }
        if !batch.isEmpty {
            owner.delegate?.subscriber(owner, received: batch)
        }
        try perform(actions)
    }
}
