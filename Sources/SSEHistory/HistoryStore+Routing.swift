import Logging
import SSERedis

extension HistoryStore {
    /// Where history's commands go for `redis` with `history`: one client (on a Redis Cluster
    /// with one shared slot, to that slot's master), or, with positions per channel
    /// (`Layout.perChannel`), a router that sends each channel's commands to the master serving
    /// the channel's slot. `onMoved` runs at every `-MOVED` the router is told (see
    /// `ClusterCommandRouter`).
    public static func commandSender(
        redis: RedisConfiguration,
        history: HistoryConfiguration,
        logger: Logger,
        maximumPending: Int = 65_536,
        retryIntervalMilliseconds: Int = 500,
        lanes: Int = 1,
        onMoved: (@Sendable () -> Void)? = nil
    ) -> any RedisCommandSending {
        if history.adapted(to: redis).isPerChannel {
            return ClusterCommandRouter(
                redis: redis,
                logger: logger,
                maximumPending: maximumPending,
                retryIntervalMilliseconds: retryIntervalMilliseconds,
                lanes: lanes,
                onMoved: onMoved
            )
        }
        return RedisCommandClient(
            redis: HistoryConfiguration.commandEndpoint(redis),
            logger: logger,
            maximumPending: maximumPending,
            retryIntervalMilliseconds: retryIntervalMilliseconds,
            lanes: lanes
        )
    }
}
