import SSEWire

/// What a resume from a client's `Last-Event-ID` does, decided from the counter's state alone
/// (pure, so every case is tested without Redis).
///
/// Only positions the broker issued count: an id in the current epoch up to the counter
/// replays what follows it; an id of the previous epoch replays what Redis still has after it
/// (the rest of that epoch, then the whole current one), with a `lost` notice if Redis lost
/// events the client had not got; anything else (not the broker's form, an unknown epoch, a
/// sequence past the counter) is `unknown`, costs no read, and never moves the client's position.
public enum HistoryResumePlan: Sendable, Hashable {
    /// Read history after `cursor`; `gap`, if any, is announced first. The client has
    /// everything up to `cursor`.
    case replay(after: HistoryPosition, gap: HistoryGap?)
    /// Nothing can be replayed: announce `unknown`. `position`, when set, is where the client
    /// now stands for deduplication (the counter, for an id past it: whatever comes next is new
    /// to this client even if the counter moved backwards), else the client has no position.
    case unknown(position: HistoryPosition?)

    public static func plan(resumingAfter position: HistoryPosition?, state: HistoryState) -> HistoryResumePlan {
        guard let position, let current = state.current else { return .unknown(position: nil) }
        if position.epoch == current.epoch {
            return position.sequence <= current.sequence ? .replay(after: position, gap: nil) : .unknown(position: current)
        }
        if let previous = state.previous, position.epoch == previous.epoch {
            return .replay(after: position, gap: position.sequence < previous.high ? .lost : nil)
        }
        return .unknown(position: nil)
    }
}
