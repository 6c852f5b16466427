import CHiredis
import Logging
import SSEPOSIX
import SSEWire
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
/// (allowed in subscribed mode, answered `["pong", ""]`). The socket is non-blocking: a
/// write that Redis does not take within the ping interval drops the connection, so the
/// thread never blocks on a stalled Redis. What Redis answers is tracked by a pure
/// `SubscriptionStateMachine`: a channel Redis refuses (`-NOPERM`) affects only itself.
/// Through Sentinel the thread is woken when a failover is announced (`SentinelWatcher`) and
/// resubscribes on the new master at once, with its backoff reset. On a Redis Cluster
/// (`pubsub=both`, the default) the same thread also holds a sharded connection per shard that
/// serves a wanted channel (`ClusterSubscriberThread`), so `SPUBLISH`ed events arrive as well.
public final class RedisSubscriber: Sendable {
    /// Tuning for reconnects and liveness checks.
    public struct Configuration: Sendable, Hashable {
        public var backoffBaseMilliseconds: Int
        public var backoffCapMilliseconds: Int
        /// After this long without traffic a PING is sent; without an answer within another
        /// interval the connection is considered dead. Output that the socket does not take
        /// for this long (a stalled Redis with a full socket buffer) also drops the connection.
        public var pingIntervalMilliseconds: Int
        /// First retry of a refused channel on the same connection; doubles per refusal.
        public var refusalRetryBaseMilliseconds: Int
        /// Longest wait between retries of a refused channel.
        public var refusalRetryCapMilliseconds: Int
        /// How often the delivery probe PUBLISHes a token on the node's probe channel and
        /// expects it back on the subscription, whatever the traffic; 0 turns the probe off.
        /// A subscription that stops delivering is found within interval + deadline.
        public var probeIntervalMilliseconds: Int
        /// How long after Redis answered the probe's PUBLISH the token may take to come back
        /// before the subscription counts as silent (dropped and rebuilt); 0 turns the probe off.
        public var probeDeadlineMilliseconds: Int
        /// The node's part of its probe channel's name (`sse-broker:probe:<node>:<random>`);
        /// nil or unusable (empty, over 64 bytes, not printable ASCII): random.
        public var probeNodeName: String?
        /// On a Redis Cluster with sharded pub/sub: events with history travel by `SPUBLISH`
        /// (history positions per channel), so a channel counts as subscribed for `whenSubscribed`
        /// only once its shard has confirmed it too, and a channel subscribed again on a shard
        /// after a gap (its slot moved, its shard failed over or reconnected) is reported to
        /// the delegate (`subscriber(_:resubscribed:)`) to be caught up from history.
        public var historyOnShards = false

        public init(
            backoffBaseMilliseconds: Int = 100,
            backoffCapMilliseconds: Int = 5000,
            pingIntervalMilliseconds: Int = 5000,
            refusalRetryBaseMilliseconds: Int = 5000,
            refusalRetryCapMilliseconds: Int = 30000,
            probeIntervalMilliseconds: Int = 5000,
            probeDeadlineMilliseconds: Int = 3000,
            probeNodeName: String? = nil
        ) {
            self.backoffBaseMilliseconds = backoffBaseMilliseconds
            self.backoffCapMilliseconds = backoffCapMilliseconds
            self.pingIntervalMilliseconds = pingIntervalMilliseconds
            self.refusalRetryBaseMilliseconds = refusalRetryBaseMilliseconds
            self.refusalRetryCapMilliseconds = refusalRetryCapMilliseconds
            self.probeIntervalMilliseconds = probeIntervalMilliseconds
            self.probeDeadlineMilliseconds = probeDeadlineMilliseconds
            self.probeNodeName = probeNodeName
        }

        /// Whether the delivery probe runs.
        public var isProbeEnabled: Bool { probeIntervalMilliseconds > 0 && probeDeadlineMilliseconds > 0 }
    }

    /// Every node's probe channel starts with this; clients may neither stream nor publish on it.
    public static let probeChannelPrefix = "sse-broker:probe:"

    /// Channels are kept as `ChannelName`s, compared byte for byte as Redis compares them:
    /// canonically equivalent names (`"é"` and `"e\u{301}"`) are two Redis channels.
    private struct Shared {
        var thread = ThreadPhase.notStarted
        var wanted: Set<ChannelName> = []
        /// Changes to `wanted` since the thread last took them: true to add, false to remove.
        var changes: [ChannelName: Bool] = [:]
        var newWaiters: [SubscriptionWaiter] = []
        var connected = false
        var refused: Set<ChannelName> = []
        var delegate: (any RedisSubscriberDelegate)?
        /// A Redis Cluster slot moved (`clusterSlotMoved()`) since the subscriber thread last looked.
        var slotMoved = false
        /// The hold on the Sentinel topology (and its watcher), for a `.sentinel` endpoint.
        var sentinel: SentinelTopology.Lease?
    }

