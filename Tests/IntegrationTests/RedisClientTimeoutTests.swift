import Foundation
import Logging
import SSERedis
import Testing

@Suite("Command client: bounded time against a stalled Redis, a clear overload error")
struct RedisClientTimeoutTests {
    func makeClient(_ redis: RedisServerProcess, timeout: Int, maximumPending: Int = 65_536, lanes: Int = 1) throws -> RedisCommandClient {
        var configuration = try redis.configuration
        configuration.commandTimeoutMilliseconds = timeout
        return RedisCommandClient(
            redis: configuration,
            logger: Logger(label: "test.timeout"),
            maximumPending: maximumPending,
            retryIntervalMilliseconds: 200,
            lanes: lanes
        )
    }

    func timed(_ client: RedisCommandClient, _ arguments: String..., lane: Int = 0) async -> (Result<RedisReply, RedisError>, Duration) {
        // Timed where the completion runs, so a loaded test machine's task scheduling does not count.
        let start = ContinuousClock.now
        return await withCheckedContinuation { continuation in
            client.send(arguments.map { Array($0.utf8) }, lane: lane) { continuation.resume(returning: ($0, start.duration(to: .now))) }
        }
    }

    @Test("commands to a SIGSTOP'd Redis fail within the command timeout (.timedOut in flight, .unavailable queued behind), and work again after SIGCONT")
    func stopped() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pid = try await redis.pid()
        let client = try makeClient(redis, timeout: 800)
        defer { client.shutdown() }
        #expect(try await client.send("SET", "k", "v") == .status("OK"))
        let outcomes = await whileStopped(pid) {
            await withTaskGroup(of: (Result<RedisReply, RedisError>, Duration).self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try? await Task.sleep(for: .milliseconds(index * 20))
                        return await self.timed(client, "GET", "k")
                    }
                }
                var all: [(Result<RedisReply, RedisError>, Duration)] = []
                for await outcome in group { all.append(outcome) }
                return all
            }
        }
        for (result, elapsed) in outcomes {
            guard case .failure(let error) = result else {
                Issue.record("a command to a stopped Redis succeeded: \(result)")
                continue
            }
            #expect(error.isTransient, "\(error)")
            #expect(elapsed < .milliseconds(3000), "bounded by the 800 ms timeout, not forever: \(error) after \(elapsed)")
        }
        #expect(outcomes.contains { if case .failure(let error) = $0.0 { return error.code == .timedOut } else { return false } })
        try await eventually(timeout: .seconds(5), "commands work again") {
            (try? await client.send("GET", "k")) == .bulkString(Array("v".utf8))
        }
    }

    @Test("retrying rides out -LOADING (a restarting Redis) without blocking the caller; without retries the error reply is returned as is")
    func retriesLoading() async throws {
        let loading = "-LOADING Redis is loading the dataset in memory\r\n"
        let server = try FakeRedisServer(answers: [loading, loading, "-BUSY Redis is busy running a script\r\n", "+OK\r\n"])
        defer { server.stop() }
        let client = RedisCommandClient(redis: server.configuration, logger: Logger(label: "test.retry"))
        defer { client.shutdown() }
        let first = try await client.send("GET", "k")
        #expect(first.serverError?.serverCode == "LOADING" && first.serverError?.isTransient == true, "\(first)")
        let retried = try await client.send([Array("GET".utf8), Array("k".utf8)], retrying: RedisRetryPolicy(baseDelayMilliseconds: 20, maximumDelayMilliseconds: 50))
        #expect(retried == .status("OK"), "\(retried)")
        let permanent = try FakeRedisServer(answers: ["-NOPERM no\r\n", "+OK\r\n"])
        defer { permanent.stop() }
        let other = RedisCommandClient(redis: permanent.configuration, logger: Logger(label: "test.retry"))
        defer { other.shutdown() }
        let refused = try await other.send([Array("GET".utf8)], retrying: .default)
        #expect(refused.serverError?.serverCode == "NOPERM", "not retried: \(refused)")
    }

    @Test("a full lane answers .overloaded at once; a flood on one lane does not hold up another")
    func overloadAndLanes() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        let pid = try await redis.pid()
        let client = try makeClient(redis, timeout: 3000, maximumPending: 100, lanes: 2)
        defer { client.shutdown() }
        #expect(try await client.send("PING") == .status("PONG"))
        let laneOne = SharedValue<Result<RedisReply, RedisError>?>(nil)
        let refused = await whileStopped(pid) {
            // Lane 0 floods: 100 wait in the queue, the rest are refused at once.
            for _ in 0..<300 { client.send([Array("PING".utf8)], lane: 0) { _ in } }
            let refused = await timed(client, "PING", lane: 0)
            // Lane 1 still has room.
            client.send([Array("PING".utf8)], lane: 1) { laneOne.set($0) }
            return refused
        }
        guard case .failure(let error) = refused.0 else {
            Issue.record("expected .overloaded, got \(refused.0)")
            return
        }
        #expect(error.code == .overloaded)
        #expect(refused.1 < .milliseconds(1000), "refused at once, not queued")
        try await eventually(timeout: .seconds(10), "lane 1 answered") { laneOne.get() != nil }
        if case .failure(let error) = laneOne.get() { #expect(error.code != .overloaded) }
        try await eventually(timeout: .seconds(10), "commands flow again") { (try? await client.send("PING", lane: 1)) == .status("PONG") }
    }
}
