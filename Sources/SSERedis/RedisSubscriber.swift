import CHiredis
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Owns a node's one Redis pub/sub connection, on one dedicated thread.
///
/// Other threads say which channels they want (`subscribe`/`unsubscribe`, cheap and
/// non-blocking); the thread reconciles Redis with that wish (SUBSCRIBE what is missing,
/// UNSUBSCRIBE what is no longer wanted) in a `poll()` loop over the Redis socket and a
/// wake-up pipe, so it never blocks anyone and hiredis never runs on an event loop. When the
/// connection drops it reconnects with capped exponential backoff and jitter and subscribes
/// every wanted channel again. Silent connections are detected with PING
/// (allowed in subscribed mode, answered `["pong", ""]`).
public final class RedisSubscriber: Sendable {
    /// Tuning for reconnects and liveness checks.
    public struct Configuration: Sendable, Hashable {
        public var backoffBaseMilliseconds: Int
        public var backoffCapMilliseconds: Int
        /// After this long without traffic a PING is sent; without an answer within another
        /// interval the connection is considered dead.
        public var pingIntervalMilliseconds: Int

        public init(backoffBaseMilliseconds: Int = 100, backoffCapMilliseconds: Int = 5000, pingIntervalMilliseconds: Int = 5000) {
            self.backoffBaseMilliseconds = backoffBaseMilliseconds
            self.backoffCapMilliseconds = backoffCapMilliseconds
            self.pingIntervalMilliseconds = pingIntervalMilliseconds
        }
    }

    private struct Shared {
        var wanted: Set<String> = []
        var wantedChanged = false
        var waiters: [SubscriptionWaiter] = []
        var stopping = false
        var connected = false
        var delegate: (any RedisSubscriberDelegate)?
    }

    private let redis: RedisConfiguration
    private let configuration: Configuration
    private let logger: Logger
    private let shared = Mutex(Shared())
    private let wakeup: WakeupPipe
    private let finished = Mutex<Bool>(false)
    private let started = Mutex<Bool>(false)

    public init(redis: RedisConfiguration, configuration: Configuration = .init(), logger: Logger) throws(RedisError) {
        self.redis = redis
        self.configuration = configuration
        self.logger = logger
        self.wakeup = try WakeupPipe()
    }

    /// Whether the subscription connection is up right now.
    public var isConnected: Bool { shared.withLock { $0.connected } }

    /// The channels currently wanted.
    public var wantedChannels: Set<String> { shared.withLock { $0.wanted } }

    /// Starts the thread. Messages and connection changes go to `delegate` until `shutdown()`.
    public func start(delegate: any RedisSubscriberDelegate) {
        let first = started.withLock { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        shared.withLock { $0.delegate = delegate }
        let thread = SubscriberThread(owner: self)
        thread.start()
    }

    /// Asks for `channel` to be subscribed (idempotent).
    public func subscribe(_ channel: String) {
        let changed = shared.withLock { state in
            let inserted = state.wanted.insert(channel).inserted
            if inserted { state.wantedChanged = true }
            return inserted
        }
        if changed { wakeup.signal() }
    }

    /// Asks for `channel` to be unsubscribed (idempotent).
    public func unsubscribe(_ channel: String) {
        let changed = shared.withLock { state in
            let removed = state.wanted.remove(channel) != nil
            if removed { state.wantedChanged = true }
            return removed
        }
        if changed { wakeup.signal() }
    }

    /// Runs `action` on the subscriber thread once Redis has confirmed a subscription to every
    /// one of `channels` on the current connection (at once if it already has).
    ///
    /// A reader of history must snapshot it only after this point: from then on every new
    /// message of those channels reaches the node, so snapshot plus live traffic leaves no gap.
    /// Waiting survives reconnects; `action` runs after the re-subscription is confirmed.
    public func whenSubscribed(_ channels: Set<String>, _ action: @escaping @Sendable () -> Void) {
        shared.withLock { $0.waiters.append(SubscriptionWaiter(channels: channels, action: action)) }
        wakeup.signal()
    }

    /// Stops the thread and closes the connection; returns once the thread has exited.
    public func shutdown() {
        let wasStarted = started.withLock { $0 }
        shared.withLock { $0.stopping = true }
        wakeup.signal()
        guard wasStarted else { return }
        while !finished.withLock({ $0 }) {
            usleep(1000)
        }
        shared.withLock { $0.delegate = nil }
    }

    // MARK: - Thread side

    fileprivate var isStopping: Bool { shared.withLock { $0.stopping } }

    fileprivate var delegate: (any RedisSubscriberDelegate)? { shared.withLock { $0.delegate } }

    /// Takes the wanted set if it changed since the last call (or always when `force`).
    fileprivate func takeWanted(force: Bool) -> Set<String>? {
        shared.withLock { state in
            guard state.wantedChanged || force else { return nil }
            state.wantedChanged = false
            return state.wanted
        }
    }

    /// Removes and returns the waiters whose channels are all in `confirmed`, or no longer wanted.
    fileprivate func takeSatisfiedWaiters(confirmed: Set<String>) -> [SubscriptionWaiter] {
        shared.withLock { state in
            var satisfied: [SubscriptionWaiter] = []
            state.waiters.removeAll { waiter in
                let done = waiter.channels.allSatisfy { confirmed.contains($0) || !state.wanted.contains($0) }
                if done { satisfied.append(waiter) }
                return done
            }
            return satisfied
        }
    }

    fileprivate func setConnected(_ connected: Bool) {
        shared.withLock { $0.connected = connected }
    }

    fileprivate func markFinished() {
        finished.withLock { $0 = true }
    }

    fileprivate var redisConfiguration: RedisConfiguration { redis }
    fileprivate var tuning: Configuration { configuration }
    fileprivate var log: Logger { logger }
    fileprivate var wakeupDescriptor: Int32 { wakeup.readDescriptor }
    fileprivate func drainWakeups() { wakeup.drain() }
}

/// Something to run once a set of channels is confirmed subscribed.
struct SubscriptionWaiter: Sendable {
    let channels: Set<String>
    let action: @Sendable () -> Void
}

/// The state only the subscriber thread touches.
private final class SubscriberThread: @unchecked Sendable {
    // @unchecked: after `start()` every stored property is used by the spawned thread alone.
    private let owner: RedisSubscriber
    private var connection: RedisConnection?
    private var subscribed: Set<String> = []
    /// Channels Redis has acknowledged with a `subscribe` reply on this connection.
    private var confirmed: Set<String> = []
    private var backoff: ReconnectBackoff
    private var lastTraffic = ContinuousClock.now
    private var pingSentAt: ContinuousClock.Instant?
    private var hasReportedDown = false

