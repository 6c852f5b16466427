import Dispatch
import Logging
import SSEPOSIX
import Synchronization

/// Sends Redis commands from any thread, pipelined, on one dedicated thread.
///
/// Callers enqueue commands and get their replies through a completion or `async`; the thread
/// takes up to `maximumBatch` queued commands at once, writes them in one go and reads the
/// replies in order, so a burst of publishes costs one round trip, not one each.
///
/// Every command is answered in bounded time:
/// - While Redis is unreachable, commands fail at once with `.unavailable` (a reconnect is
///   tried at most every `retryIntervalMilliseconds`), so callers such as `POST /publish`
///   never hang.
/// - A Redis that goes silent (SIGSTOP'd, a dead path) fails the commands in flight with
///   `.timedOut` once no byte has moved for `RedisConfiguration.commandTimeoutMilliseconds`
///   while a reply is awaited (or output is waiting for the socket), and the connection is
///   dropped; the commands queued behind then fail at once with `.unavailable`. A Redis that is
///   slow but answering is not cut off: a long reply that keeps arriving is read to its end
///   (its size is bounded by `maximumReplyBytes`). A connect takes at most
///   `connectTimeoutMilliseconds`, then `AUTH`/`SELECT` at most the command timeout.
/// - The queue is bounded: each lane holds at most `maximumPending` commands; beyond that
///   `send` fails at once with `.overloaded` (nothing waits for room).
///
/// On a Redis Cluster routed to a slot (`RedisConfiguration.routed(toSlot:)`), a `-MOVED` about
/// that slot makes the next batch connect where the reply points; a `-MOVED` about another slot
/// is only handed to its caller (`ClusterCommandRouter` redirects those).
///
/// Through Sentinel (`.sentinel` endpoint) every connect resolves the master anew, a batch first
/// checks that no failover was announced since its connection was resolved (else it reconnects),
/// and a `-READONLY` or `-NOREPLICAS` reply drops the connection so the next batch resolves again
/// (`-READONLY` also moves the topology's generation, so the subscriptions follow).
///
/// Lanes keep one caller's flood from starving another: a batch takes commands from the
/// non-empty lanes in turn, one at a time, so with k busy lanes each gets at least a k-th of
/// every batch, and a full lane refuses only its own commands. Within a lane order is FIFO;
/// a command waits behind at most `maximumPending - 1` others of its lane.
public final class RedisCommandClient: Sendable {
    /// A command's outcome: Redis's reply (error replies included) or why there is none.
    public typealias Completion = @Sendable (Result<RedisReply, RedisError>) -> Void

    private struct Pending {
        let arguments: [[UInt8]]
        let completion: Completion
    }

    private struct Shared {
        var queue: LaneQueues<Pending>
        var stopping = false
        var started = false
        var available = true
    }

    private let redis: RedisConfiguration
    private let logger: Logger
    private let maximumPending: Int
    private let maximumBatch: Int
    private let retryIntervalMilliseconds: Int
    private let shared: Mutex<Shared>
    private let wakeup = DispatchSemaphore(value: 0)

    /// - Parameters:
    ///   - maximumPending: commands each lane may hold before `send` answers `.overloaded`.
    ///   - retryIntervalMilliseconds: after a failed connect, commands fail with `.unavailable`
    ///     for this long before the next attempt.
    ///   - lanes: independent queues served in turn (see the type's documentation).
    ///   - maximumBatch: most commands written in one go.
    public init(
        redis: RedisConfiguration,
        logger: Logger,
        maximumPending: Int = 65_536,
        retryIntervalMilliseconds: Int = 500,
        lanes: Int = 1,
        maximumBatch: Int = 1024
    ) {
        self.redis = redis
        self.logger = logger
        self.maximumPending = max(1, maximumPending)
        self.maximumBatch = max(1, maximumBatch)
        self.retryIntervalMilliseconds = retryIntervalMilliseconds
        self.shared = Mutex(Shared(queue: LaneQueues(lanes: lanes, capacity: maximumPending)))
    }

    /// Whether the last attempt to reach Redis succeeded.
    public var isAvailable: Bool { shared.withLock { $0.available } }

    /// Commands queued, not yet sent.
    public var pendingCount: Int { shared.withLock { $0.queue.count } }

    /// Sends one command on `lane` (0 by default; out-of-range lanes use the nearest one);
    /// `completion` runs on the command thread, or on the caller's if the command is refused.
    public func send(_ arguments: [[UInt8]], lane: Int = 0, completion: @escaping Completion) {
        let outcome: RedisError? = shared.withLock { state in
            if state.stopping { return RedisError(.shutdown, "the Redis client is shut down") }
            guard state.queue.append(Pending(arguments: arguments, completion: completion), lane: lane) else {
                return RedisError(.overloaded, "\(maximumPending) commands already waiting for Redis")
            }
            if !state.started {
                state.started = true
                guard OwnedThread.spawn({ [self] in run() }) != nil else {
                    state.started = false
                    state.queue.removeLast(lane: lane)
                    return RedisError(.connectionFailed, "cannot start the Redis command thread")
                }
            }
            return nil
        }
        if let outcome {
            completion(.failure(outcome))
        } else {
            wakeup.signal()
        }
    }

