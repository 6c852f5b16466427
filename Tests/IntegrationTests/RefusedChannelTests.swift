import Foundation
import SSERedis
import Testing

/// A channel Redis refuses (ACL) harms only its own streams: they get a clear answer; the node
/// shows it in /readyz and the metrics; every other channel keeps flowing.
@Suite("Refused channels", .timeLimit(.minutes(2)))
struct RefusedChannelTests {
    @Test("a channel the node's ACL user may not subscribe: its stream is told and ends, a new one gets 503, /readyz and /metrics show it, other channels are untouched")
    func refusedChannelOnANode() async throws {
        let redis = try await RedisServerProcess()
        _ = try await redis.command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&allowed:*", "+@all")
        let limited = try RedisConfiguration(url: "redis://limited:pw@127.0.0.1:\(redis.port)/0")
        let node = try await BrokerNode(redis: limited)
        let allowed = try await node.stream("allowed:a")
        let denied = try await node.stream("denied")
        try await denied.connection.waitForClose(timeout: .seconds(10))
        let told = try denied.events()
        #expect(told.count == 1)
        #expect(told.first?.hasPrefix("event:subscription-refused\ndata:{\"channels\": [\"denied\"]") == true)
        let again = try await node.request("GET", "/stream?channel=denied")
        #expect(again.status == 503)
        #expect(again.bodyText.contains("denied"))
        #expect(!again.bodyText.contains("NOPERM"), "no raw Redis error text")
        let ready = try await node.request("GET", "/readyz")
        #expect(ready.status == 200)
        #expect(ready.bodyText.contains(#""refusedChannels": 1"#))
        let metrics = try await node.request("GET", "/metrics")
        #expect(metrics.bodyText.contains("sse_channels_refused 1"))
        try await redis.waitForSubscribers("allowed:a", count: 1)
        _ = try await redis.command("PUBLISH", "allowed:a", "still flowing")
        #expect(try await allowed.waitForEvents(1) == ["data:still flowing\n\n"])
        await allowed.close()
        await node.shutdown()
    }
}

@Suite("Channel names are bytes", .timeLimit(.minutes(2)))
struct ChannelBytesTests {
    @Test("canonically equivalent channel names (é as one code point, and e + combining accent) are two Redis channels end to end")
    func equivalentNamesAreTwoChannels() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let composed = "caf\u{E9}"
        let decomposed = "cafe\u{301}"
        let first = try await node.stream("caf%C3%A9")
        let second = try await node.stream("cafe%CC%81")
        try await redis.waitForSubscribers(composed, count: 1)
        try await redis.waitForSubscribers(decomposed, count: 1)
        _ = try await redis.command("PUBLISH", composed, "to the composed one")
        _ = try await redis.command("PUBLISH", decomposed, "to the decomposed one")
        #expect(try await first.waitForEvents(1) == ["data:to the composed one\n\n"])
        #expect(try await second.waitForEvents(1) == ["data:to the decomposed one\n\n"])
        try await Task.sleep(for: .milliseconds(200))
        #expect(try first.events().count == 1)
        #expect(try second.events().count == 1)
        // One stream naming both gets both, each once.
        let both = try await node.stream("caf%C3%A9&channel=cafe%CC%81")
        try await Task.sleep(for: .milliseconds(100))
        _ = try await redis.command("PUBLISH", decomposed, "again")
        #expect(try await both.waitForEvents(1) == ["data:again\n\n"])
        for client in [first, second, both] { await client.close() }
        await node.shutdown()
    }
}
