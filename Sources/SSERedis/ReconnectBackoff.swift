/// Capped exponential backoff with jitter, for reconnecting to Redis.
///
/// The n-th consecutive failure waits between half and all of `min(cap, base × 2ⁿ)`
/// ("equal jitter"), so many nodes that lost the same Redis do not reconnect in lock-step,
/// yet each retries promptly at first. A pure value: the caller does the waiting.
public struct ReconnectBackoff: Sendable, Hashable {
    public var baseMilliseconds: Int
    public var capMilliseconds: Int
    /// Consecutive failures so far.
    public private(set) var failures: Int = 0

    public init(baseMilliseconds: Int = 100, capMilliseconds: Int = 5000) {
        self.baseMilliseconds = max(1, baseMilliseconds)
        self.capMilliseconds = max(self.baseMilliseconds, capMilliseconds)
    }

    /// The upper bound of the next delay, before jitter.
    public var ceilingMilliseconds: Int {
        let shift = min(failures, 30)
        let (product, overflow) = baseMilliseconds.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? capMilliseconds : min(capMilliseconds, product)
    }

    /// Records a failure and returns how long to wait before the next attempt.
    public mutating func nextDelayMilliseconds<G: RandomNumberGenerator>(using generator: inout G) -> Int {
        let ceiling = ceilingMilliseconds
        failures += 1
        let half = ceiling / 2
        return half + Int.random(in: 0...(ceiling - half), using: &generator)
    }

    /// Records a failure and returns the delay, with the system's random numbers.
    public mutating func nextDelayMilliseconds() -> Int {
        var generator = SystemRandomNumberGenerator()
        return nextDelayMilliseconds(using: &generator)
    }

    /// Forgets past failures after a successful connect.
    public mutating func reset() {
        failures = 0
    }
}
