/// How much history the broker keeps per channel, in Redis Streams.
public struct HistoryConfiguration: Sendable, Hashable {
    /// Events kept per channel; 0 turns history off.
    public var length: Int
    /// Seconds a channel's history lives after its last publish.
    public var ttlSeconds: Int
    /// Prefix of every Redis key history uses.
    public var keyPrefix: String

    public init(length: Int = 1000, ttlSeconds: Int = 3600, keyPrefix: String = "sse:history:") {
        self.length = max(0, length)
        self.ttlSeconds = max(1, ttlSeconds)
        self.keyPrefix = keyPrefix
    }

    /// The broker's default: 1000 events per channel for an hour after the last publish.
    public static let `default` = HistoryConfiguration()
    /// No history: publishing is a plain Flask-SSE `PUBLISH`.
    public static let disabled = HistoryConfiguration(length: 0)

    public var isEnabled: Bool { length > 0 }

    /// The epoch of the position counter (see `HistoryPosition`).
    var epochKey: String { keyPrefix + "epoch" }
    /// The position counter shared by every channel.
    var sequenceKey: String { keyPrefix + "seq" }
    /// Hash: channel → position of its last publish (tells trimmed or expired history apart
    /// from a channel that simply had nothing new).
    var lastKey: String { keyPrefix + "last" }
    /// The Redis Stream holding one channel's events.
    func streamKey(_ channel: String) -> String { keyPrefix + "stream:" + channel }
}
