import SSERedis
import SeededRandom
import Testing

@Suite("Reconnect backoff: capped, exponential, jittered")
struct ReconnectBackoffTests {
    @Test("delays grow by doubling up to the cap, each within [ceiling/2, ceiling]")
    func growth() {
        var backoff = ReconnectBackoff(baseMilliseconds: 100, capMilliseconds: 1000)
        var generator = SeededGenerator.forTest()
        let ceilings = [100, 200, 400, 800, 1000, 1000, 1000]
        for ceiling in ceilings {
            #expect(backoff.ceilingMilliseconds == ceiling)
            let delay = backoff.nextDelayMilliseconds(using: &generator)
            #expect(delay >= ceiling / 2 && delay <= ceiling, "\(delay) ms for a ceiling of \(ceiling), \(generator)")
        }
        backoff.reset()
        #expect(backoff.ceilingMilliseconds == 100)
    }

    @Test("jitter spreads nodes apart")
    func jitter() {
        var generator = SeededGenerator.forTest()
        let delays = (0..<50).map { _ in
            var backoff = ReconnectBackoff(baseMilliseconds: 1000, capMilliseconds: 1000)
            return backoff.nextDelayMilliseconds(using: &generator)
        }
        #expect(Set(delays).count > 10, "\(generator)")
    }

    @Test("a huge failure count cannot overflow")
    func noOverflow() {
        var backoff = ReconnectBackoff(baseMilliseconds: 1 << 40, capMilliseconds: Int.max)
        for _ in 0..<100 { _ = backoff.nextDelayMilliseconds() }
        #expect(backoff.ceilingMilliseconds > 0)
    }
}