    init(owner: RedisSubscriber) {
        self.owner = owner
        self.backoff = ReconnectBackoff(
            baseMilliseconds: owner.tuning.backoffBaseMilliseconds,
            capMilliseconds: owner.tuning.backoffCapMilliseconds
        )
    }

    func start() {
        let spawned = OwnedThread.spawn { [self] in run() }
        if !spawned {
            owner.log.critical("cannot start the Redis subscriber thread")
            owner.markFinished()
        }
    }

    private func run() {
        defer {
            connection = nil
            owner.setConnected(false)
            owner.markFinished()
        }
        while !owner.isStopping {
            if connection == nil {
                connect()
                continue
            }
            serviceConnection()
        }
    }

    private func connect() {
        do {
            let fresh = try RedisConnection.connect(owner.redisConfiguration)
            fresh.disableTimeouts()
            connection = fresh
            subscribed = []
            confirmed = []
            lastTraffic = .now
            pingSentAt = nil
            try reconcile(force: true)
            backoff.reset()
            hasReportedDown = false
            owner.setConnected(true)
            owner.log.info("Redis subscription connected", metadata: ["redis": "\(owner.redisConfiguration)", "channels": "\(subscribed.count)"])
            owner.delegate?.subscriberDidConnect(owner)
        } catch {
            connection = nil
            reportDown(error)
            waitForRetry()
        }
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

    /// Sleeps for the next backoff delay, waking early if asked to stop.
    private func waitForRetry() {
        let delay = backoff.nextDelayMilliseconds()
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(delay))
        while !owner.isStopping {
            let remaining = ContinuousClock.now.duration(to: deadline)
            guard remaining > .zero else { return }
            var descriptor = pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0)
            _ = poll(&descriptor, 1, Int32(max(1, remaining.milliseconds)))
            owner.drainWakeups()
        }
    }

    private func serviceConnection() {
        guard let connection else { return }
        do throws(RedisError) {
            let interval = owner.tuning.pingIntervalMilliseconds
            var descriptors = [
                pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
                pollfd(fd: owner.wakeupDescriptor, events: Int16(POLLIN), revents: 0),
            ]
            let ready = poll(&descriptors, 2, Int32(interval))
            if ready < 0 {
                guard errno == EINTR else { throw RedisError(.connectionLost, "poll failed (errno \(errno))") }
                return
            }
            if descriptors[1].revents != 0 {
                owner.drainWakeups()
            }
            try reconcile(force: false)
            if descriptors[0].revents != 0 {
                try connection.readAvailable()
                lastTraffic = .now
                pingSentAt = nil
                try drainReplies(connection)
            }
            try checkLiveness(connection, interval: interval)
            for waiter in owner.takeSatisfiedWaiters(confirmed: confirmed) { waiter.action() }
        } catch {
            self.connection = nil
            subscribed = []
            confirmed = []
            reportDown(error)
            waitForRetry()
        }
    }

