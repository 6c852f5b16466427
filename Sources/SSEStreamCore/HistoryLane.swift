/// The queues (`RedisCommandClient` lanes) of a node's history client: served in turn, each
/// bounded, so no kind of history read can starve another.
package enum HistoryLane {
    /// Replays for `Last-Event-ID` resumes.
    package static let resume = 0
    /// Catch-ups after the subscription or an event loop fell behind.
    package static let catchUp = 1
    /// Reading a newly subscribed channel's last position.
    package static let positions = 2
    package static let count = 3
    /// Commands each lane may hold; past it the replay retries with backoff, then `unavailable`.
    package static let maximumPending = 16_384
}
