import Foundation
import SSEWire
import Testing

/// Pub/sub payloads anyone who may PUBLISH can send: none may trap, stall or starve the node.
@Suite("Hostile payloads", .timeLimit(.minutes(2)))
struct HostilePayloadTests {
    @Test("publishedAt of 1e300, -1e300, Infinity, -Infinity or NaN is delivered and simply not measured; the node lives on")
    func absurdPublishedAt() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration)
        let client = try await node.stream("stamp")
        try await redis.waitForSubscribers("stamp", count: 1)
        let stamps = ["1e300", "-1e300", "Infinity", "-Infinity", "NaN", "-1", "99999999999999999999999999"]
        for stamp in stamps {
            _ = try await redis.command("PUBLISH", "stamp", #"{"data": {"publishedAt": \#(stamp)}}"#)
        }
        _ = try await redis.command("PUBLISH", "stamp", "still alive")
        let events = try await client.waitForEvents(stamps.count + 1)
        #expect(events.last == "data:still alive\n\n")
        let metrics = try await node.request("GET", "/metrics")
        #expect(metrics.status == 200)
        await client.close()
        await node.shutdown()
    }

    @Test("a 15,000-key object and 200,000 nested brackets on a channel do not stall another channel's stream")
    func hugeAndDeepPayloads() async throws {
        let redis = try await RedisServerProcess()
        let node = try await BrokerNode(redis: try redis.configuration) { $0.maxPayloadBytes = 1 << 20 }
        let victim = try await node.stream("victim")
        let other = try await node.stream("calm")
        try await redis.waitForSubscribers("victim", count: 1)
        try await redis.waitForSubscribers("calm", count: 1)
        let keys = (0..<15_000).map { "\"k\($0)\": \($0)" }.joined(separator: ", ")
        _ = try await redis.command("PUBLISH", "victim", "{\"data\": {\(keys)}}")
        _ = try await redis.command("PUBLISH", "victim", String(repeating: "[", count: 200_000))
        let started = ContinuousClock.now
        _ = try await redis.command("PUBLISH", "calm", "on time")
        #expect(try await other.waitForEvents(1) == ["data:on time\n\n"])
        print("hostile payloads: the calm channel's event arrived after \(started.duration(to: .now))")
        #expect(try await victim.waitForEvents(2).count == 2)
        await victim.close()
        await other.close()
        await node.shutdown()
    }
}
