/// A Redis Cluster, reached through seed nodes: any of them answers for the whole cluster
/// (classic pub/sub is cluster-wide; `CLUSTER SLOTS` names the shard of every slot).
///
/// The credentials and TLS options are the `RedisConfiguration`'s, for every node alike, as in
/// redis-py's `RedisCluster`. A cluster has only database 0.
public struct ClusterEndpoint: Sendable, Hashable, CustomStringConvertible {
    /// The seed nodes, in the order to try them.
    public var seeds: [SentinelAddress]
    /// When set, connections go to the master serving this slot (found with `CLUSTER SLOTS`
    /// through a seed), for commands on keys of that slot; nil: any node that answers.
    public var slot: Int?
    /// Which pub/sub the subscription uses.
    public var pubsub: PubSub
    /// Where the broker keeps history on the cluster.
    public var history: History

    /// Which pub/sub a node subscribes with on a cluster.
    public enum PubSub: String, Sendable, Hashable {
        /// Classic `SUBSCRIBE` on one node (every `PUBLISH` reaches every node) and sharded
        /// `SSUBSCRIBE` on the shard serving each channel's slot (`SPUBLISH` stays on its shard).
        case both
        /// Classic `SUBSCRIBE` only: no connection per shard; `SPUBLISH`ed events are not seen.
        case classic
        /// Sharded `SSUBSCRIBE` only (no classic connection): for clusters where nothing
        /// publishes classically; classic `PUBLISH`es (Flask-SSE's `sse.publish`) are not seen.
        /// Needs `history=per-channel` (our events then travel by `SPUBLISH`).
        case sharded

        /// Whether the node holds sharded connections.
        public var subscribesSharded: Bool { self != .classic }
    }

    /// How the broker lays out history on a cluster (`?history=`; its keys and ids).
    public enum History: String, Sendable, Hashable {
        /// Each channel's history in the channel's own slot, written by a script on the shard
        /// that serves it, its events sent there by `SPUBLISH` (with `pubsub=both`): history and
        /// pub/sub spread over the masters. Positions count per channel.
        case perChannel = "per-channel"
        /// All of history in one slot (`{sse-broker}`), one counter for every channel, events by
        /// classic `PUBLISH`: as on one Redis, history does not spread.
        case shared
    }

    /// Most seeds one endpoint may name.
    public static let maximumSeeds = 64
    /// A seed's port when the URL names none.
    public static let defaultPort = 6379

    public init(seeds: [SentinelAddress], slot: Int? = nil, pubsub: PubSub = .both, history: History = .perChannel) {
        self.seeds = seeds
        self.slot = slot
        self.pubsub = pubsub
        self.history = history
    }

    /// `h1:7000,h2:7001` (the slot is not part of it: it is the caller's choice, not the URL's).
    public var description: String {
        seeds.map(\.description).joined(separator: ",")
    }

    /// The seeds in the order one connect tries them: all of them, starting at `start` (taken
    /// modulo the count), so connections of one process spread over the seeds and a dead seed
    /// costs one failed attempt, not a failed connect.
    func rotated(from start: Int) -> [SentinelAddress] {
        guard !seeds.isEmpty else { return [] }
        let first = ((start % seeds.count) + seeds.count) % seeds.count
        return Array(seeds[first...] + seeds[..<first])
    }
}

extension RedisConfiguration {
    /// This configuration for commands on keys of `slot`: on a cluster, connections go to the
    /// master serving that slot; any other endpoint is returned as it is.
    public func routed(toSlot slot: Int) -> RedisConfiguration {
        guard case .cluster(var endpoint) = endpoint else { return self }
        endpoint.slot = slot
        var routed = self
        routed.endpoint = .cluster(endpoint)
        return routed
    }

    /// Whether this is a Redis Cluster.
    public var isCluster: Bool {
        if case .cluster = endpoint { return true }
        return false
    }
}
