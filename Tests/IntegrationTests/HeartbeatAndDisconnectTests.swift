import Foundation
import SSERedis
import Testing

@Suite("Heartbeats, retry and disconnects", .timeLimit(.minutes(3)))
struct HeartbeatAndDisconnectTests {
    @Test("a heartbeat comment flows on every stream at the configured interval; 0 turns it off")
    func heartbeats() async throws {
        let redis = try await RedisServerProcess()
        let beating = try await BrokerNode(redis: try redis.configuration) { $0.heartbeatSeconds = 0.1 }
        let silent = try await BrokerNode(redis: try redis.configuration) { $0.heartbeatSeconds = 0 }
        let first = try await beating.stream("beat")
        let second = try await beating.stream("other")
        let quiet = try await silent.stream("beat")
        try await eventually("3 heartbeats on both streams") {
            try first.frames().count >= 3 && second.frames().count >= 3
        }
        #expect(try first.frames().allSatisfy { $0 == ":\n\n" })
        #expect(try first.events().isEmpty)
        #expect(try quiet.frames().isEmpty)
        for client in [first, second, quiet] { await client.close() }
        await beating.shutdown()
        await silent.shutdown()
    }

    @Test("--retry-ms sends a retry line first on each stream; off by default")
    func retryFirst() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.retryMilliseconds = 2500 }
        let plain = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("r")
        try await eventually("the retry frame") { try !client.frames().isEmpty }
        #expect(try client.frames().first == "retry:2500\n\n")
        let old = try await StreamClient.open(port: node.port, "/stream?channel=r", version: "HTTP/1.0")
        try await eventually("the retry frame over HTTP/1.0") { try !old.frames().isEmpty }
        #expect(try old.frames().first == "retry:2500\n\n")
        let other = try await plain.stream("r")
        try await redis.waitForSubscribers("r", count: 2)
        _ = try await redis.command("PUBLISH", "r", "x")
        #expect(try await other.waitForEvents(1) == ["data:x\n\n"])
        #expect(try other.frames() == ["data:x\n\n"])
        for stream in [client, old, other] { await stream.close() }
        await node.shutdown()
        await plain.shutdown()
    }

    @Test("a client that goes away is dropped at once: connection closed, channel released, no publish needed")
    func immediateDrop() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("gone")
        try await redis.waitForSubscribers("gone", count: 1)
        #expect(node.server.connectionCount == 1)
        await client.close()
        // No publish happens: the drop comes from the socket closing. (The one-second unsubscribe
        // bound is asserted by the refcounting test; this suite runs beside the 30 s soak.)
        try await eventually(timeout: .seconds(3), "the node to forget the client") {
            node.server.clientCount(for: "gone") == 0 && node.server.connectionCount == 0
        }
        try await redis.waitForSubscribers("gone", count: 0, timeout: .seconds(3))
        await node.shutdown()
    }

    @Test("10,000 connect/disconnect cycles leave the broker's fd count and memory where they started")
    func connectDisconnectCycles() async throws {
        let redis = try await RedisServerProcess()
        let broker = try await BrokerProcess(redisURL: redis.url(), arguments: ["--heartbeat", "0"])
        func cycles(_ count: Int) async throws {
            try await withThrowingTaskGroup(of: Void.self) { group in
                let workers = 16
                for worker in 0..<workers {
                    group.addTask {
                        for index in stride(from: worker, to: count, by: workers) {
                            let client = try await StreamClient.open(port: broker.port, "/stream?channel=cycle-\(index % 40)")
                            await client.close()
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        func settle() async throws -> (files: Int, bytes: Int) {
            try await eventually("channels released") { try await redis.subscriberCount("cycle-0") == 0 }
            try await Task.sleep(for: .milliseconds(300))
            return (try broker.openFileCount(), try broker.residentBytes())
        }
        try await cycles(1_000)  // warm up allocator pools and caches
        let before = try await settle()
        try await cycles(10_000)
        let after = try await settle()
        print("connect/disconnect: fds \(before.files) -> \(after.files), RSS \(before.bytes / 1024) KiB -> \(after.bytes / 1024) KiB")
        #expect(after.files <= before.files, "leaked file descriptors")
        #expect(after.bytes - before.bytes < 8 * 1024 * 1024, "RSS grew by \((after.bytes - before.bytes) / 1024) KiB")
        #expect(try await broker.stop() == 0)
    }
}
