import Dispatch
import SSERedis
import SeededRandom
import Synchronization
import Testing

@Suite("Retry policy: capped exponential backoff with jitter, bounded attempts and time")
struct RedisRetryPolicyTests {
    @Test("delays double up to the cap, each within [ceiling/2, ceiling]; attempts are bounded")
    func delays() {
        let policy = RedisRetryPolicy(maximumAttempts: 7, baseDelayMilliseconds: 100, maximumDelayMilliseconds: 1000, totalMilliseconds: 60_000)
        var generator = SeededGenerator.forTest()
        for (attempts, ceiling) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1000), (6, 1000)] {
            let delay = policy.delayMilliseconds(afterAttempts: attempts, elapsedMilliseconds: 0, using: &generator)
            #expect(delay.map { $0 >= ceiling / 2 && $0 <= ceiling } == true, "attempt \(attempts): \(String(describing: delay)), \(generator)")
        }
        #expect(policy.delayMilliseconds(afterAttempts: 7, elapsedMilliseconds: 0, using: &generator) == nil)
    }

    @Test("no retry starts past the total deadline; huge values do not trap")
    func deadline() {
        let policy = RedisRetryPolicy(maximumAttempts: 100, baseDelayMilliseconds: 100, maximumDelayMilliseconds: 100, totalMilliseconds: 1000)
        var generator = SeededGenerator.forTest()
        #expect(policy.delayMilliseconds(afterAttempts: 1, elapsedMilliseconds: 800, using: &generator) != nil)
        #expect(policy.delayMilliseconds(afterAttempts: 1, elapsedMilliseconds: 1000, using: &generator) == nil)
        #expect(policy.delayMilliseconds(afterAttempts: 1, elapsedMilliseconds: .max, using: &generator) == nil)
        let wide = RedisRetryPolicy(maximumAttempts: .max, baseDelayMilliseconds: .max, maximumDelayMilliseconds: .max, totalMilliseconds: .max)
        #expect(wide.delayMilliseconds(afterAttempts: 80, elapsedMilliseconds: 0, using: &generator) != nil)
    }

    @Test("run retries while asked, then completes once with the last value, off the caller's thread")
    func run() async {
        let policy = RedisRetryPolicy(maximumAttempts: 4, baseDelayMilliseconds: 1, maximumDelayMilliseconds: 2, totalMilliseconds: 5000)
        let attempts = Mutex(0)
        let last: Int = await withCheckedContinuation { continuation in
            policy.run(
                { attempt, done in
                    attempts.withLock { $0 += 1 }
                    done(attempt)
                },
                shouldRetry: { $0 < 3 },
                completion: { continuation.resume(returning: $0) }
            )
        }
        #expect(last == 3)
        #expect(attempts.withLock { $0 } == 3)
        let capped: Int = await withCheckedContinuation { continuation in
            policy.run({ attempt, done in done(attempt) }, shouldRetry: { _ in true }, completion: { continuation.resume(returning: $0) })
        }
        #expect(capped == 4)
    }
}
