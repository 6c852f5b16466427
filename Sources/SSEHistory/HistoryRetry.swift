import SSERedis

/// Which history failures are worth retrying, and how long to wait between tries.
///
/// Wider than `RedisError.isTransient`: a replay also waits out a full queue (`.overloaded`:
/// it retries after a delay, not at once) and a replica that is read-only or short of replicas.
public enum HistoryRetry {
    /// Whether `error` may go away by itself: a lost or refused connection, a Redis still
    /// loading its data after a restart (`-LOADING`), busy with a script (`-BUSY`), a replica
    /// mid-failover (`-MASTERDOWN`, `-READONLY`), a cluster resharding (`-TRYAGAIN`,
    /// `-CLUSTERDOWN`, `-MOVED`, `-ASK`), or our own queue being full. Anything else (a script error, `-NOPERM`)
    /// will fail the same way again.
    public static func isTransient(_ error: RedisError) -> Bool {
        if error.isTransient || error.code == .overloaded { return true }
        return error.code == .serverError && RedisError.transientServerCodes.contains { error.message.hasPrefix($0) }
    }

    /// Milliseconds before retry number `attempt` (0-based): 50 ms doubling to 2 s, with up to
    /// half of it as jitter so many streams retrying together spread out.
    public static func delayMilliseconds(attempt: Int) -> Int {
        let base = 50 << min(max(0, attempt), 6)
        let capped = min(2000, base)
        return capped / 2 + Int.random(in: 0...(capped / 2))
    }
}
