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
