import SSEWire

/// A `whenSubscribed` waiter on a Redis Cluster whose events with history travel by `SPUBLISH`
/// (`RedisSubscriber.Configuration.historyOnShards`): it runs once the classic link has answered
/// its channels (which tells refusals) and each channel not refused is confirmed on the shard
/// serving it, or at `deadline` whatever the shards do (a shard that never takes a channel must
/// not hold a resume for ever; the channel is then caught up once its shard takes it).
/// Used by the cluster subscriber thread alone.
final class ShardWait: @unchecked Sendable {
    // @unchecked: made, answered and run on the subscriber thread only (its classic waiter's
    // closure runs there too); Sendable only to ride in that closure.
    private let action: @Sendable (_ refused: Set<ChannelName>) -> Void
    /// Channels not confirmed on their shard yet.
    private(set) var remaining: Set<ChannelName>
    private var refused: Set<ChannelName>?
    let deadline: ContinuousClock.Instant
    /// Whether the classic link's answer is needed even past the deadline (it carries history).
    let needsClassic: Bool
    private(set) var hasRun = false

    init(
        remaining: Set<ChannelName>,
        deadline: ContinuousClock.Instant,
        needsClassic: Bool = true,
        action: @escaping @Sendable (_ refused: Set<ChannelName>) -> Void
    ) {
        self.remaining = remaining
        self.deadline = deadline
        self.needsClassic = needsClassic
        self.action = action
    }

    /// The classic link answered: `refused` need no shard.
    func classicAnswered(refused: Set<ChannelName>) {
        self.refused = refused
        remaining.subtract(refused)
        runIfDone()
    }

    /// `channel` is confirmed on its shard (or no longer wanted).
    func shardAnswered(_ channel: ChannelName) {
        remaining.remove(channel)
        runIfDone()
    }

    /// The deadline passed: runs now, or once the classic link has answered when it is needed.
    func expire() {
        remaining.removeAll()
        if !needsClassic, refused == nil { refused = [] }
        runIfDone()
    }

    private func runIfDone() {
        guard !hasRun, remaining.isEmpty, let refused else { return }
        hasRun = true
        action(refused)
    }
}
