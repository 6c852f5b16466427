import Foundation
import Logging
import SSERedis
import Testing

extension RedisServerProcess {
    /// The server's pid, from `INFO server`.
    func pid() async throws -> pid_t {
        guard case .bulkString(let bytes) = try await command("INFO", "server") else { throw TestFailure("INFO failed") }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
            let pid = pid_t(line.dropFirst("process_id:".count))
        else { throw TestFailure("no process_id in INFO") }
        return pid
    }
}

/// SIGSTOPs a redis-server and always SIGCONTs it, however the body ends.
func whileStopped<T>(_ pid: pid_t, _ body: () async throws -> T) async rethrows -> T {
    kill(pid, SIGSTOP)
    defer { kill(pid, SIGCONT) }
    return try await body()
}

@Suite("Subscriber: never blocked by a stalled Redis")
struct SubscriberStallTests {
    @Test("thousands of SUBSCRIBEs to a SIGSTOP'd Redis fill the socket; the thread drops the connection within the liveness interval, shuts down promptly, and resubscribes after SIGCONT")
    func stalledWrites() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pid = try await redis.pid()
        let subscriber = try RedisSubscriber(
            redis: try redis.configuration,
            configuration: .init(backoffBaseMilliseconds: 50, backoffCapMilliseconds: 200, pingIntervalMilliseconds: 500),
            logger: Logger(label: "test.stall")
        )
        let delegate = RecordingSubscriberDelegate()
        subscriber.start(delegate: delegate)
        defer { subscriber.shutdown() }
        try await eventually("connected") { subscriber.isConnected }
        // 100,000 names of ~120 bytes: 12 MB of SUBSCRIBE, more than both socket buffers hold.
        let padding = String(repeating: "p", count: 110)
        let channels = (0..<100_000).map { "stall:\(padding):\($0)" }
        let elapsed = try await whileStopped(pid) {
            for channel in channels { subscriber.subscribe(channel) }
            let start = ContinuousClock.now
            try await eventually(timeout: .seconds(5), "the stalled connection dropped") {
                delegate.state.withLock { !$0.disconnects.isEmpty }
            }
            return start.duration(to: .now)
        }
        let error = delegate.state.withLock { $0.disconnects.first }
        print("stall: 12 MB of SUBSCRIBE to a SIGSTOP'd Redis, connection dropped after \(elapsed) (ping interval 500 ms): \(String(describing: error))")
        #expect(error?.code == .timedOut, "\(String(describing: error))")
        #expect(elapsed < .seconds(4), "dropped within a few 500 ms liveness intervals: \(elapsed)")
        // Redis runs again: everything wanted is subscribed on the new connection.
        try await eventually(timeout: .seconds(20), "resubscribed") { subscriber.isConnected }
        try await redis.waitForSubscribers(channels[99_999], count: 1, timeout: .seconds(20))
        #expect(try await answered(subscriber, [channels[0], channels[99_999]], timeout: .seconds(20)).isEmpty)
    }

    @Test("shutdown returns promptly while Redis is stopped with commands unwritten")
    func shutdownWhileStalled() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pid = try await redis.pid()
        let subscriber = try RedisSubscriber(
            redis: try redis.configuration,
            configuration: .init(pingIntervalMilliseconds: 10_000),
            logger: Logger(label: "test.stall")
        )
        subscriber.start(delegate: RecordingSubscriberDelegate())
        try await eventually("connected") { subscriber.isConnected }
        let padding = String(repeating: "q", count: 110)
        let returned = SharedValue(false)
        let elapsed = await whileStopped(pid) {
            for index in 0..<100_000 { subscriber.subscribe("stop:\(padding):\(index)") }
            try? await Task.sleep(for: .milliseconds(300))
            let start = ContinuousClock.now
            // On a thread of its own, so a shutdown that hangs fails the test instead of hanging it.
            Thread {
                subscriber.shutdown()
                returned.set(true)
            }.start()
            try? await eventually(timeout: .seconds(5), "shutdown returned") { returned.get() }
            return start.duration(to: .now)
        }
        #expect(returned.get(), "shutdown did not return within 5 s")
        #expect(elapsed < .seconds(5), "shutdown took \(elapsed)")
    }
}
