import SSEWire

/// What history holds after a position, for a set of channels, read in one atomic snapshot.
public struct HistoryReplay: Sendable {
    /// Why a stream cannot be resumed exactly from the requested position.
    public enum Gap: String, Sendable, Hashable {
        /// Events after the position were trimmed by `--history`.
        case trimmed
        /// The channel's history expired (`--history-ttl` after its last publish).
        case expired
        /// The position is not one this Redis issued (malformed, from the future, or from
        /// before Redis lost its counter).
        case unknown
        /// History could not be read (Redis failed the query).
        case unavailable
    }

    /// Retained events after the position on all the channels, in position order, as the exact
    /// payloads that were published.
    public let events: [(position: HistoryPosition, channel: String, payload: [UInt8])]
    /// Channels whose history has a gap after the position, with the reason.
    public let gaps: [(channel: String, gap: Gap)]
    /// The newest position when the snapshot was taken, if history was ever written.
    public let current: HistoryPosition?

    public init(
        events: [(position: HistoryPosition, channel: String, payload: [UInt8])],
        gaps: [(channel: String, gap: Gap)],
        current: HistoryPosition?
    ) {
        self.events = events
        self.gaps = gaps
        self.current = current
    }
}
