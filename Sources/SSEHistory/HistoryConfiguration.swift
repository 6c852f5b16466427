import SSERedis

/// How much history the broker keeps per channel, in Redis Streams, and how it reads it back.
public struct HistoryConfiguration: Sendable, Hashable {
    /// Events kept per channel; 0 turns history off.
    public var length: Int
    /// Seconds a channel's history lives after its last publish.
    public var ttlSeconds: Int
    /// Prefix of every Redis key history uses.
    public var keyPrefix: String
    /// Events read per channel in one replay page (one bounded script call).
    public var pageEvents: Int
    /// Payload bytes per channel in one replay page (at least one event is always read).
    public var pageBytes: Int
    /// How long a replay keeps retrying transient Redis errors (`-LOADING`, a lost connection)
    /// before the client is told `unavailable`.
    public var retrySeconds: Double
    /// Where history's keys live on a Redis Cluster (`adapted(to:)` sets it; a standalone Redis
    /// or Sentinel master is `.standalone`).
    public var layout: Layout = .standalone

    /// How history's keys are laid out over Redis's slots.
    public enum Layout: Sendable, Hashable {
        /// One counter for all channels, keys as they are (one Redis).
        case standalone
        /// One counter for all channels, every key tagged `clusterHashTag`: all of history in one
        /// slot (`clusterSlot`) of a Redis Cluster, so ids order all channels as on one Redis.
        case sharedSlot
        /// Each channel's counter, stream and last position in the channel's own slot (its keys
        /// tagged with `ClusterSlot.hashTag(sameSlotAs:)`), so a channel's publish script runs on
        /// the shard that serves the channel and history spreads over the masters. Positions are
        /// then per channel: a multi-channel stream's id carries one per channel
        /// (`ChannelPositions`).
        case perChannel
    }

    /// Whether the publish script sends sharded pub/sub (`SPUBLISH`, `.perChannel` only): the
    /// event then reaches only the subscribers of the channel's shard (`SSUBSCRIBE`).
    public var publishesSharded = false

    /// Whether every key starts with the hash tag `clusterHashTag` (`.sharedSlot`).
    public var isClustered: Bool { layout == .sharedSlot }
    /// Whether positions are counted per channel (`.perChannel`).
    public var isPerChannel: Bool { layout == .perChannel }

    public init(
        length: Int = 1000,
        ttlSeconds: Int = 3600,
        keyPrefix: String = "sse:history:",
        pageEvents: Int = 100,
        pageBytes: Int = 128 * 1024,
        retrySeconds: Double = 30
    ) {
        self.length = max(0, length)
        self.ttlSeconds = max(1, ttlSeconds)
        self.keyPrefix = keyPrefix
        self.pageEvents = min(10_000, max(1, pageEvents))
        self.pageBytes = max(1, pageBytes)
        self.retrySeconds = retrySeconds.isFinite ? min(3600, max(0, retrySeconds)) : 30
    }

    /// The broker's default: 1000 events per channel for an hour after the last publish.
    public static let `default` = HistoryConfiguration()
    /// No history: publishing is a plain Flask-SSE `PUBLISH`.
    public static let disabled = HistoryConfiguration(length: 0)

    public var isEnabled: Bool { length > 0 }

    /// The hash tag every key carries on a Redis Cluster.
    public static let clusterHashTag = "{sse-broker}"
    /// The slot all history keys hash to on a Redis Cluster.
    public static let clusterSlot = ClusterSlot.slot(of: clusterHashTag)

    /// This configuration for `redis`: on a Redis Cluster, the layout its URL names
    /// (`?history=per-channel`, the default: `.perChannel`, with `SPUBLISH` when the node also
    /// subscribes sharded, `pubsub=both`; `?history=shared`: `.sharedSlot`), unless one was set
    /// here already; elsewhere `.standalone`.
    public func adapted(to redis: RedisConfiguration) -> HistoryConfiguration {
        var adapted = self
        guard case .cluster(let endpoint) = redis.endpoint else {
            adapted.layout = .standalone
            adapted.publishesSharded = false
            return adapted
        }
        if layout == .standalone { adapted.layout = endpoint.history == .perChannel ? .perChannel : .sharedSlot }
        adapted.publishesSharded = adapted.layout == .perChannel && endpoint.pubsub.subscribesSharded
        return adapted
    }

    /// Where history's commands go on `redis`: on a Redis Cluster, the master of `clusterSlot`.
    public static func commandEndpoint(_ redis: RedisConfiguration) -> RedisConfiguration {
        redis.routed(toSlot: clusterSlot)
    }

    /// Where every shared key starts.
    private var base: String { isClustered ? Self.clusterHashTag + keyPrefix : keyPrefix }

    /// Where every key of `channel` starts: per channel, the channel's hash tag first.
    private func base(of channel: String) -> String {
        guard isPerChannel else { return base }
        return "{" + String(decoding: ClusterSlot.hashTag(sameSlotAs: channel.utf8), as: UTF8.self) + "}" + keyPrefix
    }

    /// Seconds a channel's last position outlives its history, so a resume shortly after the
    /// history expired is still told `expired` rather than nothing.
    public static let lastPositionGraceSeconds = 86_400

    /// The epoch of the position counter (see `HistoryPosition`) that numbers `channel`: one for
    /// every channel, or the channel's own (`.perChannel`).
    func epochKey(_ channel: String) -> String { isPerChannel ? base(of: channel) + "epoch:" + channel : base + "epoch" }
    /// The position counter that numbers `channel`.
    func sequenceKey(_ channel: String) -> String { isPerChannel ? base(of: channel) + "seq:" + channel : base + "seq" }
    /// Hash: the epoch before the current one (`epoch`), its counter when it ended (`end`) and
    /// the highest position a node or publisher had seen in it (`high`): events between `end` and
    /// `high` were lost by Redis (a restore, a promoted lagging replica, AOF `everysec` after a crash).
    func previousKey(_ channel: String) -> String { isPerChannel ? base(of: channel) + "previous:" + channel : base + "previous" }
    /// One channel's last position (tells trimmed or expired history apart from a channel that
    /// simply had nothing new); expires `lastPositionGraceSeconds` after its history does.
    func lastKey(_ channel: String) -> String { base(of: channel) + "last:" + channel }
    /// The Redis Stream holding one channel's events.
    func streamKey(_ channel: String) -> String { base(of: channel) + "stream:" + channel }

    /// The slot of `channel`'s keys on a Redis Cluster.
    public func slot(of channel: String) -> Int {
        isPerChannel ? ClusterSlot.slot(of: channel.utf8) : Self.clusterSlot
    }
}
