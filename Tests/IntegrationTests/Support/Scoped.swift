import SSERedis
import SSEServer

// Scoped helpers: what a test starts through them is stopped when its body ends, however it
// ends: a failed `#expect` (which does not throw), a failed `#require` or any other error, so a
// failing test cannot leave a node's threads and sockets, or a redis-server, to the tests after it.

/// Runs `body` with a fresh `redis-server`, killed when `body` returns or throws.
func withRedis<Result>(
    password: String? = nil,
    persistent: Bool = false,
    arguments: [String] = [],
    _ body: (RedisServerProcess) async throws -> Result
) async throws -> Result {
    let redis = try await RedisServerProcess(password: password, persistent: persistent, arguments: arguments)
    defer { redis.stop() }
    return try await body(redis)
}

/// Runs `body` with a started node against `redis`, shut down when `body` returns or throws.
func withNode<Result>(
    redis: RedisConfiguration,
    configure: (inout BrokerConfiguration) -> Void = { _ in },
    _ body: (BrokerNode) async throws -> Result
) async throws -> Result {
    let node = try await BrokerNode(redis: redis, configure: configure)
    return try await ensuring({ try await body(node) }, finally: { await node.shutdown() })
}

/// Runs `body` with `count` started nodes against `redis` (each configured by `configure`),
/// all shut down when `body` returns or throws, also when starting a later one fails.
func withNodes<Result>(
    _ count: Int,
    redis: RedisConfiguration,
    configure: (inout BrokerConfiguration) -> Void = { _ in },
    _ body: ([BrokerNode]) async throws -> Result
) async throws -> Result {
    var nodes: [BrokerNode] = []
    return try await ensuring({
        for _ in 0..<count { nodes.append(try await BrokerNode(redis: redis, configure: configure)) }
        return try await body(nodes)
    }, finally: {
        for node in nodes { await node.shutdown() }
    })
}

/// Runs `body`, then `cleanup` whether `body` returned or threw (`defer` cannot `await`).
func ensuring<Result>(_ body: () async throws -> Result, finally cleanup: () async -> Void) async throws -> Result {
    let result: Result
    do {
        result = try await body()
    } catch {
        await cleanup()
        throw error
    }
    await cleanup()
    return result
}
