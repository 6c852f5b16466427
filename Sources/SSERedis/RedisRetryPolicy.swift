import Dispatch

/// When and how often to try a Redis operation again after a transient failure.
///
/// Capped exponential backoff with equal jitter (retry n waits between half and all of
/// `min(maximumDelay, baseDelay × 2ⁿ⁻¹)`), at most `maximumAttempts` attempts in all, and no
/// retry that would start later than `totalMilliseconds` after the first attempt. What is
/// transient is `RedisError.isTransient` (connection failed, lost, unavailable, timed out;
/// error replies `LOADING`, `BUSY`, `TRYAGAIN`, `MASTERDOWN`, `CLUSTERDOWN`, `READONLY`,
/// `NOREPLICAS`).
///
/// `run` never blocks the caller's thread: retries are scheduled with
/// `DispatchQueue.asyncAfter`, so it is safe from an event loop or the command thread.
public struct RedisRetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first included (1 means no retry).
    public var maximumAttempts: Int
    public var baseDelayMilliseconds: Int
    public var maximumDelayMilliseconds: Int
    /// No retry starts later than this after the first attempt (each attempt itself is
    /// bounded by the command timeout).
    public var totalMilliseconds: Int

    public init(maximumAttempts: Int = 12, baseDelayMilliseconds: Int = 50, maximumDelayMilliseconds: Int = 2000, totalMilliseconds: Int = 10_000) {
        self.maximumAttempts = max(1, maximumAttempts)
        self.baseDelayMilliseconds = max(1, baseDelayMilliseconds)
        self.maximumDelayMilliseconds = max(self.baseDelayMilliseconds, maximumDelayMilliseconds)
        self.totalMilliseconds = max(0, totalMilliseconds)
    }

    /// Up to 12 attempts, none started later than 10 s after the first (waits of 25-50 ms
    /// doubling to 1-2 s): rides out a Redis restart that is loading its data.
    public static let `default` = RedisRetryPolicy()

    /// One attempt, no retry.
    public static let never = RedisRetryPolicy(maximumAttempts: 1)

    /// The wait before the next attempt after `attempts` attempts (1 or more) that began
    /// `elapsedMilliseconds` ago in all, or nil when the policy gives up.
    public func delayMilliseconds<G: RandomNumberGenerator>(
        afterAttempts attempts: Int,
        elapsedMilliseconds: Int,
        using generator: inout G
    ) -> Int? {
        guard attempts >= 1, attempts < maximumAttempts else { return nil }
        let shift = min(attempts - 1, 30)
        let (product, overflow) = baseDelayMilliseconds.multipliedReportingOverflow(by: 1 << shift)
        let ceiling = overflow ? maximumDelayMilliseconds : min(maximumDelayMilliseconds, product)
        let half = ceiling / 2
        let delay = half + Int.random(in: 0...(ceiling - half), using: &generator)
        let (start, late) = max(0, elapsedMilliseconds).addingReportingOverflow(delay)
        guard !late, start <= totalMilliseconds else { return nil }
        return delay
    }

    /// Runs `operation` until it gives a result `shouldRetry` rejects, or the policy gives up;
    /// then calls `completion` with the last result. `operation` gets the attempt number
    /// (1-based) and must call its `done` exactly once.
    public func run<Value: Sendable>(
        _ operation: @escaping @Sendable (_ attempt: Int, _ done: @escaping @Sendable (Value) -> Void) -> Void,
        shouldRetry: @escaping @Sendable (Value) -> Bool,
        completion: @escaping @Sendable (Value) -> Void
    ) {
        attempt(1, startedAt: .now, operation, shouldRetry, completion)
    }

    private func attempt<Value: Sendable>(
        _ number: Int,
        startedAt: ContinuousClock.Instant,
        _ operation: @escaping @Sendable (Int, @escaping @Sendable (Value) -> Void) -> Void,
        _ shouldRetry: @escaping @Sendable (Value) -> Bool,
        _ completion: @escaping @Sendable (Value) -> Void
    ) {
        operation(number) { value in
            var generator = SystemRandomNumberGenerator()
            guard shouldRetry(value),
                let delay = delayMilliseconds(afterAttempts: number, elapsedMilliseconds: startedAt.duration(to: .now).milliseconds, using: &generator)
            else {
                completion(value)
                return
            }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(delay)) {
                attempt(number + 1, startedAt: startedAt, operation, shouldRetry, completion)
            }
        }
    }
}

extension RedisCommandClient {
    /// Sends a command, retrying per `policy` while it fails transiently or Redis answers with
    /// a transient error reply (`-LOADING` and the like). `completion` gets the last outcome:
    /// a non-transient error reply is returned as a reply, as `send` does.
    public func send(_ arguments: [[UInt8]], lane: Int = 0, retrying policy: RedisRetryPolicy, completion: @escaping Completion) {
        policy.run(
            { [self] _, done in send(arguments, lane: lane, completion: done) },
            shouldRetry: Self.isTransient,
            completion: completion
        )
    }

    /// Sends a command with retries, without blocking the caller's thread.
    public func send(_ arguments: [[UInt8]], lane: Int = 0, retrying policy: RedisRetryPolicy) async throws(RedisError) -> RedisReply {
        let result: Result<RedisReply, RedisError> = await withCheckedContinuation { continuation in
            send(arguments, lane: lane, retrying: policy) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Whether an outcome is worth another attempt.
    public static func isTransient(_ result: Result<RedisReply, RedisError>) -> Bool {
        switch result {
        case .failure(let error): return error.isTransient
        case .success(let reply): return reply.serverError?.isTransient ?? false
        }
    }
}