    private let redis: RedisConfiguration
    private let configuration: Configuration
    private let logger: Logger
    private let shared = Mutex(Shared())
    private let wakeup: WakeupPipe
    /// The delivery probe's channel and command path (nil when the probe is off).
    let probe: DeliveryProbe?

    /// Where the subscriber thread is in its life.
    private enum ThreadPhase {
        case notStarted
        /// Started; nil when the system refused a thread.
        case running(OwnedThread?)
        /// Told to stop (`shutdown()`), started or not.
        case stopping(OwnedThread?)
    }

    public init(redis: RedisConfiguration, configuration: Configuration = .init(), logger: Logger) throws(RedisError) {
        self.redis = redis
        self.configuration = configuration
        self.logger = logger
        let wakeup: WakeupPipe
        do {
            wakeup = try WakeupPipe()
        } catch {
            throw RedisError(.connectionFailed, "cannot create the subscriber's wake-up pipe: \(error)")
        }
        self.wakeup = wakeup
        // The probe publishes classically: a sharded-only node would never hear it.
        var shardedOnly = false
        if case .cluster(let endpoint) = redis.endpoint, endpoint.pubsub == .sharded { shardedOnly = true }
        self.probe = configuration.isProbeEnabled && !shardedOnly
            ? DeliveryProbe(redis: redis, nodeName: configuration.probeNodeName, logger: logger, wakeup: wakeup)
            : nil
    }

    /// Whether the subscription connection is up right now.
    public var isConnected: Bool { shared.withLock { $0.connected } }

    /// False from the moment the delivery probe found the subscription silent until a probe
    /// succeeds on a rebuilt connection (always true with the probe off): for `/readyz`.
    public var isDelivering: Bool { probe?.isDelivering ?? true }

    /// The node's probe channel (nil with the probe off). Its messages never reach the delegate.
    public var probeChannel: String? { probe?.channel.text }

    /// The channels currently wanted (the probe channel among them).
    public var wantedChannels: Set<String> { Set(shared.withLock { $0.wanted }.map(\.text)) }

    /// Starts the thread. Messages and connection changes go to `delegate` until `shutdown()`.
    /// Only the first call starts it; a call after `shutdown()` does nothing.
    public func start(delegate: any RedisSubscriberDelegate) {
        shared.withLock { state in
            guard case .notStarted = state.thread else { return }
            state.delegate = delegate
            if let probe {
                // Wanted like any channel, so it follows every reconnect and re-subscription.
                state.wanted.insert(probe.channel)
                state.changes[probe.channel] = true
            }
            // Through Sentinel, the watcher wakes the thread when the master changes.
            state.sentinel = SentinelTopology.acquire(for: redis, logger: logger, onChange: { [wakeup] in wakeup.signal() })
            // Spawned under the lock, so a concurrent `shutdown()` sees the thread it must wait
            // for; the new thread takes this lock only after it is released.
            if case .cluster(let endpoint) = redis.endpoint, endpoint.pubsub.subscribesSharded {
                state.thread = .running(ClusterSubscriberThread(owner: self, endpoint: endpoint).start())
            } else {
                state.thread = .running(SubscriberThread(owner: self, topology: state.sentinel?.topology).start())
            }
        }
    }

    /// On a Redis Cluster: a command elsewhere in the process was told a slot moved (`-MOVED`),
    /// so the subscription reads the topology again soon (a failover does not always tell a
    /// sharded subscription: Redis 7.0 keeps the subscribers of a master that became a replica).
    /// Cheap and idempotent: many calls before the thread looks are one read.
    public func clusterSlotMoved() {
        let first = shared.withLock { state in
            defer { state.slotMoved = true }
            return !state.slotMoved
        }
        if first { wakeup.signal() }
    }

    /// Whether a slot moved since the last call (the subscriber thread's).
    func takeSlotMoved() -> Bool {
        shared.withLock { state in
            defer { state.slotMoved = false }
            return state.slotMoved
        }
    }

    /// Asks for `channel` to be subscribed (idempotent).
    public func subscribe(_ text: String) {
        let channel = ChannelName(text)
        let changed = shared.withLock { state in
            let inserted = state.wanted.insert(channel).inserted
            if inserted { state.changes[channel] = true }
            return inserted
        }
        if changed { wakeup.signal() }
    }

    /// Asks for `channel` to be unsubscribed (idempotent).
    public func unsubscribe(_ text: String) {
        let channel = ChannelName(text)
        let changed = shared.withLock { state in
            let removed = state.wanted.remove(channel) != nil
            if removed { state.changes[channel] = false }
            return removed
        }
        if changed { wakeup.signal() }
    }

