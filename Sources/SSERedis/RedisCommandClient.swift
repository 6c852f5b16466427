import Dispatch
import Logging
import Synchronization

/// Sends Redis commands from any thread, pipelined, on one dedicated thread.
///
/// Callers enqueue commands and get their replies through a completion or `async`; the thread
/// takes everything queued at once, writes it in one go and reads the replies in order, so a
/// burst of publishes costs one round trip, not one each. While Redis is unreachable, commands
/// fail at once with `.unavailable` (a reconnect is tried at most every
/// `retryIntervalMilliseconds`), so callers such as `POST /publish` never hang.
public final class RedisCommandClient: Sendable {
    /// A command's outcome: Redis's reply (error replies included) or why there is none.
    public typealias Completion = @Sendable (Result<RedisReply, RedisError>) -> Void

    private struct Pending {
        let arguments: [[UInt8]]
        let completion: Completion
    }

    private struct Shared {
        var queue: [Pending] = []
        var stopping = false
        var started = false
        var available = true
    }

    private let redis: RedisConfiguration
    private let logger: Logger
    private let maximumPending: Int
    private let retryIntervalMilliseconds: Int
    private let shared = Mutex(Shared())
    private let wakeup = DispatchSemaphore(value: 0)

    public init(redis: RedisConfiguration, logger: Logger, maximumPending: Int = 65_536, retryIntervalMilliseconds: Int = 500) {
        self.redis = redis
        self.logger = logger
        self.maximumPending = maximumPending
        self.retryIntervalMilliseconds = retryIntervalMilliseconds
    }

    /// Whether the last attempt to reach Redis succeeded.
    public var isAvailable: Bool { shared.withLock { $0.available } }

    /// Sends one command; `completion` runs on the command thread.
    public func send(_ arguments: [[UInt8]], completion: @escaping Completion) {
        let outcome: RedisError? = shared.withLock { state in
            if state.stopping { return RedisError(.shutdown, "the Redis client is shut down") }
            if state.queue.count >= maximumPending {
                return RedisError(.overloaded, "\(maximumPending) commands already waiting")
            }
            state.queue.append(Pending(arguments: arguments, completion: completion))
            if !state.started {
                state.started = true
                let spawned = OwnedThread.spawn { [self] in run() }
                if !spawned {
                    state.started = false
                    state.queue.removeLast()
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
    public func send(_ arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        let result: Result<RedisReply, RedisError> = await withCheckedContinuation { continuation in
            send(arguments) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Convenience for textual arguments.
    public func send(_ arguments: String...) async throws(RedisError) -> RedisReply {
        try await send(arguments.map { Array($0.utf8) })
    }

    /// Fails everything queued with `.shutdown` and stops the thread.
    public func shutdown() {
        shared.withLock { $0.stopping = true }
        wakeup.signal()
    }

    private func takeQueue() -> (batch: [Pending], stopping: Bool) {
        shared.withLock { state in
            defer { state.queue.removeAll(keepingCapacity: true) }
            return (state.queue, state.stopping)
        }
    }

    private func setAvailable(_ available: Bool) {
        shared.withLock { $0.available = available }
    }

    /// The command thread: drain the queue, pipeline it, answer everyone, repeat.
    private func run() {
        var connection: RedisConnection?
        var lastFailure: ContinuousClock.Instant?
        while true {
            wakeup.wait()
            let (batch, stopping) = takeQueue()
            if stopping {
                for pending in batch { pending.completion(.failure(RedisError(.shutdown, "the Redis client is shut down"))) }
                return
            }
            guard !batch.isEmpty else { continue }
            if let idle = connection, idle.isClosedByPeer {
                logger.info("Redis command connection was closed by the server; reconnecting")
                connection = nil
                lastFailure = nil
            }
            if connection == nil {
                if let lastFailure, lastFailure.duration(to: .now) < .milliseconds(retryIntervalMilliseconds) {
                    fail(batch, RedisError(.unavailable, "Redis at \(redis) is unreachable"))
                    continue
                }
                do {
                    connection = try RedisConnection.connect(redis)
                    lastFailure = nil
                    setAvailable(true)
                } catch {
                    lastFailure = .now
                    setAvailable(false)
                    logger.warning("Redis command connection failed", metadata: ["error": "\(error)"])
                    fail(batch, RedisError(.unavailable, error.message))
                    continue
                }
            }
            guard let live = connection else { continue }
            if let error = execute(batch, on: live) {
                logger.warning("Redis command connection lost", metadata: ["error": "\(error)"])
                connection = nil
                lastFailure = .now
                setAvailable(false)
            }
        }
    }

    /// Pipelines `batch`; returns the error that broke the connection, if any.
    private func execute(_ batch: [Pending], on connection: RedisConnection) -> RedisError? {
        var answered = 0
        do throws(RedisError) {
            for pending in batch { try connection.append(pending.arguments) }
            try connection.flush()
            for pending in batch {
                let reply = try connection.readReply()
                answered += 1
                pending.completion(.success(reply))
            }
            return nil
        } catch {
            fail(batch[answered...], RedisError(.connectionLost, error.message))
            return error
        }
    }

    private func fail(_ batch: some Collection<Pending>, _ error: RedisError) {
        for pending in batch { pending.completion(.failure(error)) }
    }
}