    /// Makes Redis's subscriptions match the wanted set.
    private func reconcile(force: Bool) throws(RedisError) {
        guard let connection, let wanted = owner.takeWanted(force: force) else { return }
        let additions = wanted.subtracting(subscribed)
        let removals = subscribed.subtracting(wanted)
        guard !additions.isEmpty || !removals.isEmpty else { return }
        for chunk in Self.chunks(of: additions) {
            try connection.append([Array("SUBSCRIBE".utf8)] + chunk.map { Array($0.utf8) })
        }
        for chunk in Self.chunks(of: removals) {
            try connection.append([Array("UNSUBSCRIBE".utf8)] + chunk.map { Array($0.utf8) })
        }
        try connection.flush()
        subscribed = wanted
        owner.log.debug("Redis subscriptions updated", metadata: ["added": "\(additions.count)", "removed": "\(removals.count)"])
    }

    private static func chunks(of channels: Set<String>) -> [[String]] {
        let sorted = Array(channels)
        return stride(from: 0, to: sorted.count, by: 500).map { Array(sorted[$0..<min($0 + 500, sorted.count)]) }
    }

    private func checkLiveness(_ connection: RedisConnection, interval: Int) throws(RedisError) {
        let now = ContinuousClock.now
        if let pingSentAt {
            if pingSentAt.duration(to: now) > .milliseconds(interval) {
                throw RedisError(.connectionLost, "no answer to PING within \(interval) ms")
            }
        } else if lastTraffic.duration(to: now) >= .milliseconds(interval) {
            try connection.append([Array("PING".utf8)])
            try connection.flush()
            pingSentAt = now
        }
    }

    /// Hands every complete `message` reply from the last read to the delegate, as one batch.
    private func drainReplies(_ connection: RedisConnection) throws(RedisError) {
        var batch: [RedisPubSubMessage] = []
        while let reply = try connection.takeBufferedRawReply() {
            defer { freeReplyObject(reply) }
            if let message = Self.message(from: reply.pointee) {
                batch.append(message)
            } else if let (kind, channel) = Self.confirmation(from: reply.pointee) {
                if kind == "subscribe" { confirmed.insert(channel) } else { confirmed.remove(channel) }
            } else if reply.pointee.type == REDIS_REPLY_ERROR {
                let text = String(decoding: RedisReply.bytes(reply.pointee), as: UTF8.self)
                owner.log.error("Redis refused a subscription command", metadata: ["error": "\(text)"])
            }
        }
        if !batch.isEmpty {
            owner.delegate?.subscriber(owner, received: batch)
        }
    }

    /// Reads `["subscribe" | "unsubscribe", channel, count]`.
    private static func confirmation(from node: redisReply) -> (String, String)? {
        guard node.type == REDIS_REPLY_ARRAY, node.elements == 3, let elements = node.element,
            let kind = elements[0]?.pointee, let channel = elements[1]?.pointee,
            kind.type == REDIS_REPLY_STRING, channel.type == REDIS_REPLY_STRING
        else { return nil }
        let name = String(decoding: RedisReply.bytes(kind), as: UTF8.self)
        guard name == "subscribe" || name == "unsubscribe" else { return nil }
        return (name, String(decoding: RedisReply.bytes(channel), as: UTF8.self))
    }

    /// Reads `["message", channel, payload]` straight from the hiredis reply, without building
    /// the whole `RedisReply` tree.
    private static func message(from node: redisReply) -> RedisPubSubMessage? {
        guard node.type == REDIS_REPLY_ARRAY, node.elements == 3, let elements = node.element,
            let kind = elements[0]?.pointee, let channel = elements[1]?.pointee, let payload = elements[2]?.pointee,
            kind.type == REDIS_REPLY_STRING, channel.type == REDIS_REPLY_STRING, payload.type == REDIS_REPLY_STRING,
            RedisReply.bytes(kind).elementsEqual("message".utf8)
        else { return nil }
        return RedisPubSubMessage(
            channel: String(decoding: RedisReply.bytes(channel), as: UTF8.self),
            payload: Array(RedisReply.bytes(payload))
        )
    }
}

extension Duration {
    /// Whole milliseconds, rounded down.
    var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}
