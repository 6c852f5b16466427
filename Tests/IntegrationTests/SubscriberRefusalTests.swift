import Foundation
import Logging
import SSERedis
import Synchronization
import Testing

/// Records what a `RedisSubscriber` tells its delegate.
final class RecordingSubscriberDelegate: RedisSubscriberDelegate {
    struct State {
        var messages: [RedisPubSubMessage] = []
        var refusals: [(channels: [String], error: String)] = []
        var connects = 0
        var disconnects: [RedisError] = []
    }

    let state = Mutex(State())

    func subscriber(_ subscriber: RedisSubscriber, received messages: [RedisPubSubMessage]) {
        state.withLock { $0.messages += messages }
    }

    func subscriberDidConnect(_ subscriber: RedisSubscriber) {
        state.withLock { $0.connects += 1 }
    }

    func subscriber(_ subscriber: RedisSubscriber, didDisconnectWith error: RedisError) {
        state.withLock { $0.disconnects.append(error) }
    }

    func subscriber(_ subscriber: RedisSubscriber, refused channels: [String], error: String) {
        state.withLock { $0.refusals.append((channels, error)) }
    }

    func payloads(on channel: String) -> [String] {
        state.withLock { $0.messages.filter { $0.channel == channel }.map { String(decoding: $0.payload, as: UTF8.self) } }
    }
}

/// Waits for `whenSubscribed` without blocking a thread.
func answered(_ subscriber: RedisSubscriber, _ channels: Set<String>, timeout: Duration = .seconds(10)) async throws -> Set<String> {
    let result = SharedValue<Set<String>?>(nil)
    subscriber.whenSubscribed(channels) { refused in result.set(refused) }
    try await eventually(timeout: timeout, "subscriptions to \(channels.sorted()) answered") { result.get() != nil }
    return result.get() ?? []
}

@Suite("Subscriber: a SUBSCRIBE refusal (ACL -NOPERM) affects only the channels Redis refuses")
struct SubscriberRefusalTests {
    @Test("an ACL user subscribing to allowed and denied channels in one batch gets the allowed ones live; the denied one is refused, reported, and retried until the ACL allows it")
    func refusedChannelIsolated() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        _ = try await redis.command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&allowed:*", "+@all")
        let configuration = try RedisConfiguration(url: "redis://limited:pw@127.0.0.1:\(redis.port)/0")
        let subscriber = try RedisSubscriber(
            redis: configuration,
            configuration: .init(pingIntervalMilliseconds: 1000, refusalRetryBaseMilliseconds: 200, refusalRetryCapMilliseconds: 400),
            logger: Logger(label: "test.subscriber")
        )
        let delegate = RecordingSubscriberDelegate()
        let channels: Set<String> = ["allowed:a", "denied:b", "allowed:c"]
        for channel in channels { subscriber.subscribe(channel) }
        subscriber.start(delegate: delegate)
        defer { subscriber.shutdown() }

        let refused = try await answered(subscriber, channels)
        #expect(refused == ["denied:b"])
        #expect(subscriber.refusedChannels == ["denied:b"])
        let refusals = delegate.state.withLock { $0.refusals }
        #expect(refusals.map(\.channels) == [["denied:b"]], "reported once")
        #expect(refusals.first?.error.hasPrefix("NOPERM") == true)

        try await redis.waitForSubscribers("allowed:a", count: 1)
        try await redis.waitForSubscribers("allowed:c", count: 1)
        _ = try await redis.command("PUBLISH", "allowed:a", "one")
        _ = try await redis.command("PUBLISH", "allowed:c", "two")
        try await eventually("both allowed channels live") {
            delegate.payloads(on: "allowed:a") == ["one"] && delegate.payloads(on: "allowed:c") == ["two"]
        }

        // The ACL changes: the retry (200-400 ms) subscribes the channel.
        _ = try await redis.command("ACL", "SETUSER", "limited", "&denied:*")
        try await eventually("the refused channel subscribed after the ACL change") { subscriber.refusedChannels.isEmpty }
        try await redis.waitForSubscribers("denied:b", count: 1)
        _ = try await redis.command("PUBLISH", "denied:b", "three")
        try await eventually("the formerly refused channel live") { delegate.payloads(on: "denied:b") == ["three"] }
        #expect(delegate.state.withLock { $0.disconnects.isEmpty }, "a refusal never drops the connection")
    }

    @Test("a channel first wanted on a live connection is refused alone; a waiter on a refused channel is answered at once")
    func refusedLater() async throws {
        let redis = try await RedisServerProcess()
        defer { redis.stop() }
        _ = try await redis.command("ACL", "SETUSER", "limited", "on", ">pw", "~*", "&allowed:*", "+@all")
        let subscriber = try RedisSubscriber(
            redis: try RedisConfiguration(url: "redis://limited:pw@127.0.0.1:\(redis.port)/0"),
            logger: Logger(label: "test.subscriber")
        )
        let delegate = RecordingSubscriberDelegate()
        subscriber.subscribe("allowed:x")
        subscriber.start(delegate: delegate)
        defer { subscriber.shutdown() }
        #expect(try await answered(subscriber, ["allowed:x"]).isEmpty)
        subscriber.subscribe("secret")
        #expect(try await answered(subscriber, ["secret", "allowed:x"]) == ["secret"])
        #expect(try await answered(subscriber, ["secret"]) == ["secret"])
        // No longer wanted: no longer refused.
        subscriber.unsubscribe("secret")
        try await eventually("refused set cleared") { subscriber.refusedChannels.isEmpty }
        _ = try await redis.command("PUBLISH", "allowed:x", "still")
        try await eventually("the allowed channel stays live") { delegate.payloads(on: "allowed:x") == ["still"] }
    }
}
