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
    /// Whether every key starts with the hash tag `clusterHashTag`, so that on a Redis Cluster
    /// all of history lives in one slot (`clusterSlot`) and one script may touch any of its keys.
    /// Set by `adapted(to:)` for a cluster; the keys are then `{sse-broker}sse:history:…`.
    public var isClustered: Bool = false

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

    /// This configuration for `redis`: on a Redis Cluster, keys in one slot (`isClustered`).
    public func adapted(to redis: RedisConfiguration) -> HistoryConfiguration {
        var adapted = self
        adapted.isClustered = redis.isCluster
        return adapted
    }

    /// Where history's commands go on `redis`: on a Redis Cluster, the master of `clusterSlot`.
    public static func commandEndpoint(_ redis: RedisConfiguration) -> RedisConfiguration {
        redis.routed(toSlot: clusterSlot)
    }

    /// Where every key starts.
    private var base: String { isClustered ? Self.clusterHashTag + keyPrefix : keyPrefix }

    /// Seconds a channel's last position outlives its history, so a resume shortly after the
    /// history expired is still told `expired` rather than nothing.
    public static let lastPositionGraceSeconds = 86_400

    /// The epoch of the position counter (see `HistoryPosition`).
    var epochKey: String { base + "epoch" }
    /// The position counter shared by every channel.
    var sequenceKey: String { base + "seq" }
    /// Hash: the epoch before the current one (`epoch`), its counter when it ended (`end`) and
    /// the highest position a node or publisher had seen in it (`high`): events between `end` and
    /// `high` were lost by Redis (a restore, a promoted lagging replica, AOF `everysec` after a crash).
    var previousKey: String { base + "previous" }
    /// One channel's last position (tells trimmed or expired history apart from a channel that
    /// simply had nothing new); expires `lastPositionGraceSeconds` after its history does.
    func lastKey(_ channel: String) -> String { base + "last:" + channel }
    /// The Redis Stream holding one channel's events.
    func streamKey(_ channel: String) -> String { base + "stream:" + channel }
}
