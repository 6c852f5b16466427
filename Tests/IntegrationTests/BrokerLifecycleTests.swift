import Foundation
import Logging
import SSEAuth
import SSERedis
import SSEServer
import Testing

/// What a node leaves behind when it cannot start, and how soon a drain ends.
@Suite("Broker lifecycle", .serialized, .timeLimit(.minutes(1)))
struct BrokerLifecycleTests {
    /// No test here talks to Redis before it fails; the drains only need an address.
    private static func configuration(port: Int = 0) throws -> BrokerConfiguration {
        BrokerConfiguration(
            host: "127.0.0.1", port: port, redis: try RedisConfiguration(url: "redis://127.0.0.1:1/0"),
            threads: LoopThreads.count, heartbeatSeconds: 0
        )
    }

    private static var quiet: Logger {
        var logger = Logger(label: "test.lifecycle")
        logger.logLevel = .critical
        return logger
    }

    @Test("init that throws (an unusable JWT key) leaves none of its event-loop threads running")
    func initFailureLeaksNoThreads() async throws {
        try await LoopThreads.expectNoneRunning("before the test")
        var configuration = try Self.configuration()
        configuration.access = AccessConfiguration(tokenKey: .hmacSecret("too-short"))
        for _ in 0..<2 {
            await #expect(throws: (any Error).self) { try await BrokerServer(configuration: configuration, logger: Self.quiet) }
        }
        try await LoopThreads.expectNoneRunning("after two failed inits")
    }

    @Test("start that throws (the port is taken) leaves no thread running and cannot be retried")
    func startFailureLeaksNoThreads() async throws {
        try await LoopThreads.expectNoneRunning("before the test")
        let occupant = try ListeningSocket()
        let server = try await BrokerServer(configuration: try Self.configuration(port: occupant.port), logger: Self.quiet)
        await #expect(throws: (any Error).self) { try await server.start() }
        try await LoopThreads.expectNoneRunning("after the failed start")
        await #expect(throws: BrokerServerError.self) { try await server.start() }
        await server.shutdown()  // already stopped: returns at once
        withExtendedLifetime(occupant) {}
    }

    @Test("the drain ends as soon as the last connection closes, long before --drain-timeout")
    func drainEndsWithLastConnection() async throws {
        try await withRedis { redis in
            let node = try await BrokerNode(redis: try redis.configuration) { $0.drainTimeoutSeconds = 30 }
            let stuck = try await TestConnection.connect(port: node.port)
            // A request whose body never completes holds the drain open until it closes.
            try await stuck.send("POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"data\":")
            try await Task.sleep(for: .milliseconds(100))
            let finished = SharedValue<ContinuousClock.Instant?>(nil)
            let drain = Task {
                await node.shutdown()
                finished.set(.now)
            }
            try await eventually("the node to stop listening") { !((try? FreePort.isListening(node.port)) ?? true) }
            try await Task.sleep(for: .milliseconds(300))
            #expect(finished.get() == nil, "the drain ended while a connection was still open")
            let closed = ContinuousClock.now
            await stuck.close()
            await drain.value
            let took = closed.duration(to: try #require(finished.get()))
            print("drain ended \(took) after the last connection closed")
            #expect(took < .seconds(2), "the drain took \(took) after the last connection closed")
        }
    }

    @Test("a connection that will not finish is closed at --drain-timeout, and the drain then ends")
    func stuckConnectionClosedAtTimeout() async throws {
        try await withRedis { redis in
            let node = try await BrokerNode(redis: try redis.configuration) { $0.drainTimeoutSeconds = 1 }
            let stuck = try await TestConnection.connect(port: node.port)
            try await stuck.send("POST /publish HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{\"data\":")
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            await node.shutdown()
            let took = started.duration(to: .now)
            #expect(took >= .milliseconds(900), "the drain ended before its timeout (\(took)) with a request in flight")
            #expect(took < .seconds(5), "the drain took \(took) with a 1 s timeout")
            try await stuck.waitForClose(timeout: .seconds(5))
        }
    }
}

/// The event-loop threads of the nodes these tests make: more than any other test uses, so the
/// last one's name (`NIO-ELT-<group>-#63`) belongs to them alone, whatever runs in parallel.
enum LoopThreads {
    static let count = 64

    /// Names of this process's threads that are the last loop of a `count`-thread group.
    static func running() -> [String] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.compactMap { task in
            guard let name = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8) else { return nil }
            let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
            return trimmed.hasPrefix("NIO-ELT-") && trimmed.hasSuffix("-#\(count - 1)") ? trimmed : nil
        }
    }

    /// Expects that no such thread runs, waiting up to 5 s for ones on their way out.
    static func expectNoneRunning(_ when: String) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while !running().isEmpty, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(running().isEmpty, "event-loop threads still running \(when): \(running())")
    }
}
