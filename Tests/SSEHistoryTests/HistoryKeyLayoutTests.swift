import SSERedis
import Testing

@testable import SSEHistory

@Suite("History key layouts: one Redis, one shared slot, a slot per channel")
struct HistoryKeyLayoutTests {
    static let names = ["news", "a{b}c", "{}x", "}{", "{{x}}", "é", "", "room:{42}:chat", "{only}"]

    static func keys(_ configuration: HistoryConfiguration, _ channel: String) -> [String] {
        [
            configuration.epochKey(channel), configuration.sequenceKey(channel), configuration.previousKey(channel),
            configuration.lastKey(channel), configuration.streamKey(channel),
        ]
    }

    @Test("standalone keys are as they always were", arguments: names)
    func standalone(_ channel: String) {
        let configuration = HistoryConfiguration.default.adapted(to: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 6379)))
        #expect(configuration.layout == .standalone)
        #expect(Self.keys(configuration, channel) == ["sse:history:epoch", "sse:history:seq", "sse:history:previous", "sse:history:last:" + channel, "sse:history:stream:" + channel])
    }

    @Test("one shared slot: every key of every channel in {sse-broker}'s slot", arguments: names)
    func sharedSlot(_ channel: String) throws {
        let configuration = HistoryConfiguration.default.adapted(to: try RedisConfiguration(url: "redis+cluster://127.0.0.1:7000?history=shared"))
        #expect(configuration.layout == .sharedSlot)
        #expect(!configuration.publishesSharded)
        for key in Self.keys(configuration, channel) { #expect(ClusterSlot.slot(of: key) == HistoryConfiguration.clusterSlot, "\(key)") }
        #expect(configuration.slot(of: channel) == HistoryConfiguration.clusterSlot)
    }

    @Test("a slot per channel (the default on a cluster): every key of a channel in the channel's own slot, whatever braces its name holds; channels never share a counter", arguments: names)
    func perChannel(_ channel: String) throws {
        let history = HistoryConfiguration.default
        let configuration = history.adapted(to: try RedisConfiguration(url: "redis+cluster://127.0.0.1:7000"))
        #expect(configuration.layout == .perChannel, "the default on a cluster")
        #expect(configuration.publishesSharded)
        #expect(!history.adapted(to: try RedisConfiguration(url: "redis+cluster://127.0.0.1:7000?pubsub=classic")).publishesSharded)
        let slot = ClusterSlot.slot(of: channel)
        for key in Self.keys(configuration, channel) { #expect(ClusterSlot.slot(of: key) == slot, "\(key)") }
        #expect(configuration.slot(of: channel) == slot)
        let other = channel + "-other"
        #expect(Set(Self.keys(configuration, channel)).isDisjoint(with: Self.keys(configuration, other)))
        // Off a cluster, the per-channel layout falls back to the standalone keys.
        #expect(history.adapted(to: RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: 6379))).layout == .standalone)
    }
}