    /// Sends one command and waits for its reply without blocking the caller's thread.
    public func send(_ arguments: [[UInt8]], lane: Int = 0) async throws(RedisError) -> RedisReply {
        let result: Result<RedisReply, RedisError> = await withCheckedContinuation { continuation in
            send(arguments, lane: lane) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Convenience for textual arguments.
    public func send(_ arguments: String..., lane: Int = 0) async throws(RedisError) -> RedisReply {
        try await send(arguments.map { Array($0.utf8) }, lane: lane)
    }

    /// Fails everything queued with `.shutdown` and stops the thread (after the batch in
    /// flight, which its deadlines bound).
    public func shutdown() {
        shared.withLock { $0.stopping = true }
        wakeup.signal()
    }

    /// Takes up to `maximumBatch` commands, one per non-empty lane in turn (all when stopping).
    private func takeBatch() -> (batch: [Pending], stopping: Bool) {
        shared.withLock { state in
            state.stopping ? (state.queue.takeAll(), true) : (state.queue.take(maximum: maximumBatch), false)
        }
    }

    private func setAvailable(_ available: Bool) {
        shared.withLock { $0.available = available }
    }

    /// The command thread: take a batch, pipeline it, answer everyone, repeat.
    private func run() {
        // Through Sentinel the thread shares the process's topology (and its watcher) while it runs.
        let sentinel = SentinelTopology.acquire(for: redis, logger: logger)
        defer { sentinel?.release()?.join() }
        var connection: RedisConnection?
        var connectedAt = ContinuousClock.now
        // Where the last -MOVED pointed, and how many redirections in a row were followed.
        var movedTarget: SentinelAddress?
        var redirections = 0
        var lastFailure: ContinuousClock.Instant?
        var failedGeneration: UInt64 = 0
        while true {
            wakeup.wait()
            let (batch, stopping) = takeBatch()
            if stopping {
                fail(batch, RedisError(.shutdown, "the Redis client is shut down"))
                return
            }
            guard !batch.isEmpty else { continue }
            if let idle = connection, idle.isClosedByPeer {
                logger.info("Redis command connection was closed by the server; reconnecting")
                connection = nil
                movedTarget = nil
                lastFailure = nil
            }
            if let current = connection, current.isTopologyStale {
                logger.info("the Redis master may have changed (Sentinel); reconnecting", metadata: ["redis": "\(redis)"])
                connection = nil
                lastFailure = nil
            }
            if connection == nil {
                if let lastFailure, lastFailure.duration(to: .now) < .milliseconds(retryIntervalMilliseconds),
                    sentinel.map({ $0.topology.generation == failedGeneration }) ?? true
                {
                    fail(batch, RedisError(.unavailable, "Redis at \(redis) is unreachable"))
                    continue
                }
                do {
                    failedGeneration = sentinel?.topology.generation ?? 0
                    var target = redis
                    if let movedTarget { target.endpoint = .tcp(host: movedTarget.host, port: movedTarget.port) }
                    connection = try RedisConnection.connect(target, topology: sentinel?.topology, shouldStop: { self.shared.withLock { $0.stopping } })
                    connectedAt = .now
                    lastFailure = nil
                    setAvailable(true)
                } catch {
                    // A redirection target that does not answer: the seeds are asked next time.
                    movedTarget = nil
                    lastFailure = .now
                    setAvailable(false)
                    if error.code != .shutdown {
                        logger.warning("Redis command connection failed", metadata: ["error": "\(error)"])
                    }
                    fail(batch, RedisError(.unavailable, error.message, serverCode: error.serverCode))
                    continue
                }
            }
            guard let live = connection else { continue }
            switch execute(batch, on: live) {
            case .healthy:
                redirections = 0
            case .lost(let error):
                logger.warning("Redis command connection lost", metadata: ["error": "\(error)"])
                connection = nil
                movedTarget = nil
                lastFailure = .now
                setAvailable(false)
            case .notMaster(let isReplica):
                // A replica (or a master cut off from its replicas) answered. The refused
                // commands did not run, so their callers may retry safely. A replica means the
                // topology is stale: every connection of the generation moves. A master without
                // enough replicas (`-NOREPLICAS`, which lasts while replicas lag) is still the one
                // the sentinels name: only this connection resolves again (a resolve that finds
                // another master moves the generation), else every batch would tear down every
                // subscription of the process.
                logger.warning("Redis refused a write as a replica or without its replicas; reconnecting", metadata: ["redis": "\(redis)"])
                if isReplica, let stamp = live.sentinelStamp { stamp.topology.invalidate(stamp.generation) }
                connection = nil
                lastFailure = nil
            case .moved(let target):
                // A cluster node no longer serves the slot (a migration or a failover moved it):
                // the refused commands did not run. The next connect goes where the reply points
                // (the seeds' topology may lag the move); after a few redirections in a row it
                // asks the seeds again, and waits out the retry interval first, so nodes that
                // point at each other cost one connect per interval.
                logger.info("a Redis Cluster slot moved; reconnecting to its new master", metadata: ["redis": "\(redis)", "to": "\(target.map { "\($0)" } ?? "-")"])
                connection = nil
                lastFailure = nil
                redirections += 1
                movedTarget = redirections <= Self.maximumRedirections ? target : nil
                if redirections > Self.maximumRedirections {
                    redirections = 0
                    if connectedAt.duration(to: .now) < .milliseconds(retryIntervalMilliseconds) { lastFailure = .now }
                }
            }
        }
    }

    /// How a batch left the connection.
    private enum BatchOutcome {
        case healthy
        /// The connection broke (the error it broke with).
        case lost(RedisError)
        /// A reply said this server does not take writes: it is a replica (`-READONLY`), or a
        /// master without enough replicas (`-NOREPLICAS`).
        case notMaster(isReplica: Bool)
        /// A cluster node answered `-MOVED`: the slot is served elsewhere now (where the reply
        /// says, when it names a valid address).
        case moved(SentinelAddress?)
    }

    /// Redirections followed in a row before the seeds are asked again.
    static let maximumRedirections = 3

    /// The address a `-MOVED slot host:port` names, when it is a plain host and a valid port.
    static func movedTarget(_ text: String) -> SentinelAddress? {
        let words = text.split(separator: " ")
        guard words.count == 3, let colon = words[2].lastIndex(of: ":") else { return nil }
        let host = words[2][..<colon]
        guard SentinelAddress.isValidHost(host), let port = SentinelAddress.port(words[2][words[2].index(after: colon)...]) else { return nil }
        return SentinelAddress(host: String(host), port: port)
    }

    /// The slot a `-MOVED slot host:port` names, when it is one (decimal, 0...16383).
    static func movedSlot(_ text: String) -> Int? {
        let words = text.split(separator: " ")
        guard words.count >= 2, words[0] == "MOVED", words[1].utf8.count <= 5,
            words[1].utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            let slot = Int(words[1]), (0..<ClusterSlot.count).contains(slot)
        else { return nil }
        return slot
    }

    /// Whether a client routed to `ownSlot` (nil: not routed to one) reconnects on `-MOVED`:
    /// always when it is not routed, else only when the reply is about its own slot (or names
    /// none it can read). A `-MOVED` for another slot means only that this command's key is
    /// served elsewhere, not that this connection is on the wrong master: one client may carry
    /// the commands of many slots (`ClusterCommandRouter`), and the router redirects them.
    static func follows(movedReply text: String, ownSlot: Int?) -> Bool {
        guard let ownSlot, let slot = movedSlot(text) else { return true }
        return slot == ownSlot
    }

    /// The cluster slot this client's connections are routed to, or nil.
    private var ownSlot: Int? {
        guard case .cluster(let endpoint) = redis.endpoint else { return nil }
        return endpoint.slot
    }

    /// Error replies after which the connection goes to the wrong server for writes.
    static let notMasterCodes: Set<String> = ["READONLY", "NOREPLICAS"]

    /// Pipelines `batch` and answers every command in it.
    private func execute(_ batch: [Pending], on connection: RedisConnection) -> BatchOutcome {
        var answered = 0
        var outcome = BatchOutcome.healthy
        do throws(RedisError) {
            for pending in batch { try connection.append(pending.arguments) }
            let stall = Duration.milliseconds(max(1, redis.commandTimeoutMilliseconds))
            try connection.flush(stall: stall)
            for pending in batch {
                let reply = try connection.readReply(stall: stall)
                answered += 1
                if let code = reply.serverError?.serverCode, Self.notMasterCodes.contains(code) {
                    let isReplica = code == "READONLY"
                    if case .notMaster(true) = outcome {} else { outcome = .notMaster(isReplica: isReplica) }
                } else if reply.serverError?.serverCode == "MOVED", case .healthy = outcome, let text = reply.errorText,
                    Self.follows(movedReply: text, ownSlot: ownSlot)
                {
                    outcome = .moved(Self.movedTarget(text))
                }
                pending.completion(.success(reply))
            }
            return outcome
        } catch {
            fail(batch[answered...], error)
            return .lost(error)
        }
    }

    private func fail(_ batch: some Collection<Pending>, _ error: RedisError) {
        for pending in batch { pending.completion(.failure(error)) }
    }
}
