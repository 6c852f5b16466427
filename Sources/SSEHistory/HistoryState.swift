import SSEWire

/// Where the history counter stands: its current epoch and sequence, and the epoch before it.
public struct HistoryState: Sendable, Hashable {
    /// The epoch before the current one and what is known of how it ended.
    public struct PreviousEpoch: Sendable, Hashable {
        public let epoch: UInt64
        /// The highest sequence a node or publisher had seen in it: positions of that epoch below
        /// this may have missed events Redis lost.
        public let high: UInt64

        public init(epoch: UInt64, high: UInt64) {
            self.epoch = epoch
            self.high = high
        }
    }

    /// The newest position issued (`epoch-sequence`), nil when history was never written.
    public let current: HistoryPosition?
    public let previous: PreviousEpoch?

    public init(current: HistoryPosition?, previous: PreviousEpoch?) {
        self.current = current
        self.previous = previous
    }

    /// Whether `position` is one the broker issued and Redis still vouches for: in the current
    /// epoch and not past the counter.
    public func vouches(for position: HistoryPosition) -> Bool {
        guard let current else { return false }
        return position.epoch == current.epoch && position.sequence <= current.sequence
    }
}