    /// Runs `action` on the subscriber thread once every one of `channels` is answered on the
    /// current connection: confirmed by Redis, refused by Redis, or no longer wanted (at once if
    /// that is already so). `refused` is the subset Redis refused (empty when all went well).
    ///
    /// A reader of history must snapshot it only after this point: from then on every new
    /// message of the confirmed channels reaches the node, so snapshot plus live traffic leaves
    /// no gap. A channel counts as confirmed only when no later SUBSCRIBE or UNSUBSCRIBE of it
    /// is still in flight, so an unsubscribe and resubscribe racing a waiter cannot open a gap.
    /// Waiting survives reconnects; `action` then runs after the re-subscription is answered.
    ///
    /// Pass the names as a list (or any sequence): a `Set<String>` would already have merged
    /// canonically equivalent names, which are different Redis channels.
    public func whenSubscribed(_ channels: some Sequence<String>, _ action: @escaping @Sendable (_ refused: Set<String>) -> Void) {
        let waiter = SubscriptionWaiter(channels: Set(channels.map { ChannelName($0) })) { refused in
            action(Set(refused.map(\.text)))
        }
        shared.withLock { $0.newWaiters.append(waiter) }
        wakeup.signal()
    }

    /// Wanted channels that Redis refused to subscribe (e.g. `-NOPERM` for an ACL user), on
    /// the current or the last connection, and not confirmed since. For `/readyz` and a metric.
    public var refusedChannels: Set<String> { Set(shared.withLock { $0.refused }.map(\.text)) }

    /// Stops the thread and closes the connection; returns once the thread has exited.
    ///
    /// Blocks the calling thread while the subscriber finishes what it is doing (its calls are
    /// bounded by the connect and command timeouts); from a task, the `async` overload waits
    /// without holding a thread. Safe to call more than once and from several threads.
    public func shutdown() {
        if let thread = beginShutdown() { thread.join() }
        endShutdown()?.join()
    }

    /// Stops the thread and closes the connection; returns once the thread has exited, suspending
    /// meanwhile instead of blocking a thread of the cooperative pool.
    public func shutdown() async {
        if let thread = beginShutdown() { await thread.join() }
        if let watcher = endShutdown() { await watcher.join() }
    }

    /// Marks the subscriber stopping and wakes its thread; returns the thread to wait for.
    private func beginShutdown() -> OwnedThread? {
        let thread: OwnedThread? = shared.withLock { state in
            switch state.thread {
            case .notStarted:
                state.thread = .stopping(nil)
                return nil
            case .running(let thread), .stopping(let thread):
                state.thread = .stopping(thread)
                return thread
            }
        }
        wakeup.signal()
        return thread
    }

    /// Forgets the delegate, stops the probe and gives the Sentinel hold back; returns the
    /// watcher's thread when this was its last user.
    private func endShutdown() -> OwnedThread? {
        let lease: SentinelTopology.Lease? = shared.withLock { state in
            state.delegate = nil
            defer { state.sentinel = nil }
            return state.sentinel
        }
        probe?.shutdown()
        return lease?.release()
    }

    // MARK: - Thread side

    var isStopping: Bool {
        shared.withLock { state in
            if case .stopping = state.thread { return true }
            return false
        }
    }

    var delegate: (any RedisSubscriberDelegate)? { shared.withLock { $0.delegate } }

    /// What the thread must learn: the whole wanted set when `force` (on connect), else the
    /// changes since the last call; and the waiters added since. Taking changes costs in
    /// proportion to them, so thousands of subscribes in a row stay linear.
    func takeInputs(force: Bool) -> (wanted: Set<ChannelName>?, added: [ChannelName], removed: [ChannelName], waiters: [SubscriptionWaiter]) {
        shared.withLock { state in
            var added: [ChannelName] = []
            var removed: [ChannelName] = []
            if !force {
                for (channel, wanted) in state.changes {
                    if wanted { added.append(channel) } else { removed.append(channel) }
                }
            }
            state.changes.removeAll()
            let waiters = state.newWaiters
            state.newWaiters.removeAll()
            return (force ? state.wanted : nil, added, removed, waiters)
        }
    }

    func setConnected(_ connected: Bool) {
        shared.withLock { $0.connected = connected }
    }

    func setRefused(_ refused: Set<ChannelName>) {
        shared.withLock { $0.refused = refused }
    }

    var redisConfiguration: RedisConfiguration { redis }
    var tuning: Configuration { configuration }
    var log: Logger { logger }
    var wakeupDescriptor: Int32 { wakeup.readDescriptor }
    func drainWakeups() { wakeup.drain() }
    func signalWakeup() { wakeup.signal() }
}

/// Something to run once a set of channels is answered.
struct SubscriptionWaiter: Sendable {
    let channels: Set<ChannelName>
    let action: @Sendable (_ refused: Set<ChannelName>) -> Void
}
